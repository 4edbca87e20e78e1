//! Decorators that wrap any [`Store`]: [`FaultStore`] injects failures, [`CountingStore`]
//! counts calls.

use std::ops::Bound;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chum_object::Cid;

use crate::error::{Error, Result};
use crate::store::{Lookup, LookupAsk, Query, Store};
use crate::sync::{Scope, SyncDigest};

/// The failure a [`FaultStore`] injects at its Nth write (writes counted from 1: `put_many`,
/// `delete`, `local_put`, `local_delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The Nth write fails without touching the inner store; later calls work.
    FailWrite(u64),
    /// Power is lost at the Nth write: it is not applied, and every call after it fails until
    /// [`FaultStore::restore_power`] (the inner store then shows what was durable).
    PowerLoss(u64),
    /// The Nth write is a batch of which only the first `k` objects reach the inner store (one
    /// by one) before it fails: a torn batch, as a backend without atomic batches would leave.
    TornBatch(u64, usize),
    /// The Nth write panics (a backend with a bug): its caller must survive it. Later calls
    /// work.
    PanicWrite(u64),
}

/// Wraps a store and injects one [`Fault`].
#[derive(Debug)]
pub struct FaultStore<S> {
    inner: S,
    fault: Fault,
    writes: AtomicU64,
    dead: Mutex<bool>,
}

impl<S: Store> FaultStore<S> {
    /// Wraps `inner`, injecting `fault`.
    pub fn new(inner: S, fault: Fault) -> FaultStore<S> {
        FaultStore {
            inner,
            fault,
            writes: AtomicU64::new(0),
            dead: Mutex::new(false),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Ends a simulated power loss.
    pub fn restore_power(&self) {
        *self.dead.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }

    /// How many writes were attempted.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    fn alive(&self) -> Result<()> {
        if *self.dead.lock().unwrap_or_else(|p| p.into_inner()) {
            Err(Error::Injected("power lost".into()))
        } else {
            Ok(())
        }
    }

    /// Counts a write; `Err` when this write is the one to fail.
    fn write_point(&self) -> Result<Option<usize>> {
        self.alive()?;
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Fault::FailWrite(at) if at == n => Err(Error::Injected(format!("write {n} failed"))),
            Fault::PowerLoss(at) if at == n => {
                *self.dead.lock().unwrap_or_else(|p| p.into_inner()) = true;
                Err(Error::Injected(format!("power lost at write {n}")))
            }
            Fault::TornBatch(at, k) if at == n => Ok(Some(k)),
            #[allow(clippy::panic)]
            Fault::PanicWrite(at) if at == n => panic!("injected: write {n} panicked"),
            _ => Ok(None),
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<S: Store> Store for FaultStore<S> {
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        match self.write_point()? {
            Some(k) => {
                for object in objects.iter().take(k) {
                    self.inner
                        .put_scoped(std::slice::from_ref(object), scope)
                        .await?;
                }
                Err(Error::Injected(format!("batch torn after {k} objects")))
            }
            None => self.inner.put_scoped(objects, scope).await,
        }
    }
    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        self.alive()?;
        self.inner.get(cid).await
    }
    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        self.alive()?;
        self.inner.get_many(cids).await
    }
    async fn lookup_many(&self, asks: &[LookupAsk<'_>]) -> Result<Vec<Lookup>> {
        self.alive()?;
        self.inner.lookup_many(asks).await
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        self.alive()?;
        self.inner.has(cid).await
    }
    async fn delete(&self, cid: &Cid) -> Result<bool> {
        self.write_point()?;
        self.inner.delete(cid).await
    }
    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.alive()?;
        self.inner.list(range, limit).await
    }
    async fn count(&self) -> Result<u64> {
        self.alive()?;
        self.inner.count().await
    }
    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        self.alive()?;
        self.inner.query(query).await
    }
    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.alive()?;
        self.inner.local_get(key).await
    }
    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write_point()?;
        self.inner.local_put(key, value).await
    }
    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        self.write_point()?;
        self.inner.local_delete(key).await
    }
    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.alive()?;
        self.inner.local_keys(prefix).await
    }
    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.alive()?;
        self.inner.sync_list(range, limit).await
    }
    async fn sync_digest(&self) -> Result<SyncDigest> {
        self.alive()?;
        self.inner.sync_digest().await
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<crate::sync::JournalPage> {
        self.alive()?;
        self.inner.journal(after, limit).await
    }
    fn watch_others(&self) -> Option<futures::stream::BoxStream<'static, Vec<crate::Added>>> {
        self.inner.watch_others()
    }
    async fn local_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        self.inner.local_put_many(entries).await
    }
    fn limits(&self) -> chum_object::Limits {
        self.inner.limits()
    }
    fn never_blocks(&self) -> bool {
        self.inner.never_blocks()
    }
    async fn shared_among(&self, cids: &[Cid]) -> Result<Vec<Cid>> {
        self.inner.shared_among(cids).await
    }
}

