//! Syncing N objects of about 100 bytes from empty, with the time and peak memory of each
//! scenario measured in its own process (so one's memory does not hide another's):
//!
//! - `memory`: two sans-IO sessions, each on its own thread with its own in-memory set,
//!   frames passed over channels;
//! - `tcp-redb`: two nodes over TCP on 127.0.0.1, each on its own redb file, the receiver
//!   checking every object against the seed's recipes;
//! - `raw-redb`: the baseline — the same objects inserted into an empty redb table in batches
//!   of the size a sync stores (one durable commit each), in the same kind of process.
//!
//! `cargo run --release -p chum-benches --bin sync_report [N]` (default 1,000,000) runs all three
//! and prints the table with the ratio to raw redb; `sync_report SCENARIO N` runs one.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chum_benches::process::{cpu_seconds, peak_rss_mb};
use chum_object::{Cid, Object, dagjson};
use chum_sync::memory::MemorySet;
use chum_sync::{Config, Event, Input, Output, Role, Session};

fn object(n: u64) -> (Cid, Vec<u8>) {
    // About 100 bytes of DAG-CBOR: a chat message as the seed's Message recipe has it.
    let json = format!(
        r#"{{"$type":"Message","text":"message number {n:>8} in a long conversation","status":"delivered","needsAI":false}}"#
    );
    let value = dagjson::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    let object = Object::from_value(&value).unwrap_or_else(|e| panic!("{e}"));
    (object.cid().clone(), object.bytes().to_vec())
}

/// One peer on its own thread: runs its session against its set until the session closes.
fn peer(
    role: Role,
    mut set: MemorySet,
    outgoing: std::sync::mpsc::Sender<Vec<u8>>,
    incoming: std::sync::mpsc::Receiver<Vec<u8>>,
) -> (Session, MemorySet) {
    let now = Duration::ZERO;
    let mut session = Session::new(Config::new(role), now);
    loop {
        while let Some(output) = session.poll_output() {
            match output {
                Output::Transmit(frame) => {
                    let _ = outgoing.send(frame);
                }
                Output::Request(id, request) => {
                    let (answer, _) = set.answer(request);
                    session.handle_input(now, Input::Answer(id, answer));
                }
                Output::Event(Event::Synced) if role == Role::Initiator => {
                    session.handle_input(now, Input::Close);
                }
                _ => {}
            }
        }
        if session.is_closed() {
            return (session, set);
        }
        match incoming.recv() {
            Ok(frame) => session.handle_input(now, Input::Frame(frame)),
            Err(_) => session.handle_input(now, Input::TransportClosed),
        }
    }
}

