//! # chum-store-postgres
//!
//! The hub store of chum: the [`Store`] contract over PostgreSQL, so that an always-on hub keeps
//! its objects in the database its operators already run, back up and replicate, and so that
//! several hub processes can serve one database.
//!
//! - **One transaction per write**: a batch's objects, their index rows (type, links, author,
//!   versions and parent edges), the journal entries and the sync digest commit together. The
//!   objects and indexes go in one statement (arrays unnested server-side); the journal head,
//!   object count and digest live in one row (`chum_state`) that each write locks last, so
//!   journal positions follow commit order across processes and a reader never sees a
//!   position before an earlier one commits.
//! - **Verified reads**: every object read is re-hashed against its CID; damaged bytes are
//!   [`Error::Corrupt`], never returned.
//! - **Versioned schema**: numbered migrations, applied once under an advisory lock by the
//!   first process to open; a newer schema is refused ([`Error::NewerFormat`]), and so is a
//!   schema that holds tables of something else.
//! - **Several processes**: every handle over the same database and schema sees every write
//!   at once; [`Store::watch_others`] streams what *other* handles added to the shared set,
//!   woken by `LISTEN`/`NOTIFY` on commit (not polling) and read from the journal, so a hub
//!   pushes live what a peer of another hub wrote. A write acknowledged by a process is
//!   committed; killing the process loses nothing acknowledged.
//!
//! Why `tokio-postgres` with `deadpool-postgres` (rather than `sqlx`): the store needs
//! prepared statements over arrays (`unnest`), a connection of its own for `LISTEN`, and no
//! compile-time database; `tokio-postgres` gives exactly that with a small build, and the pool
//! adds nothing but reuse. Connections are plain (no TLS): run the hubs beside the database
//! or through a unix socket.
//!
//! The store needs a tokio runtime (its connections run as tasks on it).
//!
//! ```no_run
//! use chum_object::{Object, dagjson};
//! use chum_store::Store;
//! use chum_store_postgres::PostgresStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::open("postgres://chum@db.internal/hub?schema=chum").await?;
//! let object = Object::from_value(&dagjson::from_str(r#"{"$type":"Message","text":"hi"}"#)?)?;
//! store.put(object.cid(), object.bytes()).await?;
//! assert_eq!(store.get(object.cid()).await?, object.bytes());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod cluster;
mod schema;
mod watch;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chum_object::{Cid, Limits};
use chum_store::index::{self, IndexEntries, Verified};
use chum_store::{Error, JournalPage, Query, Result, Scope, Store, SyncDigest};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

pub use crate::schema::SCHEMA_VERSION;

/// The schema a store lives in when its URL names none.
pub const DEFAULT_SCHEMA: &str = "chum";

/// Connections a store's pool holds at most, unless told otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A chum store in a PostgreSQL schema. Cheap to clone (a handle on one pool).
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    limits: Limits,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.shared.schema)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What every handle and watcher of one opened store shares.
pub(crate) struct Shared {
    pub(crate) pool: Pool,
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: String,
    /// The `NOTIFY` channel of this schema's writes.
    pub(crate) channel: String,
    /// Journal positions this process wrote (first → last), kept while a watcher runs so it
    /// can tell them from other processes' writes.
    pub(crate) own: Mutex<OwnWrites>,
}

/// Journal position ranges written through this process's handles.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    /// How many watchers run (positions are only recorded while one does).
    pub(crate) watchers: usize,
    pub(crate) ranges: BTreeMap<u64, u64>,
}

/// How to open a [`PostgresStore`]: the database, the schema, the pool.
#[derive(Debug, Clone)]
pub struct Options {
    config: tokio_postgres::Config,
    schema: String,
    pool_size: usize,
}

/// Turns a driver error into a store error, with the server's message and SQLSTATE when there
/// is one.
pub(crate) fn pg(error: tokio_postgres::Error) -> Error {
    match error.as_db_error() {
        Some(db) => Error::Backend(format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None => {
            let mut text = format!("PostgreSQL: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Error::Backend(text)
        }
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(error) => pg(error),
        other => Error::Backend(format!("PostgreSQL connection pool: {other}")),
    }
}

/// Whether a failed transaction may simply be run again (a serialization failure or a
/// deadlock the server broke).
fn retryable(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            || *code == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
    })
}

fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Options {
    /// Options from a `postgres://` (or `postgresql://`) URL, as libpq reads it (`host` may
    /// name a unix socket directory: `postgres://user@localhost/db?host=/run/postgresql`),
    /// plus chum's own parameter `schema` (default [`DEFAULT_SCHEMA`]; lowercase letters,
    /// digits and `_`).
    pub fn from_url(url: &str) -> Result<Options> {
        let invalid = |why: String| Error::Backend(format!("not a PostgreSQL URL: {why}"));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("it must start with postgres:// or postgresql://".into()));
        }
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let url = match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                    match pair.split_once('=') {
                        Some(("schema", value)) => schema = value.to_owned(),
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        };
        let config: tokio_postgres::Config = url.parse().map_err(|error| {
            invalid(format!("{error}"))
        })?;
        Options::new(config, &schema)
    }

    /// Options from a driver configuration and a schema name.
    pub fn new(mut config: tokio_postgres::Config, schema: &str) -> Result<Options> {
        if !valid_schema(schema) {
            return Err(Error::Backend(format!(
                "schema {schema:?}: use 1 to 63 lowercase letters, digits and _, not starting \
                 with a digit"
            )));
        }
        if config.get_application_name().is_none() {
            config.application_name("chum");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // Unqualified names are the store's tables.
        let options = match config.get_options() {
            Some(existing) => format!("{existing} -c search_path={schema}"),
            None => format!("-c search_path={schema}"),
        };
        config.options(options);
        Ok(Options {
            config,
            schema: schema.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
        })
    }

    /// Holds at most `size` connections (at least 1; default [`DEFAULT_POOL_SIZE`]).
    pub fn pool_size(mut self, size: usize) -> Options {
        self.pool_size = size.max(1);
        self
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Connects, creates or upgrades the schema, and opens the store.
    pub async fn open(self) -> Result<PostgresStore> {
        let manager = Manager::from_config(
            self.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .build()
            .map_err(|error| Error::Backend(format!("PostgreSQL connection pool: {error}")))?;
        // Migrations run on a connection of their own (their `SET LOCAL` ends with them).
        let (mut client, connection) = self.config.connect(NoTls).await.map_err(pg)?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let migrated = schema::migrate(&mut client, &self.schema).await;
        drop(client);
        let _ = driver.await;
        migrated?;
        let channel = format!("chum_{}", self.schema);
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                pool,
                config: self.config,
                schema: self.schema,
                channel,
                own: Mutex::new(OwnWrites::default()),
            }),
            limits: Limits::default(),
        })
    }
}

/// The bytes of `cid` if they still hash to it; `Corrupt` (never the bytes) otherwise.
fn verified(cid: &Cid, bytes: Vec<u8>) -> Result<Vec<u8>> {
    match cid.verify(&bytes) {
        Ok(true) => Ok(bytes),
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

fn stored_cid(bytes: &[u8]) -> Result<Cid> {
    Cid::from_bytes(bytes).map_err(|error| Error::Damaged(format!("a stored CID: {error}")))
}

/// `wall ms ‖ counter`, big-endian: bytes that sort as the clock.
fn clock_bytes(clock: chum_crdt::Timestamp) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&clock.wall_ms.to_be_bytes());
    out[8..].copy_from_slice(&clock.counter.to_be_bytes());
    out
}