/// Calls counted by a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Counts {
    /// `put_many` calls.
    pub put_many: AtomicU64,
    /// Objects offered to `put_many`.
    pub objects_put: AtomicU64,
    /// `get` calls.
    pub get: AtomicU64,
    /// `has` calls.
    pub has: AtomicU64,
    /// `delete` calls.
    pub delete: AtomicU64,
    /// `list` calls.
    pub list: AtomicU64,
    /// CIDs returned by `list`.
    pub listed: AtomicU64,
    /// `query` calls.
    pub query: AtomicU64,
    /// Calls to the instance-local area.
    pub local: AtomicU64,
    /// Journal entries returned by `journal` calls.
    pub journal_entries: AtomicU64,
}

/// Wraps a store and counts every call (e.g. to prove a sync session never lists the whole
/// store).
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    /// The counters.
    pub counts: Counts,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> CountingStore<S> {
        CountingStore {
            inner,
            counts: Counts::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<S: Store> Store for CountingStore<S> {
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        bump(&self.counts.put_many, 1);
        bump(&self.counts.objects_put, objects.len() as u64);
        self.inner.put_scoped(objects, scope).await
    }
    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        bump(&self.counts.get, 1);
        self.inner.get(cid).await
    }
    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        bump(&self.counts.get, cids.len() as u64);
        self.inner.get_many(cids).await
    }
    async fn lookup_many(&self, asks: &[LookupAsk<'_>]) -> Result<Vec<Lookup>> {
        // What the calls it stands for would have counted (one page of links each).
        let read = asks.iter().filter(|ask| ask.bytes).count();
        bump(&self.counts.get, read as u64);
        bump(&self.counts.query, asks.len() as u64);
        let local = asks.iter().filter(|ask| ask.local_prefix.is_some()).count();
        bump(&self.counts.local, local as u64);
        self.inner.lookup_many(asks).await
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        bump(&self.counts.has, 1);
        self.inner.has(cid).await
    }
    async fn delete(&self, cid: &Cid) -> Result<bool> {
        bump(&self.counts.delete, 1);
        self.inner.delete(cid).await
    }
    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        bump(&self.counts.list, 1);
        let listed = self.inner.list(range, limit).await?;
        bump(&self.counts.listed, listed.len() as u64);
        Ok(listed)
    }
    async fn count(&self) -> Result<u64> {
        self.inner.count().await
    }
    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        bump(&self.counts.query, 1);
        self.inner.query(query).await
    }
    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        bump(&self.counts.local, 1);
        self.inner.local_get(key).await
    }
    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        bump(&self.counts.local, 1);
        self.inner.local_put(key, value).await
    }
    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        bump(&self.counts.local, 1);
        self.inner.local_delete(key).await
    }
    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        bump(&self.counts.local, 1);
        self.inner.local_keys(prefix).await
    }
    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        bump(&self.counts.list, 1);
        let listed = self.inner.sync_list(range, limit).await?;
        bump(&self.counts.listed, listed.len() as u64);
        Ok(listed)
    }
    async fn sync_digest(&self) -> Result<SyncDigest> {
        self.inner.sync_digest().await
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<crate::sync::JournalPage> {
        let page = self.inner.journal(after, limit).await?;
        bump(&self.counts.journal_entries, page.entries.len() as u64);
        Ok(page)
    }
    fn watch_others(&self) -> Option<futures::stream::BoxStream<'static, Vec<crate::Added>>> {
        self.inner.watch_others()
    }
    async fn local_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        self.inner.local_put_many(entries).await
    }
    async fn put_with_local(
        &self,
        objects: &[(Cid, Vec<u8>)],
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        self.inner.put_with_local(objects, scope, local).await
    }
    async fn put_verified_with_local(
        &self,
        batch: crate::index::Verified,
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        self.inner
            .put_verified_with_local(batch, scope, local)
            .await
    }
    fn limits(&self) -> chum_object::Limits {
        self.inner.limits()
    }
    fn never_blocks(&self) -> bool {
        self.inner.never_blocks()
    }
    async fn shared_among(&self, cids: &[Cid]) -> Result<Vec<Cid>> {
        self.inner.shared_among(cids).await
    }
}