/// Two peers, each on its own thread with its own in-memory set, frames over channels.
/// CPU seconds this process has used (user + system), from /proc.
fn memory(n: u64) -> Duration {
    let mut source = MemorySet::new();
    for i in 0..n {
        let (cid, bytes) = object(i);
        source.insert(cid, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    eprintln!("set up; syncing");
    let (to_responder, from_initiator) = std::sync::mpsc::channel();
    let (to_initiator, from_responder) = std::sync::mpsc::channel();
    let start = Instant::now();
    let responder =
        std::thread::spawn(move || peer(Role::Responder, source, to_initiator, from_initiator));
    let (session, set) = peer(
        Role::Initiator,
        MemorySet::new(),
        to_responder,
        from_responder,
    );
    let elapsed = start.elapsed();
    assert!(session.is_synced(), "synced");
    assert_eq!(set.len() as u64, n, "everything arrived");
    // Freeing two million objects is not part of the sync.
    std::mem::forget(set);
    std::mem::forget(responder.join());
    elapsed
}

/// The node path in one process: two `chum_net::Node`s over `MemoryStore`s joined by an
/// in-memory transport, on a 2-thread tokio runtime — plaintext, or (`encrypted`) two paired
/// instances of one person in Noise sessions. With a `path`, the transport is a simulated
/// link instead (delay and bandwidth, see `chum_net::transport::simulated`). Returns the wall
/// time and the CPU seconds of the session — or, over a path, the floor: every byte that
/// crossed it at its bandwidth plus three round trips.
fn node_memory(
    n: u64,
    encrypted: bool,
    path: Option<chum_net::transport::simulated::Path>,
) -> (Duration, f64) {
    use chum_access::Identity;
    use chum_access::keys::generate_key;
    use chum_net::{Node, SessionOptions, memory_pair};
    use chum_store::{MemoryStore, Store};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let source: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let target: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (mut sender, mut receiver) = (
            Node::new(Arc::clone(&source)),
            Node::new(Arc::clone(&target)),
        );
        if encrypted {
            let person = Identity::new_person(now).unwrap_or_else(|e| panic!("{e}"));
            person
                .save(&*source, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let key = generate_key().unwrap_or_else(|e| panic!("{e}"));
            let certificate = person
                .certify(chum_access::InstanceId(key.verifying_key().to_bytes()), now)
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
        let mut batch = Vec::with_capacity(4_096);
        for i in 0..n {
            batch.push(object(i));
            if batch.len() == 4_096 || i + 1 == n {
                source
                    .put_many(&batch)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                batch.clear();
            }
        }
        let held_before = target.count().await.unwrap_or(0);
        eprintln!("set up; syncing");
        let sender = Arc::new(sender);
        let (left, right, counters) = match path {
            Some(path) => {
                let (left, right, counters) = chum_net::transport::simulated::pair(path);
                (left, right, Some(counters))
            }
            None => {
                let (left, right) = memory_pair(64);
                (left, right, None)
            }
        };
        let start = Instant::now();
        let cpu = cpu_seconds();
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
        let elapsed = start.elapsed();
        let cpu = cpu_seconds() - cpu;
        assert!(report.synced, "{report:?}");
        assert!(
            target.count().await.unwrap_or(0) >= held_before + n,
            "everything arrived"
        );
        let _ = serving.await;
        // Freeing two million objects is not part of the sync.
        std::mem::forget(source);
        std::mem::forget(target);
        match (path, counters) {
            (Some(path), Some(counters)) => {
                let bytes = counters
                    .iter()
                    .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                    .max()
                    .unwrap_or(0);
                let floor = bytes as f64 / path.bytes_per_second as f64
                    + 3.0 * 2.0 * path.one_way.as_secs_f64();
                eprintln!("{bytes} bytes the larger way");
                (elapsed, floor)
            }
            _ => (elapsed, cpu),
        }
    })
}

/// yrs syncing the same N records from empty, as its docs recommend: the source document
/// holds them (a map from each record's number to its JSON text, inserted in batches of
/// 4,096 per transaction, untimed); the sync is the source encoding its state as an update against the
/// empty peer's state vector and the peer decoding and applying it. Wall time of that.
fn yrs_sync(n: u64) -> Duration {
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, Map, ReadTxn, Transact, Update};
    let source = Doc::new();
    let messages = source.get_or_insert_map("messages");
    let mut i = 0;
    while i < n {
        let mut txn = source.transact_mut();
        for n in i..(i + 4_096).min(n) {
            // The same record as chum's object, as its JSON text under its number.
            let record = format!(
                r#"{{"$type":"Message","text":"message number {n:>8} in a long conversation","status":"delivered","needsAI":false}}"#
            );
            messages.insert(&mut txn, format!("{n:08}"), record);
        }
        i = (i + 4_096).min(n);
    }
    eprintln!("set up; syncing");
    let target = Doc::new();
    let start = Instant::now();
    let state = target.transact().state_vector();
    let update = source.transact().encode_state_as_update_v1(&state);
    let decoded = Update::decode_v1(&update).unwrap_or_else(|e| panic!("{e}"));
    target
        .transact_mut()
        .apply_update(decoded)
        .unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed();
    let len = target.get_or_insert_map("messages").len(&target.transact());
    assert_eq!(u64::from(len), n, "everything arrived");
    eprintln!("{} bytes", update.len());
    std::mem::forget(source);
    std::mem::forget(target);
    elapsed
}

/// A 1 Gbit/s path of round trip `rtt_ms`.
fn gigabit(rtt_ms: u64) -> chum_net::transport::simulated::Path {
    chum_net::transport::simulated::Path::new(Duration::from_millis(rtt_ms), 1_000_000_000)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chum-sync-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// `serve DIR N`: fills a redb store in DIR with N objects, prints `port P`, serves one
/// session, then prints `peak MB`.
fn serve(dir: &std::path::Path, n: u64) {
    use chum_net::{Node, SessionOptions, transport::tcp};
    use chum_store_redb::RedbStore;
    use std::io::Write;
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let store = RedbStore::open(dir.join("server.redb")).unwrap_or_else(|e| panic!("{e}"));
        let mut i = 0;
        while i < n {
            let end = (i + 10_000).min(n);
            let objects: Vec<(Cid, Vec<u8>)> = (i..end).map(object).collect();
            chum_store::Store::put_many(&store, &objects)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            i = end;
        }
        let node = Node::new(Arc::new(store));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        println!("port {port}");
        let _ = std::io::stdout().flush();
        let (stream, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let cpu = cpu_seconds();
        let connection = tcp::connection(stream, chum_sync::Limits::default().max_frame)
            .unwrap_or_else(|e| panic!("{e}"));
        node.run(Role::Responder, connection, SessionOptions::default())
            .await;
        eprintln!(
            "sender: {:.2} CPU seconds for the session",
            cpu_seconds() - cpu
        );
    });
    println!("peak {:.1}", peak_rss_mb());
}

/// The receiving side over TCP into its own redb file; the sending side is a child process.
/// Returns the time and the sender's peak memory.
fn tcp_redb(n: u64) -> (Duration, f64) {
    use std::io::BufRead;
    let dir = temp_dir("tcp");
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut server = Command::new(exe)
        .args(["serve", &dir.display().to_string(), &n.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines =
        std::io::BufReader::new(server.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let port = lines
        .next()
        .and_then(|line| line.ok())
        .and_then(|line| {
            line.strip_prefix("port ")
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or_else(|| panic!("the server did not start"));
    let elapsed = receive(&dir, port, n);
    let server_peak = lines
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("peak ")
                .and_then(|p| p.parse::<f64>().ok())
        })
        .unwrap_or(f64::NAN);
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    (elapsed, server_peak)
}

/// The receiving side: syncs from the server on `port` into a new redb file in `dir`.
fn receive(dir: &std::path::Path, port: u16, n: u64) -> Duration {
    use chum_net::{Node, SessionOptions, transport::tcp};
    use chum_store_redb::RedbStore;
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        // The receiver checks every object against the seed's recipes, as an app would.
        let client = Node::new(Arc::new(
            RedbStore::open(dir.join("client.redb")).unwrap_or_else(|e| panic!("{e}")),
        ))
        .with_recipes(chum_crdt::preset::seed());
        let start = Instant::now();
        let cpu = cpu_seconds();
        let connection = tcp::connect(
            &format!("127.0.0.1:{port}"),
            chum_sync::Limits::default().max_frame,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let report = client
            .run(
                Role::Initiator,
                connection,
                SessionOptions {
                    close_when_synced: true,
                },
            )
            .await;
        let elapsed = start.elapsed();
        eprintln!(
            "receiver: {:.2} CPU seconds for the session",
            cpu_seconds() - cpu
        );
        assert!(report.synced, "{report:?}");
        assert_eq!(report.received, n);
        elapsed
    })
}

fn raw_redb(n: u64) -> Duration {
    const TABLE: redb::TableDefinition<'_, &[u8], &[u8]> = redb::TableDefinition::new("objects");
    let dir = temp_dir("raw");
    // Sorted by key: the order a B-tree inserts fastest, and the order a sync delivers.
    let mut objects: Vec<(Cid, Vec<u8>)> = (0..n).map(object).collect();
    objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let db = redb::Database::builder()
        .set_cache_size(chum_store_redb::DEFAULT_CACHE_BYTES)
        .create(dir.join("raw.redb"))
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    // The batches a sync stores: as many ~100-byte objects as fit 256 KiB.
    let batch = std::env::var("RAW_BATCH")
        .ok()
        .and_then(|b| b.parse::<usize>().ok())
        .unwrap_or(2_400);
    for chunk in objects.chunks(batch) {
        let txn = db.begin_write().unwrap_or_else(|e| panic!("{e}"));
        {
            let mut table = txn.open_table(TABLE).unwrap_or_else(|e| panic!("{e}"));
            for (cid, bytes) in chunk {
                table
                    .insert(cid.as_bytes(), bytes.as_slice())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        txn.commit().unwrap_or_else(|e| panic!("{e}"));
    }
    let elapsed = start.elapsed();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}

/// The same objects and batches as `raw_redb`, through `RedbStore::put_many` (verification,
/// indexes, sync digest): what the store adds to raw redb, without any network.
fn store_redb(n: u64) -> Duration {
    let dir = temp_dir("store");
    let mut objects: Vec<(Cid, Vec<u8>)> = (0..n).map(object).collect();
    objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let store =
        chum_store_redb::RedbStore::open(dir.join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    for chunk in objects.chunks(2_400) {
        futures::executor::block_on(chum_store::Store::put_many(&store, chunk))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let elapsed = start.elapsed();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}

/// The write path alone: batches verified in advance (untimed), then written with
/// `put_verified` — what a syncing receiver's commit task does.
fn store_verified(n: u64) -> Duration {
    let dir = temp_dir("verified");
    let mut objects: Vec<(Cid, Vec<u8>)> = (0..n).map(object).collect();
    objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let store =
        chum_store_redb::RedbStore::open(dir.join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
    let limits = chum_store::Store::limits(&store);
    let batches: Vec<chum_store::index::Verified> = objects
        .chunks(2_400)
        .map(|chunk| {
            chum_store::index::Verified::check(chunk.to_vec(), &limits)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    drop(objects);
    let start = Instant::now();
    for batch in batches {
        futures::executor::block_on(chum_store::Store::put_verified(
            &store,
            batch,
            chum_store::Scope::Shared,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let elapsed = start.elapsed();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |text: Option<&String>| {
        text.and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(1_000_000)
    };
    match args.first().map(String::as_str) {
        Some("receive") => {
            // `receive DIR PORT N`: the receiving side alone (for profiling).
            let dir = std::path::PathBuf::from(args.get(1).unwrap_or_else(|| panic!("DIR")));
            let port = args
                .get(2)
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("PORT"));
            let elapsed = receive(&dir, port, count(args.get(3)));
            println!(
                "received in {:.3} s, peak {:.1} MB",
                elapsed.as_secs_f64(),
                peak_rss_mb()
            );
        }
        Some("serve") => {
            let dir = std::path::PathBuf::from(args.get(1).unwrap_or_else(|| panic!("DIR")));
            serve(&dir, count(args.get(2)));
        }
        Some(
            scenario @ ("memory" | "node-memory" | "node-memory-noise" | "node-link-50ms"
            | "node-link-200ms" | "tcp-redb" | "raw-redb" | "store-redb"
            | "store-verified" | "yrs"),
        ) => {
            let n = count(args.get(1));
            let (elapsed, other_peak) = match scenario {
                "memory" => (memory(n), f64::NAN),
                // The third column carries the session's CPU seconds for the node paths.
                "node-memory" => node_memory(n, false, None),
                "node-memory-noise" => node_memory(n, true, None),
                // The third column carries the floor for the simulated paths.
                "node-link-50ms" => node_memory(n, false, Some(gigabit(50))),
                "node-link-200ms" => node_memory(n, false, Some(gigabit(200))),
                "tcp-redb" => tcp_redb(n),
                "store-redb" => (store_redb(n), f64::NAN),
                "store-verified" => (store_verified(n), f64::NAN),
                "yrs" => (yrs_sync(n), f64::NAN),
                _ => (raw_redb(n), f64::NAN),
            };
            println!(
                "{scenario} {n} {:.3} {:.1} {other_peak:.1}",
                elapsed.as_secs_f64(),
                peak_rss_mb()
            );
        }
        _ => {
            let n = count(args.first());
            let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
            // Disk timings on a shared machine vary run to run: each scenario runs ROUNDS times,
            // interleaved, and the medians are compared.
            const ROUNDS: usize = 3;
            let scenarios = [
                "raw-redb",
                "store-redb",
                "store-verified",
                "tcp-redb",
                "memory",
                "node-memory",
                "node-memory-noise",
                "node-link-50ms",
                "node-link-200ms",
                "yrs",
            ];
            let mut samples: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); scenarios.len()];
            for _ in 0..ROUNDS {
                for (slot, scenario) in scenarios.iter().enumerate() {
                    let output = Command::new(&exe)
                        .args([*scenario, &n.to_string()])
                        .output()
                        .unwrap_or_else(|e| panic!("{e}"));
                    let text = String::from_utf8_lossy(&output.stdout).to_string();
                    let fields: Vec<f64> = text
                        .split_whitespace()
                        .skip(2)
                        .filter_map(|s| s.parse::<f64>().ok())
                        .collect();
                    let [seconds, peak, other_peak] = fields[..] else {
                        eprintln!(
                            "{scenario} failed: {text}{}",
                            String::from_utf8_lossy(&output.stderr)
                        );
                        std::process::exit(1);
                    };
                    samples[slot].push((seconds, peak, other_peak));
                }
            }
            let mut rows = Vec::new();
            for (scenario, mut runs) in scenarios.into_iter().zip(samples) {
                runs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let peak = runs.iter().map(|r| r.1).fold(0.0, f64::max);
                let other_peak = runs.iter().map(|r| r.2).fold(f64::NAN, f64::max);
                let (seconds, _, _) = runs[runs.len() / 2];
                rows.push((scenario, seconds, peak, other_peak));
            }
            let raw = rows[0].1;
            let row = |name: &str| rows.iter().find(|row| row.0 == name).copied();
            println!(
                "sync {n} objects of ~100 bytes from empty (each scenario in its own process; median of {ROUNDS} interleaved runs, largest peak)"
            );
            println!(
                "{:<18} {:>9} {:>12} {:>10} {:>14}",
                "scenario", "seconds", "vs raw redb", "peak MB", "last column"
            );
            for (scenario, seconds, peak, other_peak) in &rows {
                println!(
                    "{scenario:<18} {seconds:>9.3} {:>11.2}× {peak:>10.1} {other_peak:>14.2}",
                    seconds / raw
                );
            }
            if let (Some(engine), Some(node), Some(noise)) =
                (row("memory"), row("node-memory"), row("node-memory-noise"))
            {
                println!(
                    "node path / engine: {:.2}× (peak {:.0} MB vs {:.0} MB); encrypted / plaintext: {:.2}× wall, {:.2}× CPU",
                    node.1 / engine.1,
                    node.2,
                    engine.2,
                    noise.1 / node.1,
                    noise.3 / node.3
                );
            }
            if let (Some(engine), Some(node), Some(yrs)) =
                (row("memory"), row("node-memory"), row("yrs"))
            {
                println!(
                    "beside yrs (state-vector update from empty, same records): engine {:.2}×, node path {:.2}× its time; peak {:.0} MB vs yrs {:.0} MB",
                    engine.1 / yrs.1,
                    node.1 / yrs.1,
                    node.2,
                    yrs.2
                );
            }
            for name in ["node-link-50ms", "node-link-200ms"] {
                if let Some((_, seconds, _, floor)) = row(name) {
                    println!(
                        "{name}: {seconds:.3} s = {:.2}× its floor of {floor:.3} s",
                        seconds / floor
                    );
                }
            }
            println!(
                "raw-redb: the same objects, sorted by CID, into one redb table in durable batches of 2,400"
            );
            println!(
                "store-redb: the same batches through RedbStore::put_many (verification, indexes, digest), no network"
            );
            println!(
                "store-verified: the same batches verified in advance (untimed), then written with put_verified: a receiver's commit task"
            );
            println!(
                "tcp-redb: receiver (this process) and sender (a child process) on their own redb files"
            );
            println!("memory: both peers in one process, a thread each (peak counts both sets)");
            println!(
                "node-memory: two chum_net::Nodes over MemoryStores and an in-memory transport, 2 tokio threads, plaintext (last column: the session's CPU seconds); node-memory-noise: the same as two paired instances of one person, Noise-encrypted"
            );
            println!(
                "yrs: the same records as JSON text in a yrs map under their numbers; encode the state as an update from the empty peer's state vector, decode, apply (both documents in this process)"
            );
            println!(
                "node-link-50ms / -200ms: node-memory over a simulated 1 Gbit/s path of that round trip (last column: the floor, bytes/bandwidth + 3 round trips, in seconds)"
            );
        }
    }
}
