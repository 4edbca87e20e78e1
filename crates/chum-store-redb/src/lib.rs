//! # chum-store-redb
//!
//! The default on-disk [`Store`] of chum, on [redb](https://docs.rs/redb): an embedded, pure-Rust,
//! ACID key-value store with copy-on-write B-trees and checksummed commits.
//!
//! - Every write is one redb transaction committed with `Durability::Immediate` (fsync), so once
//!   `put_many`, `delete` or `local_put` returns `Ok` a crash or power loss does not undo it, and
//!   the file always reopens at the last committed state.
//! - Objects and all their index entries are written in the same transaction.
//! - Every read re-verifies the object's bytes against its CID; a damaged object is reported as
//!   [`Error::Corrupt`] with its CID and the rest of the store keeps serving.
//! - Opening reads a few metadata entries and never scans the objects (the object count is kept
//!   in the metadata table).
//! - The store records its format version; a newer one is refused with [`Error::NewerFormat`].
//! - A second open of the same file (another process or another handle) fails with
//!   [`Error::Locked`]; nothing is written to a file that is not a chum store.
//!
//! Calls block on disk I/O; from an async runtime, run them where blocking is allowed.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("chum-redb-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! use chum_object::{Object, dagjson};
//! use chum_store::Store;
//! use chum_store_redb::RedbStore;
//!
//! # futures::executor::block_on(async {
//! let store = RedbStore::open(dir.join("store.redb"))?;
//! let object = Object::from_value(&dagjson::from_str(r#"{"$type":"Message","text":"hi"}"#)?)?;
//! store.put(object.cid(), object.bytes()).await?;
//! drop(store);
//! let store = RedbStore::open(dir.join("store.redb"))?;
//! assert_eq!(store.get(object.cid()).await?, object.bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![warn(missing_docs)]

pub mod power_loss;

use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chum_object::{Cid, Limits};
use chum_store::index::Verified;
use chum_store::index::{self, IndexEntries, VersionTables};
use chum_store::{Error, Query, Result, Store};
use chum_store::{JournalPage, Scope, SyncDigest};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use chum_store::keys::{author_key, pair_key, pair_prefix, second_of, type_key, type_prefix};

/// The newest store format this build reads and writes.
pub const FORMAT_VERSION: u64 = 3;

/// The page cache a store opens with: 64 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

const OBJECTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("objects");
const TYPES: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_type");
const VERSIONS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_versions");
const HEADS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_heads");
const EDGES: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_edges");
const LINKS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_links");
const AUTHORS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("index_authors");
const LOCAL: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("local");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// CIDs stored in [`Scope::Local`]; every other object is shared.
const LOCAL_OBJECTS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("local_objects");
/// The shared set's [`SyncDigest`], under [`SYNC_DIGEST`].
const SYNC: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sync");
const SYNC_DIGEST: &str = "digest";
/// The journal's random id (16 bytes), in [`SYNC`].
const SYNC_JOURNAL_ID: &str = "journal_id";
/// The journal (format 3): the objects that joined the shared set, numbered, in rows of up to
/// [`JOURNAL_ROW`] consecutive positions — key: the row's first position; value: its CIDs,
/// each behind a one-byte length. One insert per row keeps a bulk write's cost near zero.
const JOURNAL: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("journal");
/// Positions per journal row.
const JOURNAL_ROW: usize = 1_024;
/// The journal's newest position, in [`META`].
const META_JOURNAL_HEAD: &str = "journal_head";
/// Keys for the type, link and author indexes written since they were last settled: one
/// entry per write, so a write inserts one value instead of a key per object and index. Reads
/// of those indexes settle the log first (see [`settle_index_log`]).
const INDEX_LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("index_log");
/// Log entries after which a write settles the log itself, bounding it.
const MAX_INDEX_LOG_ENTRIES: u64 = 1_024;

const META_FORMAT: &str = "format";
const META_COUNT: &str = "count";

/// A chum store in one redb file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    limits: Limits,
    path: Option<PathBuf>,
    /// A read snapshot shared by reads until the next write commits (tagged with the write
    /// generation it was taken in), so a point read does not begin a transaction each time.
    snapshot: std::sync::Mutex<Option<(u64, Arc<Snapshot>)>>,
    generation: AtomicU64,
}

/// A read transaction with the object table open.
#[derive(Debug)]
struct Snapshot {
    txn: redb::ReadTransaction,
    objects: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

fn backend(error: impl std::fmt::Display) -> Error {
    Error::Backend(error.to_string())
}

fn storage(error: redb::StorageError) -> Error {
    match error {
        redb::StorageError::Corrupted(why) => Error::Damaged(why),
        other => backend(other),
    }
}

/// Runs a call into the database engine, turning a panic inside it (which redb documents for
/// some damaged files) into `Error::Damaged`.
fn guarded<T>(what: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(Error::Damaged(format!(
            "the database engine failed during {what}; the file may be damaged"
        )))
    })
}

fn open_guarded(
    shown: &str,
    open: impl FnOnce() -> std::result::Result<Database, redb::DatabaseError>,
) -> Result<Database> {
    match std::panic::catch_unwind(AssertUnwindSafe(open)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(error)) => Err(database_error(error, shown)),
        Err(_) => Err(Error::Damaged(format!(
            "{shown}: the database engine failed reading the file"
        ))),
    }
}

