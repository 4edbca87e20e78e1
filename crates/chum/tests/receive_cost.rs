//! What receiving an object costs: BLAKE3 hashes of its bytes and DAG-CBOR decodes per
//! object, from the moment the bytes arrive until the app has its event. (Its own test binary:
//! the counts are process-wide.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chum::{Event, Instance, Value};

fn message(i: usize) -> Value {
    chum::dagjson::from_str(&format!(r#"{{"$type":"Message","text":"message {i}"}}"#)).unwrap()
}

/// Hashes and decodes per object for `count` objects written on one instance and received
/// by a paired one over TCP, with the receiving app's events all delivered. The sender's store
/// is in memory (its reads hash nothing), the receiver's in memory or redb on disk.
async fn per_received_object(count: usize, on_disk: bool) -> (f64, f64) {
    let dir = std::env::temp_dir().join(format!("chum-receive-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let builder = |name: &str| {
        if on_disk {
            Instance::builder().path(dir.join(name))
        } else {
            Instance::builder().memory()
        }
    };
    let main = Instance::builder().memory().open().await.unwrap();
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
    let laptop = builder("laptop").join(invitation).open().await.unwrap();
    let values: Vec<Value> = (0..count).map(message).collect();
    let written = main.put_many(&values).await.unwrap();
    let mut events = laptop.events();
    let (hashes, decodes) = (chum::counters::hashes(), chum::counters::decodes());
    let link = laptop.connect(listener.url()).unwrap();
    let mut seen = 0;
    while seen < written.len() {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap();
        if matches!(event, Event::Stored { .. }) {
            seen += 1;
        }
    }
    let hashes = chum::counters::hashes() - hashes;
    let decodes = chum::counters::decodes() - decodes;
    link.close().await;
    main.close().await;
    laptop.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    (hashes as f64 / count as f64, decodes as f64 / count as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_object_is_hashed_once_and_decoded_once() {
    const {
        assert!(
            chum::counters::ENABLED,
            "the tests build chum-object with `counters`"
        );
    }
    let mut costs = Vec::new();
    for on_disk in [false, true] {
        let (hashes, decodes) = per_received_object(2_000, on_disk).await;
        let store = if on_disk { "redb" } else { "memory" };
        println!("{store}: per received object {hashes:.2} hashes, {decodes:.2} decodes");
        costs.push((store, hashes, decodes));
    }
    for (store, hashes, decodes) in costs {
        assert!(
            hashes <= 1.05,
            "{store}: {hashes:.2} hashes per received object"
        );
        assert!(
            decodes <= 1.05,
            "{store}: {decodes:.2} decodes per received object"
        );
    }
}
