//! Blobs: large content split into raw chunks (at most 1 MiB each) under a manifest object, so
//! that every piece can be verified on arrival.
//!
//! A chunk is a raw block (codec `0x55`) named by its BLAKE3 CID. The manifest is an ordinary
//! object: `{"$type": "Blob", "size": total bytes, "chunkSize": bytes per chunk, "chunks": [links]}`.
//! Every chunk but the last holds exactly `chunkSize` bytes.
//!
//! ```
//! use chum_object::blob;
//!
//! let data = vec![7u8; 2_500];
//! let blob = blob::split(&data, 1_000)?;
//! assert_eq!(blob.chunks.len(), 3);
//! let manifest = blob::Manifest::from_value(&blob.manifest.value()?)?;
//! let back = blob::reassemble(&manifest, |cid| {
//!     blob.chunks.iter().find(|chunk| chunk.cid == *cid).map(|chunk| chunk.bytes.clone())
//! })?;
//! assert_eq!(back, data);
//! # Ok::<(), chum_object::Error>(())
//! ```

use crate::cid::{Cid, Codec};
use crate::object::Object;
use crate::value::{Map, Value};

/// The `$type` of blob manifests.
pub const BLOB_TYPE: &str = "Blob";
/// The largest chunk, 1 MiB.
pub const MAX_CHUNK_SIZE: usize = 1 << 20;

/// A raw chunk and its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// CIDv1, codec raw, BLAKE3-256.
    pub cid: Cid,
    /// The chunk's bytes.
    pub bytes: Vec<u8>,
}

/// A split blob: the manifest object and its chunks in order.
#[derive(Debug, Clone)]
pub struct Blob {
    /// The manifest object.
    pub manifest: Object,
    /// The chunks, in order.
    pub chunks: Vec<Chunk>,
}

/// A blob manifest, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Total size in bytes.
    pub size: u64,
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u64,
    /// The chunk CIDs, in order.
    pub chunks: Vec<Cid>,
}

/// A blob that cannot be split or reassembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The chunk size is zero or above 1 MiB.
    #[error("chunk size {0} is not in 1 ..= 1 MiB")]
    BadChunkSize(u64),
    /// The manifest is malformed or inconsistent.
    #[error("invalid blob manifest: {0}")]
    InvalidManifest(String),
    /// A chunk is not available.
    #[error("chunk {index} ({cid}) is missing")]
    MissingChunk {
        /// Position in the blob.
        index: usize,
        /// Its CID.
        cid: Cid,
    },
    /// A chunk's bytes do not hash to its CID, or have the wrong length.
    #[error("chunk {index} ({cid}) does not verify: {reason}")]
    BadChunk {
        /// Position in the blob.
        index: usize,
        /// Its CID.
        cid: Cid,
        /// What is wrong.
        reason: &'static str,
    },
    /// The manifest is too large to encode (too many chunks for the object limits).
    #[error("blob manifest cannot be encoded: {0}")]
    Encode(String),
}

/// Splits `data` into raw chunks of `chunk_size` bytes (the last may be shorter) and builds the
/// manifest.
pub fn split(data: &[u8], chunk_size: usize) -> Result<Blob, BlobError> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(BlobError::BadChunkSize(chunk_size as u64));
    }
    let chunks: Vec<Chunk> = data
        .chunks(chunk_size)
        .map(|bytes| Chunk {
            cid: Cid::hash(Codec::Raw, bytes),
            bytes: bytes.to_vec(),
        })
        .collect();
    let manifest = Manifest {
        size: data.len() as u64,
        chunk_size: chunk_size as u64,
        chunks: chunks.iter().map(|chunk| chunk.cid.clone()).collect(),
    };
    let manifest = Object::from_value(&manifest.to_value())
        .map_err(|error| BlobError::Encode(error.to_string()))?;
    Ok(Blob { manifest, chunks })
}

