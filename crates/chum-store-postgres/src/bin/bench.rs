//! Puts through the PostgreSQL store beside raw batched `INSERT`s of the same rows, in the same
//! run, on a throwaway cluster with `fsync` on (as a production database runs).
//!
//! `chum-store-postgres-bench [OBJECTS] [BATCH...]` (defaults: 20,000 objects; batches of
//! 1,000, 100 and 10). With `CHUM_PG_URL` (a `postgres://` URL with a `?` part) it runs
//! against that database, leaving its tables and schemas behind; otherwise against a
//! throwaway cluster. For each batch size it alternates three runs of each side, each into a
//! fresh table or schema, and prints the medians and the ratio (objects/s of the store over
//! objects/s of the raw inserts; the target is ≥ 0.5).
//!
//! Then the smallest batches again, from one store handle and from four at once (as four
//! processes over one database would write), and the ratio of the two.
//!
//! The raw side inserts `(cid, bytes)` rows, one `INSERT … SELECT FROM unnest(…)` per batch, each
//! its own transaction — the least a store of these rows must do. The store side is
//! `Store::put_many`: verification (hash, strict decoding), the object rows, their index rows
//! (type, links, author), the journal, the count and the sync digest, in one transaction.

use std::time::Instant;

use chum_object::{Cid, Map, Object, Value};
use chum_store::Store;
use chum_store_postgres::PostgresStore;
use chum_store_postgres::cluster::TempCluster;

