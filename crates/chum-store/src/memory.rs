//! The in-memory backend: every contract of [`Store`] except durability across restarts.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use chum_crdt::Timestamp;
use chum_object::{Cid, Limits};

use crate::error::{Error, Result};
use crate::index::{self, IndexEntries, Verified, VersionTables};
use crate::store::{Query, Store};
use crate::sync::{JournalPage, Scope, SyncDigest};

/// A store in memory. Cloning a handle is not supported; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    limits: Limits,
}

/// A map from a key to a set, with no empty sets kept.
type MultiMap<K, V> = BTreeMap<K, BTreeSet<V>>;

/// Where an object's bytes are in the arena.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: usize,
    len: usize,
}

/// Object bytes, appended one after another: no allocation per object, and ~20 bytes less
/// per object than a `Vec` each. Deleted objects leave holes, compacted once they are half.
#[derive(Debug, Default)]
struct Arena {
    bytes: Vec<u8>,
    dead: usize,
}

impl Arena {
    fn push(&mut self, bytes: &[u8]) -> Slot {
        let slot = Slot {
            at: self.bytes.len(),
            len: bytes.len(),
        };
        self.bytes.extend_from_slice(bytes);
        slot
    }

    fn get(&self, slot: Slot) -> &[u8] {
        &self.bytes[slot.at..slot.at + slot.len]
    }
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<Cid, Slot>,
    arena: Arena,
    types: MultiMap<chum_object::Text, Cid>,
    versions: MultiMap<Cid, Cid>,
    heads: MultiMap<Cid, Cid>,
    edges: MultiMap<Cid, Cid>,
    links: MultiMap<Cid, Cid>,
    authors: MultiMap<[u8; 32], (Timestamp, Cid)>,
    local: BTreeMap<Vec<u8>, Vec<u8>>,
    local_objects: HashSet<Cid>,
    digest: SyncDigest,
    /// The journal: its id (chosen on first use) and its CIDs, position = index + 1.
    journal_id: Option<chum_sketch::ids::JournalId>,
    journal: Vec<Cid>,
}

fn add<K: Ord, V: Ord>(map: &mut MultiMap<K, V>, key: K, value: V) {
    // Most keys (types, authors) already have a set: look it up before giving the key away.
    match map.get_mut(&key) {
        Some(set) => {
            set.insert(value);
        }
        None => {
            map.insert(key, BTreeSet::from([value]));
        }
    }
}

fn remove<K: Ord + Clone, V: Ord>(map: &mut MultiMap<K, V>, key: &K, value: &V) {
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

fn members<'a, K: Ord + std::borrow::Borrow<Q>, Q: Ord + ?Sized, V>(
    map: &'a MultiMap<K, V>,
    key: &Q,
) -> impl Iterator<Item = &'a V> + 'a {
    map.get(key).into_iter().flatten()
}

impl VersionTables for Inner {
    fn add_version(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        add(&mut self.versions, of.clone(), cid.clone());
        Ok(())
    }
    fn remove_version(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        remove(&mut self.versions, of, cid);
        Ok(())
    }
    fn is_version(&self, of: &Cid, cid: &Cid) -> Result<bool> {
        Ok(self.versions.get(of).is_some_and(|set| set.contains(cid)))
    }
    fn add_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()> {
        add(&mut self.edges, parent.clone(), child.clone());
        Ok(())
    }
    fn remove_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()> {
        remove(&mut self.edges, parent, child);
        Ok(())
    }
    fn children(&self, parent: &Cid) -> Result<Vec<Cid>> {
        Ok(members(&self.edges, parent).cloned().collect())
    }
    fn add_head(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        add(&mut self.heads, of.clone(), cid.clone());
        Ok(())
    }
    fn remove_head(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        remove(&mut self.heads, of, cid);
        Ok(())
    }
}

impl MemoryStore {
    /// An empty store with the default object limits.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store that accepts objects within `limits`.
    pub fn with_limits(limits: Limits) -> MemoryStore {
        MemoryStore {
            inner: Mutex::default(),
            limits,
        }
    }