/// A limit as SQL's `bigint`.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A `WHERE` clause on column `cid` for a CID range, with its parameters.
fn range_clause<'a>(range: (Bound<&'a Cid>, Bound<&'a Cid>)) -> (String, Vec<&'a [u8]>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let mut bound = |bound: Bound<&'a Cid>, strict: &str, loose: &str| match bound {
        Bound::Included(cid) => {
            params.push(cid.as_bytes());
            clauses.push(format!("cid {loose} ${}", params.len()));
        }
        Bound::Excluded(cid) => {
            params.push(cid.as_bytes());
            clauses.push(format!("cid {strict} ${}", params.len()));
        }
        Bound::Unbounded => {}
    };
    bound(range.0, ">", ">=");
    bound(range.1, "<", "<=");
    let clause = if clauses.is_empty() {
        "true".to_owned()
    } else {
        clauses.join(" AND ")
    };
    (clause, params)
}

/// Index rows of a batch's objects, column by column (each row names its object).
#[derive(Default)]
struct IndexRows<'a> {
    type_names: Vec<&'a [u8]>,
    type_cids: Vec<&'a [u8]>,
    link_targets: Vec<&'a [u8]>,
    link_cids: Vec<&'a [u8]>,
    authors: Vec<&'a [u8]>,
    clocks: Vec<Vec<u8>>,
    author_cids: Vec<&'a [u8]>,
    version_ofs: Vec<&'a [u8]>,
    version_cids: Vec<&'a [u8]>,
    edge_parents: Vec<&'a [u8]>,
    edge_children: Vec<&'a [u8]>,
}

impl<'a> IndexRows<'a> {
    fn add(&mut self, cid: &'a Cid, entries: &'a IndexEntries) {
        let cid_bytes = cid.as_bytes();
        if let Some(type_name) = &entries.type_name {
            self.type_names.push(type_name.as_bytes());
            self.type_cids.push(cid_bytes);
        }
        for target in &entries.links {
            self.link_targets.push(target.as_bytes());
            self.link_cids.push(cid_bytes);
        }
        if let Some((author, clock)) = &entries.author {
            self.authors.push(author.as_slice());
            self.clocks.push(clock_bytes(*clock).to_vec());
            self.author_cids.push(cid_bytes);
        }
        if let Some(version) = &entries.version {
            self.version_ofs.push(version.of.as_bytes());
            self.version_cids.push(cid_bytes);
            for parent in &version.parents {
                self.edge_parents.push(parent.as_bytes());
                self.edge_children.push(cid_bytes);
            }
        }
    }
}

/// Stores a batch's objects and, for those it inserts, their index rows; marks local objects
/// stored again as shared. Returns the inserted CIDs and the promoted ones.
const INSERT_BATCH: &str = "
WITH input AS (
    SELECT * FROM unnest($1::bytea[], $2::bytea[]) AS i(cid, bytes)
),
inserted AS (
    INSERT INTO objects (cid, bytes, local)
    SELECT cid, bytes, $3 FROM input
    ON CONFLICT (cid) DO NOTHING
    RETURNING cid
),
promoted AS (
    UPDATE objects o SET local = false
    FROM input i
    WHERE NOT $3 AND o.local AND o.cid = i.cid
    RETURNING o.cid
),
t AS (
    INSERT INTO index_type (type_name, cid)
    SELECT r.type_name, r.cid FROM unnest($4::bytea[], $5::bytea[]) AS r(type_name, cid)
    WHERE r.cid IN (SELECT cid FROM inserted)
    ON CONFLICT DO NOTHING
),
l AS (
    INSERT INTO index_links (target, cid)
    SELECT r.target, r.cid FROM unnest($6::bytea[], $7::bytea[]) AS r(target, cid)
    WHERE r.cid IN (SELECT cid FROM inserted)
    ON CONFLICT DO NOTHING
),
a AS (
    INSERT INTO index_authors (author, clock, cid)
    SELECT r.author, r.clock, r.cid
    FROM unnest($8::bytea[], $9::bytea[], $10::bytea[]) AS r(author, clock, cid)
    WHERE r.cid IN (SELECT cid FROM inserted)
    ON CONFLICT DO NOTHING
),
v AS (
    INSERT INTO index_versions (of_id, cid)
    SELECT r.of_id, r.cid FROM unnest($11::bytea[], $12::bytea[]) AS r(of_id, cid)
    WHERE r.cid IN (SELECT cid FROM inserted)
    ON CONFLICT DO NOTHING
),
e AS (
    INSERT INTO index_edges (parent, child)
    SELECT r.parent, r.child FROM unnest($13::bytea[], $14::bytea[]) AS r(parent, child)
    WHERE r.child IN (SELECT cid FROM inserted)
    ON CONFLICT DO NOTHING
)
SELECT cid, true FROM inserted
UNION ALL
SELECT cid, false FROM promoted
";

