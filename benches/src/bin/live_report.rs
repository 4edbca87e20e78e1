//! Live propagation over loopback WebSocket with redb on both sides: for each of N objects
//! (default 2,000), the time from A's durable put returning to B's `Received` event (emitted
//! after B durably stored it), and the same counted from before A's put. Prints p50, p99 and
//! the maximum.
//!
//! `cargo run --release -p chum-benches --bin live_report [N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chum_net::listener::{ListenerLimits, serve_ws};
use chum_net::{Node, NodeEvent, SessionOptions, ws};
use chum_object::{Cid, Object, dagjson};
use chum_store_redb::RedbStore;
use chum_sync::Role;

fn object(n: u64) -> (Cid, Vec<u8>) {
    let json = format!(r#"{{"$type":"Message","text":"live message {n}, pushed at once"}}"#);
    let value = dagjson::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    let object = Object::from_value(&value).unwrap_or_else(|e| panic!("{e}"));
    (object.cid().clone(), object.bytes().to_vec())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let dir = std::env::temp_dir().join(format!("chum-live-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let (after_put, from_put) = runtime.block_on(async {
        let a = Arc::new(Node::new(Arc::new(
            RedbStore::open(dir.join("a.redb")).unwrap_or_else(|e| panic!("{e}")),
        )));
        let b = Arc::new(Node::new(Arc::new(
            RedbStore::open(dir.join("b.redb")).unwrap_or_else(|e| panic!("{e}")),
        )));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        tokio::spawn(serve_ws(
            Arc::clone(&a),
            listener,
            ListenerLimits::default(),
            None,
        ));
        let connection = ws::connect(&format!("ws://127.0.0.1:{port}"), 1 << 22, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut events = b.events();
        let client = Arc::clone(&b);
        tokio::spawn(async move {
            client
                .run(Role::Initiator, connection, SessionOptions::default())
                .await
        });
        loop {
            if let Ok(NodeEvent::Synced { .. }) = events.recv().await {
                break;
            }
        }
        let (mut after_put, mut from_put) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (cid, bytes) = object(i);
            let start = Instant::now();
            a.put(&[(cid.clone(), bytes)])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let put_done = Instant::now();
            loop {
                match events.recv().await {
                    Ok(NodeEvent::Received { cids, .. }) if cids.contains(&cid) => break,
                    Ok(NodeEvent::Closed { reason, .. }) => panic!("closed: {reason}"),
                    Ok(_) => {}
                    Err(error) => panic!("{error}"),
                }
            }
            let arrived = Instant::now();
            after_put.push(arrived - put_done);
            from_put.push(arrived - start);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (after_put, from_put)
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!("live propagation over loopback WebSocket, redb on both sides, {n} objects");
    for (name, mut samples) in [
        ("A's put returned → B stored, event", after_put),
        ("before A's put → B stored, event", from_put),
    ] {
        samples.sort_unstable();
        println!(
            "{name:<36} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        );
    }
}
