//! Puts through the PostgreSQL store beside raw batched `INSERT`s of the same rows, in the same
//! run, on a throwaway cluster with `fsync` on (as a production database runs).
//!
//! `chum-store-postgres-bench [OBJECTS] [BATCH...]` (defaults: 20,000 objects; batches of
//! 1,000, 100 and 10). For each batch size it alternates three runs of each side, each into a
//! fresh table or schema, and prints the medians and the ratio (objects/s of the store over
//! objects/s of the raw inserts; the target is ≥ 0.5).
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
    if values.len() % 2 == 0 {
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

async fn store_run(url: &str, batches: &[Vec<(Cid, Vec<u8>)>]) -> Result<f64, String> {
    let store = PostgresStore::open(url).await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    for batch in batches {
        store.put_many(batch).await.map_err(|e| e.to_string())?;
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
    let cluster = TempCluster::start()?;
    let base = cluster.url("postgres");
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let conversation = Object::from_value(&Value::Text("conversation".into()))
        .map_err(|e| e.to_string())?;
    println!(
        "puts of {objects} objects (~{} B each): PostgreSQL store vs raw batched INSERTs, fsync on",
        object(0, conversation.cid()).bytes().len()
    );
    let mut run_id = 0;
    for &size in &sizes {
        let size = size.max(1);
        let mut raw = Vec::new();
        let mut store = Vec::new();
        for round in 0..3u64 {
            // Fresh objects each run, so nothing is skipped as already stored.
            let all: Vec<(Cid, Vec<u8>)> = (0..objects as u64)
                .map(|n| {
                    let o = object(n + (round * 10 + size as u64) * 1_000_000, conversation.cid());
                    (o.cid().clone(), o.bytes().to_vec())
                })
                .collect();
            let batches: Vec<Vec<(Cid, Vec<u8>)>> =
                all.chunks(size).map(<[_]>::to_vec).collect();
            run_id += 1;
            raw.push(raw_run(&client, &format!("raw_{run_id}"), &batches).await?);
            store.push(store_run(&format!("{base}&schema=store_{run_id}"), &batches).await?);
        }
        let (raw, store) = (median(raw), median(store));
        println!(
            "batch {size:>5}: raw {:>9.0} obj/s ({raw:.2} s)  store {:>9.0} obj/s ({store:.2} s)  \
             store/raw = {:.2}",
            objects as f64 / raw,
            objects as f64 / store,
            raw / store
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
