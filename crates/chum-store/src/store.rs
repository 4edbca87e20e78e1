//! The storage trait and its contracts.

use std::ops::Bound;

use chum_object::{Cid, Limits};

use crate::error::{Error, Result};
use crate::index::Verified;
use crate::sync::{JournalPage, Scope, SyncDigest};

/// `Send + Sync` natively; nothing on wasm32, where IndexedDB handles are not `Send`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` natively; nothing on wasm32, where IndexedDB handles are not `Send`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// A lookup in one of the indexes every store keeps, in the same transaction as the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query<'a> {
    /// Objects whose `$type` is `type_name`, in CID order, after `after`, at most `limit`.
    ByType {
        /// The `$type`.
        type_name: &'a str,
        /// Start after this CID (paging).
        after: Option<&'a Cid>,
        /// At most this many.
        limit: usize,
    },
    /// Every stored version of an ID hash, in CID order.
    Versions(&'a Cid),
    /// The current heads of an ID hash (stored versions no stored version names as parent), in
    /// CID order.
    Heads(&'a Cid),
    /// Objects that link to `target` (anywhere in their value), in CID order — e.g. the
    /// messages of a conversation, or what a grant's closure must follow backwards.
    LinksTo {
        /// The linked object.
        target: &'a Cid,
        /// Start after this CID (paging).
        after: Option<&'a Cid>,
        /// At most this many.
        limit: usize,
    },
    /// Objects written by `author` (a 32-byte `author` field: versions, entries), in the
    /// author's clock order, then CID, strictly after `after`.
    ByAuthor {
        /// The writing instance.
        author: &'a [u8; 32],
        /// Start after this (clock, CID) position.
        after: Option<(chum_crdt::Timestamp, &'a Cid)>,
        /// At most this many.
        limit: usize,
    },
}

/// What [`Store::lookup_many`] finds for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Its bytes, verified (`NotFound`, `Corrupt`: as [`Store::get`] reports them), if asked.
    pub bytes: Option<Result<Vec<u8>>>,
    /// The stored objects that link to it, in CID order.
    pub linked_by: Vec<Cid>,
    /// The instance-local keys that start with the prefix asked for, in byte order.
    pub local_keys: Vec<Vec<u8>>,
}

/// How many linking objects (or local keys) [`Store::lookup_many`] reads at a time, in its
/// default and in the stores that answer it in one statement.
pub const LOOKUP_PAGE: usize = 1_024;

/// Every object that links to `target`: `found` (the first of them, in CID order, read
/// already — empty to read them all) and the rest, paged through [`Query::LinksTo`] by
/// [`LOOKUP_PAGE`] while pages come back full.
pub async fn links_to_after<S: Store + ?Sized>(
    store: &S,
    target: &Cid,
    mut found: Vec<Cid>,
) -> Result<Vec<Cid>> {
    // A short first part was all there is.
    if !found.is_empty() && !found.len().is_multiple_of(LOOKUP_PAGE) {
        return Ok(found);
    }
    loop {
        let page = store
            .query(Query::LinksTo {
                target,
                after: found.last(),
                limit: LOOKUP_PAGE,
            })
            .await?;
        let done = page.len() < LOOKUP_PAGE;
        found.extend(page);
        if done {
            return Ok(found);
        }
    }
}

/// An object another writer of the store added to its shared set (see
/// [`Store::watch_others`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The object.
    pub cid: Cid,
    /// Its bytes, when the store heard them with the news (verified: they hash to `cid`);
    /// `None`: read them from the store.
    pub bytes: Option<Vec<u8>>,
}

/// One object asked of [`Store::lookup_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupAsk<'a> {
    /// The object.
    pub cid: &'a Cid,
    /// Whether to read its bytes.
    pub bytes: bool,
    /// Also the instance-local keys that start with this, if given.
    pub local_prefix: Option<&'a [u8]>,
}

