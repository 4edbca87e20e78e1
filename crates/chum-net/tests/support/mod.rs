//! Helpers shared by the chum-net tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use chum_net::NodeEvent;
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
