//! An in-memory object set that answers a [`Session`](crate::Session)'s requests: for tests,
//! examples, simulations and benchmarks, and as the reference for what a store-backed driver
//! must answer.

use std::collections::BTreeMap;
use std::ops::Bound;

use chum_object::{Cid, Codec, Limits, dagcbor};

use crate::ids::{CODECS, JournalId, Summary, short_id, short_id_range};
use crate::reconcile::SKETCH_SIZES;
use crate::session::{Answer, Request};
use crate::sketch::Sketch;

/// A set of verified objects with the indexes a session asks for.
#[derive(Debug, Clone)]
pub struct MemorySet {
    objects: BTreeMap<Cid, Vec<u8>>,
    summary: Summary,
    /// Sketches of the first [`KEPT`] sizes of [`SKETCH_SIZES`], kept current like a store's.
    kept: Vec<Sketch>,
    limits: Limits,
    /// This set's journal: its id and every CID in the order it joined (position = index + 1).
    journal_id: JournalId,
    journal: Vec<Cid>,
}

/// How many of the smallest sketch sizes a set keeps current.
const KEPT: usize = 3;

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object {cid} refused: {reason}")]
pub struct Refused {
    /// The object.
    pub cid: Cid,
    /// Why.
    pub reason: String,
}

/// Checks `bytes` against `cid` the way a store does: the hash, and for dag-cbor strict
/// canonical decoding within `limits`.
pub fn verify(cid: &Cid, bytes: &[u8], limits: &Limits) -> Result<(), Refused> {
    let refuse = |reason: String| Refused {
        cid: cid.clone(),
        reason,
    };
    if bytes.len() > limits.max_size {
        return Err(refuse(format!("{} bytes exceed the limit", bytes.len())));
    }
    if !(cid.is_blake3(Codec::Raw) || cid.is_blake3(Codec::DagCbor)) {
        return Err(refuse("not a BLAKE3 raw or dag-cbor CID".into()));
    }
    if !cid
        .verify(bytes)
        .map_err(|error| refuse(error.to_string()))?
    {
        return Err(refuse("bytes do not hash to the CID".into()));
    }
    if cid.is_blake3(Codec::DagCbor) {
        dagcbor::validate_with_limits(bytes, limits).map_err(|error| refuse(error.to_string()))?;
    }
    Ok(())
}

impl Default for MemorySet {
    fn default() -> MemorySet {
        MemorySet {
            objects: BTreeMap::new(),
            summary: Summary::EMPTY,
            kept: SKETCH_SIZES[..KEPT]
                .iter()
                .map(|&cells| Sketch::new(cells))
                .collect(),
            limits: Limits::default(),
            journal_id: next_journal_id(),
            journal: Vec::new(),
        }
    }
}