/// Moves the journal head, count and digest, numbers the objects that joined the shared set,
/// and notifies the other processes (delivered on commit).
const ADVANCE_STATE: &str = "
WITH s AS (
    UPDATE chum_state
    SET journal_head = journal_head + $1, object_count = object_count + $2, digest = $3
    RETURNING journal_head
),
j AS (
    INSERT INTO journal (position, cid)
    SELECT s.journal_head - $1 + n.ord, n.cid
    FROM s, unnest($4::bytea[]) WITH ORDINALITY AS n(cid, ord)
)
SELECT journal_head, CASE WHEN $1 > 0 THEN pg_notify($5, journal_head::text) END
FROM s
";

/// Removes one object's index rows, named from its bytes.
const DELETE_INDEXES: &str = "
WITH t AS (
    DELETE FROM index_type WHERE type_name = ANY($2::bytea[]) AND cid = $1
),
l AS (
    DELETE FROM index_links WHERE target = ANY($3::bytea[]) AND cid = $1
),
a AS (
    DELETE FROM index_authors WHERE author = ANY($4::bytea[]) AND clock = ANY($5::bytea[])
        AND cid = $1
),
v AS (
    DELETE FROM index_versions WHERE of_id = ANY($6::bytea[]) AND cid = $1
)
DELETE FROM index_edges WHERE parent = ANY($7::bytea[]) AND child = $1
";

/// Removes every index row of one object by searching the tables (the repair path for an
/// object whose stored bytes are damaged, so cannot name its rows).
const SCRUB_INDEXES: &str = "
WITH t AS (DELETE FROM index_type WHERE cid = $1),
l AS (DELETE FROM index_links WHERE cid = $1),
a AS (DELETE FROM index_authors WHERE cid = $1),
v AS (DELETE FROM index_versions WHERE cid = $1)
DELETE FROM index_edges WHERE child = $1
";

/// The current heads of an ID: its stored versions no stored version of it names as parent.
const HEADS: &str = "
SELECT v.cid FROM index_versions v
WHERE v.of_id = $1 AND NOT EXISTS (
    SELECT 1 FROM index_edges e
    JOIN index_versions c ON c.of_id = v.of_id AND c.cid = e.child
    WHERE e.parent = v.cid
)
ORDER BY v.cid
";

/// A journal page and the journal's id and head, in one snapshot.
const JOURNAL_PAGE: &str = "
SELECT s.journal_id, s.journal_head, p.position, p.cid, p.shown
FROM chum_state s
LEFT JOIN LATERAL (
    SELECT j.position, j.cid, coalesce(NOT o.local, false) AS shown
    FROM journal j LEFT JOIN objects o ON o.cid = j.cid
    WHERE j.position > $1
    ORDER BY j.position
    LIMIT $2
) p ON true
ORDER BY p.position
";

type Client = deadpool_postgres::Object;

impl PostgresStore {
    /// Opens the store a `postgres://` URL names (see [`Options::from_url`]), creating or
    /// upgrading its schema.
    pub async fn open(url: &str) -> Result<PostgresStore> {
        Options::from_url(url)?.open().await
    }

    /// Sets the object limits enforced on writes (default: [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> PostgresStore {
        self.limits = limits;
        self
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// How much the database holds for this store: the total size of its tables and indexes
    /// (bytes, as PostgreSQL counts them).
    pub async fn size_bytes(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                 ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                &[&self.shared.schema],
            )
            .await
            .map_err(pg)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn client(&self) -> Result<Client> {
        self.shared.pool.get().await.map_err(pool_error)
    }

