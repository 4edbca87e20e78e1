//! The work of each scenario, done by each peer the way its own documentation recommends.
//! Every function builds its inputs first (untimed), then measures one exchange between two
//! replicas in this process and returns what it cost.

use std::sync::Arc;
use std::time::Instant;

use chum_benches::blob_chunk as chunk;
use chum_benches::process::cpu_seconds;
use chum_benches::reconciliation::{Holds, Whole, chum_whole_run, journal_config};
use chum_crdt::{InstanceId, Resolver, Timestamp, Version};
use chum_object::recipe::Strategy;
use chum_object::{Cid, Codec, Map, Object, Value, dagjson};
use chum_sync::memory::MemorySet;
use chum_sync::{Config, Role};

use crate::Measure;

/// Record `i` of every scenario: about 100 bytes, a chat message as JSON text.
pub fn record(i: u64) -> String {
    format!(
        r#"{{"$type":"Message","text":"{}","status":"delivered","needsAI":false}}"#,
        text(i)
    )
}

/// 40 pseudo-random lowercase letters and spaces for record `i` (xorshift): records that do
/// not compress into each other, as real messages do not.
fn text(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..40)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 27 {
                26 => ' ',
                letter => char::from(b'a' + letter as u8),
            }
        })
        .collect()
}

/// Record `i` as a chum object (its DAG-CBOR is about 94 bytes).
pub fn object(i: u64) -> (Cid, Vec<u8>) {
    let value = dagjson::from_str(&record(i)).unwrap_or_else(|e| panic!("{e}"));
    let object = Object::from_value(&value).unwrap_or_else(|e| panic!("{e}"));
    (object.cid().clone(), object.into_bytes())
}

fn key(i: u64) -> String {
    format!("{i:08}")
}

