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