fn database_error(error: redb::DatabaseError, path: &str) -> Error {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            Error::Locked(format!("{path} is open elsewhere ({error:?})"))
        }
        redb::DatabaseError::UpgradeRequired(v) => {
            Error::Damaged(format!("{path}: redb file format {v} needs an upgrade"))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Error::Damaged(format!("{path} is not a chum store: {io}"))
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => {
            Error::Damaged(format!("{path}: {why}"))
        }
        other => Error::Backend(format!("{path}: {other}")),
    }
}

impl RedbStore {
    /// Opens the store at `path`, creating it (and nothing else) if the file does not exist.
    /// An existing file that is not a chum store is refused and left untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore> {
        RedbStore::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`RedbStore::open`] with a page cache of `cache_bytes` (redb's own default is 1 GiB;
    /// ours is [`DEFAULT_CACHE_BYTES`], so a store's memory stays small beside the app's).
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<RedbStore> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if !path.exists() {
            RedbStore::create(path, &shown)?;
        } else {
            RedbStore::check_is_chum_store(path, &shown)?;
        }
        let db = open_guarded(&shown, || {
            Database::builder().set_cache_size(cache_bytes).open(path)
        })?;
        RedbStore::init(db, Some(path.to_owned()), false)
    }

    /// Looks at an existing file read-only first, so that a redb file of another application is
    /// refused without being written to (a read-write open marks the file). A file that cannot
    /// be opened read-only (e.g. one that needs crash recovery) is left to the read-write open,
    /// which recovers it and checks the format itself.
    fn check_is_chum_store(path: &Path, shown: &str) -> Result<()> {
        let opened =
            std::panic::catch_unwind(AssertUnwindSafe(|| redb::ReadOnlyDatabase::open(path)));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(
                error @ (redb::DatabaseError::DatabaseAlreadyOpen
                | redb::DatabaseError::LockProtocolMismatch),
            )) => {
                return Err(database_error(error, shown));
            }
            Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(io))))
                if io.kind() == std::io::ErrorKind::InvalidData =>
            {
                return Err(Error::Damaged(format!("{shown} is not a chum store: {io}")));
            }
            _ => return Ok(()),
        };
        let has_format = guarded("open", || {
            let txn = db.begin_read().map_err(backend)?;
            match txn.open_table(META) {
                Ok(meta) => Ok(meta.get(META_FORMAT).map_err(storage)?.is_some()),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
                Err(error) => Err(backend(error)),
            }
        })?;
        if has_format {
            Ok(())
        } else {
            Err(Error::Damaged(format!(
                "{shown} is a redb database, but not a chum store"
            )))
        }
    }

    /// Creates a new store next to `path` and moves it into place only once it is complete, so
    /// a crash during creation never leaves a half-made file under the store's name.
    fn create(path: &Path, shown: &str) -> Result<()> {
        let mut creating = path.as_os_str().to_owned();
        creating.push(".creating");
        let creating = PathBuf::from(creating);
        // A crash during an earlier creation may have left this; it held nothing.
        let _ = std::fs::remove_file(&creating);
        // Made new (O_EXCL: never through a link placed there) and readable by the owner only
        // from the first moment — the store may hold unsealed keys; redb initialises the empty
        // file.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        drop(
            options
                .open(&creating)
                .map_err(|error| Error::Backend(format!("{shown}: {error}")))?,
        );
        let db = open_guarded(shown, || Database::builder().create(&creating))?;
        drop(RedbStore::init(db, None, true)?);
        std::fs::rename(&creating, path)
            .map_err(|error| Error::Backend(format!("{shown}: {error}")))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| {
                    Error::Backend(format!("{shown}: syncing the directory: {error}"))
                })?;
        }
        Ok(())
    }

    /// Opens (or creates) a store on a custom redb storage backend, e.g. the power-loss
    /// simulator in [`power_loss`].
    pub fn open_with_backend(backend: impl redb::StorageBackend) -> Result<RedbStore> {
        let db = open_guarded("backend", || {
            Database::builder().create_with_backend(backend)
        })?;
        RedbStore::init(db, None, true)
    }

    /// Sets the object limits enforced on `put` (default: [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> RedbStore {
        self.limits = limits;
        self
    }

    /// The file this store lives in, if it is a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Checks the format of an opened database; a database without any table is initialised
    /// when `may_initialise` (a store being created). A database with other tables but no chum
    /// format is not a chum store and is refused untouched.
    fn init(db: Database, path: Option<PathBuf>, may_initialise: bool) -> Result<RedbStore> {
        let (found, has_tables) = guarded("open", || {
            let txn = db.begin_read().map_err(backend)?;
            let has_tables = txn.list_tables().map_err(storage)?.next().is_some();
            let found = match txn.open_table(META) {
                Ok(meta) => meta.get(META_FORMAT).map_err(storage)?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(error) => return Err(backend(error)),
            };
            Ok((found, has_tables))
        })?;
        match found {
            Some(version) if version > FORMAT_VERSION => {
                return Err(Error::NewerFormat {
                    found: u32::try_from(version).unwrap_or(u32::MAX),
                    supported: FORMAT_VERSION as u32,
                });
            }
            None if may_initialise && !has_tables => guarded("initialise", || {
                // A new store: create every table and record the format, in one commit.
                let mut txn = db.begin_write().map_err(backend)?;
                txn.set_durability(Durability::Immediate).map_err(backend)?;
                {
                    txn.open_table(OBJECTS).map_err(backend)?;
                    for table in [TYPES, VERSIONS, HEADS, EDGES, LINKS, AUTHORS] {
                        txn.open_table(table).map_err(backend)?;
                    }
                    txn.open_table(LOCAL).map_err(backend)?;
                    txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
                    write_digest(&txn, &SyncDigest::new())?;
                    start_journal(&txn, &[])?;
                    let mut meta = txn.open_table(META).map_err(backend)?;
                    meta.insert(META_FORMAT, FORMAT_VERSION).map_err(storage)?;
                    meta.insert(META_COUNT, 0).map_err(storage)?;
                }
                txn.commit().map_err(backend)
            })?,
            Some(2) => guarded("upgrade", || {
                // Format 2 had no journal: start one holding every shared object.
                let mut txn = db.begin_write().map_err(backend)?;
                txn.set_durability(Durability::Immediate).map_err(backend)?;
                {
                    let objects = txn.open_table(OBJECTS).map_err(backend)?;
                    let locals = txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
                    let mut shared = Vec::new();
                    for entry in objects.iter().map_err(storage)? {
                        let (key, _) = entry.map_err(storage)?;
                        if locals.get(key.value()).map_err(storage)?.is_none() {
                            shared.push(
                                Cid::from_bytes(key.value())
                                    .map_err(|e| Error::Damaged(format!("object key: {e}")))?,
                            );
                        }
                    }
                    start_journal(&txn, &shared.iter().collect::<Vec<_>>())?;
                    let mut meta = txn.open_table(META).map_err(backend)?;
                    meta.insert(META_FORMAT, FORMAT_VERSION).map_err(storage)?;
                }
                txn.commit().map_err(backend)
            })?,
            Some(1) => guarded("upgrade", || {
                // Format 1 had no scopes: every object is shared. Build the digest once.
                let mut txn = db.begin_write().map_err(backend)?;
                txn.set_durability(Durability::Immediate).map_err(backend)?;
                {
                    let mut digest = SyncDigest::new();
                    let mut shared = Vec::new();
                    let objects = txn.open_table(OBJECTS).map_err(backend)?;
                    for entry in objects.iter().map_err(storage)? {
                        let (key, _) = entry.map_err(storage)?;
                        let cid = Cid::from_bytes(key.value())
                            .map_err(|e| Error::Damaged(format!("object key: {e}")))?;
                        digest.insert(&cid);
                        shared.push(cid);
                    }
                    txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
                    write_digest(&txn, &digest)?;
                    start_journal(&txn, &shared.iter().collect::<Vec<_>>())?;
                    let mut meta = txn.open_table(META).map_err(backend)?;
                    meta.insert(META_FORMAT, FORMAT_VERSION).map_err(storage)?;
                }
                txn.commit().map_err(backend)
            })?,
            Some(_) => {}
            None => {
                return Err(Error::Damaged(
                    "a redb database, but not a chum store (no chum format record)".into(),
                ));
            }
        }
        Ok(RedbStore {
            db,
            limits: Limits::default(),
            path,
            snapshot: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    /// Runs `work` in a write transaction and commits it durably when `work` returns
    /// `Ok(true)`; `Ok(false)` (nothing changed) aborts it, saving the fsync.
    fn write(&self, work: impl FnOnce(&redb::WriteTransaction) -> Result<bool>) -> Result<()> {
        let result = self.write_once(work);
        // Later reads must see this commit (or whatever a failed commit left). Also when this
        // one wrote nothing: taking the write lock waited for the write before it, whose own
        // count may not have moved yet, and a read here must not reuse a snapshot from before
        // that write (a query finding the index log settled by another would miss its keys).
        self.generation.fetch_add(1, Ordering::AcqRel);
        result
    }

    fn write_once(&self, work: impl FnOnce(&redb::WriteTransaction) -> Result<bool>) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        if !work(&txn)? {
            return txn.abort().map_err(backend);
        }
        txn.commit().map_err(backend)
    }

    /// Whether the index log holds keys not yet in their tables.
    fn index_log_pending(&self) -> Result<bool> {
        let snapshot = self.read()?;
        match snapshot.txn.open_table(INDEX_LOG) {
            Ok(log) => Ok(!log.is_empty().map_err(storage)?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(error) => Err(backend(error)),
        }
    }

    /// The current read snapshot: reused until a write commits. A snapshot begun while a write
    /// was committing carries the old generation and is never reused after that write returns.
    fn read(&self) -> Result<Arc<Snapshot>> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut cached = self
            .snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((tag, snapshot)) = cached.as_ref()
            && *tag == generation
        {
            return Ok(Arc::clone(snapshot));
        }
        let txn = self.db.begin_read().map_err(backend)?;
        let objects = txn.open_table(OBJECTS).map_err(backend)?;
        let snapshot = Arc::new(Snapshot { txn, objects });
        *cached = Some((generation, Arc::clone(&snapshot)));
        Ok(snapshot)
    }
}

/// The bytes of `cid` if they still hash to it; `Corrupt` (never the bytes) otherwise.
fn verified(cid: &Cid, bytes: &[u8]) -> Result<Vec<u8>> {
    match cid.verify(bytes) {
        Ok(true) => Ok(bytes.to_vec()),
        Ok(false) => Err(Error::Corrupt {
            cid: cid.clone(),
            reason: "stored bytes do not hash to the CID".into(),
        }),
        Err(error) => Err(Error::Corrupt {
            cid: cid.clone(),
            reason: error.to_string(),
        }),
    }
}

/// The version tables of one write transaction.
struct Tables<'t> {
    versions: redb::Table<'t, &'static [u8], ()>,
    heads: redb::Table<'t, &'static [u8], ()>,
    edges: redb::Table<'t, &'static [u8], ()>,
}

