//! Composite binary keys for index tables of ordered key-value backends (redb, IndexedDB):
//! variable-length parts carry a length prefix, so that a prefix scan finds exactly one first
//! component and the second sorts bytewise within it.

use crate::{Error, Result};
use chum_crdt::Timestamp;
use chum_object::Cid;

/// Bytes before the CID in an author key: author (32), wall ms (8), counter (4).
pub const AUTHOR_PREFIX_LEN: usize = 44;

/// `len(first) ‖ first`: the prefix of every pair key starting with `first`.
pub fn pair_prefix(first: &Cid) -> Vec<u8> {
    let bytes = first.as_bytes();
    let mut key = Vec::with_capacity(1 + bytes.len() + 40);
    // A CID is at most 92 bytes (three 9-byte varints, a 64-byte digest), so its length fits.
    key.push(bytes.len() as u8);
    key.extend_from_slice(bytes);
    key
}

/// `len(first) ‖ first ‖ second`.
pub fn pair_key(first: &Cid, second: &Cid) -> Vec<u8> {
    let mut key = pair_prefix(first);
    key.extend_from_slice(second.as_bytes());
    key
}

/// The CID after `prefix_len` bytes of a key.
pub fn second_of(key: &[u8], prefix_len: usize) -> Result<Cid> {
    let tail = key
        .get(prefix_len..)
        .ok_or_else(|| Error::Damaged("index key too short".into()))?;
    Cid::from_bytes(tail)
        .map_err(|error| Error::Damaged(format!("index key holds no CID: {error}")))
}

/// `len(name) (u16) ‖ name`.
pub fn type_prefix(type_name: &str) -> Result<Vec<u8>> {
    let len = u16::try_from(type_name.len()).map_err(|_| {
        Error::Limit(format!(
            "$type of {} bytes (at most 65535)",
            type_name.len()
        ))
    })?;
    let mut key = Vec::with_capacity(2 + type_name.len() + 36);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(type_name.as_bytes());
    Ok(key)
}

/// `len(name) ‖ name ‖ cid`.
pub fn type_key(type_name: &str, cid: &Cid) -> Result<Vec<u8>> {
    let mut key = type_prefix(type_name)?;
    key.extend_from_slice(cid.as_bytes());
    Ok(key)
}

/// `author ‖ wall ms ‖ counter ‖ cid`, ordered by the author's clock.
pub fn author_key(author: &[u8; 32], clock: Timestamp, cid: Option<&Cid>) -> Vec<u8> {
    let mut key = Vec::with_capacity(AUTHOR_PREFIX_LEN + 36);
    key.extend_from_slice(author);
    key.extend_from_slice(&clock.wall_ms.to_be_bytes());
    key.extend_from_slice(&clock.counter.to_be_bytes());
    if let Some(cid) = cid {
        key.extend_from_slice(cid.as_bytes());
    }
    key
}
