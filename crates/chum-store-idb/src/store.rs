//! [`IdbStore`]: opening (lock, schema, metadata), reads and writes.

use std::cell::{Cell, RefCell};
use std::ops::Bound;

use chum_object::{Cid, Limits};
use chum_store::index::{self, IndexEntries, Verified, VersionEntry};
use chum_store::keys::{author_key, pair_key, pair_prefix, second_of, type_key, type_prefix};
use chum_store::sync::{JournalPage, Scope, SyncDigest};
use chum_store::{Error, Query, Result, Store};
use futures::lock::Mutex;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbFactory, IdbIndexParameters, IdbObjectStore, IdbObjectStoreParameters,
    IdbOpenDbRequest, IdbTransaction,
};

use crate::js;
use crate::tables::{Staged, prefixed_keys};
use crate::{EDGES, HEADS, VERSIONS};

/// The layout this build writes and reads (the database version).
const FORMAT: u32 = 1;

const OBJECTS: &str = "objects";
const LOCAL: &str = "local";
const META: &str = "meta";
/// Every object store, for transactions that may touch any of them.
const ALL: [&str; 6] = [OBJECTS, VERSIONS, EDGES, HEADS, LOCAL, META];

/// The indexes of `objects`: name, the record field, multi-entry. `journal` is the journal:
/// a shared object's position, kept by the browser in the object's own write and removed with
/// it.
const INDEXES: [(&str, &str, bool); 5] = [
    ("type", "t", false),
    ("links", "l", true),
    ("author", "a", false),
    ("local", "s", false),
    ("journal", "j", false),
];

/// Puts issued before a write waits for one (and so lets the page run other tasks).
const YIELD_EVERY: usize = 128;

/// What every write changes besides the objects, as committed.
#[derive(Debug, Clone)]
struct Meta {
    count: u64,
    journal_id: chum_sketch::ids::JournalId,
    journal_head: u64,
    digest: SyncDigest,
}

/// A chum store in the browser's IndexedDB. Not `Send`: it lives on the thread (page or
/// worker) that opened it.
#[derive(Debug)]
pub struct IdbStore {
    name: String,
    db: IdbDatabase,
    limits: Limits,
    /// Committed metadata: read by anyone, replaced by a writer after its commit.
    meta: RefCell<Meta>,
    /// One write at a time (each reads the metadata, then commits its successor).
    writer: Mutex<()>,
    /// Resolving it lets go of the Web Lock; `held` settles once the lock is released.
    release: RefCell<Option<Function>>,
    held: RefCell<Option<Promise>>,
    closed: Cell<bool>,
    persisted: bool,
}

/// The global object's `navigator` (window or worker).
fn navigator() -> JsValue {
    js::get(&js_sys::global(), "navigator")
}

/// Takes the Web Lock `chum-store:NAME` if nobody holds it: the function that releases it
/// and the promise that settles once released; `Error::Locked` when held elsewhere.
async fn lock(name: &str) -> Result<(Function, Promise)> {
    let locks = js::get(&navigator(), "locks");
    let request = js::get(&locks, "request")
        .dyn_into::<Function>()
        .map_err(|_| {
            Error::Backend(
                "this browser has no Web Locks (navigator.locks; pages must be a secure \
                 context, e.g. https or http://127.0.0.1), so it cannot keep a second writer \
                 out of the store"
                    .into(),
            )
        })?;
    let mut release = None;
    let hold = Promise::new(&mut |resolve, _reject| release = Some(resolve));
    let release = release.ok_or_else(|| Error::Backend("no promise resolver".into()))?;
    let (granted_tx, granted_rx) = futures::channel::oneshot::channel::<bool>();
    let callback = wasm_bindgen::closure::Closure::once_into_js(move |lock: JsValue| -> JsValue {
        let granted = !lock.is_null() && !lock.is_undefined();
        let _ = granted_tx.send(granted);
        if granted {
            hold.into()
        } else {
            JsValue::UNDEFINED
        }
    });
    let options = Object::new();
    let _ = Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE);
    let held = request
        .call3(
            &locks,
            &JsValue::from_str(&format!("chum-store:{name}")),
            &options,
            &callback,
        )
        .map_err(|error| Error::Backend(format!("Web Lock request: {}", js::describe(&error))))?
        .dyn_into::<Promise>()
        .map_err(|_| Error::Backend("Web Lock request returned no promise".into()))?;
    match granted_rx.await {
        Ok(true) => Ok((release, held)),
        _ => Err(Error::Locked(format!(
            "the store {name:?} is open in another tab or worker of this site"
        ))),
    }
}

