//! Fine-grained edits: N single-field edits of one record (10 fields, edit i sets field
//! `f{i % 10}` to a short string), as chum versions and as yrs map inserts, each edit its own
//! change, measured in the same run:
//!
//! - **chum, a version per edit**: the chain of versions `Instance::update` writes without
//!   coalescing (built directly: the Instance re-reads an object's history on every update);
//! - **chum, coalesced**: the same edits through `Instance::update` with `Builder::coalesce`
//!   (50 ms) on a memory store — what is left to sync;
//! - **yrs**: a `Map`, each insert in its own transaction; the bytes of every transaction's
//!   update (what live sync sends) and of the whole state as one update (what a peer that was
//!   away receives).
//!
//! Wire bytes are CHUM `objects` frames (CID + bytes per object, batches of ≤ 4,096 objects)
//! or yrs v1 updates. Applying is the receiver's work from bytes: for chum verify (BLAKE3 +
//! strict decode) + parse the version + add it to a resolver; for yrs decode + apply.
//!
//! `cargo run --release -p chum-benches --bin edits_report [N]` (default 100,000).

use std::time::{Duration, Instant};

use chum::Instance;
use chum_crdt::{InstanceId, Resolver, Timestamp, Version};
use chum_object::recipe::Strategy;
use chum_object::{Cid, Codec, Limits, Map, Object, Value, dagjson};
use chum_sync::Message;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Map as _, ReadTxn, StateVector, Transact, Update};

const FIELDS: usize = 10;
const ROUNDS: usize = 5;

fn field(i: usize) -> String {
    format!("f{}", i % FIELDS)
}

fn text(i: usize) -> String {
    format!("v{i}")
}

/// The median of `ROUNDS` runs of `run`, with the min and max.
fn timed(mut run: impl FnMut() -> Duration) -> (Duration, Duration, Duration) {
    let mut samples: Vec<Duration> = (0..ROUNDS).map(|_| run()).collect();
    samples.sort();
    (samples[0], samples[ROUNDS / 2], samples[ROUNDS - 1])
}

/// Bytes of `objects` as CHUM `objects` frames of at most 4,096 objects each.
fn wire_bytes(objects: &[(Cid, Vec<u8>)]) -> usize {
    objects
        .chunks(4_096)
        .enumerate()
        .map(|(seq, chunk)| {
            Message::Objects {
                seq: seq as u64,
                objects: chunk.to_vec(),
            }
            .encode()
            .len()
        })
        .sum()
}

/// The receiver's work: verify every object, parse its version, add it to a resolver.
fn apply(objects: &[(Cid, Vec<u8>)]) -> Resolver {
    let limits = Limits::default();
    let mut resolver = Resolver::new(Strategy::FieldMerge, Default::default());
    for (cid, bytes) in objects {
        let (_, value) = Object::verify(cid, bytes.clone(), &limits).expect("valid");
        let version = Version::from_value(&value).expect("a version");
        resolver.add(cid, &version).expect("one object");
    }
    resolver
}

/// The chain `Instance::update` writes without coalescing: one version per edit.
fn version_chain(n: usize) -> Vec<(Cid, Vec<u8>)> {
    let of = Cid::hash(Codec::DagCbor, b"the record");
    let mut parent: Option<Cid> = None;
    let mut objects = Vec::with_capacity(n);
    for i in 0..n {
        let body: Map = [(field(i), Value::from(text(i)))].into();
        // Edits ~10 µs apart: a hundred per millisecond.
        let clock = Timestamp::new(1_700_000_000_000 + (i / 100) as u64, (i % 100) as u32);
        let version = Version::new(
            of.clone(),
            parent.iter().cloned().collect(),
            clock,
            InstanceId([7; 32]),
            body,
        );
        let object = version.to_object().expect("encodes");
        parent = Some(object.cid().clone());
        objects.push((object.cid().clone(), object.into_bytes()));
    }
    objects
}

