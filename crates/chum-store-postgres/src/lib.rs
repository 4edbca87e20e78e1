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
//! adds nothing but reuse.
//!
//! **TLS** (rustls) as libpq's `sslmode` and `sslrootcert` choose ([`Options::from_url`]): by
//! default a TCP connection is encrypted when the server offers it, its certificate not
//! checked; `sslmode=verify-full&sslrootcert=/path/ca.pem` (or
//! [`Options::verify_server`]) checks it. Unix sockets are never encrypted.
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

mod cache;
pub mod cluster;
mod schema;
mod tls;
mod watch;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chum_object::{Cid, Limits};
use chum_store::index::{self, IndexEntries, Verified};
use chum_store::{Error, JournalPage, Lookup, LookupAsk, Query, Result, Scope, Store, SyncDigest};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;

pub use crate::schema::SCHEMA_VERSION;

/// The schema a store lives in when its URL names none.
pub const DEFAULT_SCHEMA: &str = "chum";

/// Connections a store's pools hold at most together, unless told otherwise: half for
/// lookups, half for writes and other statements (with its watcher's, a store opens up to
/// 17).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Objects and bytes one grouped commit takes at most (a single larger write goes alone).
const GROUP_OBJECTS: usize = 8_192;
const GROUP_BYTES: usize = 32 << 20;

/// Takes a queued write out of [`Shared::queue`] when its caller stops waiting before a group
/// took it.
struct Queued<'a> {
    store: &'a PostgresStore,
    id: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.store.queue().retain(|job| job.id != self.id);
    }
}

/// Bytes of objects a store keeps in memory by default (see [`Options::object_cache`]).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// The most a grouped commit waits after the last one by default (see
/// [`Options::commit_gap`]).
pub const DEFAULT_COMMIT_GAP: Duration = Duration::from_millis(15);

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
    /// Connections for reads that an index answers whatever the tables hold (see
    /// [`LOOKUP_SETTINGS`]).
    lookups: Pool,
    pub(crate) config: tokio_postgres::Config,
    /// Makes the connections' TLS (see the `tls` module).
    pub(crate) tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub(crate) schema: String,
    /// The `NOTIFY` channel of this schema's writes.
    pub(crate) channel: String,
    /// Journal positions this process wrote (first → last), kept while a watcher runs so it
    /// can tell them from other processes' writes.
    pub(crate) own: Mutex<OwnWrites>,
    /// Objects this process read or wrote lately.
    pub(crate) cache: cache::ObjectCache,
    /// Writes waiting to be committed (see [`PostgresStore::write_batch`]).
    queue: Mutex<Vec<Job>>,
    /// The number of the next job.
    next_job: std::sync::atomic::AtomicU64,
    /// Held while a group of writes commits.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// See [`Options::commit_gap`].
    commit_gap: Duration,
    /// The latest group of writes to commit.
    last_commit: Mutex<Option<LastCommit>>,
}

/// A group of writes that committed: when, how long it took, and whether writers were
/// concurrent (the group took several writes, or others were waiting when it ended).
#[derive(Debug, Clone, Copy)]
struct LastCommit {
    ended: tokio::time::Instant,
    took: Duration,
    concurrent: bool,
}

impl LastCommit {
    /// Until when the next group waits for more writes to join it (see
    /// [`Options::commit_gap`]): as long as this commit took, at most `gap`, but only after
    /// a commit of concurrent writers. A writer alone, putting one batch after the other,
    /// commits each at once.
    fn wait_until(&self, gap: Duration) -> Option<tokio::time::Instant> {
        self.concurrent.then(|| self.ended + self.took.min(gap))
    }
}

/// One call's write, waiting in [`Shared::queue`].
struct Job {
    id: u64,
    objects: Vec<(Cid, Vec<u8>)>,
    entries: Vec<IndexEntries>,
    scope: Scope,
    /// Instance-local values written in the same transaction.
    local: Vec<(Vec<u8>, Vec<u8>)>,
    done: tokio::sync::oneshot::Sender<Result<Vec<bool>>>,
}

/// Journal position ranges written through this process's handles.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    /// How many watchers run (positions are only recorded while one does).
    pub(crate) watchers: usize,
    pub(crate) ranges: BTreeMap<u64, u64>,
    /// Ranges a write of this process is committing right now: its watchers read no further
    /// until the write is done (its notification can arrive before it knows it succeeded).
    pub(crate) pending: BTreeMap<u64, u64>,
}

/// A range in [`OwnWrites::pending`], taken out when dropped (whatever became of the write).
struct PendingOwn<'a> {
    shared: &'a Shared,
    first: u64,
}

impl Drop for PendingOwn<'_> {
    fn drop(&mut self) {
        self.shared
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pending
            .remove(&self.first);
    }
}