/// Asks the browser to keep the site's storage under pressure; whether it agreed.
async fn persist() -> bool {
    let storage = js::get(&navigator(), "storage");
    let Ok(persist) = js::get(&storage, "persist").dyn_into::<Function>() else {
        return false;
    };
    let Ok(promise) = persist.call0(&storage).map(Promise::from) else {
        return false;
    };
    JsFuture::from(promise)
        .await
        .ok()
        .and_then(|granted| granted.as_bool())
        .unwrap_or(false)
}

fn factory() -> Result<IdbFactory> {
    js::get(&js_sys::global(), "indexedDB")
        .dyn_into::<IdbFactory>()
        .map_err(|_| Error::Backend("this context has no IndexedDB".into()))
}

/// Creates the object stores and indexes of format 1 (the database is new).
fn create_schema(db: &IdbDatabase) -> Result<()> {
    let made = |what: &str, error: JsValue| js::backend(what, &error);
    let objects = db
        .create_object_store(OBJECTS)
        .map_err(|e| made("createObjectStore", e))?;
    for (name, field, multi) in INDEXES {
        let parameters = IdbIndexParameters::new();
        parameters.set_multi_entry(multi);
        objects
            .create_index_with_str_and_optional_parameters(name, field, &parameters)
            .map_err(|e| made("createIndex", e))?;
    }
    for store in [VERSIONS, EDGES, HEADS, LOCAL, META] {
        db.create_object_store_with_optional_parameters(store, &IdbObjectStoreParameters::new())
            .map_err(|e| made("createObjectStore", e))?;
    }
    Ok(())
}

/// Opens the database `chum:NAME` at format 1, creating it when new.
async fn open_database(name: &str) -> Result<IdbDatabase> {
    let factory = factory()?;
    let db_name = format!("chum:{name}");
    let request: IdbOpenDbRequest = factory
        .open_with_u32(&db_name, FORMAT)
        .map_err(|error| js::backend("open", &error))?;
    let schema_error: std::rc::Rc<RefCell<Option<Error>>> = std::rc::Rc::default();
    let on_upgrade = {
        let schema_error = std::rc::Rc::clone(&schema_error);
        let request = request.clone();
        wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            let result = request
                .result()
                .map_err(|error| js::backend("open", &error))
                .and_then(|db| {
                    db.dyn_into::<IdbDatabase>()
                        .map_err(|_| Error::Backend("open gave no database".into()))
                })
                .and_then(|db| create_schema(&db));
            if let Err(error) = result {
                *schema_error.borrow_mut() = Some(error);
            }
        })
    };
    request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let opened = js::request("open", &request).await;
    request.set_onupgradeneeded(None);
    drop(on_upgrade);
    if let Some(error) = schema_error.borrow_mut().take() {
        return Err(error);
    }
    match opened {
        Ok(db) => db
            .dyn_into::<IdbDatabase>()
            .map_err(|_| Error::Backend("open gave no database".into())),
        Err(Error::Backend(why)) if why.contains("VersionError") => Err(Error::NewerFormat {
            found: found_version(&factory, &db_name).await.unwrap_or(0),
            supported: FORMAT,
        }),
        Err(error) => Err(error),
    }
}

/// The version of an existing database (opened without asking for one, then closed).
async fn found_version(factory: &IdbFactory, db_name: &str) -> Option<u32> {
    let request = factory.open(db_name).ok()?;
    let db = js::request("open", &request)
        .await
        .ok()?
        .dyn_into::<IdbDatabase>()
        .ok()?;
    let version = db.version() as u32;
    db.close();
    Some(version)
}

fn object_store(transaction: &IdbTransaction, name: &str) -> Result<IdbObjectStore> {
    transaction
        .object_store(name)
        .map_err(|error| js::backend("objectStore", &error))
}

fn number(value: u64) -> JsValue {
    JsValue::from_f64(value as f64)
}