/// A fresh journal id: a per-process counter hashed under std's per-process random keys, so
/// sets of different processes differ too (sets are not persisted).
fn next_journal_id() -> JournalId {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let keys = std::collections::hash_map::RandomState::new();
    let mut id = [0u8; 16];
    for (half, chunk) in id.chunks_mut(8).enumerate() {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.write_usize(half);
        chunk.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    id
}

impl MemorySet {
    /// An empty set.
    pub fn new() -> MemorySet {
        MemorySet::default()
    }

    /// Adds a verified object; returns whether it was new.
    pub fn insert(&mut self, cid: Cid, bytes: Vec<u8>) -> Result<bool, Refused> {
        verify(&cid, &bytes, &self.limits)?;
        Ok(self.insert_verified(cid, bytes))
    }

    fn insert_verified(&mut self, cid: Cid, bytes: Vec<u8>) -> bool {
        match self.objects.entry(cid) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(entry) => {
                self.summary.insert(entry.key());
                let id = short_id(entry.key());
                self.kept.iter_mut().for_each(|sketch| sketch.insert(id));
                self.journal.push(entry.key().clone());
                entry.insert(bytes);
                true
            }
        }
    }

    /// Removes an object; returns whether it was present.
    pub fn remove(&mut self, cid: &Cid) -> bool {
        if self.objects.remove(cid).is_none() {
            return false;
        }
        self.summary.remove(cid);
        let id = short_id(cid);
        self.kept.iter_mut().for_each(|sketch| sketch.remove(id));
        true
    }

    /// Whether the set holds `cid`.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.objects.contains_key(cid)
    }

    /// The bytes of `cid`.
    pub fn get(&self, cid: &Cid) -> Option<&[u8]> {
        self.objects.get(cid).map(Vec::as_slice)
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The CIDs, ascending.
    pub fn cids(&self) -> impl Iterator<Item = &Cid> {
        self.objects.keys()
    }

    /// The set's summary.
    pub fn summary(&self) -> Summary {
        self.summary
    }

    /// The same set under another journal id (for tests and fuzzing that must name it).
    pub fn with_journal_id(mut self, id: JournalId) -> MemorySet {
        self.journal_id = id;
        self
    }

    /// The set's journal id.
    pub fn journal_id(&self) -> JournalId {
        self.journal_id
    }

    /// The newest journal position: how many objects ever joined the set.
    pub fn journal_head(&self) -> u64 {
        self.journal.len() as u64
    }

    /// Answers a session's request. For [`Request::Store`], also returns the CIDs that were
    /// new here (a driver reports them to its other sessions as [`Input::LocalStored`]).
    ///
    /// [`Input::LocalStored`]: crate::Input::LocalStored
    ///
    /// A set has no admission policy: it refuses [`Request::Admit`] (drivers of encrypted
    /// sessions decide admission themselves).
    pub fn answer(&mut self, request: Request) -> (Answer, Vec<Cid>) {
        let answer = match request {
            Request::Admit { .. } => Answer::Refused("no admission policy".into()),
            Request::Summary => Answer::Summary(self.summary, Some(self.journal_head())),
            Request::Journal { after, limit } => {
                let start = usize::try_from(after)
                    .unwrap_or(usize::MAX)
                    .min(self.journal.len());
                let end = start.saturating_add(limit).min(self.journal.len());
                let objects = self.journal[start..end]
                    .iter()
                    .filter_map(|cid| Some((cid.clone(), self.objects.get(cid)?.clone())))
                    .collect();
                Answer::Journal {
                    objects,
                    last: after.max(end as u64),
                    head: self.journal_head(),
                }
            }
            Request::Sketch { cells, salt } => {
                let wanted = Sketch::with_salt(cells, salt);
                if let Some(kept) = self
                    .kept
                    .iter()
                    .find(|kept| kept.len() == wanted.len() && kept.salt() == salt)
                {
                    return (Answer::Sketch(self.summary, kept.clone()), Vec::new());
                }
                let mut sketch = wanted;
                self.objects
                    .keys()
                    .for_each(|cid| sketch.insert(short_id(cid)));
                Answer::Sketch(self.summary, sketch)
            }
            Request::ShortIds { after, limit } => {
                let low = match after {
                    None => 0,
                    Some(u64::MAX) => return (Answer::ShortIds(Vec::new()), Vec::new()),
                    Some(after) => after + 1,
                };
                let mut ids = Vec::new();
                for codec in CODECS {
                    let (from, to) = short_id_range(codec, low, u64::MAX);
                    ids.extend(
                        self.objects
                            .range(from..=to)
                            .take(limit)
                            .map(|(cid, _)| short_id(cid)),
                    );
                }
                ids.sort_unstable();
                ids.truncate(limit);
                Answer::ShortIds(ids)
            }
            Request::Cids { after, limit } => {
                let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                let cids = self
                    .objects
                    .range::<Cid, _>((start, Bound::Unbounded))
                    .map(|(cid, _)| cid.clone())
                    .take(limit)
                    .collect();
                Answer::Cids(cids)
            }
            Request::Resolve(ids) => {
                let mut cids = Vec::with_capacity(ids.len());
                for id in ids {
                    for codec in CODECS {
                        let (from, to) = short_id_range(codec, id, id);
                        cids.extend(self.objects.range(from..=to).map(|(cid, _)| cid.clone()));
                    }
                }
                Answer::Resolved(cids)
            }
            Request::Objects { after, limit } => {
                let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                let objects: Vec<(Cid, Vec<u8>)> = self
                    .objects
                    .range::<Cid, _>((start, Bound::Unbounded))
                    .take(limit)
                    .map(|(cid, bytes)| (cid.clone(), bytes.clone()))
                    .collect();
                let next = if objects.len() < limit {
                    None
                } else {
                    objects.last().map(|(cid, _)| cid.clone())
                };
                Answer::Objects { objects, next }
            }
            Request::Shared(cids) => Answer::Resolved(
                cids.into_iter()
                    .filter(|cid| self.objects.contains_key(cid))
                    .collect(),
            ),
            Request::Load(cids) => Answer::Loaded(
                cids.into_iter()
                    .filter_map(|cid| {
                        let bytes = self.objects.get(&cid)?.clone();
                        Some((cid, bytes))
                    })
                    .collect(),
            ),
            Request::Store(objects) => {
                if let Some(refused) = objects
                    .iter()
                    .find_map(|(cid, bytes)| verify(cid, bytes, &self.limits).err())
                {
                    return (Answer::Invalid(refused.to_string()), Vec::new());
                }
                let mut new = Vec::new();
                for (cid, bytes) in objects {
                    if self.insert_verified(cid.clone(), bytes) {
                        new.push(cid);
                    }
                }
                return (Answer::Stored, new);
            }
        };
        (answer, Vec::new())
    }
}
