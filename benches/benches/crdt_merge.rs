//! Merge benchmarks for chum-crdt.
//!
//! - `field_merge/N`: two replicas each write N versions (one field each) to the same N fields
//!   of one object, concurrently; the benchmark times merging replica B's resolver into a copy
//!   of replica A's (`merge`), and adding B's N versions to A's resolver one by one (`add`).
//!   Building and hashing the versions is timed separately (`build+hash`).
//! - `append_only`: 1M entries into one collection, then read in order.
//!
//! `CHUM_BENCH_MAX_N` caps N (default 1,000,000).

use std::hint::black_box;

use chum_crdt::{Collection, InstanceId, Resolver, Timestamp, Version};
use chum_object::recipe::Strategy;
use chum_object::{Cid, Codec, Map, Value};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// One replica's N versions: a chain, version i setting field `f{i}`.
fn replica_versions(of: &Cid, n: usize, author: u8, clock_offset: u64) -> Vec<(Cid, Version)> {
    let mut versions = Vec::with_capacity(n);
    let mut parent: Option<Cid> = None;
    for i in 0..n {
        let body: Map = [(
            format!("f{i}"),
            Value::from(i as u64 * 10 + u64::from(author)),
        )]
        .into();
        let version = Version::new(
            of.clone(),
            parent.iter().cloned().collect(),
            Timestamp::new(1_700_000_000_000 + i as u64 + clock_offset, 0),
            InstanceId([author; 32]),
            body,
        );
        let cid = version.cid().expect("a version encodes");
        parent = Some(cid.clone());
        versions.push((cid, version));
    }
    versions
}

fn resolver_of(versions: &[(Cid, Version)]) -> Resolver {
    let mut resolver = Resolver::new(Strategy::FieldMerge, Default::default());
    for (cid, version) in versions {
        resolver.add(cid, version).expect("same object");
    }
    resolver
}

fn sizes() -> Vec<usize> {
    let max: usize = std::env::var("CHUM_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|n| *n <= max)
        .collect()
}

fn field_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("field_merge");
    group.sample_size(10);
    for n in sizes() {
        let of = Cid::hash(Codec::DagCbor, format!("wide object {n}").as_bytes());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("build+hash", n), &n, |b, &n| {
            b.iter(|| replica_versions(&of, n, 1, 0))
        });
        let a = replica_versions(&of, n, 1, 0);
        let b_versions = replica_versions(&of, n, 2, 1);
        let resolver_a = resolver_of(&a);
        let resolver_b = resolver_of(&b_versions);
        group.bench_with_input(BenchmarkId::new("merge", n), &n, |bench, _| {
            bench.iter_batched(
                || resolver_a.clone(),
                |mut merged| {
                    merged.merge(black_box(&resolver_b)).expect("same object");
                    merged
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_with_input(BenchmarkId::new("add", n), &n, |bench, _| {
            bench.iter_batched(
                || resolver_a.clone(),
                |mut merged| {
                    for (cid, version) in &b_versions {
                        merged.add(cid, version).expect("same object");
                    }
                    merged
                },
                BatchSize::PerIteration,
            )
        });
        // Sanity: every field resolved to replica B's value (its clocks are later).
        let mut merged = resolver_a.clone();
        merged.merge(&resolver_b).expect("same object");
        let state = merged.state();
        assert_eq!(state.fields.len(), n);
        assert_eq!(state.fields.get("f0"), Some(&Value::from(2u64)));
    }
    group.finish();
}

fn append_only(c: &mut Criterion) {
    let n = *sizes().last().unwrap_or(&1_000);
    let entries: Vec<(Timestamp, Cid)> = (0..n as u64)
        .map(|i| {
            (
                Timestamp::new(1_700_000_000_000 + (i * 7919) % n as u64, 0),
                Cid::hash(Codec::DagCbor, &i.to_le_bytes()),
            )
        })
        .collect();
    let mut group = c.benchmark_group("append_only");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("insert+read", n), |b| {
        b.iter(|| {
            let mut collection = Collection::new();
            for (clock, cid) in &entries {
                collection.insert(*clock, cid.clone());
            }
            collection
                .iter()
                .map(|(clock, _)| clock.wall_ms)
                .fold(0u64, u64::wrapping_add)
        })
    });
    group.finish();
}

criterion_group!(benches, field_merge, append_only);
criterion_main!(benches);