/// Reads (or, in a new database, writes) the metadata.
async fn load_meta(db: &IdbDatabase) -> Result<Meta> {
    let (transaction, done) = js::transaction(db, &[META], true)?;
    let meta = object_store(&transaction, META)?;
    let read = |key: &str| -> Result<web_sys::IdbRequest> {
        meta.get(&JsValue::from_str(key))
            .map_err(|error| js::backend("get", &error))
    };
    let format = js::request("get", &read("format")?).await?;
    let loaded = if format.is_undefined() {
        let fresh = Meta {
            count: 0,
            journal_id: chum_store::sync::new_journal_id()?,
            journal_head: 0,
            digest: SyncDigest::new(),
        };
        let put = |key: &str, value: &JsValue| -> Result<()> {
            meta.put_with_key(value, &JsValue::from_str(key))
                .map(drop)
                .map_err(|error| js::backend("put", &error))
        };
        put("format", &number(u64::from(FORMAT)))?;
        put("journal_id", &js::bytes(&fresh.journal_id))?;
        write_meta(&meta, &fresh)?;
        fresh
    } else {
        if format.as_f64() != Some(f64::from(FORMAT)) {
            return Err(Error::Damaged(format!("unknown store format {format:?}")));
        }
        let damaged = |what: &str| Error::Damaged(format!("store metadata: {what}"));
        let count = js::request("get", &read("count")?)
            .await?
            .as_f64()
            .ok_or_else(|| damaged("count"))?;
        let head = js::request("get", &read("journal_head")?)
            .await?
            .as_f64()
            .ok_or_else(|| damaged("journal head"))?;
        let id = js::to_bytes(&js::request("get", &read("journal_id")?).await?)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| damaged("journal id"))?;
        let digest = js::to_bytes(&js::request("get", &read("digest")?).await?)
            .ok_or_else(|| damaged("sync digest"))?;
        Meta {
            count: count as u64,
            journal_id: id,
            journal_head: head as u64,
            digest: SyncDigest::from_bytes(&digest)?,
        }
    };
    js::commit(&transaction, done).await?;
    Ok(loaded)
}

/// Writes what changes with every write.
fn write_meta(meta: &IdbObjectStore, value: &Meta) -> Result<()> {
    for (key, value) in [
        ("count", number(value.count)),
        ("journal_head", number(value.journal_head)),
        ("digest", js::bytes(&value.digest.to_bytes())),
    ] {
        meta.put_with_key(&value, &JsValue::from_str(key))
            .map_err(|error| js::backend("put", &error))?;
    }
    Ok(())
}

/// The record of a new object.
fn record(cid: &Cid, bytes: &[u8], entries: &IndexEntries, journal: Option<u64>) -> Result<Object> {
    let record = Object::new();
    let set = |field: &str, value: &JsValue| {
        let _ = Reflect::set(&record, &JsValue::from_str(field), value);
    };
    set("b", &js::bytes(bytes));
    if let Some(type_name) = &entries.type_name {
        set("t", &js::bytes(&type_key(type_name, cid)?));
    }
    if !entries.links.is_empty() {
        let links: Array = entries
            .links
            .iter()
            .map(|target| js::bytes(&pair_key(target, cid)))
            .collect();
        set("l", &links);
    }
    if let Some((author, clock)) = &entries.author {
        set("a", &js::bytes(&author_key(author, *clock, Some(cid))));
    }
    match journal {
        Some(position) => set("j", &number(position)),
        None => set("s", &JsValue::from_f64(1.0)),
    }
    Ok(record)
}

/// The bytes of a stored record, verified against `cid`.
fn verified(cid: &Cid, record: &JsValue) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::Corrupt {
        cid: cid.clone(),
        reason,
    };
    let bytes = js::to_bytes(&js::get(record, "b"))
        .ok_or_else(|| corrupt("the stored record holds no bytes".into()))?;
    match cid.verify(&bytes) {
        Ok(true) => Ok(bytes),
        Ok(false) => Err(corrupt("stored bytes do not hash to the CID".into())),
        Err(error) => Err(corrupt(error.to_string())),
    }
}

/// A CID from a binary key.
fn cid_of(key: &JsValue) -> Result<Cid> {
    let bytes =
        js::to_bytes(key).ok_or_else(|| Error::Damaged("a non-binary object key".into()))?;
    Cid::from_bytes(&bytes).map_err(|error| Error::Damaged(format!("object key: {error}")))
}

/// IndexedDB's count argument: 0 would mean "no limit".
fn count_arg(limit: usize) -> u32 {
    u32::try_from(limit).unwrap_or(u32::MAX)
}

/// A key range over CIDs; `None` when nothing can be in it.
fn cid_range(range: (Bound<&Cid>, Bound<&Cid>)) -> Result<Option<JsValue>> {
    let empty = match range {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    };
    if empty {
        return Ok(None);
    }
    let key = |cid: &Cid| js::bytes(cid.as_bytes());
    let made = match range {
        (Bound::Unbounded, Bound::Unbounded) => return Ok(Some(JsValue::NULL)),
        (Bound::Included(a) | Bound::Excluded(a), Bound::Unbounded) => {
            web_sys::IdbKeyRange::lower_bound_with_open(
                &key(a),
                matches!(range.0, Bound::Excluded(_)),
            )
        }
        (Bound::Unbounded, Bound::Included(b) | Bound::Excluded(b)) => {
            web_sys::IdbKeyRange::upper_bound_with_open(
                &key(b),
                matches!(range.1, Bound::Excluded(_)),
            )
        }
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            web_sys::IdbKeyRange::bound_with_lower_open_and_upper_open(
                &key(a),
                &key(b),
                matches!(range.0, Bound::Excluded(_)),
                matches!(range.1, Bound::Excluded(_)),
            )
        }
    };
    made.map(|range| Some(range.into()))
        .map_err(|error| js::backend("key range", &error))
}

