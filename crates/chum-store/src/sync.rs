//! What the CHUM protocol needs from a store, and the driver function that answers a session.
//!
//! Every object is stored in a [`Scope`]: **shared** objects sync to peers; **local** ones
//! (instance-local types: settings, keys, per-peer state) never leave this instance. Stores
//! keep a [`SyncDigest`] of the shared set — its summary and sketches of a few fixed sizes —
//! up to date on every write, in the same transaction, so a session learns "are we in sync?"
//! and "what differs?" for small differences without scanning anything. Larger sketches, the
//! short-id list and the CID list are read from the ordered object table in chunks.

use std::ops::Bound;

use chum_object::Cid;
use chum_sketch::ids::{CODECS, JournalId, short_id_range};
use chum_sketch::sketch::Sketch;
use chum_sketch::{SKETCH_SIZES, Summary, short_id};

use crate::error::{Error, Result};
use crate::store::Store;

/// Whether an object syncs to peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Synced to peers (the default for [`Store::put_many`]).
    Shared,
    /// Kept on this instance only; never offered to a peer. Storing the same object as
    /// shared later makes it shared.
    Local,
}

/// A page of a store's journal (see [`Store::journal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPage {
    /// The journal's id.
    pub id: JournalId,
    /// The newest position (0 while nothing joined the shared set).
    pub head: u64,
    /// The last position examined (the `after` asked for when none was).
    pub last: u64,
    /// The entries examined whose object is stored and shared: position and CID, ascending.
    pub entries: Vec<(u64, Cid)>,
}

/// A fresh random journal id, for a store being created.
pub fn new_journal_id() -> Result<JournalId> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id)
        .map_err(|error| Error::Backend(format!("no randomness for a journal id: {error}")))?;
    Ok(id)
}

/// Sketch sizes (cells, salt 0) every store keeps current: together they decode differences
/// of up to about 1,500 objects with no scan.
/// (The three smallest of [`SKETCH_SIZES`], the first sketches a session asks for: taken from
/// that list so the two cannot drift apart.)
pub const KEPT_SKETCH_CELLS: [usize; 3] = [SKETCH_SIZES[0], SKETCH_SIZES[1], SKETCH_SIZES[2]];

/// The summary and kept sketches of a store's shared set, as of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDigest {
    /// The shared set's summary.
    pub summary: Summary,
    /// One sketch per [`KEPT_SKETCH_CELLS`] entry, in that order.
    pub sketches: Vec<Sketch>,
}

impl Default for SyncDigest {
    fn default() -> SyncDigest {
        SyncDigest::new()
    }
}

impl SyncDigest {
    /// The digest of the empty set.
    pub fn new() -> SyncDigest {
        SyncDigest {
            summary: Summary::EMPTY,
            sketches: KEPT_SKETCH_CELLS
                .iter()
                .map(|&cells| Sketch::new(cells))
                .collect(),
        }
    }

    /// The digest of `cids` (each once).
    pub fn of<'a>(cids: impl IntoIterator<Item = &'a Cid>) -> SyncDigest {
        let mut digest = SyncDigest::new();
        cids.into_iter().for_each(|cid| digest.insert(cid));
        digest
    }

    /// Adds a CID that joined the shared set.
    pub fn insert(&mut self, cid: &Cid) {
        self.summary.insert(cid);
        let id = short_id(cid);
        self.sketches
            .iter_mut()
            .for_each(|sketch| sketch.insert(id));
    }

    /// Removes a CID that left the shared set.
    pub fn remove(&mut self, cid: &Cid) {
        self.summary.remove(cid);
        let id = short_id(cid);
        self.sketches
            .iter_mut()
            .for_each(|sketch| sketch.remove(id));
    }

    /// The kept sketch of `cells` cells and `salt`, if this digest keeps it.
    pub fn sketch(&self, cells: usize, salt: u64) -> Option<&Sketch> {
        let wanted = Sketch::with_salt(cells, salt);
        self.sketches
            .iter()
            .find(|sketch| sketch.len() == wanted.len() && sketch.salt() == salt)
    }

    /// The persisted form: the summary (count, sum, fingerprint; 8 bytes each, big-endian),
    /// then each sketch's wire form behind a 4-byte big-endian length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.summary.count.to_be_bytes());
        out.extend_from_slice(&self.summary.sum.to_be_bytes());
        out.extend_from_slice(&self.summary.fingerprint.to_be_bytes());
        for sketch in &self.sketches {
            let bytes = sketch.to_bytes();
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads the persisted form; `Error::Damaged` when it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Result<SyncDigest> {
        let damaged = |what: &str| Error::Damaged(format!("sync digest: {what}"));
        let mut input = bytes;
        let mut word = || -> Result<u64> {
            let (head, rest) = input
                .split_first_chunk::<8>()
                .ok_or_else(|| damaged("truncated"))?;
            input = rest;
            Ok(u64::from_be_bytes(*head))
        };
        let summary = Summary {
            count: word()?,
            sum: word()?,
            fingerprint: word()?,
        };
        let mut sketches = Vec::with_capacity(KEPT_SKETCH_CELLS.len());
        for &cells in &KEPT_SKETCH_CELLS {
            let (length, rest) = input
                .split_first_chunk::<4>()
                .ok_or_else(|| damaged("truncated"))?;
            let length = u32::from_be_bytes(*length) as usize;
            if rest.len() < length {
                return Err(damaged("truncated"));
            }
            let (body, rest) = rest.split_at(length);
            let sketch =
                Sketch::from_bytes(body, cells + 3).map_err(|error| damaged(&error.to_string()))?;
            if sketch.len() != Sketch::new(cells).len() || sketch.salt() != 0 {
                return Err(damaged("a sketch of the wrong size"));
            }
            sketches.push(sketch);
            input = rest;
        }
        if !input.is_empty() {
            return Err(damaged("trailing bytes"));
        }
        Ok(SyncDigest { summary, sketches })
    }
}

