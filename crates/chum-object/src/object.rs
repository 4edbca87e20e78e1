//! [`Object`]: canonical bytes together with the CID that names them.

use crate::cid::{Cid, CidError, Codec};
use crate::dagcbor::{self, DecodeError, EncodeError, Limits};
use crate::value::Value;

/// An immutable DAG-CBOR block: its canonical bytes and their CID (BLAKE3-256, codec dag-cbor).
///
/// An `Object` can only be made from a value (encoding it) or from bytes that decode strictly,
/// so its bytes are always canonical and its CID always matches them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Object {
    cid: Cid,
    bytes: Vec<u8>,
}

/// Bytes that were offered under a CID they do not hash to, or that are not canonical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The bytes hash to another CID.
    #[error("bytes do not match CID {expected} (they hash to {actual})")]
    HashMismatch {
        /// The CID the bytes were offered under.
        expected: Cid,
        /// The CID they hash to.
        actual: Cid,
    },
    /// The CID is not a dag-cbor CID chum can check (other codec or hash function).
    #[error(transparent)]
    Cid(#[from] CidError),
    /// The CID's codec is not dag-cbor.
    #[error("CID {0} is not a dag-cbor CID")]
    NotDagCbor(Cid),
    /// The bytes are not canonical DAG-CBOR.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl Object {
    /// Encodes `value` canonically (default limits) and names it.
    pub fn from_value(value: &Value) -> Result<Object, EncodeError> {
        Object::from_value_with_limits(value, &Limits::default())
    }

    /// Encodes `value` canonically under `limits` and names it.
    pub fn from_value_with_limits(value: &Value, limits: &Limits) -> Result<Object, EncodeError> {
        let mut bytes = Vec::with_capacity(128);
        dagcbor::encode_into(value, limits, &mut bytes)?;
        Ok(Object {
            cid: Cid::hash(Codec::DagCbor, &bytes),
            bytes,
        })
    }

    /// Checks that `bytes` are canonical DAG-CBOR within `limits`, and names them.
    /// Returns the decoded value too, since checking required decoding.
    pub fn from_bytes(bytes: Vec<u8>, limits: &Limits) -> Result<(Object, Value), DecodeError> {
        let value = dagcbor::decode_with_limits(&bytes, limits)?;
        Ok((
            Object {
                cid: Cid::hash(Codec::DagCbor, &bytes),
                bytes,
            },
            value,
        ))
    }

    /// Checks bytes received under `cid`: the hash must match and the bytes must be canonical.
    /// This is what every peer does before it stores an object.
    pub fn verify(
        cid: &Cid,
        bytes: Vec<u8>,
        limits: &Limits,
    ) -> Result<(Object, Value), VerifyError> {
        if !cid.is_blake3(Codec::DagCbor) {
            if cid.codec() != crate::cid::DAG_CBOR {
                return Err(VerifyError::NotDagCbor(cid.clone()));
            }
            return Err(VerifyError::Cid(CidError::UnsupportedHash(cid.hash_code())));
        }
        if !cid.verify(&bytes)? {
            let actual = Cid::hash(Codec::DagCbor, &bytes);
            return Err(VerifyError::HashMismatch {
                expected: cid.clone(),
                actual,
            });
        }
        let value = dagcbor::decode_with_limits(&bytes, limits)?;
        Ok((
            Object {
                cid: cid.clone(),
                bytes,
            },
            value,
        ))
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The canonical DAG-CBOR bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, consuming the object.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes the bytes back into a value (they are canonical, so this cannot fail under
    /// limits at least as wide as those the object was made under).
    pub fn value(&self) -> Result<Value, DecodeError> {
        dagcbor::decode_with_limits(
            &self.bytes,
            &Limits {
                max_size: usize::MAX,
                ..Limits::default()
            },
        )
    }
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Object({}, {} bytes)", self.cid, self.bytes.len())
    }
}

/// The CID of `value`'s canonical encoding (default limits).
pub fn hash(value: &Value) -> Result<Cid, EncodeError> {
    Object::from_value(value).map(|object| object.cid)
}
