//! Set reconciliation at n = 100,000 objects per side: chum's sessions (until the initiator
//! knows the difference and sent its want list) beside negentropy 0.5 on the same items, for
//! d = 1 and d = 1,000 differences spread uniformly. Bytes and round trips are printed by
//! `reconcile_report`; this measures time.
//!
//! `CHUM_BENCH_RECONCILE_N` sets n.

use chum_benches::reconciliation::{
    chum_run, cid, id_bytes, negentropy_exchange, negentropy_storage,
};
use chum_object::Cid;
use chum_sync::memory::MemorySet;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn n() -> u64 {
    std::env::var("CHUM_BENCH_RECONCILE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Objects (CID and bytes) one side holds.
type Items = Vec<(Cid, Vec<u8>)>;

fn sides(n: u64, d: u64) -> (Items, Items) {
    let common = n - d / 2;
    let a = (0..common)
        .chain((0..d / 2).map(|i| i | 1 << 40))
        .map(cid)
        .collect();
    let b = (0..common)
        .chain((0..d - d / 2).map(|i| i | 1 << 41))
        .map(cid)
        .collect();
    (a, b)
}

fn set(items: &[(Cid, Vec<u8>)]) -> MemorySet {
    let mut set = MemorySet::new();
    for (cid, bytes) in items {
        set.insert(cid.clone(), bytes.clone())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    set
}

fn reconcile(c: &mut Criterion) {
    let n = n();
    let mut group = c.benchmark_group(format!("reconcile n={n}"));
    group.sample_size(10);
    for d in [1u64, 1_000] {
        let (a, b) = sides(n, d);
        let (set_a, set_b) = (set(&a), set(&b));
        let ids = |items: &[(Cid, Vec<u8>)]| -> Vec<[u8; 32]> {
            items.iter().map(|(c, _)| id_bytes(c)).collect()
        };
        let storage = |items: &[(Cid, Vec<u8>)]| {
            negentropy_storage(&ids(items)).unwrap_or_else(|e| panic!("{e}"))
        };
        let (storage_a, storage_b) = (storage(&a), storage(&b));
        group.bench_function(format!("chum d={d}"), |bench| {
            bench.iter_batched(
                || (set_a.clone(), set_b.clone()),
                |(a, b)| {
                    let (row, sets) = chum_run(a, b);
                    assert_eq!(row.found as u64, d);
                    sets
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_function(format!("negentropy d={d}"), |bench| {
            bench.iter(|| {
                let row =
                    negentropy_exchange(&storage_a, &storage_b).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(row.found as u64, d);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, reconcile);
criterion_main!(benches);