/// Wraps a store so that its owner can close it while other handles to the wrapper remain:
/// after [`ClosableStore::close`] every call answers [`Error::Closed`], and the wrapper lets go
/// of the inner store as soon as the calls in flight finish (for a database file that nobody
/// else holds: its lock is released, so it can be opened again at once).
pub struct ClosableStore {
    inner: std::sync::RwLock<Option<std::sync::Arc<dyn Store>>>,
    /// Calls running now (each holds the inner store until it returns).
    in_flight: std::sync::Arc<AtomicU64>,
    limits: chum_object::Limits,
    never_blocks: bool,
}

impl std::fmt::Debug for ClosableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClosableStore")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The inner store for one call, counted as in flight until dropped.
struct InFlight {
    store: std::sync::Arc<dyn Store>,
    count: std::sync::Arc<AtomicU64>,
}

impl std::ops::Deref for InFlight {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ClosableStore {
    /// Wraps `inner`.
    pub fn new(inner: std::sync::Arc<dyn Store>) -> ClosableStore {
        ClosableStore {
            limits: inner.limits(),
            never_blocks: inner.never_blocks(),
            inner: std::sync::RwLock::new(Some(inner)),
            in_flight: std::sync::Arc::new(AtomicU64::new(0)),
        }
    }

    /// Lets go of the inner store: later calls fail with [`Error::Closed`]; calls in flight
    /// finish (see [`ClosableStore::released`]).
    pub fn close(&self) {
        let taken = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(taken);
    }

    /// Whether the store was closed and no call still holds the inner store.
    pub fn released(&self) -> bool {
        self.is_closed() && self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Whether [`ClosableStore::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }

    fn open(&self) -> Result<InFlight> {
        let guard = self
            .inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = guard.clone().ok_or(Error::Closed)?;
        // Counted while the lock is held, so `close` never sees a call about to start as none.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(InFlight {
            store,
            count: std::sync::Arc::clone(&self.in_flight),
        })
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Store for ClosableStore {
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        self.open()?.put_scoped(objects, scope).await
    }
    async fn put_verified(&self, batch: crate::index::Verified, scope: Scope) -> Result<Vec<bool>> {
        self.open()?.put_verified(batch, scope).await
    }
    fn limits(&self) -> chum_object::Limits {
        self.limits
    }
    fn never_blocks(&self) -> bool {
        self.never_blocks
    }
    async fn shared_among(&self, cids: &[Cid]) -> Result<Vec<Cid>> {
        self.open()?.shared_among(cids).await
    }
    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        self.open()?.get(cid).await
    }
    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        self.open()?.get_many(cids).await
    }
    async fn lookup_many(&self, asks: &[LookupAsk<'_>]) -> Result<Vec<Lookup>> {
        self.open()?.lookup_many(asks).await
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        self.open()?.has(cid).await
    }
    async fn delete(&self, cid: &Cid) -> Result<bool> {
        self.open()?.delete(cid).await
    }
    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.open()?.list(range, limit).await
    }
    async fn count(&self) -> Result<u64> {
        self.open()?.count().await
    }
    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        self.open()?.query(query).await
    }
    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.open()?.local_get(key).await
    }
    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.open()?.local_put(key, value).await
    }
    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        self.open()?.local_delete(key).await
    }
    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.open()?.local_keys(prefix).await
    }
    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.open()?.sync_list(range, limit).await
    }
    async fn sync_objects(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, Vec<u8>)>, Option<Cid>)> {
        self.open()?.sync_objects(after, limit).await
    }
    async fn sync_digest(&self) -> Result<SyncDigest> {
        self.open()?.sync_digest().await
    }
    async fn journal(&self, after: u64, limit: usize) -> Result<crate::sync::JournalPage> {
        self.open()?.journal(after, limit).await
    }
    fn watch_others(&self) -> Option<futures::stream::BoxStream<'static, Vec<crate::Added>>> {
        self.open().ok()?.watch_others()
    }
    async fn local_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        self.open()?.local_put_many(entries).await
    }
    async fn put_with_local(
        &self,
        objects: &[(Cid, Vec<u8>)],
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        self.open()?.put_with_local(objects, scope, local).await
    }
    async fn put_verified_with_local(
        &self,
        batch: crate::index::Verified,
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        self.open()?
            .put_verified_with_local(batch, scope, local)
            .await
    }
}