/// How to open a [`PostgresStore`]: the database, the schema, the pool.
#[derive(Debug, Clone)]
pub struct Options {
    config: tokio_postgres::Config,
    schema: String,
    pool_size: usize,
    cache_bytes: usize,
    commit_gap: Duration,
    /// How an encrypted connection checks the server (see the `tls` module).
    check: tls::Check,
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
    /// plus chum's own parameters `schema` (default [`DEFAULT_SCHEMA`]; lowercase letters,
    /// digits and `_`) and `commit_gap_ms` (see [`Options::commit_gap`]).
    ///
    /// TLS as libpq: `sslmode` is `disable`, `prefer` (the default: encrypted when the server
    /// offers it, the certificate unchecked), `require` (the same, or no connection),
    /// `verify-ca` (the certificate must chain to a root) or `verify-full` (and name the
    /// host); `sslrootcert` is a PEM file of roots (with `require`: checked as `verify-ca`)
    /// or `system` (Mozilla's roots; `verify-full`). Client certificates (`sslcert`,
    /// `sslkey`) and revocation lists (`sslcrl`) are refused as not supported. Over a unix
    /// socket there is no TLS, whatever `sslmode` says (as libpq).
    pub fn from_url(url: &str) -> Result<Options> {
        let invalid = |why: String| Error::Backend(format!("not a PostgreSQL URL: {why}"));
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "it must start with postgres:// or postgresql://".into(),
            ));
        }
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut commit_gap = None;
        let mut sslmode = None;
        let mut rootcert = None;
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", value)) => schema = value.to_owned(),
                Some(("commit_gap_ms", value)) => {
                    commit_gap =
                        Some(Duration::from_millis(value.parse().map_err(|_| {
                            invalid(format!("commit_gap_ms={value}: not a number"))
                        })?));
                }
                Some(("sslmode", value)) => sslmode = Some(value.to_owned()),
                Some(("sslrootcert", value)) => {
                    rootcert = Some(
                        tls::percent_decode(value)
                            .map_err(|why| invalid(format!("sslrootcert={why}")))?,
                    );
                }
                Some((
                    key @ ("sslcert" | "sslkey" | "sslpassword" | "sslcertmode" | "sslcrl"
                    | "sslcrldir"),
                    _,
                )) => {
                    return Err(invalid(format!(
                        "{key}: client certificates and revocation lists are not supported \
                         (sslmode and sslrootcert are)"
                    )));
                }
                _ => kept.push(pair.to_owned()),
            }
        }
        let system = rootcert.as_deref() == Some("system");
        let roots = match rootcert.as_deref() {
            None => None,
            Some("system") => Some(tls::Check::mozilla_roots()),
            Some(path) => {
                let what = format!("sslrootcert={path}");
                let pem = std::fs::read(path)
                    .map_err(|error| invalid(format!("{what}: cannot read it: {error}")))?;
                Some(tls::Check::roots_from_pem(&pem, &what)?)
            }
        };
        let mode = sslmode
            .as_deref()
            .unwrap_or(if system { "verify-full" } else { "prefer" });
        if system && mode != "verify-full" {
            return Err(invalid(format!(
                "sslrootcert=system needs sslmode=verify-full, not {mode}"
            )));
        }
        let checked = |hostname| {
            tls::Check::roots(
                roots.clone().unwrap_or_else(tls::Check::mozilla_roots),
                hostname,
            )
        };
        let (driver_mode, check) = match mode {
            "disable" | "prefer" => (mode, tls::Check::None),
            "require" if roots.is_some() => ("require", checked(false)),
            "require" => ("require", tls::Check::None),
            "verify-ca" => ("require", checked(false)),
            "verify-full" => ("require", checked(true)),
            other => {
                return Err(invalid(format!(
                    "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        };
        kept.push(format!("sslmode={driver_mode}"));
        // As libpq: a `host` in the query replaces the URL's own hosts (the driver would try
        // both, the URL's first: `localhost` over TCP before the socket the query names).
        let base = if kept.iter().any(|pair| pair.starts_with("host=")) {
            let (base, ports) = without_hosts(base);
            if !ports.is_empty() && !kept.iter().any(|pair| pair.starts_with("port=")) {
                kept.push(format!("port={}", ports.join(",")));
            }
            base
        } else {
            base.to_owned()
        };
        let url = format!("{base}?{}", kept.join("&"));
        let config: tokio_postgres::Config =
            url.parse().map_err(|error| invalid(format!("{error}")))?;
        let mut options = Options::new(config, &schema)?;
        options.check = check;
        Ok(match commit_gap {
            Some(gap) => options.commit_gap(gap),
            None => options,
        })
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
        plain_over_sockets(&mut config);
        // Unqualified names are the store's tables.
        let options = match config.get_options() {
            Some(existing) => {
                format!("{existing} -c search_path={schema} -c plan_cache_mode=force_custom_plan")
            }
            None => format!("-c search_path={schema} -c plan_cache_mode=force_custom_plan"),
        };
        config.options(options);
        Ok(Options {
            config,
            schema: schema.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            cache_bytes: DEFAULT_CACHE_BYTES,
            commit_gap: DEFAULT_COMMIT_GAP,
            check: tls::Check::None,
        })
    }

    /// Connects over TLS only, and checks the server's certificate: it must chain to one of
    /// the roots in `roots_pem` (PEM certificates; `None`: Mozilla's roots) and, with
    /// `hostname`, name the host connected to (`sslmode=verify-full`; without:
    /// `verify-ca`). A certificate of `roots_pem` that the server presents as its own is
    /// taken as pinned (within its dates). Without this, a connection is encrypted as the configuration's
    /// `ssl_mode` says and the certificate is not checked.
    pub fn verify_server(mut self, roots_pem: Option<&[u8]>, hostname: bool) -> Result<Options> {
        let roots = match roots_pem {
            Some(pem) => tls::Check::roots_from_pem(pem, "the root certificates")?,
            None => tls::Check::mozilla_roots(),
        };
        self.config
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        plain_over_sockets(&mut self.config);
        self.check = tls::Check::roots(roots, hostname);
        Ok(self)
    }

    /// Holds at most `size` connections (at least 2; default [`DEFAULT_POOL_SIZE`]): half for
    /// lookups, the rest for writes and other statements. The server must allow every
    /// process over the store `size + 1` connections (the one more: its watcher's).
    pub fn pool_size(mut self, size: usize) -> Options {
        self.pool_size = size.max(2);
        self
    }

    /// Bytes of objects kept in memory once read or written (default 32 MiB; 0: none). An
    /// object's bytes never change, so a hub answering many peers with the same new objects
    /// reads each from the database once. A delete through another process reaches this
    /// cache through the store's watcher ([`Store::watch_others`], which a serving node
    /// runs); without one, a deleted object may be read from here until it is evicted.
    pub fn object_cache(mut self, bytes: usize) -> Options {
        self.cache_bytes = bytes;
        self
    }

    /// The most a grouped commit waits after the previous one (default
    /// [`DEFAULT_COMMIT_GAP`], 15 ms; zero: no wait). Right after a commit of concurrent
    /// writers (it took several writes, or more were queued when it ended), the next group
    /// waits as long as that commit took, within this bound, and takes along the writes that
    /// arrive meanwhile; a write arriving later commits at once, and so does every batch of a
    /// writer alone, putting one after another. A database that commits fast (a quiet one)
    /// costs a write next to nothing more; one that is slow to commit (busy) gets fewer,
    /// larger transactions and does less per object. In the load test at
    /// 1,000 objects/s, PostgreSQL's CPU per message fell by about a sixth and
    /// device-to-device p99 by 6–22 %; at 200/s, latency is unchanged (`docs/load.md`).
    pub fn commit_gap(mut self, gap: Duration) -> Options {
        self.commit_gap = gap;
        self
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Whether the schema holds a chum store already (nothing is created).
    pub async fn exists(&self) -> Result<bool> {
        let tls = self.check.connector()?;
        let (client, connection) = self
            .config
            .connect(tls.make.clone())
            .await
            .map_err(|error| tls.explain(pg(error)))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let found = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
                 WHERE schemaname = $1 AND tablename = 'chum_migrations')",
                &[&self.schema],
            )
            .await
            .map_err(pg)
            .map(|row| row.get::<_, bool>(0));
        drop(client);
        let _ = driver.await;
        found
    }

    /// Connects, creates or upgrades the schema, and opens the store.
    pub async fn open(self) -> Result<PostgresStore> {
        let tls = self.check.connector()?;
        let manager = Manager::from_config(
            self.config.clone(),
            tls.make.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size - self.pool_size / 2)
            .build()
            .map_err(|error| Error::Backend(format!("PostgreSQL connection pool: {error}")))?;
        let lookups = Pool::builder(Manager::from_config(
            lookup_config(&self.config),
            tls.make.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        .max_size(self.pool_size / 2)
        .build()
        .map_err(|error| Error::Backend(format!("PostgreSQL connection pool: {error}")))?;
        // Migrations run on a connection of their own (their `SET LOCAL` ends with them).
        let (mut client, connection) = self
            .config
            .connect(tls.make.clone())
            .await
            .map_err(|error| tls.explain(pg(error)))?;
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
                lookups,
                config: self.config,
                tls: tls.make,
                schema: self.schema,
                channel,
                own: Mutex::new(OwnWrites::default()),
                cache: cache::ObjectCache::new(self.cache_bytes),
                queue: Mutex::new(Vec::new()),
                next_job: std::sync::atomic::AtomicU64::new(0),
                writer: Arc::new(tokio::sync::Mutex::new(())),
                commit_gap: self.commit_gap,
                last_commit: Mutex::new(None),
            }),
            limits: Limits::default(),
        })
    }
}

