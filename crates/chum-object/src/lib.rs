//! # chum-object
//!
//! Content-addressed objects for chum: every object is immutable bytes named by their hash.
//!
//! - [`Value`] is the DAG-CBOR data model (null, bool, integers −2^64 ..= 2^64−1, finite
//!   64-bit floats, bytes, text, lists, maps with text keys, links).
//! - [`dagcbor`] writes the one canonical byte form of a value and strictly rejects every other
//!   form, so one value has exactly one byte string and one [`Cid`].
//! - [`dagjson`] converts objects to and from DAG-JSON, for people and tools.
//! - [`Cid`]: CIDv1 with BLAKE3-256 (codec dag-cbor for objects, raw for blob chunks).
//! - [`Object`]: canonical bytes with their CID; [`Object::verify`] is what a peer runs before
//!   storing anything.
//! - [`to_value`] / [`from_value`]: serde bridges for typed Rust data.
//! - [`recipe`]: typed objects (`$type`), their recipes, validation and ID hashes.
//! - [`blob`]: large content split into verified raw chunks under a manifest.
//! - [`sign`]: ed25519 signatures over CIDs with strict verification.
//!
//! ## Invariants
//! - No I/O, no clock, no threads: this crate builds for `wasm32-unknown-unknown`.
//! - Nothing panics on input bytes; every decoder returns `Err` naming the broken rule.
//! - `decode(encode(v)) == v` for every value `v`, and `encode(decode(b)) == b` for every
//!   accepted byte string `b`.
//!
//! ## Example
//! ```
//! use chum_object::{Map, Object, Value, dagcbor, dagjson};
//!
//! let value = dagjson::from_str(r#"{"$type": "Message", "text": "hello"}"#)?;
//! let object = Object::from_value(&value)?;
//! assert_eq!(dagcbor::decode(object.bytes())?, value);
//! println!("{} = {}", object.cid(), dagjson::to_string(&value)?);
//! # Ok::<(), chum_object::Error>(())
//! ```
#![warn(missing_docs)]

pub mod blob;
pub mod cid;
pub mod counters;
pub mod dagcbor;
pub mod dagjson;
mod object;
pub mod recipe;
mod serde_value;
pub mod sign;
mod value;

pub use crate::cid::{Cid, CidError, Codec};
pub use crate::dagcbor::{DecodeError, EncodeError, Limits};
pub use crate::object::{Object, VerifyError, hash};
pub use crate::serde_value::{SerdeError, from_value, from_value_ref, to_value};
pub use crate::value::{Int, IntOutOfRange, Map, Text, Value, canonical_key_order};

/// Every error of this crate. Each variant says whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that are not canonical DAG-CBOR (the sender's fault).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A value that cannot be encoded (the caller's fault).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Bytes that do not match their CID (the sender's fault).
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A malformed CID (whoever wrote it).
    #[error(transparent)]
    Cid(#[from] CidError),
    /// Text that is not valid DAG-JSON (whoever wrote it).
    #[error(transparent)]
    Json(#[from] dagjson::JsonError),
    /// A value that does not fit a Rust type, or the reverse.
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// An object that does not satisfy its recipe, or a malformed recipe.
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
    /// A blob that fails to reassemble.
    #[error(transparent)]
    Blob(#[from] blob::BlobError),
    /// A signature that does not verify.
    #[error(transparent)]
    Signature(#[from] sign::SignatureError),
}