impl IdbStore {
    /// Opens (or creates) the store `name` of this site: takes its Web Lock (another open
    /// copy anywhere in this browser profile gives [`Error::Locked`]), opens or creates the
    /// database `chum:NAME`, and asks for persistent storage.
    pub async fn open(name: &str) -> Result<IdbStore> {
        let (release, held) = lock(name).await?;
        let opened = async {
            let db = open_database(name).await?;
            match load_meta(&db).await {
                Ok(meta) => Ok((db, meta)),
                Err(error) => {
                    db.close();
                    Err(error)
                }
            }
        }
        .await;
        let (db, meta) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let _ = release.call0(&JsValue::UNDEFINED);
                return Err(error);
            }
        };
        // Another tab upgrading the database (a newer chum) asks this one to close first.
        let on_version_change = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new({
            let db = db.clone();
            move |_event: JsValue| db.close()
        });
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        on_version_change.forget();
        Ok(IdbStore {
            name: name.to_owned(),
            db,
            limits: Limits::default(),
            meta: RefCell::new(meta),
            writer: Mutex::new(()),
            release: RefCell::new(Some(release)),
            held: RefCell::new(Some(held)),
            closed: Cell::new(false),
            persisted: persist().await,
        })
    }

    /// The store's name (its database is `chum:NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the browser granted persistent storage (`navigator.storage.persist()`).
    pub fn persisted(&self) -> bool {
        self.persisted
    }

    /// Deletes the store `name` (its database) for good. Fails with [`Error::Locked`] while
    /// it is open anywhere.
    pub async fn delete_store(name: &str) -> Result<()> {
        let (release, held) = lock(name).await?;
        let request = factory()?
            .delete_database(&format!("chum:{name}"))
            .map_err(|error| js::backend("deleteDatabase", &error));
        let deleted = match request {
            Ok(request) => js::request("deleteDatabase", &request).await.map(drop),
            Err(error) => Err(error),
        };
        let _ = release.call0(&JsValue::UNDEFINED);
        let _ = JsFuture::from(held).await;
        deleted
    }

    /// Closes the store: later calls fail with [`Error::Closed`]; returns once the Web Lock
    /// is released (so the store can be opened again at once, here or in another tab).
    pub async fn close(&self) {
        let _writes = self.writer.lock().await;
        self.let_go();
        let held = self.held.borrow_mut().take();
        if let Some(held) = held {
            let _ = JsFuture::from(held).await;
        }
    }

    fn let_go(&self) {
        if !self.closed.replace(true) {
            self.db.close();
        }
        if let Some(release) = self.release.borrow_mut().take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }

    fn open_check(&self) -> Result<()> {
        if self.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn read(&self, stores: &[&str]) -> Result<(IdbTransaction, JsFuture)> {
        self.open_check()?;
        js::transaction(&self.db, stores, false)
    }

    /// Stores verified objects in one transaction.
    async fn write_verified(
        &self,
        objects: &[(Cid, Vec<u8>)],
        entries: &[IndexEntries],
        scope: Scope,
    ) -> Result<Vec<bool>> {
        let _writes = self.writer.lock().await;
        self.open_check()?;
        let mut meta = self.meta.borrow().clone();
        let (transaction, done) = js::transaction(&self.db, &ALL, true)?;
        let store = object_store(&transaction, OBJECTS)?;
        // Each object is added with the journal position it gets if it is new; an object
        // stored already makes its `add` fail alone (`ConstraintError`, kept from aborting the
        // transaction), so a new object costs one request — no existence check first.
        let keep_going = js::ignore_errors();
        let mut first_of = std::collections::HashMap::new();
        let mut added: Vec<(usize, web_sys::IdbRequest, Option<u64>)> = Vec::new();
        let mut next = meta.journal_head;
        for (index, ((cid, bytes), entries)) in objects.iter().zip(entries).enumerate() {
            if first_of.insert(cid, index).is_some() {
                continue; // earlier in this batch
            }
            let position = (scope == Scope::Shared).then(|| {
                next += 1;
                next
            });
            let request = store
                .add_with_key(
                    &record(cid, bytes, entries, position)?.into(),
                    &js::bytes(cid.as_bytes()),
                )
                .map_err(|error| js::backend("add", &error))?;
            request.set_onerror(Some(keep_going.as_ref().unchecked_ref()));
            // Let the page breathe in a long batch: waiting for a request is the one way to
            // leave the task and keep the transaction (a timer would let it commit).
            if added.len() % YIELD_EVERY == YIELD_EVERY - 1 {
                js::settled(&request).await;
            }
            added.push((index, request, position));
        }
        if let Some((_, last, _)) = added.last() {
            js::settled(last).await;
        }
        let mut changed = vec![false; objects.len()];
        let mut versions: Vec<(&Cid, &VersionEntry)> = Vec::new();
        let mut existing = Vec::new();
        for (index, request, position) in &added {
            let (cid, bytes) = &objects[*index];
            match request.error() {
                Ok(None) => {
                    changed[*index] = true;
                    meta.count += 1;
                    if let Some(version) = &entries[*index].version {
                        versions.push((cid, version));
                    }
                    if let Some(position) = position {
                        meta.journal_head += 1;
                        meta.digest.insert(cid);
                        if *position != meta.journal_head {
                            // An object before it was stored already: renumber without a gap.
                            store
                                .put_with_key(
                                    &record(cid, bytes, &entries[*index], Some(meta.journal_head))?
                                        .into(),
                                    &js::bytes(cid.as_bytes()),
                                )
                                .map_err(|error| js::backend("put", &error))?;
                        }
                    }
                }
                Ok(Some(error)) if error.name() == "ConstraintError" => existing.push(*index),
                Ok(Some(error)) => return Err(js::backend("add", &error.into())),
                Err(error) => return Err(js::backend("add", &error)),
            }
        }
        // Stored already: a local one stored as shared becomes shared (the journal index
        // follows its `j`).
        if scope == Scope::Shared {
            for index in existing {
                let (cid, _) = &objects[index];
                let key = js::bytes(cid.as_bytes());
                let stored = js::request(
                    "get",
                    &store
                        .get(&key)
                        .map_err(|error| js::backend("get", &error))?,
                )
                .await?;
                if !stored.is_undefined() && js::get(&stored, "s").is_truthy() {
                    meta.journal_head += 1;
                    let _ = Reflect::delete_property(stored.unchecked_ref::<Object>(), &"s".into());
                    let _ = Reflect::set(&stored, &"j".into(), &number(meta.journal_head));
                    store
                        .put_with_key(&stored, &key)
                        .map_err(|error| js::backend("put", &error))?;
                    meta.digest.insert(cid);
                    changed[index] = true;
                }
            }
        }
        drop(keep_going);
        if !versions.is_empty() {
            let mut staged = Staged::default();
            let edges = object_store(&transaction, EDGES)?;
            let version_store = object_store(&transaction, VERSIONS)?;
            staged
                .prepare_insert(&edges, &version_store, &versions)
                .await?;
            for (cid, version) in &versions {
                index::insert_version(&mut staged, cid, version)?;
            }
            self.write_rows(&transaction, staged)?;
        }
        write_meta(&object_store(&transaction, META)?, &meta)?;
        js::commit(&transaction, done).await?;
        *self.meta.borrow_mut() = meta;
        Ok(changed)
    }

    /// Writes the version table rows a staging area changed.
    fn write_rows(&self, transaction: &IdbTransaction, staged: Staged) -> Result<()> {
        let one = JsValue::from_f64(1.0);
        for (table, key, present) in staged.into_writes() {
            let store = object_store(transaction, table)?;
            let key = js::bytes(&key);
            let request = if present {
                store.put_with_key(&one, &key)
            } else {
                store.delete(&key)
            };
            request.map_err(|error| js::backend("write", &error))?;
        }
        Ok(())
    }

    /// CIDs of an index of `objects` whose keys start with `prefix` (strictly after the key
    /// `after`, when given), at most `limit`.
    async fn index_keys(
        &self,
        index: &str,
        prefix: &[u8],
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Cid>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (transaction, _done) = self.read(&[OBJECTS])?;
        let index = object_store(&transaction, OBJECTS)?
            .index(index)
            .map_err(|error| js::backend("index", &error))?;
        let range = js::range(
            after.as_deref().unwrap_or(prefix),
            after.is_some(),
            js::successor(prefix).as_deref(),
        )?;
        let request = index
            .get_all_keys_with_key_and_limit(&range, count_arg(limit))
            .map_err(|error| js::backend("getAllKeys", &error))?;
        let keys = js::request("getAllKeys", &request).await?;
        Array::from(&keys).iter().map(|key| cid_of(&key)).collect()
    }

    /// The CIDs of the instance-local objects (few: identity, settings).
    async fn local_objects(
        &self,
        transaction: &IdbTransaction,
    ) -> Result<std::collections::HashSet<Vec<u8>>> {
        let index = object_store(transaction, OBJECTS)?
            .index("local")
            .map_err(|error| js::backend("index", &error))?;
        let request = index
            .get_all_keys()
            .map_err(|error| js::backend("getAllKeys", &error))?;
        let keys = js::request("getAllKeys", &request).await?;
        Ok(Array::from(&keys)
            .iter()
            .filter_map(|key| js::to_bytes(&key))
            .collect())
    }

    /// Stored CIDs in `range`, ascending, at most `limit`; only shared ones if `shared`.
    async fn listed(
        &self,
        range: (Bound<&Cid>, Bound<&Cid>),
        limit: usize,
        shared: bool,
    ) -> Result<Vec<Cid>> {
        let Some(range) = cid_range(range)? else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (transaction, _done) = self.read(&[OBJECTS])?;
        let local = if shared {
            self.local_objects(&transaction).await?
        } else {
            std::collections::HashSet::new()
        };
        let request = object_store(&transaction, OBJECTS)?
            .get_all_keys_with_key_and_limit(&range, count_arg(limit.saturating_add(local.len())))
            .map_err(|error| js::backend("getAllKeys", &error))?;
        let keys = js::request("getAllKeys", &request).await?;
        let mut out = Vec::new();
        for key in Array::from(&keys).iter() {
            let bytes = js::to_bytes(&key)
                .ok_or_else(|| Error::Damaged("a non-binary object key".into()))?;
            if local.contains(&bytes) {
                continue;
            }
            out.push(
                Cid::from_bytes(&bytes)
                    .map_err(|error| Error::Damaged(format!("object key: {error}")))?,
            );
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.let_go();
    }
}

#[async_trait::async_trait(?Send)]
impl Store for IdbStore {
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        let entries = index::verify_and_index_all(objects, &self.limits)?;
        self.write_verified(objects, &entries, scope).await
    }

    async fn put_verified(&self, batch: Verified, scope: Scope) -> Result<Vec<bool>> {
        if *batch.limits() != self.limits {
            return self.put_scoped(batch.objects(), scope).await;
        }
        self.write_verified(batch.objects(), batch.entries(), scope)
            .await
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let (transaction, _done) = self.read(&[OBJECTS])?;
        let request = object_store(&transaction, OBJECTS)?
            .get(&js::bytes(cid.as_bytes()))
            .map_err(|error| js::backend("get", &error))?;
        let record = js::request("get", &request).await?;
        if record.is_undefined() {
            return Err(Error::NotFound(cid.clone()));
        }
        verified(cid, &record)
    }

    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        let (transaction, _done) = self.read(&[OBJECTS])?;
        let store = object_store(&transaction, OBJECTS)?;
        let mut asked = Vec::with_capacity(cids.len());
        for cid in cids {
            asked.push(
                store
                    .get(&js::bytes(cid.as_bytes()))
                    .map_err(|error| js::backend("get", &error))?,
            );
        }
        let mut out = Vec::with_capacity(cids.len());
        for (cid, request) in cids.iter().zip(&asked) {
            let record = js::request("get", request).await?;
            out.push(if record.is_undefined() {
                Err(Error::NotFound(cid.clone()))
            } else {
                verified(cid, &record)
            });
        }
        Ok(out)
    }

    async fn has(&self, cid: &Cid) -> Result<bool> {
        let (transaction, _done) = self.read(&[OBJECTS])?;
        let request = object_store(&transaction, OBJECTS)?
            .count_with_key(&js::bytes(cid.as_bytes()))
            .map_err(|error| js::backend("count", &error))?;
        Ok(js::request("count", &request)
            .await?
            .as_f64()
            .unwrap_or(0.0)
            > 0.0)
    }

    async fn delete(&self, cid: &Cid) -> Result<bool> {
        let _writes = self.writer.lock().await;
        self.open_check()?;
        let mut meta = self.meta.borrow().clone();
        let (transaction, done) = js::transaction(&self.db, &ALL, true)?;
        let store = object_store(&transaction, OBJECTS)?;
        let key = js::bytes(cid.as_bytes());
        let record = js::request(
            "get",
            &store
                .get(&key)
                .map_err(|error| js::backend("get", &error))?,
        )
        .await?;
        if record.is_undefined() {
            js::commit(&transaction, done).await?;
            return Ok(false);
        }
        // The object's own index entries go with its record; its version facts come from its
        // bytes, or — when they no longer verify — from the version tables themselves.
        let facts: Vec<VersionEntry> = match verified(cid, &record)
            .and_then(|bytes| index::verify_and_index(cid, &bytes, &index::widest_limits()))
        {
            Ok(entries) => entries.version.into_iter().collect(),
            Err(_) => self.version_facts_of(&transaction, cid).await?,
        };
        if !js::get(&record, "s").is_truthy() {
            meta.digest.remove(cid);
        }
        store
            .delete(&key)
            .map_err(|error| js::backend("delete", &error))?;
        meta.count = meta.count.saturating_sub(1);
        if !facts.is_empty() {
            let mut staged = Staged::default();
            let edges = object_store(&transaction, EDGES)?;
            let versions = object_store(&transaction, VERSIONS)?;
            for entry in &facts {
                staged.prepare_remove(&edges, &versions, cid, entry).await?;
            }
            for entry in &facts {
                index::remove_version(&mut staged, cid, entry)?;
            }
            self.write_rows(&transaction, staged)?;
        }
        write_meta(&object_store(&transaction, META)?, &meta)?;
        js::commit(&transaction, done).await?;
        *self.meta.borrow_mut() = meta;
        Ok(true)
    }

    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.listed(range, limit, false).await
    }

    async fn count(&self) -> Result<u64> {
        self.open_check()?;
        Ok(self.meta.borrow().count)
    }

    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        match query {
            Query::ByType {
                type_name,
                after,
                limit,
            } => {
                let after = after.map(|cid| type_key(type_name, cid)).transpose()?;
                self.index_keys("type", &type_prefix(type_name)?, after, limit)
                    .await
            }
            Query::LinksTo {
                target,
                after,
                limit,
            } => {
                let after = after.map(|cid| pair_key(target, cid));
                self.index_keys("links", &pair_prefix(target), after, limit)
                    .await
            }
            Query::ByAuthor {
                author,
                after,
                limit,
            } => {
                let after = after.map(|(clock, cid)| author_key(author, clock, Some(cid)));
                self.index_keys("author", author, after, limit).await
            }
            Query::Versions(of) => self.pairs(VERSIONS, of).await,
            Query::Heads(of) => self.pairs(HEADS, of).await,
        }
    }

    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let (transaction, _done) = self.read(&[LOCAL])?;
        let request = object_store(&transaction, LOCAL)?
            .get(&js::bytes(key))
            .map_err(|error| js::backend("get", &error))?;
        let value = js::request("get", &request).await?;
        if value.is_undefined() {
            return Ok(None);
        }
        js::to_bytes(&value)
            .map(Some)
            .ok_or_else(|| Error::Damaged("a local value that is not bytes".into()))
    }

    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let _writes = self.writer.lock().await;
        self.open_check()?;
        let (transaction, done) = js::transaction(&self.db, &[LOCAL], true)?;
        object_store(&transaction, LOCAL)?
            .put_with_key(&js::bytes(value), &js::bytes(key))
            .map_err(|error| js::backend("put", &error))?;
        js::commit(&transaction, done).await
    }

    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        let _writes = self.writer.lock().await;
        self.open_check()?;
        let (transaction, done) = js::transaction(&self.db, &[LOCAL], true)?;
        let store = object_store(&transaction, LOCAL)?;
        let key = js::bytes(key);
        let present = js::request(
            "count",
            &store
                .count_with_key(&key)
                .map_err(|error| js::backend("count", &error))?,
        )
        .await?
        .as_f64()
        .unwrap_or(0.0)
            > 0.0;
        store
            .delete(&key)
            .map_err(|error| js::backend("delete", &error))?;
        js::commit(&transaction, done).await?;
        Ok(present)
    }

    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let (transaction, _done) = self.read(&[LOCAL])?;
        prefixed_keys(&object_store(&transaction, LOCAL)?, prefix).await
    }

    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.listed(range, limit, true).await
    }

    async fn sync_objects(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, Vec<u8>)>, Option<Cid>)> {
        if limit == 0 {
            return Ok((Vec::new(), after.cloned()));
        }
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let Some(range) = cid_range((start, Bound::Unbounded))? else {
            return Ok((Vec::new(), None));
        };
        let (transaction, _done) = self.read(&[OBJECTS])?;
        let local = self.local_objects(&transaction).await?;
        let store = object_store(&transaction, OBJECTS)?;
        let count = count_arg(limit.saturating_add(local.len()));
        let keys = store
            .get_all_keys_with_key_and_limit(&range, count)
            .map_err(|error| js::backend("getAllKeys", &error))?;
        let values = store
            .get_all_with_key_and_limit(&range, count)
            .map_err(|error| js::backend("getAll", &error))?;
        let keys = Array::from(&js::request("getAllKeys", &keys).await?);
        let values = Array::from(&js::request("getAll", &values).await?);
        let mut objects = Vec::new();
        let mut listed = 0;
        let mut last = None;
        for (key, record) in keys.iter().zip(values.iter()) {
            let cid = cid_of(&key)?;
            if local.contains(cid.as_bytes()) {
                continue;
            }
            listed += 1;
            if let Ok(bytes) = verified(&cid, &record) {
                objects.push((cid.clone(), bytes));
            }
            last = Some(cid);
            if listed >= limit {
                break;
            }
        }
        let next = if listed < limit { None } else { last };
        Ok((objects, next))
    }

    async fn sync_digest(&self) -> Result<SyncDigest> {
        self.open_check()?;
        Ok(self.meta.borrow().digest.clone())
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<JournalPage> {
        let (transaction, _done) = self.read(&[OBJECTS, META])?;
        let head = js::request(
            "get",
            &object_store(&transaction, META)?
                .get(&"journal_head".into())
                .map_err(|error| js::backend("get", &error))?,
        )
        .await?
        .as_f64()
        .ok_or_else(|| Error::Damaged("store metadata: journal head".into()))?
            as u64;
        let id = self.meta.borrow().journal_id;
        let end = after.saturating_add(limit as u64).min(head);
        let mut entries = Vec::new();
        if end > after {
            let range = web_sys::IdbKeyRange::bound_with_lower_open_and_upper_open(
                &number(after),
                &number(end),
                true,
                false,
            )
            .map_err(|error| js::backend("key range", &error))?;
            // The journal index: objects by position. The keys come as CIDs, the positions
            // from the records, in the same (position) order.
            let journal = object_store(&transaction, OBJECTS)?
                .index("journal")
                .map_err(|error| js::backend("index", &error))?;
            let keys = journal
                .get_all_keys_with_key(&range)
                .map_err(|error| js::backend("getAllKeys", &error))?;
            let records = journal
                .get_all_with_key(&range)
                .map_err(|error| js::backend("getAll", &error))?;
            let keys = Array::from(&js::request("getAllKeys", &keys).await?);
            let records = Array::from(&js::request("getAll", &records).await?);
            for (cid, record) in keys.iter().zip(records.iter()) {
                let position = js::get(&record, "j").as_f64().ok_or_else(|| {
                    Error::Damaged("a journal position that is not a number".into())
                })?;
                entries.push((position as u64, cid_of(&cid)?));
            }
        }
        Ok(JournalPage {
            id,
            head,
            last: after.max(end),
            entries,
        })
    }
}