/// A URL without its query, with its hosts taken out, and the ports they named.
fn without_hosts(base: &str) -> (String, Vec<String>) {
    let Some((scheme, rest)) = base.split_once("://") else {
        return (base.to_owned(), Vec::new());
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (user, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let ports = hosts
        .split(',')
        .filter_map(|host| {
            // `[::1]:5432`, `db:5432`; a bare IPv6 address is bracketed.
            let after = host.rfind(']').map_or(host, |end| &host[end..]);
            after
                .rsplit_once(':')
                .map(|(_, port)| port.to_owned())
                .filter(|port| !port.is_empty())
        })
        .collect();
    (format!("{scheme}://{user}{path}"), ports)
}

/// No TLS where every host is a unix socket (as libpq ignores `sslmode` there; the server
/// would decline it, and `require` would fail).
fn plain_over_sockets(config: &mut tokio_postgres::Config) {
    let hosts = config.get_hosts();
    if !hosts.is_empty()
        && hosts
            .iter()
            .all(|host| matches!(host, tokio_postgres::config::Host::Unix(_)))
    {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
}

/// The configuration of the connections for lookups: `config`'s, with [`LOOKUP_SETTINGS`].
fn lookup_config(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut lookup = config.clone();
    lookup.options(format!(
        "{} {LOOKUP_SETTINGS}",
        config.get_options().unwrap_or_default()
    ));
    lookup
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

/// Journal positions the digest may lag behind the head before a writer folds them in.
const COMPACT_EVERY: i64 = 1_024;

/// The columns of a batch's new objects and their multi-valued index rows (each row names
/// its object).
#[derive(Default)]
struct Rows<'a> {
    cids: Vec<&'a [u8]>,
    bytes: Vec<&'a [u8]>,
    positions: Vec<Option<i64>>,
    type_names: Vec<Option<&'a [u8]>>,
    authors: Vec<Option<&'a [u8]>>,
    clocks: Vec<Option<Vec<u8>>>,
    of_ids: Vec<Option<&'a [u8]>>,
    link_targets: Vec<&'a [u8]>,
    link_cids: Vec<&'a [u8]>,
    edge_parents: Vec<&'a [u8]>,
    edge_children: Vec<&'a [u8]>,
}

impl<'a> Rows<'a> {
    fn add(
        &mut self,
        cid: &'a Cid,
        bytes: &'a [u8],
        position: Option<i64>,
        entries: &'a IndexEntries,
    ) {
        let cid_bytes = cid.as_bytes();
        self.cids.push(cid_bytes);
        self.bytes.push(bytes);
        self.positions.push(position);
        self.type_names
            .push(entries.type_name.as_ref().map(|name| name.as_bytes()));
        self.authors
            .push(entries.author.as_ref().map(|(author, _)| author.as_slice()));
        self.clocks.push(
            entries
                .author
                .as_ref()
                .map(|(_, clock)| clock_bytes(*clock).to_vec()),
        );
        self.of_ids.push(
            entries
                .version
                .as_ref()
                .map(|version| version.of.as_bytes()),
        );
        for target in &entries.links {
            self.link_targets.push(target.as_bytes());
            self.link_cids.push(cid_bytes);
        }
        if let Some(version) = &entries.version {
            for parent in &version.parents {
                self.edge_parents.push(parent.as_bytes());
                self.edge_children.push(cid_bytes);
            }
        }
    }
}

/// The settings of the connections that run single statements answered by an index: the
/// point and range reads of objects, links, local keys and the journal, and
/// [`Store::lookup_many`]. Each such statement is planned once per connection and the plan
/// reused (planning a [`LOOKUP`] took twice as long as running it). A plan made without
/// knowing the values, or while the tables were small, could read a table whole; here
/// every index is preferred to any scan of a whole table, so the reused plan is the index
/// lookup it would be on large tables. What that adds to the estimated cost of a plan that
/// must scan a table (the one-row state table) would make the server compile the statement
/// to machine code on every run: never here. (The other connections plan every statement
/// for its values.)
const LOOKUP_SETTINGS: &str = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off \
    -c enable_bitmapscan=off -c enable_hashjoin=off -c enable_mergejoin=off -c jit=off";

/// Begins a write: its statements (plain inserts, and lookups by primary key) are planned
/// once per connection and the plans reused, under the settings of [`LOOKUP_SETTINGS`].
const BEGIN_WRITE: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; \
    SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
    SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off";

/// Takes the state row (every write does, first).
const LOCK_STATE: &str = "SELECT journal_head FROM chum_state FOR UPDATE";

/// Which of a batch's objects are stored, and which of those are instance-local.
const STORED: &str = "SELECT cid, position IS NULL FROM objects WHERE cid = ANY($1::bytea[])";

/// One write, run while the writer holds the state row: the new objects (each with its journal
/// position, or none when local) and their link and edge rows, the new journal head and
/// count, and a notification of the other processes (delivered on commit; `$13` NULL: none;
/// `$15` what it says, see [`watch::notice`]).
/// Plain inserts of unnested arrays: nothing here is planned from guessed table sizes.
const WRITE_BATCH: &str = "
WITH o AS (
    INSERT INTO objects (cid, bytes, position, type_name, author, clock, of_id)
    SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[],
        $6::bytea[], $7::bytea[])
),
l AS (
    INSERT INTO links (target, cid)
    SELECT * FROM unnest($8::bytea[], $9::bytea[])
    ON CONFLICT DO NOTHING
),
e AS (
    INSERT INTO edges (parent, child)
    SELECT * FROM unnest($10::bytea[], $11::bytea[])
    ON CONFLICT DO NOTHING
),
s AS (
    UPDATE chum_state SET journal_head = $12, object_count = object_count + $14
    RETURNING digest_position
)
SELECT digest_position, CASE WHEN $13::text IS NOT NULL THEN pg_notify($13, $15::text) END
FROM s
";

/// Sets instance-local values (one row per key).
const LOCAL_PUT_MANY: &str = "
INSERT INTO local_kv (key, value)
SELECT * FROM unnest($1::bytea[], $2::bytea[])
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
";

/// Numbers local objects stored again as shared.
const PROMOTE: &str = "
UPDATE objects SET position = u.position
FROM unnest($1::bytea[], $2::bigint[]) AS u(cid, position)
WHERE objects.cid = u.cid
";

/// Removes one object's link and edge rows, named from its bytes.
const DELETE_ROWS: &str = "
WITH l AS (
    DELETE FROM links WHERE target = ANY($2::bytea[]) AND cid = $1
)
DELETE FROM edges WHERE parent = ANY($3::bytea[]) AND child = $1
";

/// Removes every link and edge row of one object by searching the tables (the repair path for
/// an object whose stored bytes are damaged, so cannot name its rows).
const SCRUB_ROWS: &str = "
WITH l AS (DELETE FROM links WHERE cid = $1)
DELETE FROM edges WHERE child = $1
";

/// The current heads of an ID: its stored versions no stored version of it names as parent.
const HEADS: &str = "
SELECT v.cid FROM objects v
WHERE v.of_id = $1 AND NOT EXISTS (
    SELECT 1 FROM edges e
    JOIN objects c ON c.of_id = v.of_id AND c.cid = e.child
    WHERE e.parent = v.cid
)
ORDER BY v.cid
";

/// What [`Store::lookup_many`] reads, in one snapshot: per CID (in the order given) its bytes
/// when asked for (`$2`; NULL when not stored), the first `$5` objects linking to it, and the
/// first `$5` local keys in `[$3, $4)` (NULL when no range is given). Each part is an index
/// lookup per CID.
const LOOKUP: &str = "
SELECT c.i,
    CASE WHEN c.want THEN o.bytes END,
    ARRAY(SELECT l.cid FROM links l WHERE l.target = c.cid ORDER BY l.cid LIMIT $5),
    CASE WHEN c.low IS NOT NULL THEN ARRAY(
        SELECT k.key FROM local_kv k WHERE k.key >= c.low AND k.key < c.high
        ORDER BY k.key LIMIT $5
    ) END
FROM unnest($1::bytea[], $2::bool[], $3::bytea[], $4::bytea[]) WITH ORDINALITY
    AS c(cid, want, low, high, i)
LEFT JOIN objects o ON o.cid = c.cid
ORDER BY c.i
";

/// One object's bytes.
const GET_ONE: &str = "SELECT bytes FROM objects WHERE cid = $1";

/// Several objects' bytes.
const GET_MANY: &str = "SELECT cid, bytes FROM objects WHERE cid = ANY($1::bytea[])";

/// A page of what links to `$1`, after `$2`.
const LINKS_PAGE: &str =
    "SELECT cid FROM links WHERE target = $1 AND cid > $2 ORDER BY cid LIMIT $3";

/// Whether `$1` is stored.
const HAS: &str = "SELECT 1 FROM objects WHERE cid = $1";

/// A page of objects of type `$1`, after `$2`.
const BY_TYPE: &str =
    "SELECT cid FROM objects WHERE type_name = $1 AND cid > $2 ORDER BY cid LIMIT $3";

/// The versions of ID `$1`.
const VERSIONS: &str = "SELECT cid FROM objects WHERE of_id = $1 ORDER BY cid";

/// A page of what author `$1` wrote, after clock `$2` and CID `$3`.
const BY_AUTHOR: &str = "SELECT cid FROM objects WHERE author = $1 AND (clock, cid) > ($2, $3) \
    ORDER BY clock, cid LIMIT $4";

/// Which of `$1` are stored and shared.
const SHARED_AMONG: &str =
    "SELECT cid FROM objects WHERE cid = ANY($1::bytea[]) AND position IS NOT NULL";

/// One local value.
const LOCAL_GET: &str = "SELECT value FROM local_kv WHERE key = $1";

/// The local keys from `$1` on (a prefix of 0xff bytes).
const LOCAL_FROM: &str = "SELECT key FROM local_kv WHERE key >= $1 ORDER BY key";

/// The local keys in `[$1, $2)`.
const LOCAL_RANGE: &str = "SELECT key FROM local_kv WHERE key >= $1 AND key < $2 ORDER BY key";

/// The journal's id and head and the positions in `($1, $2]`, in one snapshot.
const JOURNAL_PAGE: &str = "
SELECT s.journal_id, s.journal_head, o.position, o.cid
FROM chum_state s
LEFT JOIN objects o ON o.position > $1 AND o.position <= $2
ORDER BY o.position
";

/// The stored digest and the shared objects numbered after it, in one snapshot.
const DIGEST: &str = "
SELECT s.digest, o.cid
FROM chum_state s
LEFT JOIN objects o ON o.position > s.digest_position
";

type Client = deadpool_postgres::Object;
type Txn<'a> = deadpool_postgres::Transaction<'a>;

/// The digest of the shared set as of `head`, read under the state row's lock: the stored one
/// and the objects numbered since it.
async fn fold_digest(
    txn: &Txn<'_>,
    digest: &[u8],
    digest_position: i64,
    head: i64,
) -> std::result::Result<SyncDigest, WriteError> {
    let mut digest = SyncDigest::from_bytes(digest)?;
    let tail = txn
        .query(
            "SELECT cid FROM objects WHERE position > $1 AND position <= $2",
            &[&digest_position, &head],
        )
        .await?;
    for row in &tail {
        digest.insert(&stored_cid(row.get::<_, &[u8]>(0))?);
    }
    Ok(digest)
}

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

    /// A connection for a single statement that indexes answer (see [`LOOKUP_SETTINGS`]).
    async fn lookup_client(&self) -> Result<Client> {
        self.shared.lookups.get().await.map_err(pool_error)
    }

    /// Writes a verified batch in one transaction.
    ///
    /// Writes from this process's callers are grouped: every write takes the state row, so
    /// they commit one after another, each waiting for its own flush to disk. Instead, a
    /// write that finds others waiting commits them all in its transaction (each batch still
    /// whole in one transaction), so many sessions' writes share one flush.
    async fn write_batch(
        &self,
        objects: &[(Cid, Vec<u8>)],
        entries: &[IndexEntries],
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        let (done, mut answer) = tokio::sync::oneshot::channel();
        let id = self
            .shared
            .next_job
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.queue().push(Job {
            id,
            objects: objects.to_vec(),
            entries: entries.to_vec(),
            scope,
            local: local.to_vec(),
            done,
        });
        // A caller that stops waiting before its write was taken takes it back.
        let _queued = Queued { store: self, id };
        let lost = || {
            Err(Error::Backend(
                "the write ended without an answer (its task stopped)".into(),
            ))
        };
        loop {
            let gate = Arc::clone(&self.shared.writer).lock_owned().await;
            match answer.try_recv() {
                // A group before took this write along.
                Ok(result) => return result,
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return lost(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            // Right after a commit that others' writes waited for, wait as long as it took
            // (at most the gap), gathering what arrives meanwhile: a database that takes long
            // to commit gets fewer, larger transactions; a quiet one waits next to nothing.
            let last = *self
                .shared
                .last_commit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(until) = last.and_then(|last| last.wait_until(self.shared.commit_gap)) {
                tokio::time::sleep_until(until).await;
            }
            let jobs = self.take_group();
            let mine = jobs.iter().any(|job| job.id == id);
            if jobs.is_empty() {
                return lost();
            }
            // The group commits in a task of its own: a caller that stops waiting does not
            // stop the others' writes (nor its own, once taken).
            let store = self.clone();
            let group = tokio::spawn(async move {
                let _gate = gate;
                store.write_group(jobs).await;
            });
            if mine {
                return answer.await.unwrap_or_else(|_| lost());
            }
            // Writes queued before this one filled the group: the next one takes it.
            let _ = group.await;
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The oldest queued writes, up to [`GROUP_OBJECTS`] objects and [`GROUP_BYTES`] bytes
    /// (at least one write).
    fn take_group(&self) -> Vec<Job> {
        let mut queue = self.queue();
        let (mut objects, mut bytes, mut take) = (0, 0, 0);
        for job in queue.iter() {
            let size: usize = job.objects.iter().map(|(_, b)| b.len()).sum();
            if take > 0
                && (objects + job.objects.len() > GROUP_OBJECTS || bytes + size > GROUP_BYTES)
            {
                break;
            }
            objects += job.objects.len();
            bytes += size;
            take += 1;
        }
        queue.drain(..take).collect()
    }

    /// Commits `jobs`: those of each scope together, in one transaction. Records the commit
    /// ([`LastCommit`]) before answering, so a writer's next batch is not counted as waiting.
    async fn write_group(&self, jobs: Vec<Job>) {
        let started = tokio::time::Instant::now();
        let several = jobs.len() > 1;
        let (shared, local): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|job| job.scope == Scope::Shared);
        let mut answers = Vec::new();
        for (jobs, scope) in [(shared, Scope::Shared), (local, Scope::Local)] {
            if jobs.is_empty() {
                continue;
            }
            let mut objects = Vec::new();
            let mut entries = Vec::new();
            let mut local = Vec::new();
            let mut ends = Vec::with_capacity(jobs.len());
            let mut dones = Vec::with_capacity(jobs.len());
            for job in jobs {
                objects.extend(job.objects);
                entries.extend(job.entries);
                local.extend(job.local);
                ends.push(objects.len());
                dones.push(job.done);
            }
            let result = self.write_grouped(&objects, &entries, scope, &local).await;
            let mut start = 0;
            for (end, done) in ends.into_iter().zip(dones) {
                let answer = match &result {
                    Ok(changed) => Ok(changed[start..end].to_vec()),
                    Err(error) => Err(error.clone()),
                };
                answers.push((done, answer));
                start = end;
            }
        }
        let ended = tokio::time::Instant::now();
        let concurrent = several || !self.queue().is_empty();
        *self
            .shared
            .last_commit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(LastCommit {
            ended,
            took: ended - started,
            concurrent,
        });
        for (done, answer) in answers {
            let _ = done.send(answer);
        }
    }

    /// Writes a verified batch in one transaction (retried when the server breaks a deadlock
    /// or a serialization conflict; nothing of a failed attempt stays).
    async fn write_grouped(
        &self,
        objects: &[(Cid, Vec<u8>)],
        entries: &[IndexEntries],
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        // The last value of a repeated key wins (one row per key in one statement).
        let local: BTreeMap<&[u8], &[u8]> = local
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
            .collect();
        let local_keys: Vec<&[u8]> = local.keys().copied().collect();
        let local_values: Vec<&[u8]> = local.values().copied().collect();
        let local = (&local_keys[..], &local_values[..]);
        // CID order, duplicates removed: concurrent writers lock rows in one order.
        let mut order: Vec<usize> = (0..objects.len()).collect();
        order.sort_by(|&a, &b| objects[a].0.cmp(&objects[b].0));
        order.dedup_by(|a, b| objects[*a].0 == objects[*b].0);
        // A delete that commits after this write must not find its object back in the cache.
        let generation = self.shared.cache.generation();
        let mut attempt = 0;
        loop {
            match self
                .try_write_batch(objects, entries, &order, scope, local)
                .await
            {
                Err(WriteError::Retry(error)) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "a write conflicted; running it again");
                    tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
                }
                Err(WriteError::Retry(error)) => return Err(pg(error)),
                Err(WriteError::Store(error)) => return Err(error),
                Ok(stored) => {
                    for &i in &order {
                        self.shared
                            .cache
                            .insert(&objects[i].0, &objects[i].1, generation);
                    }
                    return Ok(stored);
                }
            }
        }
    }

    async fn try_write_batch(
        &self,
        objects: &[(Cid, Vec<u8>)],
        entries: &[IndexEntries],
        order: &[usize],
        scope: Scope,
        local: (&[&[u8]], &[&[u8]]),
    ) -> std::result::Result<Vec<bool>, WriteError> {
        let client = self.client().await?;
        let lock = client.prepare_cached(LOCK_STATE).await?;
        let find = client.prepare_cached(STORED).await?;
        let write = client.prepare_cached(WRITE_BATCH).await?;
        let keys: Vec<&[u8]> = order.iter().map(|&i| objects[i].0.as_bytes()).collect();
        let key_param: [&(dyn ToSql + Sync); 1] = [&keys];
        // One round trip: begin, take the state row, look up the batch. Every writer takes
        // the state row first, so writes commit one at a time: what this one numbers follows
        // everything committed before it, and what it finds stored cannot change before it
        // commits. Its statements are planned once per connection, as the lookups are.
        let mut open = OpenTransaction::new(client);
        let (began, state, found) = tokio::join!(
            open.client().batch_execute(BEGIN_WRITE),
            open.client().query_one(&lock, &[]),
            open.client().query(&find, &key_param)
        );
        began?;
        let head: i64 = state?.get(0);
        let stored: std::collections::HashMap<Vec<u8>, bool> = found?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut rows = Rows::default();
        let mut promoted: Vec<&[u8]> = Vec::new();
        let mut promoted_at: Vec<i64> = Vec::new();
        let mut changed = std::collections::HashSet::new();
        let mut next = head;
        // The journal entries this write adds, in order (for the other processes' watchers).
        let mut numbered: Vec<(&Cid, &[u8])> = Vec::new();
        for &i in order {
            let (cid, bytes) = &objects[i];
            match (stored.get(cid.as_bytes()), scope) {
                (None, Scope::Shared) => {
                    next += 1;
                    rows.add(cid, bytes, Some(next), &entries[i]);
                    numbered.push((cid, bytes));
                }
                (None, Scope::Local) => rows.add(cid, bytes, None, &entries[i]),
                // Shared wins: a local object stored as shared joins the shared set.
                (Some(true), Scope::Shared) => {
                    next += 1;
                    promoted.push(cid.as_bytes());
                    promoted_at.push(next);
                    numbered.push((cid, bytes));
                }
                (Some(_), _) => continue,
            }
            changed.insert(cid);
        }
        let write_local = open.client().prepare_cached(LOCAL_PUT_MANY).await?;
        if changed.is_empty() {
            // No object is new: only the local values, if any, are worth a commit.
            if local.0.is_empty() {
                open.finish("ROLLBACK").await?;
            } else {
                open.client()
                    .execute(&write_local, &[&local.0, &local.1])
                    .await?;
                open.finish("COMMIT").await?;
            }
            return Ok(vec![false; objects.len()]);
        }
        if !promoted.is_empty() {
            let statement = open.client().prepare_cached(PROMOTE).await?;
            open.client()
                .execute(&statement, &[&promoted, &promoted_at])
                .await?;
        }
        let inserted = rows.cids.len() as i64;
        let channel = (next > head).then_some(self.shared.channel.as_str());
        let notice = watch::notice(
            u64::try_from(head + 1).unwrap_or(0),
            u64::try_from(next).unwrap_or(0),
            &numbered,
        );
        // Watchers of this process hold back at these positions until the write is recorded
        // as this process's (or failed).
        let _pending = (next > head)
            .then(|| {
                self.pending_own(
                    u64::try_from(head + 1).unwrap_or(0),
                    u64::try_from(next).unwrap_or(0),
                )
            })
            .flatten();
        let params: [&(dyn ToSql + Sync); 15] = [
            &rows.cids,
            &rows.bytes,
            &rows.positions,
            &rows.type_names,
            &rows.authors,
            &rows.clocks,
            &rows.of_ids,
            &rows.link_targets,
            &rows.link_cids,
            &rows.edge_parents,
            &rows.edge_children,
            &next,
            &channel,
            &inserted,
            &notice,
        ];
        // One round trip: the write and the commit (after a failed write, the server turns
        // the COMMIT into a rollback).
        let local_params: [&(dyn ToSql + Sync); 2] = [&local.0, &local.1];
        let (written, noted, committed) = tokio::join!(
            open.client().query_one(&write, &params),
            async {
                if local.0.is_empty() {
                    Ok(0)
                } else {
                    open.client().execute(&write_local, &local_params).await
                }
            },
            open.client().batch_execute("COMMIT")
        );
        open.ended();
        let digest_position: i64 = written?.get(0);
        noted?;
        committed?;
        if next > head {
            self.record_own(
                u64::try_from(head + 1).unwrap_or(0),
                u64::try_from(next).unwrap_or(0),
            );
        }
        if next - digest_position >= COMPACT_EVERY
            && let Err(error) = self.compact().await
        {
            // The write is committed; the digest stays correct (stored part + tail), only
            // its tail grows until a later write folds it.
            tracing::warn!(%error, "folding the journal tail into the sync digest failed");
        }
        // Per object as given: the first of duplicates reports the change.
        Ok(objects.iter().map(|(cid, _)| changed.remove(cid)).collect())
    }

    /// Folds the objects numbered since the stored digest into it.
    async fn compact(&self) -> Result<()> {
        let result: std::result::Result<(), WriteError> = async {
            let mut client = self.client().await?;
            let txn = client.transaction().await?;
            let state = txn
                .query_one(
                    "SELECT journal_head, digest, digest_position FROM chum_state FOR UPDATE",
                    &[],
                )
                .await?;
            let (head, position): (i64, i64) = (state.get(0), state.get(2));
            if head - position < COMPACT_EVERY {
                // Another writer folded it meanwhile.
                txn.rollback().await?;
                return Ok(());
            }
            let digest = fold_digest(&txn, state.get(1), position, head).await?;
            txn.execute(
                "UPDATE chum_state SET digest = $1, digest_position = $2",
                &[&digest.to_bytes(), &head],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(WriteError::Retry(error)) => Err(pg(error)),
            Err(WriteError::Store(error)) => Err(error),
        }
    }

    /// Notes journal positions this process wrote (for its watchers).
    /// Notes journal positions a write of this process is committing (for its watchers).
    fn pending_own(&self, first: u64, last: u64) -> Option<PendingOwn<'_>> {
        let mut own = self
            .shared
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if own.watchers == 0 {
            return None;
        }
        own.pending.insert(first, last);
        Some(PendingOwn {
            shared: &self.shared,
            first,
        })
    }

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
            if shared {
                " AND position IS NOT NULL"
            } else {
                ""
            },
            bounds.len() + 1
        );
        let limit = sql_limit(limit);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            bounds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        params.push(&limit);
        self.cids_of(&sql, &params).await
    }

    /// Rows of a one-column CID query.
    async fn cids_of(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Cid>> {
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        let rows = client.query(&statement, params).await.map_err(pg)?;
        rows.iter()
            .map(|row| stored_cid(row.get::<_, &[u8]>(0)))
            .collect()
    }

    async fn try_delete(&self, cid: &Cid) -> std::result::Result<bool, WriteError> {
        let mut client = self.client().await?;
        let txn = client.transaction().await?;
        let state = txn
            .query_one(
                "SELECT journal_head, digest, digest_position FROM chum_state FOR UPDATE",
                &[],
            )
            .await?;
        let (head, digest_position): (i64, i64) = (state.get(0), state.get(2));
        let Some(row) = txn
            .query_opt(
                "DELETE FROM objects WHERE cid = $1 RETURNING bytes, position",
                &[&cid.as_bytes()],
            )
            .await?
        else {
            txn.rollback().await?;
            return Ok(false);
        };
        let bytes: Vec<u8> = row.get(0);
        let position: Option<i64> = row.get(1);
        let key = cid.as_bytes();
        // The link and edge rows derive from the bytes; bytes that no longer verify cannot be
        // trusted to name them, so the tables are searched for the CID instead.
        match index::verify_and_index(cid, &bytes, &index::widest_limits()) {
            Ok(entries) => {
                let links: Vec<&[u8]> = entries.links.iter().map(Cid::as_bytes).collect();
                let parents: Vec<&[u8]> = entries
                    .version
                    .iter()
                    .flat_map(|v| v.parents.iter().map(Cid::as_bytes))
                    .collect();
                let statement = txn.prepare_cached(DELETE_ROWS).await?;
                txn.execute(&statement, &[&key, &links, &parents]).await?;
            }
            Err(_) => {
                txn.execute(SCRUB_ROWS, &[&key]).await?;
            }
        }
        // The digest folded up to the head (the deleted object is no longer in the tail it
        // reads), then without the object if the stored part held it.
        let mut digest = fold_digest(&txn, state.get(1), digest_position, head).await?;
        if position.is_some_and(|position| position <= digest_position) {
            digest.remove(cid);
        }
        txn.execute(
            "UPDATE chum_state SET object_count = object_count - 1, digest = $1, \
             digest_position = $2",
            &[&digest.to_bytes(), &head],
        )
        .await?;
        // Other processes' caches drop the object when their watchers hear this.
        let notice = format!("-{}", hex(cid.as_bytes()));
        txn.execute("SELECT pg_notify($1, $2)", &[&self.shared.channel, &notice])
            .await?;
        txn.commit().await?;
        Ok(true)
    }
}

/// A pooled connection inside a transaction begun by hand (so that `BEGIN` travels with the
/// first statements): dropped before [`OpenTransaction::ended`] — on an error, or when the
/// caller stops waiting — it rolls the transaction back before the connection is reused.
struct OpenTransaction {
    client: Option<Client>,
}

impl OpenTransaction {
    fn new(client: Client) -> OpenTransaction {
        OpenTransaction {
            client: Some(client),
        }
    }

    #[allow(clippy::expect_used)]
    fn client(&self) -> &Client {
        // Present until `ended` or drop, which take `self`'s contents only at the end.
        self.client.as_ref().expect("a transaction's connection")
    }

    /// The transaction ended (committed or rolled back by the statements sent): the
    /// connection goes back to the pool as it is.
    fn ended(&mut self) {
        self.client = None;
    }

    /// Ends the transaction with `command` (`COMMIT` or `ROLLBACK`).
    async fn finish(mut self, command: &str) -> std::result::Result<(), tokio_postgres::Error> {
        let result = self.client().batch_execute(command).await;
        if result.is_ok() {
            self.ended();
        }
        result
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // The connection is still inside the transaction: roll it back before the pool
            // hands it out again (a broken connection is dropped by the pool instead).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = client.batch_execute("ROLLBACK").await;
                });
            } else {
                drop(deadpool_postgres::Object::take(client));
            }
        }
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