/// A content-addressed object store with indexes and an instance-local key/value area.
///
/// Every method documents its contract; the conformance suite (feature `conformance`) checks
/// them for any implementation. "Durable" below means: on a durable backend, once the call
/// returns `Ok`, a crash or power loss does not undo it, and the store reopens consistent.
/// Methods may block on I/O (an embedded database commits synchronously); call them from a
/// context that tolerates that.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Store: MaybeSendSync {
    /// Stores a batch of objects atomically and durably, in `scope`.
    ///
    /// Each object is verified first: its bytes must hash to its CID (BLAKE3) and a dag-cbor
    /// object must be canonical DAG-CBOR. If any object fails, `Error::Invalid` names it and
    /// **nothing** of the batch is stored. Objects already stored are skipped (idempotent),
    /// except that a local object stored again as [`Scope::Shared`] becomes shared (shared
    /// wins; a shared object never becomes local). Indexes and the [`SyncDigest`] are updated
    /// in the same transaction. Returns, per object, whether the call changed it: newly
    /// stored, or newly shared.
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>>;

    /// Stores a batch that [`Verified::check`] already checked; see [`Store::put_scoped`]. A
    /// store may skip its own verification when the batch was checked under its limits (the
    /// default checks again).
    async fn put_verified(&self, batch: Verified, scope: Scope) -> Result<Vec<bool>> {
        self.put_scoped(batch.objects(), scope).await
    }

    /// The object limits this store enforces on writes.
    fn limits(&self) -> Limits {
        Limits::default()
    }

    /// Whether every method only awaits (never blocks its thread on I/O or a lock held
    /// across I/O): a store in memory, or over an asynchronous client. A driver may then run
    /// writes as tasks of its own instead of on threads that may block. The default, `false`,
    /// is always safe.
    fn never_blocks(&self) -> bool {
        false
    }

    /// Stores a batch of shared objects; see [`Store::put_scoped`].
    async fn put_many(&self, objects: &[(Cid, Vec<u8>)]) -> Result<Vec<bool>> {
        self.put_scoped(objects, Scope::Shared).await
    }

    /// Stores one object; see [`Store::put_many`].
    async fn put(&self, cid: &Cid, bytes: &[u8]) -> Result<bool> {
        let stored = self.put_many(&[(cid.clone(), bytes.to_vec())]).await?;
        Ok(stored.first().copied().unwrap_or(false))
    }

    /// The bytes of an object, verified against its CID on the way out. `Error::NotFound` when
    /// absent; `Error::Corrupt` (never the bytes) when they no longer verify.
    async fn get(&self, cid: &Cid) -> Result<Vec<u8>>;

    /// The bytes of several objects, in the order asked, each verified like [`Store::get`]:
    /// per object `Ok(bytes)` or the error `get` would give (`NotFound`, `Corrupt`). The outer
    /// `Err` is for failures of the store itself. Backends with snapshots read all of them
    /// from one.
    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            match self.get(cid).await {
                Ok(bytes) => out.push(Ok(bytes)),
                Err(error @ (Error::NotFound(_) | Error::Corrupt { .. })) => out.push(Err(error)),
                Err(error) => return Err(error),
            }
        }
        Ok(out)
    }

    /// What a node reads of objects that just became shared, for several at once: per object
    /// asked, in order, its bytes as [`Store::get_many`] gives them (when asked), every object that links
    /// to it as [`Query::LinksTo`] pages through them (CID order), and, when the ask names a
    /// prefix, the keys of the instance-local area that start with it, as
    /// [`Store::local_keys`] gives them. The outer `Err` is for failures of the store itself.
    /// The default makes those calls one by one; a store on a server answers all of it in
    /// one round trip.
    async fn lookup_many(&self, asks: &[LookupAsk<'_>]) -> Result<Vec<Lookup>> {
        let cids: Vec<Cid> = asks
            .iter()
            .filter(|ask| ask.bytes)
            .map(|ask| ask.cid.clone())
            .collect();
        let mut found = self.get_many(&cids).await?.into_iter();
        let mut out = Vec::with_capacity(asks.len());
        for ask in asks {
            let bytes = if ask.bytes { found.next() } else { None };
            let linked_by = links_to_after(self, ask.cid, Vec::new()).await?;
            let local_keys = match ask.local_prefix {
                Some(prefix) => self.local_keys(prefix).await?,
                None => Vec::new(),
            };
            out.push(Lookup {
                bytes,
                linked_by,
                local_keys,
            });
        }
        Ok(out)
    }

    /// Whether an object is stored. Does not read or verify its bytes.
    async fn has(&self, cid: &Cid) -> Result<bool>;

    /// Removes an object and its index entries from this store only (nothing is sent to
    /// peers). Returns whether it was present; idempotent. Durable.
    async fn delete(&self, cid: &Cid) -> Result<bool>;

    /// Stored CIDs within `range`, in ascending byte order, at most `limit`.
    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>>;

    /// How many objects are stored. Constant time.
    async fn count(&self) -> Result<u64>;

    /// An index lookup; see [`Query`]. Results are in the order the variant states.
    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>>;

    /// A value of the instance-local area (never synced): settings, keys, per-peer sync state.
    /// `Ok(None)` when absent.
    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Sets a value of the instance-local area, durably. Overwrites.
    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Sets several values of the instance-local area, durably and at once (all or none).
    /// Overwrites; a key given twice takes the last value. The default sets them one by one
    /// (atomic only for one entry); backends with transactions write them in one.
    async fn local_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        for (key, value) in entries {
            self.local_put(key, value).await?;
        }
        Ok(())
    }

    /// Sets `local` values of the instance-local area (as [`Store::local_put_many`]) and
    /// stores `objects` in `scope` (as [`Store::put_scoped`]): what a node notes about
    /// objects it receives (e.g. who sent them), never later than the objects. The default
    /// writes the values first, then the objects (a failure between leaves the values
    /// only); backends with transactions write both in one.
    async fn put_with_local(
        &self,
        objects: &[(Cid, Vec<u8>)],
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        self.local_put_many(local).await?;
        self.put_scoped(objects, scope).await
    }

    /// [`Store::put_with_local`] for a batch [`Verified::check`] already checked (as
    /// [`Store::put_verified`] is to [`Store::put_scoped`]). The default writes the values
    /// first, then the batch with [`Store::put_verified`].
    async fn put_verified_with_local(
        &self,
        batch: Verified,
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        self.local_put_many(local).await?;
        self.put_verified(batch, scope).await
    }

    /// Removes a value of the instance-local area, durably. Returns whether it was present.
    async fn local_delete(&self, key: &[u8]) -> Result<bool>;

    /// Keys of the instance-local area that start with `prefix`, in byte order.
    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Stored **shared** CIDs within `range`, ascending, at most `limit` — what [`Store::list`]
    /// gives without the local objects.
    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>>;

    /// Those of `cids` that are stored **and shared** (never an instance-local object), in the
    /// order given, each once. The default asks [`Store::sync_list`] for each; backends with
    /// queries answer in one.
    async fn shared_among(&self, cids: &[Cid]) -> Result<Vec<Cid>> {
        let mut shared: Vec<Cid> = Vec::with_capacity(cids.len());
        let mut asked = std::collections::HashSet::with_capacity(cids.len());
        for cid in cids {
            let exact = (Bound::Included(cid), Bound::Included(cid));
            if asked.insert(cid) && !self.sync_list(exact, 1).await?.is_empty() {
                shared.push(cid.clone());
            }
        }
        Ok(shared)
    }

    /// Shared objects with their bytes, ascending by CID, strictly after `after`, at most
    /// `limit` listed; objects whose bytes no longer verify are left out. Also returns the CID
    /// to continue after (`None` when no shared object follows). The default lists with
    /// [`Store::sync_list`] and reads with [`Store::get_many`]; backends with ordered storage
    /// read the range once.
    async fn sync_objects(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, Vec<u8>)>, Option<Cid>)> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let cids = self.sync_list((start, Bound::Unbounded), limit).await?;
        let next = if cids.len() < limit {
            None
        } else {
            cids.last().cloned()
        };
        let loaded = self.get_many(&cids).await?;
        let objects = cids
            .into_iter()
            .zip(loaded)
            .filter_map(|(cid, bytes)| Some((cid, bytes.ok()?)))
            .collect();
        Ok((objects, next))
    }

    /// The [`SyncDigest`] of the shared set, as of one snapshot. Constant time in the number of
    /// objects: stores keep it current on every write, in the write's transaction.
    async fn sync_digest(&self) -> Result<SyncDigest>;

    /// Shared objects that **other writers** of this store added — other processes over the
    /// same database — in batches, in journal order, soon after each commits. `None` (the
    /// default) for a store that only this handle writes. A node serving sessions over such a
    /// store offers these to its peers as it offers its own writes, so that a peer of one
    /// process hears live of what a peer of another wrote. The stream ends when the store is
    /// dropped; it may repeat an object (e.g. after a lost connection) but never skips one
    /// committed while it runs. Each call starts a new stream from the journal's head.
    ///
    /// An entry may carry the object's bytes (verified against its CID), as the write
    /// committed them, when the store heard them with the news (small writes): the object may
    /// have been deleted since, as it may be after any read.
    fn watch_others(&self) -> Option<futures::stream::BoxStream<'static, Vec<Added>>> {
        None
    }

    /// A page of this store's **journal**: the log that numbers, from 1 upwards and in the
    /// write's transaction, every object that joins the shared set (stored as shared, or a
    /// local object promoted). Positions are never reused; the journal's id is random, chosen
    /// when the store is created, and kept while the store lives. Returns the entries after
    /// position `after`, in order, at most `limit` examined; entries whose object is no longer
    /// stored or shared are left out (`last` still moves past them).
    async fn journal(&self, after: u64, limit: usize) -> Result<JournalPage>;
}