impl Manifest {
    /// The manifest as an object value.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("$type", BLOB_TYPE);
        map.insert("size", self.size);
        map.insert("chunkSize", self.chunk_size);
        map.insert(
            "chunks",
            Value::List(self.chunks.iter().cloned().map(Value::Link).collect()),
        );
        Value::Map(map)
    }

    /// Reads and checks a manifest: fields, raw BLAKE3 chunk CIDs, and a chunk count that
    /// matches the size.
    pub fn from_value(value: &Value) -> Result<Manifest, BlobError> {
        let invalid = |why: &str| BlobError::InvalidManifest(why.to_owned());
        let map = value.as_map().ok_or_else(|| invalid("not a map"))?;
        if value.type_name() != Some(BLOB_TYPE) {
            return Err(invalid("$type is not \"Blob\""));
        }
        if map.len() != 4 {
            return Err(invalid(
                "expected exactly $type, size, chunkSize and chunks",
            ));
        }
        let number = |key: &str| {
            map.get(key)
                .and_then(Value::as_int)
                .and_then(|int| int.to_u64())
                .ok_or_else(|| {
                    BlobError::InvalidManifest(format!("{key} must be a non-negative integer"))
                })
        };
        let size = number("size")?;
        let chunk_size = number("chunkSize")?;
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE as u64 {
            return Err(BlobError::BadChunkSize(chunk_size));
        }
        let chunks = map
            .get("chunks")
            .and_then(Value::as_list)
            .ok_or_else(|| invalid("chunks must be a list"))?
            .iter()
            .map(|item| match item.as_link() {
                Some(cid) if cid.is_blake3(Codec::Raw) => Ok(cid.clone()),
                _ => Err(invalid("every chunk must be a raw BLAKE3 link")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if size.div_ceil(chunk_size) != chunks.len() as u64 {
            return Err(invalid("chunk count does not match size and chunkSize"));
        }
        Ok(Manifest {
            size,
            chunk_size,
            chunks,
        })
    }

    /// The length chunk `index` must have.
    fn chunk_len(&self, index: usize) -> u64 {
        let start = index as u64 * self.chunk_size;
        (self.size - start).min(self.chunk_size)
    }
}

/// Reassembles a blob, fetching each chunk by CID and verifying its hash and length before
/// using it. Memory grows only with verified chunks, whatever size the manifest claims.
pub fn reassemble(
    manifest: &Manifest,
    mut fetch: impl FnMut(&Cid) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    for (index, cid) in manifest.chunks.iter().enumerate() {
        let bytes = fetch(cid).ok_or_else(|| BlobError::MissingChunk {
            index,
            cid: cid.clone(),
        })?;
        if bytes.len() as u64 != manifest.chunk_len(index) {
            return Err(BlobError::BadChunk {
                index,
                cid: cid.clone(),
                reason: "wrong length",
            });
        }
        if !cid.verify(&bytes).unwrap_or(false) {
            return Err(BlobError::BadChunk {
                index,
                cid: cid.clone(),
                reason: "hash mismatch",
            });
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn store(blob: &Blob) -> impl Fn(&Cid) -> Option<Vec<u8>> + '_ {
        |cid| {
            blob.chunks
                .iter()
                .find(|c| c.cid == *cid)
                .map(|c| c.bytes.clone())
        }
    }

    #[test]
    fn split_and_reassemble_at_boundaries() {
        for len in [0usize, 1, 999, 1000, 1001, 3000, 3001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let blob = split(&data, 1000).unwrap();
            assert_eq!(blob.chunks.len(), len.div_ceil(1000));
            let manifest = Manifest::from_value(&blob.manifest.value().unwrap()).unwrap();
            assert_eq!(reassemble(&manifest, store(&blob)).unwrap(), data);
        }
        assert!(split(b"x", 0).is_err());
        assert!(split(b"x", MAX_CHUNK_SIZE + 1).is_err());
        assert_eq!(
            split(&vec![1u8; MAX_CHUNK_SIZE * 2 + 5], MAX_CHUNK_SIZE)
                .unwrap()
                .chunks
                .len(),
            3
        );
    }

    #[test]
    fn tampered_or_missing_chunks_are_refused() {
        let data: Vec<u8> = (0..2500u32).map(|i| (i % 253) as u8).collect();
        let blob = split(&data, 1000).unwrap();
        let manifest = Manifest::from_value(&blob.manifest.value().unwrap()).unwrap();
        let tampered = |cid: &Cid| {
            let mut bytes = store(&blob)(cid)?;
            if *cid == blob.chunks[1].cid {
                bytes[0] ^= 1;
            }
            Some(bytes)
        };
        assert!(matches!(
            reassemble(&manifest, tampered),
            Err(BlobError::BadChunk { index: 1, .. })
        ));
        assert!(matches!(
            reassemble(&manifest, |_| None),
            Err(BlobError::MissingChunk { index: 0, .. })
        ));
        let short = |cid: &Cid| {
            store(&blob)(cid).map(|mut b| {
                b.pop();
                b
            })
        };
        assert!(matches!(
            reassemble(&manifest, short),
            Err(BlobError::BadChunk {
                reason: "wrong length",
                ..
            })
        ));
    }

    #[test]
    fn lying_manifests_are_refused() {
        let blob = split(&[1u8; 10], 4).unwrap();
        let mut value = blob.manifest.value().unwrap();
        if let Value::Map(map) = &mut value {
            map.insert("size", u64::MAX);
        }
        assert!(Manifest::from_value(&value).is_err());
        let mut value = blob.manifest.value().unwrap();
        if let Value::Map(map) = &mut value {
            map.insert(
                "chunks",
                Value::List(vec![Value::Link(blob.manifest.cid().clone()); 3]),
            );
        }
        assert!(
            Manifest::from_value(&value).is_err(),
            "dag-cbor link is not a raw chunk"
        );
    }
}