/// A Message-like object of ~150 bytes, distinct per `n`, with an author and a clock (so the
/// author index has rows) and a link (so the link index has rows).
fn object(n: u64, conversation: &Cid) -> Object {
    let mut map = Map::new();
    map.insert("$type", Value::Text("Message".into()));
    map.insert("author", Value::Bytes(vec![(n % 251) as u8; 32]));
    map.insert(
        "clock",
        chum_crdt::clock_value(chum_crdt::Timestamp {
            wall_ms: 1_700_000_000_000 + n,
            counter: 0,
        }),
    );
    map.insert("conversation", Value::Link(conversation.clone()));
    map.insert(
        "text",
        Value::Text(format!("message {n:08} {}", "lorem ipsum ".repeat(4)).into()),
    );
    Object::from_value(&Value::Map(map)).expect("a valid object")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

async fn raw_run(
    client: &tokio_postgres::Client,
    table: &str,
    batches: &[Vec<(Cid, Vec<u8>)>],
) -> Result<f64, String> {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (cid bytea PRIMARY KEY, bytes bytea NOT NULL); \
             ALTER TABLE {table} ALTER COLUMN bytes SET STORAGE EXTERNAL"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let statement = client
        .prepare(&format!(
            "INSERT INTO {table} (cid, bytes) SELECT * FROM unnest($1::bytea[], $2::bytea[])"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    for batch in batches {
        let cids: Vec<&[u8]> = batch.iter().map(|(cid, _)| cid.as_bytes()).collect();
        let bytes: Vec<&[u8]> = batch.iter().map(|(_, b)| b.as_slice()).collect();
        client
            .execute(&statement, &[&cids, &bytes])
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// One batch of the rows the store writes, column by column.
#[derive(Default)]
struct SameRows {
    cids: Vec<Vec<u8>>,
    bytes: Vec<Vec<u8>>,
    positions: Vec<i64>,
    types: Vec<Option<Vec<u8>>>,
    authors: Vec<Option<Vec<u8>>>,
    clocks: Vec<Option<Vec<u8>>>,
    ofs: Vec<Option<Vec<u8>>>,
    link_targets: Vec<Vec<u8>>,
    link_cids: Vec<Vec<u8>>,
}

/// The rows the store writes for `batches` — each object's row (with its journal position,
/// type, author and clock) and its link rows — inserted plainly into the store's own tables
/// (a schema `schema` the store created), one `INSERT` statement per batch: the same rows and
/// indexes without verification, the lock, the existence check, the journal head or the
/// notification.
async fn same_rows_run(
    client: &tokio_postgres::Client,
    base: &str,
    schema: &str,
    batches: &[Vec<(Cid, Vec<u8>)>],
) -> Result<f64, String> {
    // The store creates the schema (tables and indexes) and is then left alone.
    drop(
        PostgresStore::open(&format!("{base}&schema={schema}"))
            .await
            .map_err(|e| e.to_string())?,
    );
    let statement = client
        .prepare(&format!(
            "WITH o AS (INSERT INTO {schema}.objects \
             (cid, bytes, position, type_name, author, clock, of_id) \
             SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bytea[], \
             $5::bytea[], $6::bytea[], $7::bytea[])) \
             INSERT INTO {schema}.links (target, cid) SELECT * FROM unnest($8::bytea[], $9::bytea[])"
        ))
        .await
        .map_err(|e| e.to_string())?;
    // Rows prepared before the clock starts.
    let mut position = 0i64;
    let mut prepared = Vec::new();
    for batch in batches {
        let mut rows = SameRows::default();
        for (cid, bytes) in batch {
            let entries =
                chum_store::index::verify_and_index(cid, bytes, &chum_object::Limits::default())
                    .map_err(|e| e.to_string())?;
            position += 1;
            rows.cids.push(cid.as_bytes().to_vec());
            rows.bytes.push(bytes.clone());
            rows.positions.push(position);
            rows.types
                .push(entries.type_name.as_ref().map(|t| t.as_bytes().to_vec()));
            rows.authors
                .push(entries.author.as_ref().map(|(a, _)| a.to_vec()));
            rows.clocks.push(entries.author.as_ref().map(|(_, c)| {
                let mut clock = c.wall_ms.to_be_bytes().to_vec();
                clock.extend_from_slice(&c.counter.to_be_bytes());
                clock
            }));
            rows.ofs
                .push(entries.version.as_ref().map(|v| v.of.as_bytes().to_vec()));
            for target in &entries.links {
                rows.link_targets.push(target.as_bytes().to_vec());
                rows.link_cids.push(cid.as_bytes().to_vec());
            }
        }
        prepared.push(rows);
    }
    let start = Instant::now();
    for rows in &prepared {
        client
            .execute(
                &statement,
                &[
                    &rows.cids,
                    &rows.bytes,
                    &rows.positions,
                    &rows.types,
                    &rows.authors,
                    &rows.clocks,
                    &rows.ofs,
                    &rows.link_targets,
                    &rows.link_cids,
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn store_run(url: &str, batches: &[Vec<(Cid, Vec<u8>)>]) -> Result<f64, String> {
    let store = PostgresStore::open(url).await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    for batch in batches {
        store.put_many(batch).await.map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// `handles` handles on one schema (as that many processes would hold), each putting its
/// share of `batches` one after another, all at once: seconds until all are done.
async fn handles_run(
    url: &str,
    batches: &[Vec<(Cid, Vec<u8>)>],
    handles: usize,
) -> Result<f64, String> {
    let mut stores = Vec::new();
    for _ in 0..handles {
        stores.push(PostgresStore::open(url).await.map_err(|e| e.to_string())?);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, store) in stores.into_iter().enumerate() {
        let mine: Vec<Vec<(Cid, Vec<u8>)>> =
            batches.iter().skip(i).step_by(handles).cloned().collect();
        tasks.spawn(async move {
            for batch in &mine {
                store.put_many(batch).await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn run() -> Result<(), String> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().map_err(|_| format!("not a number: {a}")))
        .collect::<Result<_, _>>()?;
    let objects = args.first().copied().unwrap_or(20_000);
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![1_000, 100, 10]
    };
    // Against a database of the caller's (CHUM_PG_URL, a postgres:// URL with a query part),
    // or a throwaway cluster.
    let (_cluster, base) = match std::env::var("CHUM_PG_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let cluster = TempCluster::start()?;
            let url = cluster.url("postgres");
            (Some(cluster), url)
        }
    };
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let conversation =
        Object::from_value(&Value::Text("conversation".into())).map_err(|e| e.to_string())?;
    println!(
        "puts of {objects} objects (~{} B each): PostgreSQL store vs raw batched INSERTs, fsync on",
        object(0, conversation.cid()).bytes().len()
    );
    let mut run_id = 0;
    for &size in &sizes {
        let size = size.max(1);
        let mut raw = Vec::new();
        let mut same = Vec::new();
        let mut store = Vec::new();
        for round in 0..3u64 {
            // Fresh objects each run, so nothing is skipped as already stored.
            let all: Vec<(Cid, Vec<u8>)> = (0..objects as u64)
                .map(|n| {
                    let o = object(
                        n + (round * 10 + size as u64) * 1_000_000,
                        conversation.cid(),
                    );
                    (o.cid().clone(), o.bytes().to_vec())
                })
                .collect();
            let batches: Vec<Vec<(Cid, Vec<u8>)>> = all.chunks(size).map(<[_]>::to_vec).collect();
            run_id += 1;
            raw.push(raw_run(&client, &format!("raw_{run_id}"), &batches).await?);
            same.push(same_rows_run(&client, &base, &format!("same_{run_id}"), &batches).await?);
            store.push(store_run(&format!("{base}&schema=store_{run_id}"), &batches).await?);
        }
        let (raw, same, store) = (median(raw), median(same), median(store));
        let rate = |seconds: f64| objects as f64 / seconds;
        println!(
            "batch {size:>5}: object rows {:>7.0}/s  same rows {:>7.0}/s  store {:>7.0}/s  \
             store/same rows = {:.2}  store/object rows = {:.2}",
            rate(raw),
            rate(same),
            rate(store),
            same / store,
            raw / store
        );
    }
    // Several processes over one database: their writes take the state row in turn, so how
    // long each holds it bounds what they write together.
    let size = sizes.last().copied().unwrap_or(10).max(1);
    let mut rates: Vec<(usize, f64)> = Vec::new();
    for handles in [1, 4] {
        let mut took = Vec::new();
        for round in 0..3u64 {
            let all: Vec<(Cid, Vec<u8>)> = (0..objects as u64)
                .map(|n| {
                    let o = object(
                        n + (round * 10 + handles as u64) * 1_000_000 + 500_000_000,
                        conversation.cid(),
                    );
                    (o.cid().clone(), o.bytes().to_vec())
                })
                .collect();
            let batches: Vec<Vec<(Cid, Vec<u8>)>> = all.chunks(size).map(<[_]>::to_vec).collect();
            run_id += 1;
            let url = format!("{base}&schema=handles_{run_id}");
            took.push(handles_run(&url, &batches, handles).await?);
        }
        rates.push((handles, objects as f64 / median(took)));
    }
    let one = rates.first().map_or(f64::NAN, |(_, rate)| *rate);
    for (handles, rate) in rates {
        println!(
            "batch {size:>5}, {handles} handle(s) writing at once (as {handles} processes): \
             store {rate:>7.0}/s = {:.2} × one handle",
            rate / one
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start a runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chum-store-postgres-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
