//! "At risk": this instance's objects no other instance holds yet.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chum::Instance;
use common::{TempDir, eventually, messages};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_at_risk_until_another_instance_holds_them() {
    let dir = TempDir::new("at-risk");
    let main = Instance::builder().memory().open().await.unwrap();
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
    let laptop = Instance::builder()
        .path(&dir.0)
        .join(invitation)
        .open()
        .await
        .unwrap();
    assert_eq!(laptop.at_risk(), 0, "what the join brought is held by main");

    // Offline writes are at risk, across a restart.
    messages(&laptop, "offline", 30).await;
    assert_eq!(laptop.at_risk(), 30);
    laptop.close().await;
    let laptop = Instance::builder().path(&dir.0).open().await.unwrap();
    assert_eq!(laptop.at_risk(), 30, "the count survives a restart");

    // Once main holds them, nothing is; live writes too, once acknowledged.
    let link = laptop.connect(listener.url()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), link.synced())
        .await
        .unwrap()
        .unwrap();
    eventually("nothing at risk after the sync", || async {
        laptop.at_risk() == 0
    })
    .await;
    messages(&laptop, "live", 10).await;
    eventually("live writes held by main", || async {
        laptop.at_risk() == 0
    })
    .await;
    // What main writes reaches the laptop from main: never at risk there; at risk on main
    // until the laptop acknowledges it.
    let from_main = messages(&main, "from main", 5).await;
    eventually("main's writes at the laptop", || async {
        laptop.has(&from_main[4]).await.unwrap_or(false)
    })
    .await;
    eventually("main's writes held by the laptop", || async {
        main.at_risk() == 0
    })
    .await;
    assert_eq!(laptop.at_risk(), 0);

    // After a restart, what was held stays held.
    link.close().await;
    laptop.close().await;
    let laptop = Instance::builder().path(&dir.0).open().await.unwrap();
    assert_eq!(
        laptop.at_risk(),
        0,
        "held objects are not at risk after a restart"
    );
    laptop.close().await;
}

/// Opening an instance whose store holds many objects never synced (a CLI command on a big
/// store) reads none of its journal's entries; they are counted as at risk all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_large_unsynced_store_reads_no_journal_entries() {
    use chum_store::decorators::CountingStore;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let counting = Arc::new(CountingStore::new(chum::MemoryStore::new()));
    let store: Arc<dyn chum::Store> = counting.clone();
    let first = Instance::builder()
        .store(Arc::clone(&store))
        .open()
        .await
        .unwrap();
    let values: Vec<_> = (0..3_000)
        .map(|i| common::json(&format!(r#"{{"$type":"Message","text":"m {i}"}}"#)))
        .collect();
    let _written = first.put_many(&values).await.unwrap();
    let at_risk = first.at_risk();
    assert!(at_risk >= 3_000, "{at_risk}");
    first.close().await;
    let before = counting.counts.journal_entries.load(Ordering::Relaxed);
    let again = Instance::builder().store(store).open().await.unwrap();
    let read = counting.counts.journal_entries.load(Ordering::Relaxed) - before;
    assert_eq!(read, 0, "opening read {read} journal entries");
    assert_eq!(again.at_risk(), at_risk, "the count survives the reopen");
    again.close().await;
}
