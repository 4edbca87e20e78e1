//! Helpers shared by the Instance API's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use chum::{Event, Value, dagjson};

pub fn json(text: &str) -> Value {
    dagjson::from_str(text).unwrap()
}

/// The next event `wanted` accepts (each within 10 s).
pub async fn wait_for(events: &mut chum::Events, wanted: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("the event came within 10 s")
            .expect("the stream is open");
        if wanted(&event) {
            return event;
        }
    }
}

/// "main" (a new person, in memory, listening on a free TCP port) and "laptop" (another
/// instance of the same person, joined with an invitation, not connected yet).
pub async fn main_and_laptop() -> (chum::Instance, chum::Listener, chum::Instance) {
    let main = chum::Instance::builder().memory().open().await.unwrap();
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
    let laptop = chum::Instance::builder()
        .memory()
        .join(invitation)
        .open()
        .await
        .unwrap();
    (main, listener, laptop)
}

/// Creates `count` Messages with texts `"{label} {i}"` on `instance`; their CIDs.
pub async fn messages(instance: &chum::Instance, label: &str, count: usize) -> Vec<chum::Cid> {
    let mut cids = Vec::with_capacity(count);
    for i in 0..count {
        let text = format!(r#"{{"$type":"Message","text":"{label} {i}"}}"#);
        cids.push(instance.create(&json(&text)).await.unwrap().cid().clone());
    }
    cids
}

/// Waits (at most 10 s) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("chum-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