impl IdbStore {
    /// The second halves of the pair keys of `table` that start with `first`.
    async fn pairs(&self, table: &str, first: &Cid) -> Result<Vec<Cid>> {
        let (transaction, _done) = self.read(&[table])?;
        let prefix = pair_prefix(first);
        prefixed_keys(&object_store(&transaction, table)?, &prefix)
            .await?
            .iter()
            .map(|key| second_of(key, prefix.len()))
            .collect()
    }

    /// The version facts of `cid` as the version tables hold them (its bytes are damaged):
    /// the objects it is a version of, and the versions it names as parents.
    async fn version_facts_of(
        &self,
        transaction: &IdbTransaction,
        cid: &Cid,
    ) -> Result<Vec<VersionEntry>> {
        let tail = cid.as_bytes();
        let ending = |table: &'static str| async move {
            let store = object_store(transaction, table)?;
            let request = store
                .get_all_keys()
                .map_err(|error| js::backend("getAllKeys", &error))?;
            let keys = js::request("getAllKeys", &request).await?;
            let mut firsts = Vec::new();
            for key in Array::from(&keys).iter() {
                let Some(key) = js::to_bytes(&key) else {
                    continue;
                };
                if !key.ends_with(tail) {
                    continue;
                }
                let len = usize::from(*key.first().unwrap_or(&0));
                if let Some(first) = key.get(1..1 + len)
                    && 1 + len + tail.len() == key.len()
                    && let Ok(first) = Cid::from_bytes(first)
                {
                    firsts.push(first);
                }
            }
            Ok::<_, Error>(firsts)
        };
        let owners = ending(VERSIONS).await?;
        let parents = ending(EDGES).await?;
        Ok(owners
            .into_iter()
            .map(|of| VersionEntry {
                of,
                parents: parents.clone(),
            })
            .collect())
    }
}