fn prefixed_seconds(
    table: &impl ReadableTable<&'static [u8], ()>,
    prefix: &[u8],
) -> Result<Vec<Cid>> {
    let mut out = Vec::new();
    for entry in table.range(prefix..).map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(second_of(key, prefix.len())?);
    }
    Ok(out)
}

fn set_key(
    table: &mut redb::Table<'_, &'static [u8], ()>,
    key: &[u8],
    present: bool,
) -> Result<()> {
    if present {
        table.insert(key, ()).map_err(storage)?;
    } else {
        table.remove(key).map_err(storage)?;
    }
    Ok(())
}

impl VersionTables for Tables<'_> {
    fn add_version(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        set_key(&mut self.versions, &pair_key(of, cid), true)
    }
    fn remove_version(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        set_key(&mut self.versions, &pair_key(of, cid), false)
    }
    fn is_version(&self, of: &Cid, cid: &Cid) -> Result<bool> {
        Ok(self
            .versions
            .get(pair_key(of, cid).as_slice())
            .map_err(storage)?
            .is_some())
    }
    fn add_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()> {
        set_key(&mut self.edges, &pair_key(parent, child), true)
    }
    fn remove_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()> {
        set_key(&mut self.edges, &pair_key(parent, child), false)
    }
    fn children(&self, parent: &Cid) -> Result<Vec<Cid>> {
        prefixed_seconds(&self.edges, &pair_prefix(parent))
    }
    fn add_head(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        set_key(&mut self.heads, &pair_key(of, cid), true)
    }
    fn remove_head(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        set_key(&mut self.heads, &pair_key(of, cid), false)
    }
}