    /// Stored CIDs within `range`, ascending, at most `limit`; only shared ones if `shared`.
    fn listed(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize, shared: bool) -> Vec<Cid> {
        let inner = self.lock();
        let range = (range.0.cloned(), range.1.cloned());
        if range_is_empty(&range) {
            return Vec::new();
        }
        inner
            .objects
            .range(range)
            .map(|(cid, _)| cid)
            .filter(|cid| !shared || !inner.local_objects.contains(*cid))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Stores verified objects (`entries` are theirs, in order): new ones inserted, local
    /// ones promoted when stored as shared.
    fn write_verified<'a>(
        &self,
        objects: impl Iterator<Item = (Cid, Cow<'a, [u8]>)>,
        entries: Vec<IndexEntries>,
        scope: Scope,
    ) -> Result<Vec<bool>> {
        let mut inner = self.lock();
        let mut stored = Vec::with_capacity(entries.len());
        for ((cid, bytes), entries) in objects.zip(entries) {
            // One search of the object map: the slot is filled if the object is new.
            let Inner { objects, arena, .. } = &mut *inner;
            let new = match objects.entry(cid.clone()) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(arena.push(&bytes));
                    true
                }
            };
            if !new {
                let promoted = scope == Scope::Shared && inner.local_objects.remove(&cid);
                if promoted {
                    inner.digest.insert(&cid);
                    inner.journal.push(cid);
                }
                stored.push(promoted);
            } else {
                insert_indexes(&mut inner, &cid, entries)?;
                match scope {
                    Scope::Shared => {
                        inner.digest.insert(&cid);
                        inner.journal.push(cid);
                    }
                    Scope::Local => {
                        inner.local_objects.insert(cid);
                    }
                }
                stored.push(true);
            }
        }
        Ok(stored)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a bug in this module; the data
        // stays structurally valid, so continue with it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// An object's bytes are gone: once holes are half the arena (and it is not small), the
    /// live bytes are copied into a new one.
    fn free(&mut self, slot: Slot) {
        self.arena.dead += slot.len;
        if self.arena.dead * 2 > self.arena.bytes.len() && self.arena.bytes.len() > 1 << 20 {
            let mut compacted = Arena {
                bytes: Vec::with_capacity(self.arena.bytes.len() - self.arena.dead),
                dead: 0,
            };
            for slot in self.objects.values_mut() {
                *slot = compacted.push(self.arena.get(*slot));
            }
            self.arena = compacted;
        }
    }
}