    /// Writes a verified batch in one transaction (retried when the server breaks a deadlock
    /// or a serialization conflict; nothing of a failed attempt stays).
    async fn write_batch(
        &self,
        objects: &[(Cid, Vec<u8>)],
        entries: &[IndexEntries],
        scope: Scope,
    ) -> Result<Vec<bool>> {
        // CID order, duplicates removed: concurrent writers lock rows in one order.
        let mut order: Vec<usize> = (0..objects.len()).collect();
        order.sort_by(|&a, &b| objects[a].0.cmp(&objects[b].0));
        order.dedup_by(|a, b| objects[*a].0 == objects[*b].0);
        let mut attempt = 0;
        loop {
            match self.try_write_batch(objects, entries, &order, scope).await {
                Err(WriteError::Retry(error)) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "a write conflicted; running it again");
                    tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
                }
                Err(WriteError::Retry(error)) => return Err(pg(error)),
                Err(WriteError::Store(error)) => return Err(error),
                Ok(stored) => return Ok(stored),
            }
        }
    }

    async fn try_write_batch(
        &self,
        objects: &[(Cid, Vec<u8>)],
        entries: &[IndexEntries],
        order: &[usize],
        scope: Scope,
    ) -> std::result::Result<Vec<bool>, WriteError> {
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let cids: Vec<&[u8]> = order.iter().map(|&i| objects[i].0.as_bytes()).collect();
        let bytes: Vec<&[u8]> = order.iter().map(|&i| objects[i].1.as_slice()).collect();
        let mut rows = IndexRows::default();
        for &i in order {
            rows.add(&objects[i].0, &entries[i]);
        }
        let local = scope == Scope::Local;
        let statement = txn.prepare_cached(INSERT_BATCH).await?;
        let params: [&(dyn ToSql + Sync); 14] = [
            &cids,
            &bytes,
            &local,
            &rows.type_names,
            &rows.type_cids,
            &rows.link_targets,
            &rows.link_cids,
            &rows.authors,
            &rows.clocks,
            &rows.author_cids,
            &rows.version_ofs,
            &rows.version_cids,
            &rows.edge_parents,
            &rows.edge_children,
        ];
        let changed = txn.query(&statement, &params).await?;
        if changed.is_empty() {
            // Nothing new: nothing to commit.
            txn.rollback().await?;
            return Ok(vec![false; objects.len()]);
        }
        let mut inserted = 0i64;
        let mut changed_cids = Vec::with_capacity(changed.len());
        let mut joined: Vec<Cid> = Vec::new();
        for row in &changed {
            let cid = stored_cid(row.get::<_, &[u8]>(0))?;
            let is_new: bool = row.get(1);
            if is_new {
                inserted += 1;
            }
            if is_new && scope == Scope::Local {
                changed_cids.push(cid);
            } else {
                joined.push(cid.clone());
                changed_cids.push(cid);
            }
        }
        // The journal in CID order within a batch (the contract leaves it open).
        joined.sort();
        let state = txn
            .query_one(
                "SELECT digest FROM chum_state FOR UPDATE",
                &[],
            )
            .await?;
        let mut digest = SyncDigest::from_bytes(state.get::<_, &[u8]>(0))?;
        joined.iter().for_each(|cid| digest.insert(cid));
        let joined_bytes: Vec<&[u8]> = joined.iter().map(Cid::as_bytes).collect();
        let joined_count = joined.len() as i64;
        let statement = txn.prepare_cached(ADVANCE_STATE).await?;
        let head_row = txn
            .query_one(
                &statement,
                &[
                    &joined_count,
                    &inserted,
                    &digest.to_bytes(),
                    &joined_bytes,
                    &self.shared.channel,
                ],
            )
            .await?;
        let head = u64::try_from(head_row.get::<_, i64>(0)).unwrap_or(0);
        txn.commit().await?;
        if joined_count > 0 {
            self.record_own(head + 1 - joined_count as u64, head);
        }
        let changed_set: std::collections::HashSet<&Cid> = changed_cids.iter().collect();
        // Per object of the batch as given: the first of duplicates reports the change.
        let mut reported = std::collections::HashSet::new();
        Ok(objects
            .iter()
            .map(|(cid, _)| changed_set.contains(cid) && reported.insert(cid.clone()))
            .collect())
    }

    /// Notes journal positions this process wrote (for its watchers).
    fn record_own(&self, first: u64, last: u64) {
        let mut own = self
            .shared
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if own.watchers > 0 {
            own.ranges.insert(first, last);
        }
    }

    /// Lists `cid`s of a range, shared ones only when `shared`.
    async fn list_cids(
        &self,
        range: (Bound<&Cid>, Bound<&Cid>),
        limit: usize,
        shared: bool,
    ) -> Result<Vec<Cid>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (clause, bounds) = range_clause(range);
        let sql = format!(
            "SELECT cid FROM objects WHERE {clause}{} ORDER BY cid LIMIT ${}",
            if shared { " AND NOT local" } else { "" },
            bounds.len() + 1
        );
        let limit = sql_limit(limit);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            bounds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        params.push(&limit);
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(pg)?;
        let rows = client.query(&statement, &params).await.map_err(pg)?;
        rows.iter()
            .map(|row| stored_cid(row.get::<_, &[u8]>(0)))
            .collect()
    }

    /// Rows of a one-column CID query.
    async fn cids_of(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Cid>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        let rows = client.query(&statement, params).await.map_err(pg)?;
        rows.iter()
            .map(|row| stored_cid(row.get::<_, &[u8]>(0)))
            .collect()
    }
}

