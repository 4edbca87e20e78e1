//! The schema and its migrations: numbered steps applied in order, each in the transaction that
//! records it, under an advisory lock so that hub processes starting together apply each once.

use chum_store::{Error, Result, SyncDigest};
use tokio_postgres::Client;

use crate::pg;

/// The newest schema version this build reads and writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The migrations, oldest first: `(version, statements)`. A released step never changes; a
/// new schema is a new step.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "
    CREATE TABLE chum_migrations (
        version integer PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
    );
    -- One row: the journal's id and head, the object count, and the shared set's digest as of
    -- journal position digest_position (the digest of the set is this one plus the objects
    -- numbered after it). Every write locks it first, so writes commit one after another and
    -- journal positions follow commit order.
    CREATE TABLE chum_state (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        journal_id bytea NOT NULL,
        journal_head bigint NOT NULL,
        object_count bigint NOT NULL,
        digest bytea NOT NULL,
        digest_position bigint NOT NULL
    );
    -- Every object, with what the single-valued indexes need: its journal position (NULL:
    -- instance-local, never synced), $type (its UTF-8 bytes: a type may hold a NUL), author
    -- and clock (wall ms, 8 bytes, and counter, 4, big-endian: bytes that sort as the clock),
    -- and the ID a version belongs to.
    CREATE TABLE objects (
        cid bytea PRIMARY KEY,
        bytes bytea NOT NULL,
        position bigint,
        type_name bytea,
        author bytea,
        clock bytea,
        of_id bytea
    );
    -- Objects are hashed, mostly small, and blob chunks do not compress: never try.
    ALTER TABLE objects ALTER COLUMN bytes SET STORAGE EXTERNAL;
    CREATE UNIQUE INDEX objects_journal ON objects (position) WHERE position IS NOT NULL;
    -- The few instance-local objects, so a write finds those it promotes without a scan.
    CREATE INDEX objects_local ON objects (cid) WHERE position IS NULL;
    CREATE INDEX objects_type ON objects (type_name, cid) WHERE type_name IS NOT NULL;
    CREATE INDEX objects_author ON objects (author, clock, cid) WHERE author IS NOT NULL;
    CREATE INDEX objects_versions ON objects (of_id, cid) WHERE of_id IS NOT NULL;
    -- The multi-valued indexes: who links to what, and versions' parent edges.
    CREATE TABLE links (
        target bytea NOT NULL,
        cid bytea NOT NULL,
        PRIMARY KEY (target, cid)
    );
    CREATE TABLE edges (
        parent bytea NOT NULL,
        child bytea NOT NULL,
        PRIMARY KEY (parent, child)
    );
    CREATE TABLE local_kv (
        key bytea PRIMARY KEY,
        value bytea NOT NULL
    );
    ",
)];

/// Brings the store's schema to [`SCHEMA_VERSION`]: creates it in an empty (or absent) schema,
/// applies the steps a older store lacks, refuses a newer one and a schema that holds other
/// tables.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<()> {
    let txn = client.transaction().await.map_err(pg)?;
    // Every process over this schema serialises here, so each step runs once.
    txn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('chum-store:' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(pg)?;
    txn.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\""
    ))
    .await
    .map_err(pg)?;
    let tables: i64 = txn
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .map_err(pg)?
        .get(0);
    let has_migrations: bool = txn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = $1 AND tablename = 'chum_migrations')",
            &[&schema],
        )
        .await
        .map_err(pg)?
        .get(0);
    let current: i32 = if has_migrations {
        txn.query_one("SELECT coalesce(max(version), 0) FROM chum_migrations", &[])
            .await
            .map_err(pg)?
            .get(0)
    } else if tables > 0 {
        return Err(Error::Damaged(format!(
            "schema \"{schema}\" holds {tables} tables but is not a chum store (no chum_migrations)"
        )));
    } else {
        0
    };
    if current > SCHEMA_VERSION {
        return Err(Error::NewerFormat {
            found: u32::try_from(current).unwrap_or(0),
            supported: SCHEMA_VERSION as u32,
        });
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        txn.batch_execute(statements).await.map_err(pg)?;
        if *version == 1 {
            let journal_id = chum_store::sync::new_journal_id()?;
            txn.execute(
                "INSERT INTO chum_state \
                 (journal_id, journal_head, object_count, digest, digest_position) \
                 VALUES ($1, 0, 0, $2, 0)",
                &[&journal_id.as_slice(), &SyncDigest::new().to_bytes()],
            )
            .await
            .map_err(pg)?;
        }
        txn.execute(
            "INSERT INTO chum_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(pg)?;
        tracing::info!(schema, version, "applied a store schema migration");
    }
    txn.commit().await.map_err(pg)
}