fn set_of(objects: impl IntoIterator<Item = (Cid, Vec<u8>)>) -> MemorySet {
    let mut set = MemorySet::new();
    for (cid, bytes) in objects {
        set.insert(cid, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    set
}

/// A measure of a two-sided exchange run on this thread: wall, CPU and the work of each side.
fn timed<T>(run: impl FnOnce() -> T) -> (T, f64, f64) {
    chum_benches::process::reset_peak_rss();
    let cpu = cpu_seconds();
    let start = Instant::now();
    let out = run();
    (out, start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

/// A measure from a chum engine exchange where side `source` of the run (0 = initiator) is
/// the replica that holds the data.
fn from_whole(whole: &Whole, wall: f64, cpu: f64, source: usize) -> Measure {
    let other = 1 - source;
    Measure {
        wall,
        cpu,
        sides: [
            whole.busy[source].as_secs_f64(),
            whole.busy[other].as_secs_f64(),
        ],
        bytes: [whole.sent[source] as u64, whole.sent[other] as u64],
        meta_bytes: whole.meta as f64,
        round_trips: whole.all_round_trips as f64,
        ..Measure::default()
    }
}

/// A measure of one exchange of a version vector for an update (yrs, Loro): the vector is
/// the metadata, one round trip.
fn one_round(bytes: [u64; 2], sides: [f64; 2], wall: f64, cpu: f64) -> Measure {
    Measure {
        wall,
        cpu,
        sides,
        bytes,
        meta_bytes: bytes[1] as f64,
        round_trips: 1.0,
        ..Measure::default()
    }
}

/// `step` from each source to its target, the bytes and each side's seconds added up.
fn each_pair<D>(
    sources: &[D],
    targets: &[D],
    step: impl Fn(&D, &D) -> ([u64; 2], [f64; 2]),
) -> ([u64; 2], [f64; 2]) {
    let (mut bytes, mut sides) = ([0u64; 2], [0f64; 2]);
    for (source, target) in sources.iter().zip(targets) {
        let (b, s) = step(source, target);
        bytes = [bytes[0] + b[0], bytes[1] + b[1]];
        sides = [sides[0] + s[0], sides[1] + s[1]];
    }
    (bytes, sides)
}

// ---------------------------------------------------------------------------------------------
// 1. Sync from empty
// ---------------------------------------------------------------------------------------------

/// chum's sans-IO engine: two sessions over in-memory sets, frames passed in lockstep.
pub fn empty_chum_engine(n: u64) -> Measure {
    let source = set_of((0..n).map(object));
    let ((whole, sets), wall, cpu) = timed(|| {
        chum_whole_run(
            Config::new(Role::Initiator),
            MemorySet::new(),
            Config::new(Role::Responder),
            source,
        )
    });
    assert_eq!(sets[0].len() as u64, n, "everything arrived");
    std::mem::forget(sets);
    from_whole(&whole, wall, cpu, 1)
}

/// chum's node path: two `chum_net::Node`s on a 2-thread runtime joined by an in-memory pipe,
/// over `MemoryStore`s (`disk`: redb files), the receiver checking every object against the
/// seed's recipes; `encrypted`: two paired instances of one person in Noise sessions.
pub fn empty_chum_node(n: u64, disk: bool, encrypted: bool) -> Measure {
    use chum_access::Identity;
    use chum_net::{Node, SessionOptions, memory_pair};
    use chum_store::{MemoryStore, Store};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("chum-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let measure = runtime.block_on(async {
        let store = |name: &str| -> Arc<dyn Store> {
            if disk {
                Arc::new(
                    chum_store_redb::RedbStore::open(dir.join(name))
                        .unwrap_or_else(|e| panic!("{e}")),
                )
            } else {
                Arc::new(MemoryStore::new())
            }
        };
        let (source, target) = (store("source.redb"), store("target.redb"));
        let (mut sender, mut receiver) = (
            Node::new(Arc::clone(&source)),
            Node::new(Arc::clone(&target)),
        );
        if encrypted {
            let person = Identity::new_person(1).unwrap_or_else(|e| panic!("{e}"));
            person
                .save(&*source, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let key = chum_access::keys::generate_key().unwrap_or_else(|e| panic!("{e}"));
            let certificate = person
                .certify(chum_access::InstanceId(key.verifying_key().to_bytes()), 1)
                .unwrap_or_else(|e| panic!("{e}"));
            let joined = Identity::joined(key, certificate).unwrap_or_else(|e| panic!("{e}"));
            joined
                .save(&*target, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            sender = sender.with_identity(person);
            receiver = receiver.with_identity(joined);
        }
        let receiver = receiver.with_recipes(chum_crdt::preset::seed());
        let mut i = 0;
        while i < n {
            let end = (i + 10_000).min(n);
            let batch: Vec<(Cid, Vec<u8>)> = (i..end).map(object).collect();
            source
                .put_many(&batch)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            i = end;
        }
        let held_before = target.count().await.unwrap_or(0);
        let sender = Arc::new(sender);
        let (left, right) = memory_pair(64);
        chum_benches::process::reset_peak_rss();
        let cpu = cpu_seconds();
        let start = Instant::now();
        let serving = {
            let sender = Arc::clone(&sender);
            tokio::spawn(async move {
                sender
                    .run(Role::Responder, right, SessionOptions::default())
                    .await
            })
        };
        let report = receiver
            .run(
                Role::Initiator,
                left,
                SessionOptions {
                    close_when_synced: true,
                },
            )
            .await;
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        assert!(report.synced, "{report:?}");
        assert!(
            target.count().await.unwrap_or(0) >= held_before + n,
            "everything arrived"
        );
        let served = serving.await.unwrap_or_else(|e| panic!("{e}"));
        std::mem::forget(source);
        std::mem::forget(target);
        Measure {
            wall,
            cpu,
            bytes: [served.bytes_out, report.bytes_out],
            ..Measure::default()
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    measure
}

/// The records in a yrs document: a map from each record's number to its JSON text, in
/// transactions of 4,096.
fn yrs_doc(range: std::ops::Range<u64>, doc: yrs::Doc) -> yrs::Doc {
    use yrs::{Map as _, Transact};
    let map = doc.get_or_insert_map("records");
    let mut i = range.start;
    while i < range.end {
        let mut txn = doc.transact_mut();
        for j in i..(i + 4_096).min(range.end) {
            map.insert(&mut txn, key(j), record(j));
        }
        i = (i + 4_096).min(range.end);
    }
    doc
}

/// One yrs sync step as its docs recommend: `to` sends its state vector, `from` answers with
/// the update `to` lacks, `to` applies it. Returns the bytes (state vector, update) and the
/// seconds each side worked (from, to).
fn yrs_step(from: &yrs::Doc, to: &yrs::Doc) -> ([u64; 2], [f64; 2]) {
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{ReadTxn, StateVector, Transact, Update};
    let start = Instant::now();
    let vector = to.transact().state_vector().encode_v1();
    let mut to_busy = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let vector_in = StateVector::decode_v1(&vector).unwrap_or_else(|e| panic!("{e}"));
    let update = from.transact().encode_state_as_update_v1(&vector_in);
    let from_busy = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let decoded = Update::decode_v1(&update).unwrap_or_else(|e| panic!("{e}"));
    to.transact_mut()
        .apply_update(decoded)
        .unwrap_or_else(|e| panic!("{e}"));
    to_busy += start.elapsed().as_secs_f64();
    (
        [update.len() as u64, vector.len() as u64],
        [from_busy, to_busy],
    )
}

fn yrs_len(doc: &yrs::Doc) -> u64 {
    use yrs::{Map as _, Transact};
    u64::from(doc.get_or_insert_map("records").len(&doc.transact()))
}

/// yrs: the empty peer sends its state vector, the source its state as one update.
pub fn empty_yrs(n: u64) -> Measure {
    let source = yrs_doc(0..n, yrs::Doc::with_client_id(1));
    let target = yrs::Doc::with_client_id(2);
    let ((bytes, sides), wall, cpu) = timed(|| yrs_step(&source, &target));
    assert_eq!(yrs_len(&target), n, "everything arrived");
    std::mem::forget((source, target));
    one_round(bytes, sides, wall, cpu)
}

/// The records in a Loro document: a map from each record's number to its JSON text, one
/// commit per 4,096.
fn loro_doc(range: std::ops::Range<u64>, doc: loro::LoroDoc) -> loro::LoroDoc {
    let map = doc.get_map("records");
    let mut i = range.start;
    while i < range.end {
        for j in i..(i + 4_096).min(range.end) {
            map.insert(&key(j), record(j))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        doc.commit();
        i = (i + 4_096).min(range.end);
    }
    doc
}

fn loro_peer(id: u64) -> loro::LoroDoc {
    let doc = loro::LoroDoc::new();
    doc.set_peer_id(id).unwrap_or_else(|e| panic!("{e}"));
    doc
}

/// One Loro sync step as its docs recommend: `to` sends its version vector, `from` exports
/// the updates since it (a snapshot to an empty peer), `to` imports them. Bytes (vector, updates) and each side's seconds.
fn loro_step(from: &loro::LoroDoc, to: &loro::LoroDoc) -> ([u64; 2], [f64; 2]) {
    let start = Instant::now();
    let vector = to.oplog_vv().encode();
    let mut to_busy = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let vector_in = loro::VersionVector::decode(&vector).unwrap_or_else(|e| panic!("{e}"));
    // Loro's docs: a new peer imports a snapshot faster than the updates.
    let mode = if vector_in.is_empty() {
        loro::ExportMode::Snapshot
    } else {
        loro::ExportMode::updates(&vector_in)
    };
    let updates = from.export(mode).unwrap_or_else(|e| panic!("{e}"));
    let from_busy = start.elapsed().as_secs_f64();
    let start = Instant::now();
    to.import(&updates).unwrap_or_else(|e| panic!("{e}"));
    // Loro loads an imported snapshot lazily: reading the map makes it do the work here.
    std::hint::black_box(to.get_map("records").len());
    to_busy += start.elapsed().as_secs_f64();
    (
        [updates.len() as u64, vector.len() as u64],
        [from_busy, to_busy],
    )
}

fn loro_len(doc: &loro::LoroDoc) -> u64 {
    doc.get_map("records").len() as u64
}

/// Loro: the empty peer sends its version vector, the source exports the updates since it.
pub fn empty_loro(n: u64) -> Measure {
    let source = loro_doc(0..n, loro_peer(1));
    let target = loro_peer(2);
    let ((bytes, sides), wall, cpu) = timed(|| loro_step(&source, &target));
    assert_eq!(loro_len(&target), n, "everything arrived");
    std::mem::forget((source, target));
    one_round(bytes, sides, wall, cpu)
}

/// The records in an automerge document: a map at the root from each record's number to its
/// JSON text, one commit per 4,096.
fn automerge_doc(
    range: std::ops::Range<u64>,
    mut doc: automerge::AutoCommit,
) -> automerge::AutoCommit {
    use automerge::transaction::Transactable;
    let mut i = range.start;
    while i < range.end {
        for j in i..(i + 4_096).min(range.end) {
            doc.put(automerge::ROOT, key(j), record(j))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        doc.commit();
        i = (i + 4_096).min(range.end);
    }
    doc
}

fn automerge_peer(id: u8) -> automerge::AutoCommit {
    automerge::AutoCommit::new().with_actor(automerge::ActorId::from([id; 16].as_slice()))
}

/// automerge's sync protocol between two documents, each with a fresh sync state, until
/// neither has a message: bytes each sent, flights, seconds each worked.
fn automerge_sync(
    a: &mut automerge::AutoCommit,
    b: &mut automerge::AutoCommit,
) -> ([u64; 2], usize, [f64; 2]) {
    use automerge::sync::{Message, State, SyncDoc};
    let (mut a_state, mut b_state) = (State::new(), State::new());
    let (mut bytes, mut flights, mut busy) = ([0u64; 2], 0, [0f64; 2]);
    loop {
        let mut moved = false;
        for side in 0..2 {
            let (from, from_state, to, to_state) = if side == 0 {
                (&mut *a, &mut a_state, &mut *b, &mut b_state)
            } else {
                (&mut *b, &mut b_state, &mut *a, &mut a_state)
            };
            let start = Instant::now();
            let message = from.sync().generate_sync_message(from_state);
            busy[side] += start.elapsed().as_secs_f64();
            if let Some(message) = message {
                let encoded = message.encode();
                bytes[side] += encoded.len() as u64;
                flights += 1;
                moved = true;
                let start = Instant::now();
                let decoded = Message::decode(&encoded).unwrap_or_else(|e| panic!("{e}"));
                to.sync()
                    .receive_sync_message(to_state, decoded)
                    .unwrap_or_else(|e| panic!("{e}"));
                busy[1 - side] += start.elapsed().as_secs_f64();
            }
        }
        if !moved {
            break;
        }
    }
    (bytes, flights, busy)
}

fn automerge_len(doc: &automerge::AutoCommit) -> u64 {
    use automerge::ReadDoc;
    doc.length(automerge::ROOT) as u64
}

/// automerge: its sync protocol from fresh sync states (the source's side first).
pub fn empty_automerge(n: u64) -> Measure {
    let mut source = automerge_doc(0..n, automerge_peer(1));
    let mut target = automerge_peer(2);
    let ((bytes, flights, sides), wall, cpu) = timed(|| automerge_sync(&mut source, &mut target));
    assert_eq!(automerge_len(&target), n, "everything arrived");
    std::mem::forget((source, target));
    Measure {
        wall,
        cpu,
        sides,
        bytes,
        round_trips: flights.div_ceil(2) as f64,
        ..Measure::default()
    }
}

/// The floor of a sync from empty in memory: the records' raw bytes, and BLAKE3 over them on
/// one core (every content-addressed peer hashes what it receives at least once).
pub fn empty_floor(n: u64) -> Measure {
    let records: Vec<String> = (0..n).map(record).collect();
    let raw: u64 = records.iter().map(|r| r.len() as u64).sum();
    let (_, wall, cpu) = timed(|| {
        for r in &records {
            std::hint::black_box(blake3::hash(r.as_bytes()));
        }
    });
    Measure {
        wall,
        cpu,
        bytes: [raw, 0],
        note: "records' JSON bytes; BLAKE3 of each, one core".into(),
        ..Measure::default()
    }
}

/// The floor of a sync into an on-disk store: the same objects inserted into an empty redb
/// table in batches of 10,000, each sorted by CID, one durable commit each.
pub fn empty_disk_floor(n: u64) -> Measure {
    const TABLE: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("objects");
    let objects: Vec<(Cid, Vec<u8>)> = (0..n).map(object).collect();
    let raw: u64 = objects.iter().map(|(_, b)| b.len() as u64).sum();
    let path = std::env::temp_dir().join(format!("chum-compare-raw-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let db = redb::Database::create(&path).unwrap_or_else(|e| panic!("{e}"));
    let (_, wall, cpu) = timed(|| {
        for batch in objects.chunks(10_000) {
            let mut batch: Vec<&(Cid, Vec<u8>)> = batch.iter().collect();
            batch.sort_by(|a, b| a.0.cmp(&b.0));
            let txn = db.begin_write().unwrap_or_else(|e| panic!("{e}"));
            {
                let mut table = txn.open_table(TABLE).unwrap_or_else(|e| panic!("{e}"));
                for (cid, bytes) in batch {
                    table
                        .insert(cid.as_bytes(), bytes.as_slice())
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            txn.commit().unwrap_or_else(|e| panic!("{e}"));
        }
    });
    drop(db);
    let _ = std::fs::remove_file(&path);
    Measure {
        wall,
        cpu,
        bytes: [raw, 0],
        note: "raw redb: batches sorted by CID, one durable commit each".into(),
        ..Measure::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Reconciliation of two large replicas differing by d
// ---------------------------------------------------------------------------------------------

/// chum between replicas of `n` records where the responder has `d` the initiator lacks;
/// with `journal`, both hold the other's journal position from when they last matched.
pub fn reconcile_chum(n: u64, d: u64, journal: bool) -> Measure {
    let shared = n - d;
    let a = set_of((0..shared).map(object));
    let b = set_of((0..shared).map(object));
    let holds: Option<(Holds, Holds)> = journal.then(|| {
        (
            vec![(b.journal_id(), b.journal_head())],
            vec![(a.journal_id(), a.journal_head())],
        )
    });
    let mut b = b;
    for i in shared..n {
        let (cid, bytes) = object(i);
        b.insert(cid, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    let (a_holds, b_holds) = match holds {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let a_config = journal_config(Role::Initiator, &a, a_holds);
    let b_config = journal_config(Role::Responder, &b, b_holds);
    let ((whole, sets), wall, cpu) = timed(|| chum_whole_run(a_config, a, b_config, b));
    assert_eq!(sets[0].len() as u64, n, "the difference arrived");
    std::mem::forget(sets);
    from_whole(&whole, wall, cpu, 1)
}

/// negentropy 0.5 over the records' 32-byte ids (ids only: sending the `d` records is not
/// part of it).
pub fn reconcile_negentropy(n: u64, d: u64) -> Measure {
    use chum_benches::reconciliation::{id_bytes, negentropy_exchange, negentropy_storage};
    let ids: Vec<[u8; 32]> = (0..n).map(|i| id_bytes(&object(i).0)).collect();
    let a = negentropy_storage(&ids[..(n - d) as usize]).unwrap_or_else(|e| panic!("{e}"));
    let b = negentropy_storage(&ids).unwrap_or_else(|e| panic!("{e}"));
    let (row, wall, cpu) = timed(|| negentropy_exchange(&a, &b));
    let row = row.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(row.found as u64, d, "the difference was found");
    Measure {
        wall,
        cpu,
        bytes: [row.bytes as u64, 0],
        meta_bytes: row.bytes as f64,
        round_trips: row.round_trips as f64,
        note: "ids only; bytes both ways in the first column".into(),
        ..Measure::default()
    }
}

/// yrs: replica B had A's first `n - d` records (from A's update); A then wrote `d` more.
pub fn reconcile_yrs(n: u64, d: u64) -> Measure {
    let a = yrs_doc(0..n - d, yrs::Doc::with_client_id(1));
    let b = yrs::Doc::with_client_id(2);
    yrs_step(&a, &b);
    let a = yrs_doc(n - d..n, a);
    let ((bytes, sides), wall, cpu) = timed(|| yrs_step(&a, &b));
    assert_eq!(yrs_len(&b), n, "the difference arrived");
    std::mem::forget((a, b));
    one_round(bytes, sides, wall, cpu)
}

/// Loro, the same way with version vectors.
pub fn reconcile_loro(n: u64, d: u64) -> Measure {
    let a = loro_doc(0..n - d, loro_peer(1));
    let b = loro_peer(2);
    loro_step(&a, &b);
    let a = loro_doc(n - d..n, a);
    let ((bytes, sides), wall, cpu) = timed(|| loro_step(&a, &b));
    assert_eq!(loro_len(&b), n, "the difference arrived");
    std::mem::forget((a, b));
    one_round(bytes, sides, wall, cpu)
}

/// automerge: B is a copy of A's first `n - d` records; A then wrote `d` more; the sync
/// protocol from fresh sync states.
pub fn reconcile_automerge(n: u64, d: u64) -> Measure {
    let mut a = automerge_doc(0..n - d, automerge_peer(1));
    let mut b = automerge::AutoCommit::load(&a.save())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_actor(automerge::ActorId::from([2u8; 16].as_slice()));
    let mut a = automerge_doc(n - d..n, std::mem::replace(&mut a, automerge_peer(9)));
    let ((bytes, flights, sides), wall, cpu) = timed(|| automerge_sync(&mut b, &mut a));
    assert_eq!(automerge_len(&b), n, "the difference arrived");
    std::mem::forget((a, b));
    Measure {
        wall,
        cpu,
        sides: [sides[1], sides[0]],
        bytes: [bytes[1], bytes[0]],
        round_trips: flights.div_ceil(2) as f64,
        ..Measure::default()
    }
}

/// The floor of a reconciliation: the `d` differing records' raw bytes and their 32-byte ids.
pub fn reconcile_floor(n: u64, d: u64) -> Measure {
    let raw: u64 = (n - d..n).map(|i| record(i).len() as u64).sum();
    Measure {
        bytes: [raw, 0],
        meta_bytes: (32 * d) as f64,
        note: "the d records' JSON bytes; their 32-byte ids as the metadata floor".into(),
        ..Measure::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrent edits of the same fields, then a merge
// ---------------------------------------------------------------------------------------------

fn concurrent_version(of: &Cid, parent: Option<&Cid>, side: u8, i: u64) -> (Cid, Vec<u8>) {
    let mut body = Map::new();
    body.insert(
        "status",
        format!("{} {i}", ["base", "a", "b"][usize::from(side)]),
    );
    let version = Version::new(
        of.clone(),
        parent.into_iter().cloned().collect(),
        Timestamp::new(1_700_000_000_000 + u64::from(side), 0),
        InstanceId([side + 1; 32]),
        body,
    );
    let object = version.to_object().unwrap_or_else(|e| panic!("{e}"));
    (object.cid().clone(), object.into_bytes())
}

/// The merged `status` of every record a replica holds: each record's versions decoded from
/// the set's bytes (verified when they were stored, as a store's are) and resolved field by
/// field.
fn chum_merge(set: &MemorySet, records: &[(Cid, Vec<Cid>)]) -> Vec<Value> {
    records
        .iter()
        .map(|(_, versions)| {
            let mut resolver = Resolver::new(Strategy::FieldMerge, Default::default());
            for cid in versions {
                let bytes = set.get(cid).unwrap_or_else(|| panic!("holds {cid}"));
                let value = chum_object::dagcbor::decode(bytes).unwrap_or_else(|e| panic!("{e}"));
                let version = Version::from_value(&value).unwrap_or_else(|e| panic!("{e}"));
                resolver
                    .add(cid, &version)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            resolver
                .state()
                .fields
                .get("status")
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect()
}

/// chum: `n` records (field-merge versions over a shared base version each, both replicas
/// synced at the base and holding each other's journal position); each replica writes a
/// version of every record changing the same field; they sync (journal fast path) and each
/// resolves every record.
pub fn concurrent_chum(n: u64) -> Measure {
    let mut a = MemorySet::new();
    let mut records = Vec::with_capacity(n as usize);
    for i in 0..n {
        let of = Cid::hash(Codec::DagCbor, format!("record {i}").as_bytes());
        let (base, bytes) = concurrent_version(&of, None, 0, i);
        a.insert(base.clone(), bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        records.push((of, vec![base]));
    }
    let mut b = set_of(a.cids().map(|cid| {
        (
            cid.clone(),
            a.get(cid).map(<[u8]>::to_vec).unwrap_or_default(),
        )
    }));
    let a_holds: Holds = vec![(b.journal_id(), b.journal_head())];
    let b_holds: Holds = vec![(a.journal_id(), a.journal_head())];
    for (i, (of, versions)) in records.iter_mut().enumerate() {
        let base = versions[0].clone();
        for (side, set) in [(1u8, &mut a), (2u8, &mut b)] {
            let (cid, bytes) = concurrent_version(of, Some(&base), side, i as u64);
            set.insert(cid.clone(), bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            versions.push(cid);
        }
    }
    let (a_config, b_config) = (
        journal_config(Role::Initiator, &a, Some(a_holds)),
        journal_config(Role::Responder, &b, Some(b_holds)),
    );
    let ((whole, merged, merge_secs), wall, cpu) = timed(|| {
        let (whole, [a, b]) = chum_whole_run(a_config, a, b_config, b);
        let start = Instant::now();
        let merged_a = chum_merge(&a, &records);
        let a_secs = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let merged_b = chum_merge(&b, &records);
        let b_secs = start.elapsed().as_secs_f64();
        std::mem::forget((a, b));
        (whole, [merged_a, merged_b], [a_secs, b_secs])
    });
    assert_eq!(merged[0], merged[1], "both replicas merged alike");
    assert_eq!(merged[0].len() as u64, n);
    for (i, value) in merged[0].iter().enumerate() {
        let one_side = [format!("a {i}"), format!("b {i}")]
            .iter()
            .any(|edit| value.as_text() == Some(edit.as_str()));
        assert!(
            one_side,
            "record {i} merged to one side's edit, not {value:?}"
        );
    }
    let mut measure = from_whole(&whole, wall, cpu, 0);
    measure.sides[0] += merge_secs[0];
    measure.sides[1] += merge_secs[1];
    measure
}

/// yrs: one map of `n` keys both docs share; each sets every key in one transaction; then
/// each sends its state vector and applies the other's update.
pub fn concurrent_yrs(n: u64) -> Measure {
    use yrs::types::ToJson as _;
    use yrs::{Map as _, Transact};
    let a = yrs_doc(0..n, yrs::Doc::with_client_id(1));
    let b = yrs::Doc::with_client_id(2);
    yrs_step(&a, &b);
    for (doc, side) in [(&a, "a"), (&b, "b")] {
        let map = doc.get_or_insert_map("records");
        let mut txn = doc.transact_mut();
        for i in 0..n {
            map.insert(&mut txn, key(i), format!("{side} {i}"));
        }
    }
    let ((forward, back), wall, cpu) = timed(|| (yrs_step(&a, &b), yrs_step(&b, &a)));
    let same = a.get_or_insert_map("records").to_json(&a.transact())
        == b.get_or_insert_map("records").to_json(&b.transact());
    assert!(same, "both replicas merged alike");
    std::mem::forget((a, b));
    Measure {
        wall,
        cpu,
        sides: [forward.1[0] + back.1[1], forward.1[1] + back.1[0]],
        bytes: [forward.0[0] + back.0[1], forward.0[1] + back.0[0]],
        meta_bytes: (forward.0[1] + back.0[1]) as f64,
        round_trips: 1.0,
        ..Measure::default()
    }
}

/// Loro: the same with version vectors and `export`/`import`.
pub fn concurrent_loro(n: u64) -> Measure {
    let a = loro_doc(0..n, loro_peer(1));
    let b = loro_peer(2);
    loro_step(&a, &b);
    for (doc, side) in [(&a, "a"), (&b, "b")] {
        let map = doc.get_map("records");
        for i in 0..n {
            map.insert(&key(i), format!("{side} {i}"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        doc.commit();
    }
    let ((forward, back), wall, cpu) = timed(|| (loro_step(&a, &b), loro_step(&b, &a)));
    assert_eq!(
        a.get_map("records").get_value(),
        b.get_map("records").get_value(),
        "both replicas merged alike"
    );
    std::mem::forget((a, b));
    Measure {
        wall,
        cpu,
        sides: [forward.1[0] + back.1[1], forward.1[1] + back.1[0]],
        bytes: [forward.0[0] + back.0[1], forward.0[1] + back.0[0]],
        meta_bytes: (forward.0[1] + back.0[1]) as f64,
        round_trips: 1.0,
        ..Measure::default()
    }
}

/// automerge: the same keys at the root of a shared document; the sync protocol.
pub fn concurrent_automerge(n: u64) -> Measure {
    use automerge::transaction::Transactable;
    let mut a = automerge_doc(0..n, automerge_peer(1));
    let mut b = automerge::AutoCommit::load(&a.save())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_actor(automerge::ActorId::from([2u8; 16].as_slice()));
    for (doc, side) in [(&mut a, "a"), (&mut b, "b")] {
        for i in 0..n {
            doc.put(automerge::ROOT, key(i), format!("{side} {i}"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        doc.commit();
    }
    let ((bytes, flights, sides), wall, cpu) = timed(|| automerge_sync(&mut a, &mut b));
    assert_eq!(a.get_heads(), b.get_heads(), "both replicas merged alike");
    {
        use automerge::ReadDoc;
        for i in 0..n {
            let value = |doc: &automerge::AutoCommit| {
                doc.get(automerge::ROOT, key(i).as_str())
                    .ok()
                    .flatten()
                    .map(|(value, _)| value.to_string())
            };
            assert_eq!(value(&a), value(&b), "both replicas merged alike");
        }
    }
    std::mem::forget((a, b));
    Measure {
        wall,
        cpu,
        sides,
        bytes,
        round_trips: flights.div_ceil(2) as f64,
        ..Measure::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Many small documents
// ---------------------------------------------------------------------------------------------

const DOC_FIELDS: u64 = 10;

fn doc_field(field: u64, doc: u64) -> (String, String) {
    (
        format!("field{field}"),
        format!("value {field} of document {doc}"),
    )
}

/// chum: each document is what the Instance API writes, an ID object and a version carrying
/// its ten fields; all of them synced into an empty replica in one session.
pub fn docs_chum(docs: u64) -> Measure {
    let mut source = MemorySet::new();
    for doc in 0..docs {
        let id = dagjson::from_str(&format!(r#"{{"$type":"Note","id":"note {doc}"}}"#))
            .unwrap_or_else(|e| panic!("{e}"));
        let id = Object::from_value(&id).unwrap_or_else(|e| panic!("{e}"));
        let mut body = Map::new();
        for field in 0..DOC_FIELDS {
            let (name, value) = doc_field(field, doc);
            body.insert(name, value);
        }
        let version = Version::new(
            id.cid().clone(),
            Vec::new(),
            Timestamp::new(1_700_000_000_000 + doc, 0),
            InstanceId([1; 32]),
            body,
        );
        let version = version.to_object().unwrap_or_else(|e| panic!("{e}"));
        for object in [id, version] {
            source
                .insert(object.cid().clone(), object.into_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let ((whole, sets), wall, cpu) = timed(|| {
        chum_whole_run(
            Config::new(Role::Initiator),
            MemorySet::new(),
            Config::new(Role::Responder),
            source,
        )
    });
    assert_eq!(sets[0].len() as u64, 2 * docs, "everything arrived");
    std::mem::forget(sets);
    from_whole(&whole, wall, cpu, 1)
}

/// yrs: one `Doc` per document (a map of ten fields); each synced with its state vector and
/// update, all in one pass (one round trip, pipelined).
pub fn docs_yrs(docs: u64) -> Measure {
    use yrs::{Map as _, Transact};
    let sources: Vec<yrs::Doc> = (0..docs)
        .map(|doc| {
            let d = yrs::Doc::with_client_id(1);
            let map = d.get_or_insert_map("records");
            let mut txn = d.transact_mut();
            for field in 0..DOC_FIELDS {
                let (name, value) = doc_field(field, doc);
                map.insert(&mut txn, name, value);
            }
            drop(txn);
            d
        })
        .collect();
    let targets: Vec<yrs::Doc> = (0..docs).map(|_| yrs::Doc::with_client_id(2)).collect();
    let ((bytes, sides), wall, cpu) = timed(|| each_pair(&sources, &targets, yrs_step));
    assert!(targets.iter().all(|t| yrs_len(t) == DOC_FIELDS));
    std::mem::forget((sources, targets));
    one_round(bytes, sides, wall, cpu)
}

/// Loro: one `LoroDoc` per document, synced with version vectors, all in one pass.
pub fn docs_loro(docs: u64) -> Measure {
    let sources: Vec<loro::LoroDoc> = (0..docs)
        .map(|doc| {
            let d = loro_peer(1);
            let map = d.get_map("records");
            for field in 0..DOC_FIELDS {
                let (name, value) = doc_field(field, doc);
                map.insert(&name, value).unwrap_or_else(|e| panic!("{e}"));
            }
            d.commit();
            d
        })
        .collect();
    let targets: Vec<loro::LoroDoc> = (0..docs).map(|_| loro_peer(2)).collect();
    let ((bytes, sides), wall, cpu) = timed(|| each_pair(&sources, &targets, loro_step));
    assert!(targets.iter().all(|t| loro_len(t) == DOC_FIELDS));
    std::mem::forget((sources, targets));
    one_round(bytes, sides, wall, cpu)
}

/// automerge: one document per document, each through the sync protocol (documents in
/// parallel, so round trips are the most any one took).
pub fn docs_automerge(docs: u64) -> Measure {
    use automerge::transaction::Transactable;
    let mut sources: Vec<automerge::AutoCommit> = (0..docs)
        .map(|doc| {
            let mut d = automerge_peer(1);
            for field in 0..DOC_FIELDS {
                let (name, value) = doc_field(field, doc);
                d.put(automerge::ROOT, name, value)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            d.commit();
            d
        })
        .collect();
    let mut targets: Vec<automerge::AutoCommit> = (0..docs).map(|_| automerge_peer(2)).collect();
    let ((bytes, flights, sides), wall, cpu) = timed(|| {
        let (mut bytes, mut most, mut sides) = ([0u64; 2], 0, [0f64; 2]);
        for (source, target) in sources.iter_mut().zip(targets.iter_mut()) {
            let (b, flights, s) = automerge_sync(source, target);
            bytes = [bytes[0] + b[0], bytes[1] + b[1]];
            sides = [sides[0] + s[0], sides[1] + s[1]];
            most = most.max(flights);
        }
        (bytes, most, sides)
    });
    assert!(targets.iter().all(|t| automerge_len(t) == DOC_FIELDS));
    std::mem::forget((sources, targets));
    Measure {
        wall,
        cpu,
        sides,
        bytes,
        round_trips: flights.div_ceil(2) as f64,
        ..Measure::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Bulk bytes, encrypted, over loopback TCP
// ---------------------------------------------------------------------------------------------

/// chum: `mib` chunks of 1 MiB from one node to an empty one over TCP on 127.0.0.1 — two
/// paired instances in Noise sessions (`encrypted`), or plaintext. The receiver verifies
/// every chunk against its CID.
pub fn bulk_chum(mib: u64, encrypted: bool) -> Measure {
    use chum_access::Identity;
    use chum_net::transport::tcp;
    use chum_net::{Node, SessionOptions};
    use chum_store::{MemoryStore, Store};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let source: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for i in 0..mib {
            source
                .put_many(&[chunk(i)])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let target: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut sender = Node::new(Arc::clone(&source));
        let mut receiver = Node::new(Arc::clone(&target));
        if encrypted {
            let person = Identity::new_person(1).unwrap_or_else(|e| panic!("{e}"));
            let key = chum_access::keys::generate_key().unwrap_or_else(|e| panic!("{e}"));
            let certificate = person
                .certify(chum_access::InstanceId(key.verifying_key().to_bytes()), 1)
                .unwrap_or_else(|e| panic!("{e}"));
            let laptop = Identity::joined(key, certificate).unwrap_or_else(|e| panic!("{e}"));
            sender = sender.with_identity(person);
            receiver = receiver.with_identity(laptop);
        }
        let sender = Arc::new(sender);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string();
        let serving = Arc::clone(&sender);
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let connection = tcp::connection(stream, chum_sync::Limits::default().max_frame)
                .unwrap_or_else(|e| panic!("{e}"));
            serving
                .run(Role::Responder, connection, SessionOptions::default())
                .await
        });
        chum_benches::process::reset_peak_rss();
        let cpu = cpu_seconds();
        let start = Instant::now();
        let connection = tcp::connect(&address, chum_sync::Limits::default().max_frame)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let report = receiver
            .run(
                Role::Initiator,
                connection,
                SessionOptions {
                    close_when_synced: true,
                },
            )
            .await;
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        assert!(report.synced, "{report:?}");
        assert!(report.received >= mib, "{report:?}");
        for i in 0..mib {
            let (cid, _) = chunk(i);
            assert!(target.has(&cid).await.unwrap_or(false), "chunk {i} arrived");
        }
        let served = server.await.unwrap_or_else(|e| panic!("{e}"));
        Measure {
            wall,
            cpu,
            bytes: [served.bytes_out, report.bytes_out],
            ..Measure::default()
        }
    })
}

/// The floor of encrypted bulk transfer: sealing the bytes once with the sessions' AEAD
/// (ring's ChaCha20-Poly1305, in place, 64 KiB records) and hashing them once with BLAKE3,
/// one core each, added.
pub fn bulk_floor(mib: u64) -> Measure {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).unwrap_or_else(|e| panic!("{e}")),
    );
    let mut data = chunk(0).1;
    let (_, wall, cpu) = timed(|| {
        let mut counter = 0u64;
        for _ in 0..mib {
            std::hint::black_box(blake3::hash(&data));
            for record in data.chunks_mut(64 << 10) {
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_le_bytes());
                counter += 1;
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        record,
                    )
                    .unwrap_or_else(|e| panic!("{e}"));
                let _ = std::hint::black_box(tag);
            }
        }
    });
    Measure {
        wall,
        cpu,
        bytes: [mib << 20, 0],
        note: "ChaCha20-Poly1305 seal + BLAKE3, one core each".into(),
        ..Measure::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 6. A dropped connection at 50 % of an initial sync, and a restart
// ---------------------------------------------------------------------------------------------

/// chum: the sync from empty is cut once the source has sent half of what a whole sync sends
/// (frames in flight are lost); the receiver keeps what it stored; a new session (sketches, no
/// shared journal) finishes. Bytes are both sessions'; the time is the second session's.
pub fn resume_chum(n: u64) -> Measure {
    use chum_benches::reconciliation::chum_cut_run;
    let source = set_of((0..n).map(object));
    let whole_bytes: usize = source
        .cids()
        .filter_map(|cid| source.get(cid).map(|b| b.len() + cid.as_bytes().len() + 4))
        .sum();
    let (first, [receiver, source]) = chum_cut_run(
        Config::new(Role::Initiator),
        MemorySet::new(),
        Config::new(Role::Responder),
        source,
        whole_bytes / 2,
    );
    let kept = receiver.len();
    let ((whole, sets), wall, cpu) = timed(|| {
        chum_whole_run(
            Config::new(Role::Initiator),
            receiver,
            Config::new(Role::Responder),
            source,
        )
    });
    assert_eq!(sets[0].len() as u64, n, "everything arrived");
    std::mem::forget(sets);
    let mut measure = from_whole(&whole, wall, cpu, 1);
    measure.bytes[0] += first[1] as u64;
    measure.bytes[1] += first[0] as u64;
    measure.note = format!("{kept} of {n} objects kept from the cut session");
    measure
}

/// yrs (and Loro below): the whole state travels as one update; a connection cut half way
/// through it leaves nothing the receiver can apply, so the restart sends it whole again.
pub fn resume_yrs(n: u64) -> Measure {
    let source = yrs_doc(0..n, yrs::Doc::with_client_id(1));
    let target = yrs::Doc::with_client_id(2);
    let ((bytes, sides), wall, cpu) = timed(|| yrs_step(&source, &target));
    // The first attempt sent half of the same update before the cut.
    let lost = bytes[0];
    assert_eq!(yrs_len(&target), n, "everything arrived");
    std::mem::forget((source, target));
    Measure {
        wall,
        cpu,
        sides,
        bytes: [bytes[0] + lost / 2, bytes[1] * 2],
        round_trips: 1.0,
        note: "one update: the half sent before the cut is lost".into(),
        ..Measure::default()
    }
}

/// Loro: as yrs — one `export` of the updates, lost whole if cut.
pub fn resume_loro(n: u64) -> Measure {
    let source = loro_doc(0..n, loro_peer(1));
    let target = loro_peer(2);
    let ((bytes, sides), wall, cpu) = timed(|| loro_step(&source, &target));
    // The first attempt sent half of the same export before the cut.
    let lost = bytes[0];
    assert_eq!(loro_len(&target), n, "everything arrived");
    std::mem::forget((source, target));
    Measure {
        wall,
        cpu,
        sides,
        bytes: [bytes[0] + lost / 2, bytes[1] * 2],
        round_trips: 1.0,
        note: "one export: the half sent before the cut is lost".into(),
        ..Measure::default()
    }
}

/// iroh-blobs (with the `iroh` feature): the same bytes as one blob, served from a `MemStore`
/// by one endpoint's router and fetched into another `MemStore` over a QUIC connection
/// between two endpoints on 127.0.0.1 (relays and address lookup off), verified by BLAKE3
/// streaming as it arrives. Bytes are the connection's UDP bytes each way.
#[cfg(feature = "iroh")]
pub fn bulk_iroh(mib: u64) -> Measure {
    use iroh::endpoint::{RelayMode, presets};
    use iroh::{Endpoint, protocol::Router};
    use iroh_blobs::{BlobsProtocol, store::mem::MemStore};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        async fn endpoint() -> Endpoint {
            Endpoint::builder(presets::Minimal)
                .relay_mode(RelayMode::Disabled)
                .bind_addr("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("{e}"))
                .bind()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
        let (provider, requester) = (endpoint().await, endpoint().await);
        let store = MemStore::new();
        let mut data = Vec::with_capacity((mib << 20) as usize);
        for i in 0..mib {
            data.extend_from_slice(&chunk(i).1);
        }
        let tag = store
            .add_bytes(data)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let router = Router::builder(provider.clone())
            .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
            .spawn();
        let target = MemStore::new();
        chum_benches::process::reset_peak_rss();
        let cpu = cpu_seconds();
        let start = Instant::now();
        let connection = requester
            .connect(provider.addr(), iroh_blobs::ALPN)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        target
            .remote()
            .fetch(connection.clone(), tag.hash)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let stats = connection.stats();
        let fetched = target
            .get_bytes(tag.hash)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fetched.len() as u64, mib << 20, "everything arrived");
        let _ = router.shutdown().await;
        Measure {
            wall,
            cpu,
            bytes: [stats.udp_rx.bytes, stats.udp_tx.bytes],
            note: "one blob of the same bytes; QUIC (TLS 1.3, AES-GCM or ChaCha20)".into(),
            ..Measure::default()
        }
    })
}
