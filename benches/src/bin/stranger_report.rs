//! Hostile strangers beside paired instances: the time of a paired sync (an instance of Alice's
//! fetching 20 new messages from her node over loopback TCP, encrypted) when it is quiet, and
//! while strangers — peers with no invitation and no grant — attack the same node:
//!
//! - `revocations`: 8 strangers (from 8 other loopback addresses), each holding 2,000
//!   revocations signed by itself, sync with the node again and again (they used to be stored
//!   and scanned at every admission);
//! - `half-open`: 600 connections from 20 loopback addresses start a frame and stall (they used
//!   to hold every session slot);
//! - `crowd`: 200 strangers from 20 other addresses connect and stay (they get their own small
//!   share of sessions and are refused as busy beyond it, or closed once idle);
//! - `crowd-local`: the same from the paired instance's own address (127.0.0.1, as every
//!   process on a desktop shares it): the per-address rate limit cannot tell them apart before
//!   the handshake, so the paired instance waits for its turn (it retries as a link does).
//!
//! Each attacker runs in a process of its own (as a real one would: its own work is not the
//! node's), on the same machine. Each row is the median of 15 paired syncs (min and max beside it) and its ratio to the
//! quiet median measured in the same run, with the share of a core the node's process used
//! meanwhile. The node runs on core 0 and the attackers on core 1 (`taskset`), so that an
//! attacker's own work does not take the node's core; `--shared-cores` lets them share.
//! `cargo run --release -p chum-benches --bin stranger_report [-- ATTACK…] [--shared-cores]`.

use chum_benches::process::cpu_seconds;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chum_access::{Identity, InstanceId};
use chum_net::listener::{ListenerLimits, serve_tcp};
use chum_net::transport::tcp;
use chum_net::{Node, SessionOptions};
use chum_object::{Cid, Object, dagjson};
use chum_store::{MemoryStore, Store};
use chum_sync::Role;
use tokio::io::AsyncWriteExt;