/// Indexes a stored object.
fn insert_indexes(inner: &mut Inner, cid: &Cid, entries: IndexEntries) -> Result<()> {
    if let Some(type_name) = entries.type_name {
        add(&mut inner.types, type_name, cid.clone());
    }
    for target in entries.links {
        add(&mut inner.links, target, cid.clone());
    }
    if let Some((author, clock)) = entries.author {
        add(&mut inner.authors, author, (clock, cid.clone()));
    }
    if let Some(version) = &entries.version {
        index::insert_version(inner, cid, version)?;
    }
    Ok(())
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Store for MemoryStore {
    fn never_blocks(&self) -> bool {
        true
    }

    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        // Verify everything first (outside the lock): a bad object refuses the whole batch,
        // even when its CID is already stored.
        let verified = index::verify_and_index_all(objects, &self.limits)?;
        let objects = objects
            .iter()
            .map(|(cid, bytes)| (cid.clone(), Cow::Borrowed(bytes.as_slice())));
        self.write_verified(objects, verified, scope)
    }

    async fn put_verified(&self, batch: Verified, scope: Scope) -> Result<Vec<bool>> {
        if *batch.limits() != self.limits {
            return self.put_scoped(batch.objects(), scope).await;
        }
        // Checked under this store's limits: stored as they are, their bytes moved in.
        let (objects, entries) = batch.into_parts();
        let objects = objects
            .into_iter()
            .map(|(cid, bytes)| (cid, Cow::Owned(bytes)));
        self.write_verified(objects, entries, scope)
    }

    // Bytes were verified on the way in and nothing changes them in memory: they verify on the
    // way out without hashing them again.
    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let inner = self.lock();
        inner
            .objects
            .get(cid)
            .map(|slot| inner.arena.get(*slot).to_vec())
            .ok_or_else(|| Error::NotFound(cid.clone()))
    }

    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        let inner = self.lock();
        Ok(cids
            .iter()
            .map(|cid| {
                inner
                    .objects
                    .get(cid)
                    .map(|slot| inner.arena.get(*slot).to_vec())
                    .ok_or_else(|| Error::NotFound(cid.clone()))
            })
            .collect())
    }

    async fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.lock().objects.contains_key(cid))
    }

    async fn delete(&self, cid: &Cid) -> Result<bool> {
        let mut inner = self.lock();
        let Some(slot) = inner.objects.remove(cid) else {
            return Ok(false);
        };
        let bytes = inner.arena.get(slot).to_vec();
        inner.free(slot);
        if !inner.local_objects.remove(cid) {
            inner.digest.remove(cid);
        }
        // Bytes in memory cannot rot, so they re-verify; read them with the widest limits in
        // case the store's limits changed since they were accepted.
        let entries =
            index::verify_and_index(cid, &bytes, &index::widest_limits()).unwrap_or_default();
        if let Some(type_name) = entries.type_name {
            remove(&mut inner.types, &type_name, cid);
        }
        for target in entries.links {
            remove(&mut inner.links, &target, cid);
        }
        if let Some((author, clock)) = entries.author {
            remove(&mut inner.authors, &author, &(clock, cid.clone()));
        }
        if let Some(version) = &entries.version {
            index::remove_version(&mut *inner, cid, version)?;
        }
        Ok(true)
    }

    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        Ok(self.listed(range, limit, false))
    }

    async fn count(&self) -> Result<u64> {
        Ok(self.lock().objects.len() as u64)
    }

    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        let inner = self.lock();
        Ok(match query {
            Query::ByType {
                type_name,
                after,
                limit,
            } => after_in(members(&inner.types, type_name), after, limit),
            Query::Versions(of) => members(&inner.versions, of).cloned().collect(),
            Query::Heads(of) => members(&inner.heads, of).cloned().collect(),
            Query::LinksTo {
                target,
                after,
                limit,
            } => after_in(members(&inner.links, target), after, limit),
            Query::ByAuthor {
                author,
                after,
                limit,
            } => members(&inner.authors, author)
                .filter(|(clock, cid)| {
                    after.is_none_or(|(after_clock, after_cid)| {
                        (*clock, cid) > (after_clock, after_cid)
                    })
                })
                .take(limit)
                .map(|(_, cid)| cid.clone())
                .collect(),
        })
    }

    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().local.get(key).cloned())
    }

    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.lock().local.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        Ok(self.lock().local.remove(key).is_some())
    }

    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let inner = self.lock();
        Ok(inner
            .local
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| key.clone())
            .collect())
    }

    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        Ok(self.listed(range, limit, true))
    }

    // One walk of the ordered map: no search per listed CID.
    async fn sync_objects(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, Vec<u8>)>, Option<Cid>)> {
        let inner = self.lock();
        let start = after.map_or(Bound::Unbounded, |cid| Bound::Excluded(cid.clone()));
        let any_local = !inner.local_objects.is_empty();
        let objects: Vec<(Cid, Vec<u8>)> = inner
            .objects
            .range((start, Bound::Unbounded))
            .filter(|(cid, _)| !any_local || !inner.local_objects.contains(*cid))
            .take(limit)
            .map(|(cid, slot)| (cid.clone(), inner.arena.get(*slot).to_vec()))
            .collect();
        let next = if objects.len() < limit {
            None
        } else {
            objects.last().map(|(cid, _)| cid.clone())
        };
        Ok((objects, next))
    }

    async fn sync_digest(&self) -> Result<SyncDigest> {
        Ok(self.lock().digest.clone())
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<JournalPage> {
        let mut inner = self.lock();
        let id = match inner.journal_id {
            Some(id) => id,
            None => *inner.journal_id.insert(crate::sync::new_journal_id()?),
        };
        let head = inner.journal.len() as u64;
        let start = usize::try_from(after.min(head)).unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(inner.journal.len());
        let entries = inner.journal[start..end]
            .iter()
            .zip(start as u64 + 1..)
            .filter(|(cid, _)| {
                inner.objects.contains_key(*cid) && !inner.local_objects.contains(*cid)
            })
            .map(|(cid, position)| (position, cid.clone()))
            .collect();
        Ok(JournalPage {
            id,
            head,
            last: after.max(end as u64),
            entries,
        })
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

fn after_in<'a>(
    cids: impl Iterator<Item = &'a Cid>,
    after: Option<&Cid>,
    limit: usize,
) -> Vec<Cid> {
    cids.filter(|cid| after.is_none_or(|after| *cid > after))
        .take(limit)
        .cloned()
        .collect()
}

/// Whether a range has start after end (which `BTreeMap::range` would panic on).
pub(crate) fn range_is_empty(range: &(Bound<Cid>, Bound<Cid>)) -> bool {
    match range {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}