/// Shared short ids after `after`, ascending (once per CID), at most `limit`.
pub async fn shared_short_ids<S: Store + ?Sized>(
    store: &S,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<u64>> {
    let low = match after {
        None => 0,
        Some(u64::MAX) => return Ok(Vec::new()),
        Some(after) => after + 1,
    };
    let mut ids = Vec::new();
    for codec in CODECS {
        let (from, to) = short_id_range(codec, low, u64::MAX);
        let cids = store
            .sync_list((Bound::Included(&from), Bound::Included(&to)), limit)
            .await?;
        ids.extend(cids.iter().map(short_id));
    }
    ids.sort_unstable();
    ids.truncate(limit);
    Ok(ids)
}

/// Every shared CID with one of these short ids.
pub async fn resolve_short_ids<S: Store + ?Sized>(store: &S, ids: &[u64]) -> Result<Vec<Cid>> {
    /// CIDs sharing one short id that are looked at: more means someone spent 2^32 work each
    /// on collisions, and the full-CID comparison still finds the rest.
    const MAX_PER_ID: usize = 64;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        for codec in CODECS {
            let (from, to) = short_id_range(codec, id, id);
            out.extend(
                store
                    .sync_list((Bound::Included(&from), Bound::Included(&to)), MAX_PER_ID)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// Those of `cids` that are stored and shared (never a local object): [`Store::shared_among`].
pub async fn shared_among<S: Store + ?Sized>(store: &S, cids: Vec<Cid>) -> Result<Vec<Cid>> {
    store.shared_among(&cids).await
}

/// A sketch of the shared set: the kept one when `cells` and `salt` match one, otherwise built
/// by reading the shared set in chunks. Returns the summary of the same snapshot with it (for
/// a built sketch: the summary of what was read).
pub async fn shared_sketch<S: Store + ?Sized>(
    store: &S,
    cells: usize,
    salt: u64,
) -> Result<(Summary, Sketch)> {
    let digest = store.sync_digest().await?;
    if let Some(sketch) = digest.sketch(cells, salt) {
        return Ok((digest.summary, sketch.clone()));
    }
    let mut sketch = Sketch::with_salt(cells, salt);
    let mut summary = Summary::EMPTY;
    let mut after: Option<Cid> = None;
    loop {
        let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let chunk = store.sync_list((start, Bound::Unbounded), 4_096).await?;
        for cid in &chunk {
            sketch.insert(short_id(cid));
            summary.insert(cid);
        }
        match chunk.last() {
            Some(last) if chunk.len() == 4_096 => after = Some(last.clone()),
            _ => return Ok((summary, sketch)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chum_object::Codec;

    use super::*;

    #[test]
    fn a_digest_survives_its_persisted_form_and_refuses_damage() {
        let cids: Vec<Cid> = (0u32..100)
            .map(|i| Cid::hash(Codec::Raw, &i.to_le_bytes()))
            .collect();
        let digest = SyncDigest::of(&cids);
        let bytes = digest.to_bytes();
        assert_eq!(SyncDigest::from_bytes(&bytes).unwrap(), digest);
        for cut in [0, 10, 24, 30, bytes.len() - 1] {
            assert!(SyncDigest::from_bytes(&bytes[..cut]).is_err());
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(SyncDigest::from_bytes(&longer).is_err());
    }

    #[test]
    fn insert_and_remove_cancel() {
        let cids: Vec<Cid> = (0u32..50)
            .map(|i| Cid::hash(Codec::DagCbor, &i.to_le_bytes()))
            .collect();
        let mut digest = SyncDigest::of(&cids);
        cids.iter().for_each(|cid| digest.remove(cid));
        assert_eq!(digest, SyncDigest::new());
    }
}