impl From<deadpool_postgres::PoolError> for WriteError {
    fn from(error: deadpool_postgres::PoolError) -> WriteError {
        WriteError::Store(pool_error(error))
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn never_blocks(&self) -> bool {
        true
    }

    async fn put_scoped(&self, objects: &[(Cid, Vec<u8>)], scope: Scope) -> Result<Vec<bool>> {
        // Verify everything before touching the database: a bad object refuses the batch.
        let entries = index::verify_and_index_all(objects, &self.limits)?;
        self.write_batch(objects, &entries, scope, &[]).await
    }

    async fn put_with_local(
        &self,
        objects: &[(Cid, Vec<u8>)],
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        let entries = index::verify_and_index_all(objects, &self.limits)?;
        self.write_batch(objects, &entries, scope, local).await
    }

    async fn put_verified(&self, batch: Verified, scope: Scope) -> Result<Vec<bool>> {
        self.put_verified_with_local(batch, scope, &[]).await
    }

    async fn put_verified_with_local(
        &self,
        batch: Verified,
        scope: Scope,
        local: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<bool>> {
        if *batch.limits() != self.limits {
            return self.put_with_local(batch.objects(), scope, local).await;
        }
        self.write_batch(batch.objects(), batch.entries(), scope, local)
            .await
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        if let Some(bytes) = self.shared.cache.get(cid) {
            return Ok(bytes);
        }
        let generation = self.shared.cache.generation();
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(GET_ONE).await.map_err(pg)?;
        match client
            .query_opt(&statement, &[&cid.as_bytes()])
            .await
            .map_err(pg)?
        {
            Some(row) => {
                let bytes = verified(cid, row.get(0))?;
                self.shared.cache.insert(cid, &bytes, generation);
                Ok(bytes)
            }
            None => Err(Error::NotFound(cid.clone())),
        }
    }

    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Result<Vec<u8>>>> {
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        let generation = self.shared.cache.generation();
        let cached: Vec<Option<Vec<u8>>> =
            cids.iter().map(|cid| self.shared.cache.get(cid)).collect();
        if cached.iter().all(Option::is_some) {
            return Ok(cached.into_iter().flatten().map(Ok).collect());
        }
        let keys: Vec<&[u8]> = cids
            .iter()
            .zip(&cached)
            .filter(|(_, cached)| cached.is_none())
            .map(|(cid, _)| cid.as_bytes())
            .collect();
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(GET_MANY).await.map_err(pg)?;
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
            .zip(cached)
            .enumerate()
            .map(|(i, (cid, cached))| {
                if let Some(bytes) = cached {
                    return Ok(bytes);
                }
                let bytes = if last.get(cid) == Some(&i) {
                    found.remove(cid.as_bytes())
                } else {
                    found.get(cid.as_bytes()).cloned()
                };
                match bytes {
                    Some(bytes) => {
                        let bytes = verified(cid, bytes)?;
                        self.shared.cache.insert(cid, &bytes, generation);
                        Ok(bytes)
                    }
                    None => Err(Error::NotFound(cid.clone())),
                }
            })
            .collect())
    }

    async fn lookup_many(&self, asks: &[LookupAsk<'_>]) -> Result<Vec<Lookup>> {
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        let generation = self.shared.cache.generation();
        let cached: Vec<Option<Vec<u8>>> = asks
            .iter()
            .map(|ask| ask.bytes.then(|| self.shared.cache.get(ask.cid)).flatten())
            .collect();
        let keys: Vec<&[u8]> = asks.iter().map(|ask| ask.cid.as_bytes()).collect();
        let want: Vec<bool> = asks
            .iter()
            .zip(&cached)
            .map(|(ask, cached)| ask.bytes && cached.is_none())
            .collect();
        // Each ask's range of local keys: from its prefix to the first key past every key the
        // prefix begins (none for a prefix of 0xff bytes alone: read apart below).
        let highs: Vec<Option<Vec<u8>>> = asks
            .iter()
            .map(|ask| prefix_end(ask.local_prefix?))
            .collect();
        let lows: Vec<Option<&[u8]>> = asks
            .iter()
            .zip(&highs)
            .map(|(ask, high)| high.as_ref().and(ask.local_prefix))
            .collect();
        let limit = sql_limit(chum_store::LOOKUP_PAGE);
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(LOOKUP).await.map_err(pg)?;
        let rows = client
            .query(&statement, &[&keys, &want, &lows, &highs, &limit])
            .await
            .map_err(pg)?;
        drop(client);
        if rows.len() != asks.len() {
            return Err(Error::Backend(format!(
                "a lookup of {} objects answered {} rows",
                asks.len(),
                rows.len()
            )));
        }
        let mut out = Vec::with_capacity(asks.len());
        for ((ask, cached), row) in asks.iter().zip(cached).zip(rows) {
            let cid = ask.cid;
            let bytes = match cached {
                _ if !ask.bytes => None,
                Some(bytes) => Some(Ok(bytes)),
                None => Some(match row.get::<_, Option<Vec<u8>>>(1) {
                    Some(bytes) => match verified(cid, bytes) {
                        Ok(bytes) => {
                            self.shared.cache.insert(cid, &bytes, generation);
                            Ok(bytes)
                        }
                        Err(error) => Err(error),
                    },
                    None => Err(Error::NotFound(cid.clone())),
                }),
            };
            let first = row
                .get::<_, Vec<&[u8]>>(2)
                .into_iter()
                .map(stored_cid)
                .collect::<Result<Vec<Cid>>>()?;
            // More than a page: the rest page by page.
            let linked_by = if first.len() < chum_store::LOOKUP_PAGE {
                first
            } else {
                chum_store::links_to_after(self, cid, first).await?
            };
            let local_keys = match (ask.local_prefix, row.get::<_, Option<Vec<Vec<u8>>>>(3)) {
                (None, _) => Vec::new(),
                // The range was read and within a page: the answer is whole.
                (Some(_), Some(keys)) if keys.len() < chum_store::LOOKUP_PAGE => keys,
                (Some(prefix), _) => self.local_keys(prefix).await?,
            };
            out.push(Lookup {
                bytes,
                linked_by,
                local_keys,
            });
        }
        Ok(out)
    }

    async fn has(&self, cid: &Cid) -> Result<bool> {
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(HAS).await.map_err(pg)?;
        Ok(client
            .query_opt(&statement, &[&cid.as_bytes()])
            .await
            .map_err(pg)?
            .is_some())
    }

    async fn delete(&self, cid: &Cid) -> Result<bool> {
        let mut attempt = 0;
        self.shared.cache.remove(cid);
        loop {
            match self.try_delete(cid).await {
                Err(WriteError::Retry(error)) if attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "a delete conflicted; running it again");
                    tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
                }
                Err(WriteError::Retry(error)) => return Err(pg(error)),
                Err(WriteError::Store(error)) => return Err(error),
                Ok(removed) => {
                    // Again: a read while the delete ran may have put it back.
                    self.shared.cache.remove(cid);
                    return Ok(removed);
                }
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
                self.cids_of(BY_TYPE, &[&type_name.as_bytes(), &after, &sql_limit(limit)])
                    .await
            }
            Query::Versions(of) => self.cids_of(VERSIONS, &[&of.as_bytes()]).await,
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
                self.cids_of(LINKS_PAGE, &[&target.as_bytes(), &after, &sql_limit(limit)])
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
                    BY_AUTHOR,
                    &[&author.as_slice(), &clock, &cid, &sql_limit(limit)],
                )
                .await
            }
        }
    }

    async fn local_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(LOCAL_GET).await.map_err(pg)?;
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

    async fn local_put_many(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // The last value of a repeated key wins (one row per key in one statement).
        let mut last: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
        for (key, value) in entries {
            last.insert(key, value);
        }
        let keys: Vec<&[u8]> = last.keys().copied().collect();
        let values: Vec<&[u8]> = last.values().copied().collect();
        let client = self.client().await?;
        let statement = client.prepare_cached(LOCAL_PUT_MANY).await.map_err(pg)?;
        client
            .execute(&statement, &[&keys, &values])
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
        let client = self.lookup_client().await?;
        // An index range: from the prefix to the first key past every key it begins.
        let rows = match prefix_end(prefix) {
            Some(end) => {
                let statement = client.prepare_cached(LOCAL_RANGE).await.map_err(pg)?;
                client.query(&statement, &[&prefix, &end]).await
            }
            None => {
                let statement = client.prepare_cached(LOCAL_FROM).await.map_err(pg)?;
                client.query(&statement, &[&prefix]).await
            }
        }
        .map_err(pg)?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    async fn sync_list(&self, range: (Bound<&Cid>, Bound<&Cid>), limit: usize) -> Result<Vec<Cid>> {
        self.list_cids(range, limit, true).await
    }

    async fn shared_among(&self, cids: &[Cid]) -> Result<Vec<Cid>> {
        if cids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&[u8]> = cids.iter().map(Cid::as_bytes).collect();
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(SHARED_AMONG).await.map_err(pg)?;
        let rows = client.query(&statement, &[&keys]).await.map_err(pg)?;
        let found: std::collections::HashSet<Vec<u8>> =
            rows.iter().map(|row| row.get::<_, Vec<u8>>(0)).collect();
        let mut shared: Vec<Cid> = Vec::with_capacity(found.len());
        let mut taken = std::collections::HashSet::with_capacity(found.len());
        for cid in cids {
            if found.contains(cid.as_bytes()) && taken.insert(cid) {
                shared.push(cid.clone());
            }
        }
        Ok(shared)
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
                "SELECT cid, bytes FROM objects WHERE cid > $1 AND position IS NOT NULL \
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
        let statement = client.prepare_cached(DIGEST).await.map_err(pg)?;
        let rows = client.query(&statement, &[]).await.map_err(pg)?;
        let first = rows
            .first()
            .ok_or_else(|| Error::Damaged("the store's state row is missing".into()))?;
        let mut digest = SyncDigest::from_bytes(first.get::<_, &[u8]>(0))?;
        for row in &rows {
            if let Some(cid) = row.get::<_, Option<&[u8]>>(1) {
                digest.insert(&stored_cid(cid)?);
            }
        }
        Ok(digest)
    }

    async fn journal(&self, after: u64, limit: usize) -> Result<JournalPage> {
        let client = self.lookup_client().await?;
        let statement = client.prepare_cached(JOURNAL_PAGE).await.map_err(pg)?;
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let to = from.saturating_add(sql_limit(limit));
        let rows = client.query(&statement, &[&from, &to]).await.map_err(pg)?;
        let first = rows
            .first()
            .ok_or_else(|| Error::Damaged("the store's state row is missing".into()))?;
        let id: [u8; 16] = first
            .get::<_, &[u8]>(0)
            .try_into()
            .map_err(|_| Error::Damaged("the journal id is not 16 bytes".into()))?;
        let head = u64::try_from(first.get::<_, i64>(1)).unwrap_or(0);
        let mut entries = Vec::new();
        for row in &rows {
            if let Some(position) = row.get::<_, Option<i64>>(2) {
                let position = u64::try_from(position).unwrap_or(0);
                entries.push((position, stored_cid(row.get::<_, &[u8]>(3))?));
            }
        }
        // Every position up to the head is examined, whether its object is still there or not.
        let last = if after >= head {
            after
        } else {
            head.min(u64::try_from(to).unwrap_or(u64::MAX))
        };
        Ok(JournalPage {
            id,
            head,
            last,
            entries,
        })
    }

    fn watch_others(&self) -> Option<futures::stream::BoxStream<'static, Vec<chum_store::Added>>> {
        watch::start(&self.shared)
    }
}

