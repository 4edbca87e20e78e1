//! Objects read or written by this process, kept in memory up to a size: an object's bytes
//! never change (its CID is their hash), so a hub answering many peers with the same new
//! objects reads each from the database once. Only verified bytes go in. A delete through
//! this process removes its object at once; a delete through another process removes it
//! when this process's watcher hears of it (see [`crate::watch`]) — without a watcher
//! running, the object may be served from here until it is evicted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chum_object::Cid;

/// A size-bounded map of CID → bytes; the oldest entries go first.
#[derive(Debug)]
pub(crate) struct ObjectCache {
    capacity: usize,
    inner: Mutex<Inner>,
    /// Removals so far: bytes read before one may belong to an object deleted since, and are
    /// not kept (see [`ObjectCache::insert`]).
    removals: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each object with the number of its insertion.
    objects: HashMap<Cid, (Arc<[u8]>, u64)>,
    /// Insertions in order (one whose object was removed or inserted again since is skipped
    /// when its turn comes).
    order: VecDeque<(Cid, u64)>,
    bytes: usize,
    inserted: u64,
}

impl ObjectCache {
    /// A cache of at most `capacity` bytes of objects (0: nothing is kept).
    pub(crate) fn new(capacity: usize) -> ObjectCache {
        ObjectCache {
            capacity,
            inner: Mutex::default(),
            removals: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes of `cid`, if kept.
    pub(crate) fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        if self.capacity == 0 {
            return None;
        }
        self.lock()
            .objects
            .get(cid)
            .map(|(bytes, _)| bytes.to_vec())
    }

    /// The count of removals, to read before reading or writing an object whose bytes may
    /// then be kept.
    pub(crate) fn generation(&self) -> u64 {
        self.removals.load(Ordering::Acquire)
    }

    /// Keeps `bytes` (verified to hash to `cid`), read or written when [`generation`] was
    /// `since`: if anything was removed meanwhile, the object may be one deleted after the read,
    /// and is not kept. An object larger than an eighth of the capacity is not kept either:
    /// one large object would push out many small ones.
    ///
    /// [`generation`]: ObjectCache::generation
    pub(crate) fn insert(&self, cid: &Cid, bytes: &[u8], since: u64) {
        if self.capacity == 0 || bytes.len() > self.capacity / 8 {
            return;
        }
        let mut inner = self.lock();
        if self.removals.load(Ordering::Acquire) != since || inner.objects.contains_key(cid) {
            return;
        }
        inner.inserted += 1;
        let number = inner.inserted;
        inner
            .objects
            .insert(cid.clone(), (Arc::from(bytes), number));
        inner.order.push_back((cid.clone(), number));
        inner.bytes += bytes.len();
        while inner.bytes > self.capacity {
            let Some((oldest, number)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .objects
                .get(&oldest)
                .is_some_and(|(_, n)| *n == number)
                && let Some((bytes, _)) = inner.objects.remove(&oldest)
            {
                inner.bytes -= bytes.len();
            }
        }
        // Removed objects leave their insertions behind: drop those once they outnumber the
        // objects.
        if inner.order.len() > 2 * inner.objects.len() + 64 {
            let Inner { objects, order, .. } = &mut *inner;
            order.retain(|(cid, number)| objects.get(cid).is_some_and(|(_, n)| n == number));
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        self.removals.fetch_add(1, Ordering::AcqRel);
        *inner = Inner::default();
    }

    /// Forgets `cid` (it was deleted).
    pub(crate) fn remove(&self, cid: &Cid) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        self.removals.fetch_add(1, Ordering::AcqRel);
        if let Some((bytes, _)) = inner.objects.remove(cid) {
            inner.bytes -= bytes.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ObjectCache;
    use chum_object::Cid;

    fn cid(n: u8) -> (Cid, Vec<u8>) {
        let bytes = vec![n; 100];
        (Cid::hash(chum_object::Codec::Raw, &bytes), bytes)
    }

    #[test]
    fn keeps_within_capacity_oldest_out_first() {
        let cache = ObjectCache::new(1_000);
        let objects: Vec<_> = (0..20).map(cid).collect();
        for (cid, bytes) in &objects {
            cache.insert(cid, bytes, cache.generation());
        }
        assert_eq!(cache.get(&objects[0].0), None);
        assert_eq!(cache.get(&objects[19].0), Some(objects[19].1.clone()));
        let kept = objects
            .iter()
            .filter(|(c, _)| cache.get(c).is_some())
            .count();
        assert_eq!(kept, 10);
        cache.remove(&objects[19].0);
        assert_eq!(cache.get(&objects[19].0), None);
        // Removals and re-inserts keep the accounting right.
        for _ in 0..100 {
            cache.insert(&objects[18].0, &objects[18].1, cache.generation());
            cache.remove(&objects[18].0);
        }
        // Bytes read before a removal are not kept.
        let before = cache.generation();
        cache.remove(&objects[17].0);
        cache.insert(&objects[17].0, &objects[17].1, before);
        assert_eq!(cache.get(&objects[17].0), None, "read before a removal");
        cache.insert(&objects[17].0, &objects[17].1, cache.generation());
        assert!(cache.get(&objects[17].0).is_some());
        let inner = cache.lock();
        assert!(
            inner.order.len() <= 2 * (inner.objects.len() + 1) + 64,
            "{} {}",
            inner.order.len(),
            inner.objects.len()
        );
        assert!(inner.bytes <= 1_000);
    }

    #[test]
    fn large_objects_and_zero_capacity_are_not_kept() {
        let (small, bytes) = cid(1);
        let off = ObjectCache::new(0);
        off.insert(&small, &bytes, off.generation());
        assert_eq!(off.get(&small), None);
        let cache = ObjectCache::new(700);
        cache.insert(&small, &bytes, cache.generation());
        assert_eq!(cache.get(&small), None, "100 bytes > 700 / 8");
    }
}
