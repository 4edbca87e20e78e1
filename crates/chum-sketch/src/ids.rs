//! Short ids and set summaries: how the protocol names objects compactly.
//!
//! The **short id** of a CID is the first 8 bytes of its BLAKE3 digest, read big-endian, so
//! short ids sort like the CIDs of one codec. Short ids can collide — by chance (about
//! n²/2^65 for n objects) or on purpose (2^32 work) — so the protocol never trusts them alone:
//! a [`Summary`] also folds in the next 8 digest bytes and the codec, and a resolved short id
//! stands for *every* stored CID that has it.

use chum_object::Cid;

/// Bytes of a chum CID before the digest: version 1, one-byte codec, BLAKE3 code, length 32.
const DIGEST_OFFSET: usize = 4;

fn digest_word(cid: &Cid, word: usize) -> u64 {
    let bytes = cid.as_bytes();
    let start = DIGEST_OFFSET + word * 8;
    match bytes.get(start..start + 8) {
        Some(slice) if bytes.len() == 36 => {
            let mut array = [0u8; 8];
            array.copy_from_slice(slice);
            u64::from_be_bytes(array)
        }
        // Not a chum CID (never stored by a chum store); hash it so it still gets a stable id.
        _ => {
            let hash = blake3::hash(bytes);
            let mut array = [0u8; 8];
            array.copy_from_slice(&hash.as_bytes()[word * 8..word * 8 + 8]);
            u64::from_be_bytes(array)
        }
    }
}

/// The 64-bit short id of a CID: its first 8 digest bytes, big-endian.
#[inline]
pub fn short_id(cid: &Cid) -> u64 {
    digest_word(cid, 0)
}

/// The part of a CID that [`Summary::fingerprint`] folds in: the next 8 digest bytes mixed
/// with the codec, so two CIDs that share a short id (or the same bytes under two codecs)
/// still change the summary.
#[inline]
pub fn fingerprint_part(cid: &Cid) -> u64 {
    digest_word(cid, 1) ^ cid.codec().wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The codecs chum stores hold; a short id is looked up under each.
pub const CODECS: [chum_object::Codec; 2] = [chum_object::Codec::Raw, chum_object::Codec::DagCbor];

/// The CID range (inclusive) holding every chum CID of `codec` whose short id lies in
/// `[low, high]`: CIDs of one codec sort by digest, so a short-id range is a CID range.
pub fn short_id_range(codec: chum_object::Codec, low: u64, high: u64) -> (Cid, Cid) {
    let mut from = [0u8; 32];
    from[..8].copy_from_slice(&low.to_be_bytes());
    let mut to = [0xffu8; 32];
    to[..8].copy_from_slice(&high.to_be_bytes());
    (
        Cid::from_blake3_digest(codec, &from),
        Cid::from_blake3_digest(codec, &to),
    )
}

/// Names a store's **journal**: the log in which a store numbers, from 1 upwards, every object
/// that joins its shared set. Random, chosen when the store is created; a peer that holds
/// every object of a journal up to a position names it with this id (see
/// `Hello::holds` in chum-sync's wire format).
pub type JournalId = [u8; 16];

/// A summary of a set of CIDs, updatable one CID at a time in either direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Summary {
    /// How many CIDs.
    pub count: u64,
    /// Wrapping sum of their short ids.
    pub sum: u64,
    /// XOR of their [`fingerprint_part`]s.
    pub fingerprint: u64,
}

impl Summary {
    /// The summary of the empty set.
    pub const EMPTY: Summary = Summary {
        count: 0,
        sum: 0,
        fingerprint: 0,
    };

    /// The summary of `cids` (each counted once per occurrence).
    pub fn of<'a>(cids: impl IntoIterator<Item = &'a Cid>) -> Summary {
        let mut summary = Summary::EMPTY;
        cids.into_iter().for_each(|cid| summary.insert(cid));
        summary
    }

    /// Adds a CID.
    #[inline]
    pub fn insert(&mut self, cid: &Cid) {
        self.count = self.count.wrapping_add(1);
        self.sum = self.sum.wrapping_add(short_id(cid));
        self.fingerprint ^= fingerprint_part(cid);
    }

    /// Removes a CID that was added.
    #[inline]
    pub fn remove(&mut self, cid: &Cid) {
        self.count = self.count.wrapping_sub(1);
        self.sum = self.sum.wrapping_sub(short_id(cid));
        self.fingerprint ^= fingerprint_part(cid);
    }
}

#[cfg(test)]
mod tests {
    use chum_object::Codec;

    use super::*;

    #[test]
    fn short_ids_sort_like_cids_of_one_codec() {
        let mut cids: Vec<Cid> = (0u32..200)
            .map(|i| Cid::hash(Codec::DagCbor, &i.to_le_bytes()))
            .collect();
        cids.sort();
        let ids: Vec<u64> = cids.iter().map(short_id).collect();
        assert!(ids.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn the_same_bytes_under_two_codecs_share_a_short_id_but_not_a_summary() {
        let raw = Cid::hash(Codec::Raw, b"block");
        let cbor = Cid::hash(Codec::DagCbor, b"block");
        assert_eq!(short_id(&raw), short_id(&cbor));
        assert_ne!(Summary::of([&raw]), Summary::of([&cbor]));
    }

    #[test]
    fn insert_then_remove_is_the_empty_summary() {
        let cids: Vec<Cid> = (0u8..10).map(|i| Cid::hash(Codec::Raw, &[i])).collect();
        let mut summary = Summary::of(&cids);
        cids.iter().for_each(|cid| summary.remove(cid));
        assert_eq!(summary, Summary::EMPTY);
    }
}
