//! Store benchmarks: N puts of ≈100-byte objects in batches of 10,000 and N random gets, for the
//! memory and redb stores, beside raw redb doing the bare minimum (the same bytes keyed by CID,
//! the same batches, the same durability, no indexes, no verification) in the same run. Also:
//! opening a store of N objects, and listing it by CID range.
//!
//! `CHUM_BENCH_STORE_N` sets N (default 1,000,000).

use std::hint::black_box;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chum_benches::small_object;
use chum_object::{Cid, Object};
use chum_store::{MemoryStore, Store};
use chum_store_redb::RedbStore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

const RAW: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("raw");
const BATCH: usize = 10_000;

fn n() -> usize {
    std::env::var("CHUM_BENCH_STORE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn objects(n: usize) -> Vec<(Cid, Vec<u8>)> {
    (0..n as u64)
        .map(|i| {
            let object = Object::from_value(&small_object(i)).expect("encodes");
            (object.cid().clone(), object.into_bytes())
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chum-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn raw_put(path: &Path, objects: &[(Cid, Vec<u8>)]) -> Database {
    let db = Database::create(path).expect("raw redb");
    for batch in objects.chunks(BATCH) {
        let mut txn = db.begin_write().expect("txn");
        txn.set_durability(Durability::Immediate)
            .expect("durability");
        {
            let mut table = txn.open_table(RAW).expect("table");
            for (cid, bytes) in batch {
                table
                    .insert(cid.as_bytes(), bytes.as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    db
}

fn store_put(store: &dyn Store, objects: &[(Cid, Vec<u8>)]) {
    for batch in objects.chunks(BATCH) {
        block_on(store.put_many(batch)).expect("put");
    }
}

/// A pseudo-random permutation of indexes, the same every run.
fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        order.swap(i, (rng % (i as u64 + 1)) as usize);
    }
    order
}

fn timed(iters: u64, mut run: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| run()).sum()
}

fn store(c: &mut Criterion) {
    let n = n();
    let objects = objects(n);
    let order = shuffled(n);
    let mut group = c.benchmark_group(format!("store/{n}"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n as u64));

    group.bench_function("put/raw-redb", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let dir = scratch("raw-put");
                let start = Instant::now();
                drop(black_box(raw_put(&dir.join("raw.redb"), &objects)));
                let elapsed = start.elapsed();
                let _ = std::fs::remove_dir_all(&dir);
                elapsed
            })
        })
    });
    group.bench_function("put/redb", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let dir = scratch("redb-put");
                let start = Instant::now();
                let store = RedbStore::open(dir.join("store.redb")).expect("open");
                store_put(&store, &objects);
                drop(store);
                let elapsed = start.elapsed();
                let _ = std::fs::remove_dir_all(&dir);
                elapsed
            })
        })
    });
    group.bench_function("put/memory", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let start = Instant::now();
                let store = MemoryStore::new();
                store_put(&store, &objects);
                let elapsed = start.elapsed();
                drop(store);
                elapsed
            })
        })
    });

    // Random gets over filled stores.
    let dir = scratch("gets");
    let raw = raw_put(&dir.join("raw.redb"), &objects);
    let redb = RedbStore::open(dir.join("store.redb")).expect("open");
    store_put(&redb, &objects);
    let memory = MemoryStore::new();
    store_put(&memory, &objects);
    // Random reads in batches of 1,000: raw redb reads a batch in one read transaction with no
    // verification; chum's `get_many` reads a batch from one snapshot and verifies every object.
    group.bench_function("get/raw-redb", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for batch in order.chunks(BATCH / 10) {
                let txn = raw.begin_read().expect("txn");
                let table = txn.open_table(RAW).expect("table");
                for &i in batch {
                    total += table
                        .get(objects[i].0.as_bytes())
                        .expect("get")
                        .map(|v| v.value().len())
                        .unwrap_or(0);
                }
            }
            total
        })
    });
    // The reader has its wanted CIDs in hand (as the sync engine does), so the batches are
    // built outside the timed loop.
    let batches: Vec<Vec<Cid>> = order
        .chunks(BATCH / 10)
        .map(|batch| batch.iter().map(|&i| objects[i].0.clone()).collect())
        .collect();
    group.bench_function("get_many/redb", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for cids in &batches {
                for bytes in block_on(redb.get_many(cids)).expect("get_many") {
                    total += bytes.expect("present").len();
                }
            }
            total
        })
    });
    group.bench_function("get/redb", |b| {
        b.iter(|| {
            order
                .iter()
                .map(|&i| block_on(redb.get(&objects[i].0)).expect("get").len())
                .sum::<usize>()
        })
    });
    group.bench_function("get/memory", |b| {
        b.iter(|| {
            order
                .iter()
                .map(|&i| block_on(memory.get(&objects[i].0)).expect("get").len())
                .sum::<usize>()
        })
    });
    group.bench_function("list/redb-pages-of-1000", |b| {
        b.iter(|| {
            let mut listed = 0usize;
            let mut after: Option<Cid> = None;
            loop {
                let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                let page = block_on(redb.list((start, Bound::Unbounded), 1_000)).expect("list");
                listed += page.len();
                match page.last() {
                    Some(last) => after = Some(last.clone()),
                    None => break,
                }
            }
            listed
        })
    });
    group.finish();

    let path = redb.path().expect("file store").to_owned();
    drop(redb);
    let mut group = c.benchmark_group(format!("store/{n}"));
    group.bench_function("open/redb", |b| {
        b.iter(|| {
            let store = RedbStore::open(&path).expect("open");
            black_box(block_on(store.count()).expect("count"))
        })
    });
    group.finish();
    drop(raw);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, store);
criterion_main!(benches);