const ROUNDS: usize = 15;
/// Messages Alice wrote.
static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
const SYNC_ONCE: SessionOptions = SessionOptions {
    close_when_synced: true,
};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn message(text: &str) -> (Cid, Vec<u8>) {
    let value = dagjson::from_str(&format!(r#"{{"$type":"Message","text":"{text}"}}"#))
        .unwrap_or_else(|e| panic!("{e}"));
    let object = Object::from_value(&value).unwrap_or_else(|e| panic!("{e}"));
    (object.cid().clone(), object.bytes().to_vec())
}

async fn node_of(identity: &Identity) -> Arc<Node> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    identity
        .save(&*store, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(
        Node::new(store)
            .with_identity(identity.clone())
            .with_recipes(chum_crdt::preset::seed()),
    )
}

/// Paired syncs: each round Alice writes 20 messages and her laptop fetches them.
async fn paired(alice: &Node, laptop: &Node, address: &str, round: &mut usize) -> Vec<f64> {
    WRITTEN.fetch_add(ROUNDS * 20, std::sync::atomic::Ordering::Relaxed);
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        *round += 1;
        let batch: Vec<_> = (0..20)
            .map(|i| message(&format!("r{round} m{i}")))
            .collect();
        alice.put(&batch).await.unwrap_or_else(|e| panic!("{e}"));
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let connection = tcp::connect(address, chum_sync::Limits::default().max_frame)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let report = laptop.run(Role::Initiator, connection, SYNC_ONCE).await;
            if report.synced {
                break;
            }
            // Refused before the handshake (busy, or its address over the rate): retry
            // shortly, as a link does.
            assert!(
                report.peer.is_none() && attempts < 200,
                "a paired sync failed: {report:?}"
            );
            if std::env::var_os("STRANGER_DEBUG").is_some() {
                eprintln!("retry: {}", report.reason);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        times.push(start.elapsed().as_secs_f64() * 1_000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

/// Live pushes: the laptop holds one session open to Alice; each round Alice writes one
/// message and the time until the laptop has stored it is taken.
async fn live(alice: &Node, laptop: &Node, round: &mut usize) -> Vec<f64> {
    WRITTEN.fetch_add(ROUNDS, std::sync::atomic::Ordering::Relaxed);
    let mut events = laptop.events();
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        *round += 1;
        let note = message(&format!("live {round}"));
        let start = Instant::now();
        alice
            .put(std::slice::from_ref(&note))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Ok(chum_net::NodeEvent::Received { cids, .. })) if cids.contains(&note.0) => {
                    break;
                }
                Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                other => panic!("no live push: {other:?}"),
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1_000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

/// A row: the median, min and max, the ratio to the quiet median, and the share of one core
/// this process (the node and its paired instance) used meanwhile, from the attack's start.
fn row(name: &str, times: &[f64], quiet: f64, load: f64) {
    let median = times[times.len() / 2];
    let load = if load.is_nan() {
        "-".to_owned()
    } else {
        format!("{:.0}%", load * 100.0)
    };
    println!(
        "{name:<18} {median:>9.2} {:>9.2} {:>9.2} {:>9.2}× {load:>10}",
        times[0],
        times[times.len() - 1],
        median / quiet,
    );
}

/// A TCP connection to `server` from the local address `from`.
async fn connect_from(from: SocketAddr, server: SocketAddr) -> Option<chum_net::Connection> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(from).ok()?;
    let stream = socket.connect(server).await.ok()?;
    tcp::connection(stream, chum_sync::Limits::default().max_frame).ok()
}

/// Lets sessions of the last attack end and rate limits refill before the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// 200 strangers, spread over `addresses`, connecting and staying.
async fn crowd(server: SocketAddr, addresses: std::ops::Range<u8>) {
    let spread: Vec<u8> = addresses.collect();
    let mut crowd = Vec::new();
    for i in 0..200 {
        let id = Identity::new_person(now_ms()).unwrap_or_else(|e| panic!("{e}"));
        let node = node_of(&id).await;
        let from = SocketAddr::from(([127, 0, 0, spread[i % spread.len()]], 0));
        crowd.push(tokio::spawn(async move {
            loop {
                if let Some(connection) = connect_from(from, server).await {
                    let _ = node
                        .run(Role::Initiator, connection, SessionOptions::default())
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    ready();
    futures::future::join_all(crowd).await;
}

/// 8 strangers from 8 other addresses, each syncing its 2,000 revocations again and again.
async fn revocations(server: SocketAddr) {
    let mut floods = Vec::new();
    for n in 0..8u8 {
        let id = Identity::new_person(now_ms()).unwrap_or_else(|e| panic!("{e}"));
        let node = node_of(&id).await;
        let revocations: Vec<_> = (0..2_000u32)
            .map(|i| {
                let mut instance = [9u8; 32];
                instance[..4].copy_from_slice(&i.to_le_bytes());
                let revocation = id
                    .revoke(InstanceId(instance), now_ms())
                    .unwrap_or_else(|e| panic!("{e}"));
                (
                    revocation.object().cid().clone(),
                    revocation.object().bytes().to_vec(),
                )
            })
            .collect();
        node.put(&revocations)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let from = SocketAddr::from(([127, 0, 0, 30 + n], 0));
        floods.push(tokio::spawn(async move {
            loop {
                if let Some(connection) = connect_from(from, server).await {
                    let _ = node.run(Role::Initiator, connection, SYNC_ONCE).await;
                }
            }
        }));
    }
    ready();
    futures::future::join_all(floods).await;
}

/// 600 connections from 20 addresses that start a frame and stall.
async fn half_open(server: SocketAddr) {
    let mut held = Vec::new();
    for a in 2..22u8 {
        for _ in 0..30 {
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                continue;
            };
            if socket.bind(SocketAddr::from(([127, 0, 0, a], 0))).is_err() {
                continue;
            }
            if let Ok(mut stream) = socket.connect(server).await {
                let _ = stream.write_all(&[0, 0, 0, 100, 1, 2, 3]).await;
                held.push(stream);
            }
        }
    }
    ready();
    std::future::pending::<()>().await;
}

/// Tells the measuring process that the attack is under way.
fn ready() {
    println!("ready");
}

/// Runs `attack` against `server` in a process of its own (so that its work is not the
/// measuring process's, as with a real attacker); returns once it is under way.
fn attacker(attack: &str, server: &str, pinned: bool) -> std::process::Child {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut command = if pinned {
        let mut taskset = std::process::Command::new("taskset");
        taskset.args(["-c", "1"]).arg(exe);
        taskset
    } else {
        std::process::Command::new(exe)
    };
    let mut child = command
        .args(["--attack", attack, server])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line.trim(), "ready", "the {attack} attacker did not start");
    child
}

/// The attacker process: runs until killed.
async fn attack(kind: &str, server: &str) {
    let server: SocketAddr = server.parse().unwrap_or_else(|e| panic!("{e}"));
    match kind {
        "revocations" => revocations(server).await,
        "half-open" => half_open(server).await,
        "crowd" => crowd(server, 50..70).await,
        "crowd-local" => crowd(server, 1..2).await,
        other => panic!("no attack {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    if let [_, flag, kind, server] = &args[..]
        && flag == "--attack"
    {
        runtime().block_on(attack(kind, server));
        return;
    }
    // Unless told otherwise, the node and its paired instance run on core 0 and every attacker
    // on core 1, so that what is measured is what an attack makes the node do, not the
    // attacker's own work taking the node's core (as from another machine).
    let shared = args.iter().any(|a| a == "--shared-cores");
    let pinned = !shared
        && std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    let only: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .collect();
    runtime().block_on(measure(pinned, &only));
}

async fn measure(pinned: bool, only: &[String]) {
    let alice_id = Identity::new_person(now_ms()).unwrap_or_else(|e| panic!("{e}"));
    let alice = node_of(&alice_id).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    tokio::spawn(serve_tcp(
        Arc::clone(&alice),
        listener,
        ListenerLimits::default(),
    ));
    let key = chum_access::keys::generate_key().unwrap_or_else(|e| panic!("{e}"));
    let certificate = alice_id
        .certify(InstanceId(key.verifying_key().to_bytes()), now_ms())
        .unwrap_or_else(|e| panic!("{e}"));
    let laptop_id = Identity::joined(key, certificate).unwrap_or_else(|e| panic!("{e}"));
    let laptop = node_of(&laptop_id).await;
    let mut round = 0;
    // A first sync (the laptop starts empty), then the quiet baseline.
    paired(&alice, &laptop, &address, &mut round).await;
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet = paired(&alice, &laptop, &address, &mut round).await;
    let quiet_load = (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64();
    let quiet_median = quiet[quiet.len() / 2];
    println!(
        "paired sync of 20 new messages over loopback TCP, encrypted; ms over {ROUNDS} rounds; {}",
        if pinned {
            "node on core 0, attackers on core 1"
        } else {
            "node and attackers share the cores"
        }
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "attack", "median", "min", "max", "vs quiet", "node CPU"
    );
    row("quiet", &quiet, quiet_median, quiet_load);

    for name in ["revocations", "half-open", "crowd", "crowd-local"] {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let mut child = attacker(name, &address, pinned);
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let times = paired(&alice, &laptop, &address, &mut round).await;
        let load = (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64();
        row(name, &times, quiet_median, load);
        let _ = child.kill();
        let _ = child.wait();
        settle().await;
    }

    // Live pushes over a session opened before the attack, quiet and under the local crowd.
    if only.is_empty() || only.iter().any(|o| o == "live") {
        let connection = tcp::connect(&address, chum_sync::Limits::default().max_frame)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let session = {
            let laptop = Arc::clone(&laptop);
            tokio::spawn(async move {
                laptop
                    .run(Role::Initiator, connection, SessionOptions::default())
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quiet = live(&alice, &laptop, &mut round).await;
        let quiet_live = quiet[quiet.len() / 2];
        row("live, quiet", &quiet, quiet_live, f64::NAN);
        let mut child = attacker("crowd-local", &address, pinned);
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let times = live(&alice, &laptop, &mut round).await;
        let load = (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64();
        row("live, crowd-local", &times, quiet_live, load);
        let _ = child.kill();
        let _ = child.wait();
        session.abort();
    }
    let written = WRITTEN.load(std::sync::atomic::Ordering::Relaxed);
    let shared = alice
        .store()
        .sync_list(
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            usize::MAX,
        )
        .await
        .map_or(0, |list| list.len());
    println!(
        "Alice's node afterwards: {shared} shared objects (her own {written} messages, identity, laptop's certificate)"
    );
}
