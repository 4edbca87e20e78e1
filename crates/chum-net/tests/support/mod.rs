//! Helpers shared by the chum-net tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use chum_net::{Node, NodeEvent};
use chum_object::Cid;
use chum_sync::wire::{Hello, Limits, Message};
use tokio::sync::broadcast::Receiver;

/// Waits (at most 10 s) for the first event `wanted` accepts; a closed session fails the test.
pub async fn wait_for(events: &mut Receiver<NodeEvent>, wanted: impl Fn(&NodeEvent) -> bool) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the event came within 10 s")
            .unwrap();
        if wanted(&event) {
            return;
        }
        if let NodeEvent::Closed { reason, .. } = event {
            panic!("the session closed: {reason}");
        }
    }
}

/// Waits for a session's first reconciliation to complete.
pub async fn synced(events: &mut Receiver<NodeEvent>) {
    wait_for(events, |event| matches!(event, NodeEvent::Synced { .. })).await;
}

/// Waits until `cid` was received and stored.
pub async fn received(events: &mut Receiver<NodeEvent>, cid: &Cid) {
    wait_for(
        events,
        |event| matches!(event, NodeEvent::Received { cids, .. } if cids.contains(cid)),
    )
    .await;
}

/// A version-1 hello with the default limits, for a hand-driven peer.
pub fn hello() -> Message {
    Message::Hello(Hello::new(Limits::default(), 8, Vec::new()))
}

/// Waits (at most 10 s) until `holder` holds every object of `owner`'s journal.
pub async fn holds_all_of(holder: &Node, owner: &Node) {
    let journal = owner.store().journal(0, 0).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = chum_net::journals::held(&**holder.store(), &journal.id)
            .await
            .unwrap();
        if held >= Some(journal.head) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the position was never learned: {held:?} of {}",
            journal.head
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