/// A write's failure: run it again, or give up with this error.
enum WriteError {
    Retry(tokio_postgres::Error),
    Store(Error),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(error: tokio_postgres::Error) -> WriteError {
        if retryable(&error) {
            WriteError::Retry(error)
        } else {
            WriteError::Store(pg(error))
        }
    }
}

impl From<Error> for WriteError {
    fn from(error: Error) -> WriteError {
        WriteError::Store(error)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        // Verify everything before touching the database: a bad object refuses the batch.
        let entries = index::verify_and_index_all(objects, &self.limits)?;
        self.write_batch(objects, &entries, scope).await
    }

    async fn put_verified(&self, batch: Verified, scope: Scope) -> Result<Vec<bool>> {
        if *batch.limits() != self.limits {
            return self.put_scoped(batch.objects(), scope).await;
        }
        self.write_batch(batch.objects(), batch.entries(), scope)
            .await
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT bytes FROM objects WHERE cid = $1")
            .await
            .map_err(pg)?;
        match client
            .query_opt(&statement, &[&cid.as_bytes()])
            .await
            .map_err(pg)?
        {
            Some(row) => verified(cid, row.get(0)),
            None => Err(Error::NotFound(cid.clone())),
        }
    }

    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&[u8]> = cids.iter().map(Cid::as_bytes).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT cid, bytes FROM objects WHERE cid = ANY($1::bytea[])")
            .await
            .map_err(pg)?;
        let rows = client.query(&statement, &[&keys]).await.map_err(pg)?;
        let mut found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        // Where each CID is asked last: its bytes move there; earlier asks get a copy.
        let last: std::collections::HashMap<&Cid, usize> =
            cids.iter().enumerate().map(|(i, cid)| (cid, i)).collect();
        Ok(cids
            .iter()
            .enumerate()
            .map(|(i, cid)| {
                let bytes = if last.get(cid) == Some(&i) {
                    found.remove(cid.as_bytes())
                } else {
                    found.get(cid.as_bytes()).cloned()
                };
                match bytes {
                    Some(bytes) => verified(cid, bytes),
                    None => Err(Error::NotFound(cid.clone())),
                }
            })
            .collect())
    }

    async fn has(&self, cid: &Cid) -> Result<bool> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT 1 FROM objects WHERE cid = $1")
            .await
            .map_err(pg)?;
        Ok(client
            .query_opt(&statement, &[&cid.as_bytes()])
            .await
            .map_err(pg)?
            .is_some())
    }

    async fn delete(&self, cid: &Cid) -> Result<bool> {
        let mut attempt = 0;
        loop {
            match self.try_delete(cid).await {
                Err(WriteError::Retry(error)) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "a delete conflicted; running it again");
                    tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
                }
                Err(WriteError::Retry(error)) => return Err(pg(error)),
                Err(WriteError::Store(error)) => return Err(error),
                Ok(removed) => return Ok(removed),
            }
        }
    }

    async fn list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.list_cids(range, limit, false).await
    }

    async fn count(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT object_count FROM chum_state", &[])
            .await
            .map_err(pg)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn query(&self, query: Query<'_>) -> Result<Vec<Cid>> {
        match query {
            Query::ByType {
                type_name,
                after,
                limit,
            } => {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let after: &[u8] = after.map_or(&[], Cid::as_bytes);
                self.cids_of(
                    "SELECT cid FROM index_type WHERE type_name = $1 AND cid > $2 \
                     ORDER BY cid LIMIT $3",
                    &[&type_name.as_bytes(), &after, &sql_limit(limit)],
                )
                .await
            }
            Query::Versions(of) => {
                self.cids_of(
                    "SELECT cid FROM index_versions WHERE of_id = $1 ORDER BY cid",
                    &[&of.as_bytes()],
                )
                .await
            }
            Query::Heads(of) => self.cids_of(HEADS, &[&of.as_bytes()]).await,
            Query::LinksTo {
                target,
                after,
                limit,
            } => {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let after: &[u8] = after.map_or(&[], Cid::as_bytes);
                self.cids_of(
                    "SELECT cid FROM index_links WHERE target = $1 AND cid > $2 \
                     ORDER BY cid LIMIT $3",
                    &[&target.as_bytes(), &after, &sql_limit(limit)],
                )
                .await
            }
            Query::ByAuthor {
                author,
                after,
                limit,
            } => {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let (clock, cid): (Vec<u8>, &[u8]) = match after {
                    Some((clock, cid)) => (clock_bytes(clock).to_vec(), cid.as_bytes()),
                    None => (Vec::new(), &[]),
                };
                self.cids_of(
                    "SELECT cid FROM index_authors WHERE author = $1 AND (clock, cid) > ($2, $3) \
                     ORDER BY clock, cid LIMIT $4",
                    &[&author.as_slice(), &clock, &cid, &sql_limit(limit)],
                )
                .await
            }
        }
    }

    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT value FROM local_kv WHERE key = $1")
            .await
            .map_err(pg)?;
        Ok(client
            .query_opt(&statement, &[&key])
            .await
            .map_err(pg)?
            .map(|row| row.get(0)))
    }

    async fn local_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO local_kv (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )
            .await
            .map_err(pg)?;
        client
            .execute(&statement, &[&key, &value])
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn local_delete(&self, key: &[u8]) -> Result<bool> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM local_kv WHERE key = $1")
            .await
            .map_err(pg)?;
        Ok(client.execute(&statement, &[&key]).await.map_err(pg)? > 0)
    }

    async fn local_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT key FROM local_kv WHERE key >= $1 \
                 AND substring(key FROM 1 FOR length($1)) = $1 ORDER BY key",
            )
            .await
            .map_err(pg)?;
        let rows = client.query(&statement, &[&prefix]).await.map_err(pg)?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.list_cids(range, limit, true).await
    }

    async fn sync_objects(
        &self,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<(Vec<(Cid, Vec<u8>)>, Option<Cid>)> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let after: &[u8] = after.map_or(&[], Cid::as_bytes);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT cid, bytes FROM objects WHERE cid > $1 AND NOT local \
                 ORDER BY cid LIMIT $2",
            )
            .await
            .map_err(pg)?;
        let rows = client
            .query(&statement, &[&after, &sql_limit(limit)])
            .await
            .map_err(pg)?;
        let listed = rows.len();
        let mut objects = Vec::with_capacity(listed);
        let mut last = None;
        for row in rows {
            let cid = stored_cid(row.get::<_, &[u8]>(0))?;
            // Bytes that no longer verify are left out (a peer is never sent them).
            if let Ok(bytes) = verified(&cid, row.get(1)) {
                objects.push((cid.clone(), bytes));
            }
            last = Some(cid);
        }
        let next = if listed < limit { None } else { last };
        Ok((objects, next))
    }

    async fn sync_digest(&self) -> Result<SyncDigest> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT digest FROM chum_state", &[])
            .await
            .map_err(pg)?;
        SyncDigest::from_bytes(row.get::<_, &[u8]>(0))
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<JournalPage> {
        let client = self.client().await?;
        let statement = client.prepare_cached(JOURNAL_PAGE).await.map_err(pg)?;
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&from, &sql_limit(limit)])
            .await
            .map_err(pg)?;
        let first = rows
            .first()
            .ok_or_else(|| Error::Damaged("the store's state row is missing".into()))?;
        let id: [u8; 16] = first
            .get::<_, &[u8]>(0)
            .try_into()
            .map_err(|_| Error::Damaged("the journal id is not 16 bytes".into()))?;
        let head = u64::try_from(first.get::<_, i64>(1)).unwrap_or(0);
        let mut entries = Vec::new();
        let mut last = after;
        for row in &rows {
            let Some(position) = row.get::<_, Option<i64>>(2) else {
                continue;
            };
            last = u64::try_from(position).unwrap_or(last);
            if row.get::<_, bool>(4) {
                entries.push((last, stored_cid(row.get::<_, &[u8]>(3))?));
            }
        }
        Ok(JournalPage {
            id,
            head,
            last,
            entries,
        })
    }

    fn watch_others(&self) -> Option<futures::stream::BoxStream<'static, Vec<Cid>>> {
        watch::start(&self.shared)
    }
}