/// The same edits through `Instance::update` with coalescing: the writer's time and the
/// versions left to sync — offline, or (`live`) while connected to a paired instance over
/// TCP on 127.0.0.1, which receives versions as they are written (then it is the versions
/// that instance received).
fn coalesced(n: usize, live: bool) -> (Duration, Vec<(Cid, Vec<u8>)>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let instance = Instance::builder()
            .memory()
            .coalesce(Duration::from_millis(50))
            .open()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let peer = if live {
            let listener = instance
                .listen("tcp://127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let invitation = instance
                .invite(Duration::from_secs(60))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let peer = Instance::builder()
                .memory()
                .join(invitation)
                .open()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let link = peer
                .connect(listener.url())
                .unwrap_or_else(|e| panic!("{e}"));
            link.established().await.unwrap_or_else(|e| panic!("{e}"));
            Some((peer, listener, link))
        } else {
            None
        };
        let edit = |i: usize| {
            dagjson::from_str(&format!(
                r#"{{"$type":"Contact","email":"ann@example.org","name":"{}","phone":"{}"}}"#,
                if i.is_multiple_of(2) {
                    text(i)
                } else {
                    "Ann".into()
                },
                if i.is_multiple_of(2) {
                    "555".into()
                } else {
                    text(i)
                },
            ))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let start = Instant::now();
        for i in 0..n {
            let _ = instance
                .update(&edit(i))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let took = start.elapsed();
        let id = instance.id_of(&edit(0)).unwrap_or_else(|e| panic!("{e}"));
        let last = instance.state(&id).await.unwrap_or_else(|e| panic!("{e}"));
        // Live: what the peer received once it shows the last edit.
        let holder = match &peer {
            Some((peer, _, _)) => {
                let deadline = Instant::now() + Duration::from_secs(60);
                while peer.state(&id).await.unwrap_or_else(|e| panic!("{e}")) != last {
                    assert!(Instant::now() < deadline, "the peer caught up");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                peer
            }
            None => &instance,
        };
        let cids = holder
            .store()
            .query(chum_store::Query::Versions(&id))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut objects = Vec::new();
        for cid in cids {
            let bytes = holder
                .store()
                .get(&cid)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            objects.push((cid, bytes));
        }
        if let Some((peer, listener, _link)) = peer {
            listener.close();
            peer.close().await;
        }
        instance.close().await;
        (took, objects)
    })
}

/// yrs: N inserts, each its own transaction. Returns the document, the bytes of every
/// transaction's update and the time taken.
fn yrs_edits(n: usize) -> (Doc, Vec<Vec<u8>>, Duration) {
    let doc = Doc::new();
    let map = doc.get_or_insert_map("record");
    let updates = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let sink = std::sync::Arc::clone(&updates);
    doc.observe_update_v1("bench", move |_: &yrs::TransactionMut<'_>, event| {
        if let Ok(mut updates) = sink.lock() {
            updates.push(event.update.clone());
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    for i in 0..n {
        let mut txn = doc.transact_mut();
        map.insert(&mut txn, field(i), text(i));
    }
    let took = start.elapsed();
    let _ = doc.unobserve_update_v1("bench");
    let updates = std::mem::take(&mut *updates.lock().unwrap_or_else(|e| panic!("{e}")));
    (doc, updates, took)
}

fn yrs_apply(update: &[u8]) -> Doc {
    let doc = Doc::new();
    let _ = doc.get_or_insert_map("record");
    let mut txn = doc.transact_mut();
    txn.apply_update(Update::decode_v1(update).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(txn);
    doc
}

/// One replica's versions of one object: a chain of `n`, version i setting field `f{start+i}`.
fn chain_of(
    of: &Cid,
    start: usize,
    n: usize,
    author: u8,
    after: Option<Cid>,
) -> Vec<(Cid, Version)> {
    let mut parent = after;
    let mut versions = Vec::with_capacity(n);
    for i in start..start + n {
        let body: Map = [(format!("f{i}"), Value::from(i as u64 + u64::from(author)))].into();
        let version = Version::new(
            of.clone(),
            parent.iter().cloned().collect(),
            Timestamp::new(1_700_000_000_000 + i as u64, u32::from(author)),
            InstanceId([author; 32]),
            body,
        );
        let cid = version.cid().expect("encodes");
        parent = Some(cid.clone());
        versions.push((cid, version));
    }
    versions
}

fn resolver_of<'a>(versions: impl IntoIterator<Item = &'a (Cid, Version)>) -> Resolver {
    let mut resolver = Resolver::new(Strategy::FieldMerge, Default::default());
    for (cid, version) in versions {
        resolver.add(cid, version).expect("one object");
    }
    resolver
}

/// `Resolver::merge` per version of the other replica: two replicas of `n` versions sharing
/// all but their last `own` (each its own), and two sharing nothing.
fn merges(n: usize, own: usize) -> [(Duration, usize); 2] {
    let of = Cid::hash(Codec::DagCbor, b"a wide object");
    let base = chain_of(&of, 0, n - own, 1, None);
    let tip = base.last().map(|(cid, _)| cid.clone());
    let a_own = chain_of(&of, n, own, 2, tip.clone());
    let b_own = chain_of(&of, n + own, own, 3, tip);
    let a = resolver_of(base.iter().chain(&a_own));
    let b = resolver_of(base.iter().chain(&b_own));
    let shared = timed(|| {
        let mut merged = a.clone();
        let start = Instant::now();
        merged.merge(&b).expect("one object");
        let took = start.elapsed();
        assert_eq!(merged.state().fields.len(), n + own);
        took
    });
    let c = resolver_of(&chain_of(&of, 0, n, 4, None));
    let d = resolver_of(&chain_of(&of, 0, n, 5, None));
    let disjoint = timed(|| {
        let mut merged = c.clone();
        let start = Instant::now();
        merged.merge(&d).expect("one object");
        start.elapsed()
    });
    [(shared.1, n), (disjoint.1, n)]
}

fn per(duration: Duration, n: usize) -> f64 {
    duration.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    println!(
        "{n} single-field edits of one record ({FIELDS} fields), each its own change; medians of {ROUNDS} (min–max)"
    );

    // chum: a version per edit.
    let chain = version_chain(n);
    let chain_wire = wire_bytes(&chain);
    let chain_apply = timed(|| {
        let start = Instant::now();
        let resolver = apply(&chain);
        let took = start.elapsed();
        assert_eq!(resolver.state().fields.len(), FIELDS);
        took
    });

    // chum, coalesced through the Instance: offline, then live to a connected peer.
    let (write_time, left) = coalesced(n, false);
    let left_wire = wire_bytes(&left);
    let left_apply = timed(|| {
        let start = Instant::now();
        let resolver = apply(&left);
        let took = start.elapsed();
        assert!(resolver.state().exists);
        took
    });
    let (live_write_time, live) = coalesced(n, true);
    let live_wire = wire_bytes(&live);
    let live_apply = timed(|| {
        let start = Instant::now();
        let resolver = apply(&live);
        let took = start.elapsed();
        assert!(resolver.state().exists);
        took
    });

    // yrs.
    let (doc, updates, yrs_write) = yrs_edits(n);
    let incremental: usize = updates.iter().map(Vec::len).sum();
    let full = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let yrs_full_apply = timed(|| {
        let start = Instant::now();
        let doc = yrs_apply(&full);
        let took = start.elapsed();
        assert_eq!(
            doc.get_or_insert_map("record").len(&doc.transact()),
            FIELDS as u32
        );
        took
    });
    let yrs_each_apply = timed(|| {
        let doc = Doc::new();
        let map = doc.get_or_insert_map("record");
        let start = Instant::now();
        for update in &updates {
            let mut txn = doc.transact_mut();
            txn.apply_update(Update::decode_v1(update).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let took = start.elapsed();
        assert_eq!(map.len(&doc.transact()), FIELDS as u32);
        took
    });

    let row = |name: &str, bytes: usize, apply: (Duration, Duration, Duration)| {
        println!(
            "{name:<44} {:>9.2} B/edit {:>8.3} µs/edit ({:.3}–{:.3})",
            bytes as f64 / n as f64,
            per(apply.1, n),
            per(apply.0, n),
            per(apply.2, n),
        );
    };
    println!(
        "{:<44} {:>16} {:>16}",
        "", "on the wire", "applying (receiver)"
    );
    row("chum, a version per edit", chain_wire, chain_apply);
    row(
        &format!("chum, coalesced, offline ({} version(s))", left.len()),
        left_wire,
        left_apply,
    );
    row(
        &format!("chum, coalesced, live ({} versions)", live.len()),
        live_wire,
        live_apply,
    );
    row(
        "yrs, every transaction's update",
        incremental,
        yrs_each_apply,
    );
    row(
        "yrs, the whole state as one update",
        full.len(),
        yrs_full_apply,
    );
    println!(
        "writing: chum Instance::update with coalescing {:.2} µs/edit offline, {:.2} live; yrs transactions {:.2} µs/edit",
        per(write_time, n),
        per(live_write_time, n),
        per(yrs_write, n)
    );
    let [(shared, shared_n), (disjoint, disjoint_n)] = merges(n, 1_000);
    println!(
        "Resolver::merge of two replicas of {n} versions (one field each): sharing all but 1,000 each {:.0} ns/version, sharing none {:.0} ns/version",
        per(shared, shared_n) * 1e3,
        per(disjoint, disjoint_n) * 1e3,
    );
    println!(
        "live: chum coalesced / yrs per-transaction updates: bytes {:.2}×, applying {:.2}×; a version per edit / yrs: bytes {:.2}×, applying {:.2}×",
        live_wire as f64 / incremental.max(1) as f64,
        live_apply.1.as_secs_f64() / yrs_each_apply.1.as_secs_f64(),
        chain_wire as f64 / incremental.max(1) as f64,
        chain_apply.1.as_secs_f64() / yrs_each_apply.1.as_secs_f64(),
    );
}