/// The least byte string greater than every string that begins with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    push_hex(&mut text, bytes);
    text
}

/// Appends lowercase hexadecimal.
pub(crate) fn push_hex(text: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// The bytes of lowercase or uppercase hexadecimal, if it is that.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{LastCommit, Options, hex, prefix_end, unhex};
    use std::time::Duration;
    use tokio_postgres::config::{Host, SslMode};

    /// A `host` in the query replaces the URL's own (as libpq), keeping its port; over
    /// sockets alone there is no TLS.
    #[test]
    fn a_host_in_the_query_replaces_the_urls_own() {
        let config = |url: &str| Options::from_url(url).unwrap().config;
        let socket =
            config("postgres://chum@localhost:6000/db?host=/run/postgresql&sslmode=require");
        assert_eq!(socket.get_hosts(), &[Host::Unix("/run/postgresql".into())]);
        assert_eq!(socket.get_ports(), &[6000]);
        assert_eq!(socket.get_user(), Some("chum"));
        assert_eq!(socket.get_dbname(), Some("db"));
        assert_eq!(socket.get_ssl_mode(), SslMode::Disable);
        let other = config("postgres://u:p%40ss@[::1]:7000,db2/x?host=db3&port=1");
        assert_eq!(other.get_hosts(), &[Host::Tcp("db3".into())]);
        assert_eq!(other.get_ports(), &[1]);
        assert_eq!(other.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(other.get_ssl_mode(), SslMode::Prefer);
        let kept_port = config("postgres://u@[::1]:7000/x?host=db3");
        assert_eq!(kept_port.get_ports(), &[7000]);
        let tcp = config("postgres://u@db:7000/x");
        assert_eq!(tcp.get_hosts(), &[Host::Tcp("db".into())]);
        assert_eq!(tcp.get_ports(), &[7000]);
        assert_eq!(tcp.get_ssl_mode(), SslMode::Prefer);
    }

    /// The next group waits as long as the last commit took, within the gap, and only after
    /// a commit of concurrent writers (a lone writer's next batch commits at once).
    #[test]
    fn the_next_group_waits_only_after_a_commit_others_waited_for() {
        let ended = tokio::time::Instant::now();
        let commit = |took_ms, concurrent| LastCommit {
            ended,
            took: Duration::from_millis(took_ms),
            concurrent,
        };
        let gap = Duration::from_millis(15);
        assert_eq!(
            commit(8, true).wait_until(gap),
            Some(ended + Duration::from_millis(8))
        );
        assert_eq!(commit(40, true).wait_until(gap), Some(ended + gap));
        assert_eq!(commit(8, true).wait_until(Duration::ZERO), Some(ended));
        assert_eq!(commit(8, false).wait_until(gap), None);
        assert_eq!(commit(40, false).wait_until(gap), None);
    }

    /// The lookups and the writes' statements are planned once per connection, possibly
    /// while the tables are empty: each plan must still be an index lookup (no scan of a
    /// whole table of objects, links or local keys), and never compiled to machine code.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plans_made_on_empty_tables_are_index_lookups() {
        use super::*;
        let cluster = cluster::TempCluster::start_with(&cluster::ClusterOptions {
            fsync: false,
            ..cluster::ClusterOptions::default()
        })
        .unwrap();
        let url = format!("{}&schema=plans", cluster.url("postgres"));
        let options = Options::from_url(&url).unwrap();
        let config = options.config.clone();
        // Creates the (empty) schema.
        options.open().await.unwrap();
        let explain = |config: tokio_postgres::Config, setup: &'static str, sql: &'static str| async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute(setup).await.unwrap();
            let statement = client.prepare(sql).await.unwrap();
            let arguments: Vec<String> = (0..statement.params().len())
                .map(|_| "NULL".to_owned())
                .collect();
            client
                .batch_execute(&format!("PREPARE checked AS {sql}"))
                .await
                .unwrap();
            let plan: Vec<String> = client
                .query(
                    &format!("EXPLAIN EXECUTE checked({})", arguments.join(", ")),
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            plan.join("\n")
        };
        let lookups = [
            LOOKUP,
            JOURNAL_PAGE,
            GET_ONE,
            GET_MANY,
            HAS,
            LINKS_PAGE,
            BY_TYPE,
            VERSIONS,
            BY_AUTHOR,
            HEADS,
            SHARED_AMONG,
            LOCAL_GET,
            LOCAL_RANGE,
            LOCAL_FROM,
            "SELECT cid FROM objects WHERE cid > $1 AND cid < $2 AND position IS NOT NULL \
             ORDER BY cid LIMIT $3",
        ];
        // Whether each statement of a write reads rows (the others only insert).
        let writes = [
            (STORED, true),
            (PROMOTE, true),
            (WRITE_BATCH, false),
            (LOCAL_PUT_MANY, false),
        ];
        let checks = lookups
            .iter()
            .map(|sql| (lookup_config(&config), "SELECT 1", *sql, true))
            .chain(
                writes
                    .iter()
                    .map(|(sql, reads)| (config.clone(), BEGIN_WRITE, *sql, *reads)),
            );
        for (config, setup, sql, reads) in checks {
            let plan = explain(config, setup, sql).await;
            for table in ["objects", "links", "local_kv", "edges"] {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table} ")),
                    "{sql}\nscans {table} whole:\n{plan}"
                );
            }
            assert!(!plan.contains("JIT"), "{sql}\nis compiled:\n{plan}");
            assert!(
                !reads || plan.contains("Index"),
                "{sql}\nreads no index:\n{plan}"
            );
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }

    #[test]
    fn prefix_end_is_the_least_string_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
