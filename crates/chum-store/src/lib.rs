//! # chum-store
//!
//! Storage for chum: one small async trait, [`Store`], with a written contract per method; the
//! in-memory backend [`MemoryStore`]; decorators that inject faults and count calls; and (with
//! feature `conformance`) the suite every backend runs, third-party ones included.
//!
//! What a store keeps, in one transaction per write:
//! - objects by CID, each verified (hash, and strict DAG-CBOR for dag-cbor objects) before it
//!   is stored and re-verified when read;
//! - indexes: by `$type`; versions and current heads by ID hash; reverse links (who links to
//!   X); objects by author in the author's clock order;
//! - an instance-local key/value area that is never synced;
//! - each object's [`Scope`] (shared objects sync, local ones never leave the instance) and
//!   the [`SyncDigest`] of the shared set, which the CHUM protocol reconciles from ([`sync`]).
//!
//! ## Invariants
//! - An object is only stored after its hash was verified against its bytes; a read never
//!   returns bytes that do not match their CID.
//! - Index entries derive from the object's bytes alone ([`index::index_entries`]), the same
//!   way in every backend.
//!
//! ## Example
//! ```
//! use chum_object::{Object, dagjson};
//! use chum_store::{MemoryStore, Query, Store};
//!
//! # futures::executor::block_on(async {
//! let store = MemoryStore::new();
//! let object = Object::from_value(&dagjson::from_str(r#"{"$type":"Message","text":"hi"}"#)?)?;
//! store.put(object.cid(), object.bytes()).await?;
//! assert_eq!(store.get(object.cid()).await?, object.bytes());
//! let messages = store.query(Query::ByType { type_name: "Message", after: None, limit: 10 }).await?;
//! assert_eq!(messages, [object.cid().clone()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![warn(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod decorators;
mod error;
pub mod index;
pub mod keys;
mod memory;
mod store;
pub mod sync;

pub use crate::error::{Error, Result};
pub use crate::memory::MemoryStore;
pub use crate::store::{
    Added, LOOKUP_PAGE, Lookup, LookupAsk, MaybeSendSync, Query, Store, links_to_after,
};
pub use crate::sync::{JournalPage, Scope, SyncDigest};