impl PostgresStore {
    async fn try_delete(&self, cid: &Cid) -> std::result::Result<bool, WriteError> {
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let Some(row) = txn
            .query_opt(
                "DELETE FROM objects WHERE cid = $1 RETURNING bytes, local",
                &[&cid.as_bytes()],
            )
            .await?
        else {
            txn.rollback().await?;
            return Ok(false);
        };
        let bytes: Vec<u8> = row.get(0);
        let was_local: bool = row.get(1);
        let key = cid.as_bytes();
        // The index rows derive from the bytes; bytes that no longer verify cannot be trusted
        // to name them, so the tables are searched for the CID instead.
        match index::verify_and_index(cid, &bytes, &index::widest_limits()) {
            Ok(entries) => {
                let types: Vec<&[u8]> = entries.type_name.iter().map(|t| t.as_bytes()).collect();
                let links: Vec<&[u8]> = entries.links.iter().map(Cid::as_bytes).collect();
                let authors: Vec<&[u8]> =
                    entries.author.iter().map(|(a, _)| a.as_slice()).collect();
                let clocks: Vec<Vec<u8>> = entries
                    .author
                    .iter()
                    .map(|(_, clock)| clock_bytes(*clock).to_vec())
                    .collect();
                let ofs: Vec<&[u8]> = entries.version.iter().map(|v| v.of.as_bytes()).collect();
                let parents: Vec<&[u8]> = entries
                    .version
                    .iter()
                    .flat_map(|v| v.parents.iter().map(Cid::as_bytes))
                    .collect();
                let statement = txn.prepare_cached(DELETE_INDEXES).await?;
                txn.execute(
                    &statement,
                    &[&key, &types, &links, &authors, &clocks, &ofs, &parents],
                )
                .await?;
            }
            Err(_) => {
                txn.execute(SCRUB_INDEXES, &[&key]).await?;
            }
        }
        let state = txn
            .query_one("SELECT digest FROM chum_state FOR UPDATE", &[])
            .await?;
        let mut digest = SyncDigest::from_bytes(state.get::<_, &[u8]>(0))?;
        if !was_local {
            digest.remove(cid);
        }
        txn.execute(
            "UPDATE chum_state SET object_count = object_count - 1, digest = $1",
            &[&digest.to_bytes()],
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }
}