/// Adds (`insert = true`) or removes the index entries of a set of objects, opening each index
/// table once and writing its keys in sorted order.
fn apply_indexes(
    txn: &redb::WriteTransaction,
    items: &[(&Cid, &IndexEntries)],
    insert: bool,
) -> Result<()> {
    let (mut types, mut links, mut authors, mut versions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (cid, entries) in items {
        if let Some(type_name) = &entries.type_name {
            types.push(type_key(type_name, cid)?);
        }
        links.extend(entries.links.iter().map(|target| pair_key(target, cid)));
        if let Some((author, clock)) = &entries.author {
            authors.push(author_key(author, *clock, Some(cid)));
        }
        if let Some(version) = &entries.version {
            versions.push((*cid, version));
        }
    }
    if insert {
        // Written to the index log: one entry per write, settled into the tables later.
        log_index_keys(txn, [types, links, authors])?;
    } else {
        // Removals apply to settled tables.
        settle_index_log(txn)?;
        for (definition, mut keys) in [(TYPES, types), (LINKS, links), (AUTHORS, authors)] {
            if keys.is_empty() {
                continue;
            }
            keys.sort_unstable();
            let mut table = txn.open_table(definition).map_err(backend)?;
            for key in &keys {
                set_key(&mut table, key, false)?;
            }
        }
    }
    if !versions.is_empty() {
        let mut tables = Tables {
            versions: txn.open_table(VERSIONS).map_err(backend)?,
            heads: txn.open_table(HEADS).map_err(backend)?,
            edges: txn.open_table(EDGES).map_err(backend)?,
        };
        for (cid, version) in versions {
            if insert {
                index::insert_version(&mut tables, cid, version)?;
            } else {
                index::remove_version(&mut tables, cid, version)?;
            }
        }
    }
    Ok(())
}

/// The index tables an index-log record names, by its table byte.
const LOGGED_TABLES: [TableDefinition<'_, &[u8], ()>; 3] = [TYPES, LINKS, AUTHORS];

/// Appends the keys of one write to the index log: records of `table (u8) ‖ length (u16, big
/// endian) ‖ key`. Settles the log within this write when it has grown long.
fn log_index_keys(txn: &redb::WriteTransaction, tables: [Vec<Vec<u8>>; 3]) -> Result<()> {
    if tables.iter().all(Vec::is_empty) {
        return Ok(());
    }
    let mut record = Vec::new();
    for (table, keys) in tables.iter().enumerate() {
        for key in keys {
            let length = u16::try_from(key.len())
                .map_err(|_| Error::Limit("an index key longer than 64 KiB".into()))?;
            record.push(table as u8);
            record.extend_from_slice(&length.to_be_bytes());
            record.extend_from_slice(key);
        }
    }
    let entries = {
        let mut log = txn.open_table(INDEX_LOG).map_err(backend)?;
        let next = log
            .last()
            .map_err(storage)?
            .map_or(0, |(key, _)| key.value() + 1);
        log.insert(next, record.as_slice()).map_err(storage)?;
        log.len().map_err(storage)?
    };
    if entries >= MAX_INDEX_LOG_ENTRIES {
        settle_index_log(txn)?;
    }
    Ok(())
}

/// Moves every key of the index log into its index table and empties the log. Returns whether
/// there was anything to move.
fn settle_index_log(txn: &redb::WriteTransaction) -> Result<bool> {
    let mut keys: [Vec<Vec<u8>>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    {
        let mut log = txn.open_table(INDEX_LOG).map_err(backend)?;
        if log.is_empty().map_err(storage)? {
            return Ok(false);
        }
        for entry in log.iter().map_err(storage)? {
            let (_, record) = entry.map_err(storage)?;
            let mut rest = record.value();
            while let Some((&table, tail)) = rest.split_first() {
                let damaged = || Error::Damaged("a malformed index log record".into());
                let (length, tail) = tail.split_first_chunk::<2>().ok_or_else(damaged)?;
                let length = usize::from(u16::from_be_bytes(*length));
                let key = tail.get(..length).ok_or_else(damaged)?;
                keys.get_mut(usize::from(table))
                    .ok_or_else(damaged)?
                    .push(key.to_vec());
                rest = &tail[length..];
            }
        }
        log.retain(|_, _| false).map_err(storage)?;
    }
    for (definition, mut keys) in LOGGED_TABLES.into_iter().zip(keys) {
        if keys.is_empty() {
            continue;
        }
        keys.sort_unstable();
        keys.dedup();
        let mut table = txn.open_table(definition).map_err(backend)?;
        for key in &keys {
            table.insert(key.as_slice(), ()).map_err(storage)?;
        }
    }
    Ok(true)
}

/// Removes every index entry of `cid` by searching the index tables (a full scan): the repair
/// path for deleting an object whose stored bytes are damaged.
fn scrub_indexes(txn: &redb::WriteTransaction, cid: &Cid) -> Result<()> {
    let tail = cid.as_bytes();
    let ending_in = |definition: TableDefinition<'_, &'static [u8], ()>| -> Result<Vec<Vec<u8>>> {
        let table = txn.open_table(definition).map_err(backend)?;
        let mut keys = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            if key.value().ends_with(tail) {
                keys.push(key.value().to_vec());
            }
        }
        Ok(keys)
    };
    for definition in [TYPES, LINKS, AUTHORS] {
        let keys = ending_in(definition)?;
        let mut table = txn.open_table(definition).map_err(backend)?;
        for key in keys {
            set_key(&mut table, &key, false)?;
        }
    }
    // Rebuild the version facts from the indexes: which object it belonged to, its parents.
    let first_of = |key: &[u8]| -> Result<Cid> {
        let len = usize::from(
            *key.first()
                .ok_or_else(|| Error::Damaged("empty index key".into()))?,
        );
        let first = key
            .get(1..1 + len)
            .ok_or_else(|| Error::Damaged("short index key".into()))?;
        Cid::from_bytes(first).map_err(|error| Error::Damaged(format!("index key: {error}")))
    };
    let owners = ending_in(VERSIONS)?
        .iter()
        .map(|key| first_of(key))
        .collect::<Result<Vec<_>>>()?;
    let parents = ending_in(EDGES)?
        .iter()
        .map(|key| first_of(key))
        .collect::<Result<Vec<_>>>()?;
    let mut tables = Tables {
        versions: txn.open_table(VERSIONS).map_err(backend)?,
        heads: txn.open_table(HEADS).map_err(backend)?,
        edges: txn.open_table(EDGES).map_err(backend)?,
    };
    for of in owners {
        let entry = index::VersionEntry {
            of,
            parents: parents.clone(),
        };
        index::remove_version(&mut tables, cid, &entry)?;
    }
    Ok(())
}

/// Object CIDs within `range` in one snapshot, ascending, at most `limit`.
fn list_range(
    snapshot: &Snapshot,
    range: (Bound<&Cid>, Bound<&Cid>),
    limit: usize,
) -> Result<Vec<Cid>> {
    let empty = match range {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    };
    if empty || limit == 0 {
        return Ok(Vec::new());
    }
    let bounds = (range.0.map(Cid::as_bytes), range.1.map(Cid::as_bytes));
    let mut out = Vec::new();
    for entry in snapshot.objects.range::<&[u8]>(bounds).map_err(storage)? {
        let (key, _) = entry.map_err(storage)?;
        out.push(
            Cid::from_bytes(key.value()).map_err(|e| Error::Damaged(format!("object key: {e}")))?,
        );
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn read_digest(txn: &redb::WriteTransaction) -> Result<SyncDigest> {
    let table = txn.open_table(SYNC).map_err(backend)?;
    let bytes = table.get(SYNC_DIGEST).map_err(storage)?;
    match bytes {
        Some(bytes) => SyncDigest::from_bytes(bytes.value()),
        None => Err(Error::Damaged("the sync digest is missing".into())),
    }
}

fn write_digest(txn: &redb::WriteTransaction, digest: &SyncDigest) -> Result<()> {
    let mut table = txn.open_table(SYNC).map_err(backend)?;
    table
        .insert(SYNC_DIGEST, digest.to_bytes().as_slice())
        .map_err(storage)?;
    Ok(())
}

/// Creates the journal: a fresh id, and `shared` numbered from 1.
fn start_journal(txn: &redb::WriteTransaction, shared: &[&Cid]) -> Result<()> {
    let id = chum_store::sync::new_journal_id()?;
    txn.open_table(SYNC)
        .map_err(backend)?
        .insert(SYNC_JOURNAL_ID, id.as_slice())
        .map_err(storage)?;
    txn.open_table(JOURNAL).map_err(backend)?;
    append_journal(txn, shared)
}

/// Numbers `joined` (objects that just joined the shared set) in the journal.
fn append_journal(txn: &redb::WriteTransaction, joined: &[&Cid]) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    let mut head = meta
        .get(META_JOURNAL_HEAD)
        .map_err(storage)?
        .map_or(0, |v| v.value());
    let mut journal = txn.open_table(JOURNAL).map_err(backend)?;
    let mut row = Vec::new();
    for chunk in joined.chunks(JOURNAL_ROW) {
        row.clear();
        for cid in chunk {
            let bytes = cid.as_bytes();
            // CIDs are far shorter than 256 bytes (36 for every chum CID).
            row.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
            row.extend_from_slice(&bytes[..bytes.len().min(255)]);
        }
        journal.insert(head + 1, row.as_slice()).map_err(storage)?;
        head += chunk.len() as u64;
    }
    meta.insert(META_JOURNAL_HEAD, head).map_err(storage)?;
    Ok(())
}

fn adjust_count(txn: &redb::WriteTransaction, delta: i64) -> Result<()> {
    if delta == 0 {
        return Ok(());
    }
    let mut meta = txn.open_table(META).map_err(backend)?;
    let count = meta
        .get(META_COUNT)
        .map_err(storage)?
        .map(|v| v.value())
        .unwrap_or(0);
    meta.insert(META_COUNT, count.saturating_add_signed(delta))
        .map_err(storage)?;
    Ok(())
}

impl RedbStore {
    /// Writes a verified batch (objects and their index entries, index for index) in one
    /// durable transaction.
    fn write_batch(
        &self,
        objects: &[(Cid, Vec<u8>)],
        verified: &[IndexEntries],
        scope: Scope,
    ) -> Result<Vec<bool>> {
        // Write in CID order: B-tree inserts with locality, and duplicates side by side.
        let mut order: Vec<usize> = (0..objects.len()).collect();
        order.sort_by(|&a, &b| objects[a].0.cmp(&objects[b].0));
        let mut stored = vec![false; objects.len()];
        self.write(|txn| {
            let mut new_items = Vec::with_capacity(objects.len());
            let mut joined = Vec::new();
            let mut digest = read_digest(txn)?;
            let mut digest_changed = false;
            {
                let mut table = txn.open_table(OBJECTS).map_err(backend)?;
                let mut locals = txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
                let mut previous: Option<&Cid> = None;
                for &i in &order {
                    let (cid, bytes) = &objects[i];
                    if previous == Some(cid) {
                        continue; // the same object twice in one batch
                    }
                    previous = Some(cid);
                    // Content-addressed: an existing value is the same bytes (or a damaged copy,
                    // which this repairs), so insert-and-look-at-the-old-value is the check.
                    let existed = table
                        .insert(cid.as_bytes(), bytes.as_slice())
                        .map_err(storage)?
                        .is_some();
                    if !existed {
                        stored[i] = true;
                        new_items.push((cid, &verified[i]));
                        match scope {
                            Scope::Shared => {
                                digest.insert(cid);
                                digest_changed = true;
                                joined.push(cid);
                            }
                            Scope::Local => {
                                locals.insert(cid.as_bytes(), ()).map_err(storage)?;
                            }
                        }
                    } else if scope == Scope::Shared
                        && locals.remove(cid.as_bytes()).map_err(storage)?.is_some()
                    {
                        // Shared wins: a local object stored as shared is promoted.
                        stored[i] = true;
                        digest.insert(cid);
                        digest_changed = true;
                        joined.push(cid);
                    }
                }
            }
            if digest_changed {
                write_digest(txn, &digest)?;
                append_journal(txn, &joined)?;
            }
            apply_indexes(txn, &new_items, true)?;
            adjust_count(txn, new_items.len() as i64)?;
            // Nothing changed: the rewritten values were identical, so drop them unsynced.
            Ok(stored.iter().any(|changed| *changed))
        })?;
        Ok(stored)
    }
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        guarded("put_many", || {
            // Verify everything before touching the file: a bad object refuses the whole batch.
            let verified = index::verify_and_index_all(objects, &self.limits)?;
            self.write_batch(objects, &verified, scope)
        })
    }

    async fn put_verified(&self, batch: Verified, scope: Scope) -> Result<Vec<bool>> {
        if *batch.limits() != self.limits {
            return self.put_scoped(batch.objects(), scope).await;
        }
        guarded("put_many", || {
            self.write_batch(batch.objects(), batch.entries(), scope)
        })
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        guarded("get", || {
            let snapshot = self.read()?;
            match snapshot.objects.get(cid.as_bytes()).map_err(storage)? {
                Some(bytes) => verified(cid, bytes.value()),
                None => Err(Error::NotFound(cid.clone())),
            }
        })
    }

    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        guarded("get_many", || {
            let snapshot = self.read()?;
            let mut out = Vec::with_capacity(cids.len());
            for cid in cids {
                let found = snapshot.objects.get(cid.as_bytes()).map_err(storage)?;
                out.push(match found {
                    Some(bytes) => verified(cid, bytes.value()),
                    None => Err(Error::NotFound(cid.clone())),
                });
            }
            Ok(out)
        })
    }

    async fn has(&self, cid: &Cid) -> Result<bool> {
        guarded("has", || {
            let snapshot = self.read()?;
            Ok(snapshot
                .objects
                .get(cid.as_bytes())
                .map_err(storage)?
                .is_some())
        })
    }

    async fn delete(&self, cid: &Cid) -> Result<bool> {
        guarded("delete", || {
            let mut removed = false;
            self.write(|txn| {
                let bytes = {
                    let mut table = txn.open_table(OBJECTS).map_err(backend)?;
                    let old = table.remove(cid.as_bytes()).map_err(storage)?;
                    old.map(|bytes| bytes.value().to_vec())
                };
                let Some(bytes) = bytes else { return Ok(false) };
                removed = true;
                let was_local = txn
                    .open_table(LOCAL_OBJECTS)
                    .map_err(backend)?
                    .remove(cid.as_bytes())
                    .map_err(storage)?
                    .is_some();
                if !was_local {
                    let mut digest = read_digest(txn)?;
                    digest.remove(cid);
                    write_digest(txn, &digest)?;
                }
                // The index entries derive from the bytes. Bytes that no longer verify cannot be
                // trusted to name them, so the indexes are searched for the CID instead.
                match index::verify_and_index(cid, &bytes, &index::widest_limits()) {
                    Ok(entries) => apply_indexes(txn, &[(cid, &entries)], false)?,
                    Err(_) => {
                        settle_index_log(txn)?;
                        scrub_indexes(txn, cid)?;
                    }
                }
                adjust_count(txn, -1)?;
                Ok(true)
            })?;
            Ok(removed)
        })
    }

    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        guarded("list", || list_range(&*self.read()?, range, limit))
    }

    async fn count(&self) -> Result<u64> {
        guarded("count", || {
            let snapshot = self.read()?;
            let txn = &snapshot.txn;
            let meta = txn.open_table(META).map_err(backend)?;
            Ok(meta
                .get(META_COUNT)
                .map_err(storage)?
                .map(|v| v.value())
                .unwrap_or(0))
        })
    }

    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        guarded("query", || {
            if matches!(
                query,
                Query::ByType { .. } | Query::LinksTo { .. } | Query::ByAuthor { .. }
            ) && self.index_log_pending()?
            {
                self.write(settle_index_log)?;
            }
            let snapshot = self.read()?;
            let txn = &snapshot.txn;
            // Keys of `table` that start with `prefix`, from `after` (exclusive) or the start of
            // the prefix, at most `limit`; each key's CID starts at `cid_at`.
            let paged = |definition: TableDefinition<'_, &'static [u8], ()>,
                         prefix: Vec<u8>,
                         after: Option<Vec<u8>>,
                         limit: usize,
                         cid_at: usize|
             -> Result<Vec<Cid>> {
                let table = txn.open_table(definition).map_err(backend)?;
                let mut out = Vec::new();
                if limit == 0 {
                    return Ok(out);
                }
                let start = match &after {
                    Some(key) => Bound::Excluded(key.as_slice()),
                    None => Bound::Included(prefix.as_slice()),
                };
                for entry in table
                    .range::<&[u8]>((start, Bound::Unbounded))
                    .map_err(storage)?
                {
                    let (key, _) = entry.map_err(storage)?;
                    let key = key.value();
                    if !key.starts_with(&prefix) {
                        break;
                    }
                    out.push(second_of(key, cid_at)?);
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            };
            match query {
                Query::ByType {
                    type_name,
                    after,
                    limit,
                } => {
                    let prefix = type_prefix(type_name)?;
                    let after = after.map(|cid| type_key(type_name, cid)).transpose()?;
                    let cid_at = prefix.len();
                    paged(TYPES, prefix, after, limit, cid_at)
                }
                Query::Versions(of) => {
                    let prefix = pair_prefix(of);
                    let cid_at = prefix.len();
                    paged(VERSIONS, prefix, None, usize::MAX, cid_at)
                }
                Query::Heads(of) => {
                    let prefix = pair_prefix(of);
                    let cid_at = prefix.len();
                    paged(HEADS, prefix, None, usize::MAX, cid_at)
                }
                Query::LinksTo {
                    target,
                    after,
                    limit,
                } => {
                    let prefix = pair_prefix(target);
                    let after = after.map(|cid| pair_key(target, cid));
                    let cid_at = prefix.len();
                    paged(LINKS, prefix, after, limit, cid_at)
                }
                Query::ByAuthor {
                    author,
                    after,
                    limit,
                } => {
                    let after = after.map(|(clock, cid)| author_key(author, clock, Some(cid)));
                    paged(
                        AUTHORS,
                        author.to_vec(),
                        after,
                        limit,
                        chum_store::keys::AUTHOR_PREFIX_LEN,
                    )
                }
            }
        })
    }

    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        guarded("local_get", || {
            let snapshot = self.read()?;
            let txn = &snapshot.txn;
            let table = txn.open_table(LOCAL).map_err(backend)?;
            Ok(table
                .get(key)
                .map_err(storage)?
                .map(|value| value.value().to_vec()))
        })
    }

    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        guarded("local_put", || {
            self.write(|txn| {
                let mut table = txn.open_table(LOCAL).map_err(backend)?;
                table.insert(key, value).map_err(storage)?;
                Ok(true)
            })
        })
    }

    async fn local_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        guarded("local_put_many", || {
            self.write(|txn| {
                let mut table = txn.open_table(LOCAL).map_err(backend)?;
                for (key, value) in entries {
                    table
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(storage)?;
                }
                Ok(!entries.is_empty())
            })
        })
    }

    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        guarded("local_delete", || {
            let mut removed = false;
            self.write(|txn| {
                let mut table = txn.open_table(LOCAL).map_err(backend)?;
                removed = table.remove(key).map_err(storage)?.is_some();
                Ok(removed)
            })?;
            Ok(removed)
        })
    }

    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        guarded("local_keys", || {
            let snapshot = self.read()?;
            let txn = &snapshot.txn;
            let table = txn.open_table(LOCAL).map_err(backend)?;
            let mut out = Vec::new();
            for entry in table.range(prefix..).map_err(storage)? {
                let (key, _) = entry.map_err(storage)?;
                if !key.value().starts_with(prefix) {
                    break;
                }
                out.push(key.value().to_vec());
            }
            Ok(out)
        })
    }

    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        guarded("sync_list", || {
            let snapshot = self.read()?;
            let locals = snapshot.txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
            // Usually no object is local: then no lookup per CID.
            let any_local = locals.len().map_err(storage)? > 0;
            let mut out = Vec::new();
            let mut after: Option<Cid> = None;
            loop {
                let start = after.as_ref().map_or(range.0, Bound::Excluded);
                let chunk = list_range(&snapshot, (start, range.1), limit - out.len())?;
                let full = chunk.len() == limit - out.len();
                after = chunk.last().cloned();
                for cid in chunk {
                    if !any_local || locals.get(cid.as_bytes()).map_err(storage)?.is_none() {
                        out.push(cid);
                    }
                }
                if !full || out.len() >= limit {
                    return Ok(out);
                }
            }
        })
    }

    async fn sync_objects(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, Vec<u8>)>, Option<Cid>)> {
        guarded("sync_objects", || {
            let snapshot = self.read()?;
            let locals = snapshot.txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
            let any_local = locals.len().map_err(storage)? > 0;
            let start = after.map_or(Bound::Unbounded, |cid| Bound::Excluded(cid.as_bytes()));
            let mut objects = Vec::new();
            let mut listed = 0usize;
            let mut last = None;
            if limit > 0 {
                for entry in snapshot
                    .objects
                    .range::<&[u8]>((start, Bound::Unbounded))
                    .map_err(storage)?
                {
                    let (key, value) = entry.map_err(storage)?;
                    let cid = Cid::from_bytes(key.value())
                        .map_err(|e| Error::Damaged(format!("object key: {e}")))?;
                    if any_local && locals.get(cid.as_bytes()).map_err(storage)?.is_some() {
                        continue;
                    }
                    listed += 1;
                    // Bytes that no longer verify are left out (a peer is never sent them).
                    if let Ok(bytes) = verified(&cid, value.value()) {
                        objects.push((cid.clone(), bytes));
                    }
                    last = Some(cid);
                    if listed >= limit {
                        break;
                    }
                }
            }
            let next = if listed < limit { None } else { last };
            Ok((objects, next))
        })
    }

    async fn sync_digest(&self) -> Result<SyncDigest> {
        guarded("sync_digest", || {
            let snapshot = self.read()?;
            let table = snapshot.txn.open_table(SYNC).map_err(backend)?;
            let bytes = table.get(SYNC_DIGEST).map_err(storage)?;
            match bytes {
                Some(bytes) => SyncDigest::from_bytes(bytes.value()),
                None => Err(Error::Damaged("the sync digest is missing".into())),
            }
        })
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<JournalPage> {
        guarded("journal", || {
            let snapshot = self.read()?;
            let id = snapshot
                .txn
                .open_table(SYNC)
                .map_err(backend)?
                .get(SYNC_JOURNAL_ID)
                .map_err(storage)?
                .and_then(|bytes| <[u8; 16]>::try_from(bytes.value()).ok())
                .ok_or_else(|| Error::Damaged("the journal id is missing".into()))?;
            let head = snapshot
                .txn
                .open_table(META)
                .map_err(backend)?
                .get(META_JOURNAL_HEAD)
                .map_err(storage)?
                .map_or(0, |v| v.value());
            let journal = snapshot.txn.open_table(JOURNAL).map_err(backend)?;
            let locals = snapshot.txn.open_table(LOCAL_OBJECTS).map_err(backend)?;
            let any_local = locals.len().map_err(storage)? > 0;
            let mut entries = Vec::new();
            let mut last = after;
            let mut examined = 0usize;
            if limit > 0 && after < head {
                // The row holding position `after + 1` starts at or before it.
                let from = match journal.range(..=after + 1).map_err(storage)?.next_back() {
                    Some(row) => row.map_err(storage)?.0.value(),
                    None => 0,
                };
                'rows: for row in journal.range(from..).map_err(storage)? {
                    let (first, cids) = row.map_err(storage)?;
                    let mut rest = cids.value();
                    let mut position = first.value();
                    while let Some((&len, tail)) = rest.split_first() {
                        let Some((key, tail)) = tail.split_at_checked(usize::from(len)) else {
                            return Err(Error::Damaged("a truncated journal row".into()));
                        };
                        rest = tail;
                        if position > after {
                            if examined == limit {
                                break 'rows;
                            }
                            examined += 1;
                            last = position;
                            if snapshot.objects.get(key).map_err(storage)?.is_some()
                                && (!any_local || locals.get(key).map_err(storage)?.is_none())
                            {
                                let cid = Cid::from_bytes(key)
                                    .map_err(|e| Error::Damaged(format!("journal entry: {e}")))?;
                                entries.push((position, cid));
                            }
                        }
                        position += 1;
                    }
                }
            }
            Ok(JournalPage {
                id,
                head,
                last,
                entries,
            })
        })
    }
}

/// Counts the objects by walking the object table: for `verify`-style tools and tests that
/// check the stored count; never called on open.
pub fn count_by_scan(store: &RedbStore) -> Result<u64> {
    guarded("count_by_scan", || {
        store.read()?.objects.len().map_err(storage)
    })
}
