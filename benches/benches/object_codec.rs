//! Encode, decode and hash of small (~100 B) and large (16 KiB) objects: chum's codec beside
//! ciborium (the serde bridge on the card) doing the same work in the same run.

use chum_benches::{large_object, small_linked_object, small_object, to_ciborium, to_ipld};
use chum_object::{Cid, Codec, Object, dagcbor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn ciborium_encode(value: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    ciborium::into_writer(value, &mut out).expect("in-memory write");
    out
}

fn codec(c: &mut Criterion) {
    for (size, value) in [
        ("small", small_object(42)),
        ("small-linked", small_linked_object(42)),
        ("16KiB", large_object()),
    ] {
        let bytes = dagcbor::encode(&value).expect("benchmark value encodes");
        let cib = to_ciborium(&value);
        let cib_bytes = ciborium_encode(&cib);
        let ipld = to_ipld(&value);
        let ipld_bytes = serde_ipld_dagcbor::to_vec(&ipld).expect("serde_ipld_dagcbor encodes");
        assert_eq!(
            ipld_bytes, bytes,
            "serde_ipld_dagcbor and chum agree on the canonical bytes"
        );
        eprintln!(
            "{size}: chum {} bytes, ciborium {} bytes",
            bytes.len(),
            cib_bytes.len()
        );
        let mut group = c.benchmark_group(format!("object/{size}"));
        group.throughput(Throughput::Elements(1));

        group.bench_function(BenchmarkId::new("encode", "chum"), |b| {
            b.iter(|| dagcbor::encode(black_box(&value)))
        });
        group.bench_function(BenchmarkId::new("encode", "ciborium"), |b| {
            b.iter(|| ciborium_encode(black_box(&cib)))
        });
        group.bench_function(BenchmarkId::new("decode", "chum"), |b| {
            b.iter(|| dagcbor::decode(black_box(&bytes)))
        });
        group.bench_function(BenchmarkId::new("decode", "ciborium"), |b| {
            b.iter(|| ciborium::from_reader::<ciborium::Value, _>(black_box(&cib_bytes[..])))
        });
        group.bench_function(BenchmarkId::new("encode", "serde_ipld_dagcbor"), |b| {
            b.iter(|| serde_ipld_dagcbor::to_vec(black_box(&ipld)))
        });
        group.bench_function(BenchmarkId::new("decode", "serde_ipld_dagcbor"), |b| {
            b.iter(|| {
                serde_ipld_dagcbor::from_slice::<ipld_core::ipld::Ipld>(black_box(&ipld_bytes))
            })
        });
        group.bench_function(BenchmarkId::new("hash", "blake3"), |b| {
            b.iter(|| Cid::hash(Codec::DagCbor, black_box(&bytes)))
        });
        group.bench_function(BenchmarkId::new("encode+hash", "chum"), |b| {
            b.iter(|| Object::from_value(black_box(&value)))
        });
        group.bench_function(BenchmarkId::new("encode+hash", "ciborium"), |b| {
            b.iter(|| Cid::hash(Codec::DagCbor, &ciborium_encode(black_box(&cib))))
        });
        // The target: encode + decode + hash of one object.
        group.bench_function(BenchmarkId::new("encode+decode+hash", "chum"), |b| {
            b.iter(|| {
                let object = Object::from_value(black_box(&value)).expect("encodes");
                dagcbor::decode(object.bytes()).expect("decodes")
            })
        });
        group.bench_function(BenchmarkId::new("encode+decode+hash", "ciborium"), |b| {
            b.iter(|| {
                let bytes = ciborium_encode(black_box(&cib));
                let _cid = Cid::hash(Codec::DagCbor, &bytes);
                ciborium::from_reader::<ciborium::Value, _>(&bytes[..]).expect("decodes")
            })
        });
        group.bench_function(
            BenchmarkId::new("encode+decode+hash", "serde_ipld_dagcbor"),
            |b| {
                b.iter(|| {
                    let bytes = serde_ipld_dagcbor::to_vec(black_box(&ipld)).expect("encodes");
                    let _cid = Cid::hash(Codec::DagCbor, &bytes);
                    serde_ipld_dagcbor::from_slice::<ipld_core::ipld::Ipld>(&bytes)
                        .expect("decodes")
                })
            },
        );
        group.finish();
    }
}

/// Prints which non-canonical inputs each decoder accepts (strictness is part of the choice).
fn strictness() {
    let cases: &[(&str, &[u8])] = &[
        (
            "unsorted map keys",
            &[0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02],
        ),
        ("non-shortest integer", &[0x18, 0x01]),
        ("16-bit float", &[0xf9, 0x3c, 0x00]),
        ("indefinite list", &[0x9f, 0x01, 0xff]),
        ("trailing bytes", &[0x01, 0x01]),
        ("undefined", &[0xf7]),
    ];
    for (name, bytes) in cases {
        eprintln!(
            "strictness: {name:<22} chum {:<8} serde_ipld_dagcbor {:<8} ciborium {}",
            verdict(dagcbor::decode(bytes).is_ok()),
            verdict(serde_ipld_dagcbor::from_slice::<ipld_core::ipld::Ipld>(bytes).is_ok()),
            verdict(ciborium::from_reader::<ciborium::Value, _>(&bytes[..]).is_ok()),
        );
    }
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "accepts" } else { "rejects" }
}

fn all(c: &mut Criterion) {
    strictness();
    codec(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
