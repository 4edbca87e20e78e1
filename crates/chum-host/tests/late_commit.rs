//! Objects whose commit finishes after their session ended are still reported received.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chum_host::{ConnInput, Host, HostOutput, NodeEvent, Now, Opening};
use chum_object::{Object, dagjson};
use chum_store::{MemoryStore, Scope, Store};
use chum_sync::Role;
use futures::executor::block_on;

fn now(ms: u64) -> Now {
    Now {
        elapsed: Duration::from_millis(ms),
        unix_ms: 1_700_000_000_000 + ms,
    }
}

#[test]
fn a_commit_that_outlives_its_session_is_reported() {
    let stores = [Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new())];
    let mut hosts: Vec<Host> = stores
        .iter()
        .map(|store| Host::new(store.clone() as Arc<dyn Store>))
        .collect();
    let note = Object::from_value(&dagjson::from_str(r#"{"$type":"Note","text":"late"}"#).unwrap())
        .unwrap();
    let objects = vec![(note.cid().clone(), note.bytes().to_vec())];
    block_on(stores[0].put_scoped(&objects, Scope::Shared)).unwrap();
    block_on(hosts[0].open(now(0), 1, Opening::new(Role::Initiator, "side 1", [1; 64])));
    block_on(hosts[1].open(now(0), 1, Opening::new(Role::Responder, "side 0", [2; 64])));
    // Pump until side 1 asks to commit the note; hold that commit back.
    let mut held = None;
    for _ in 0..100 {
        for side in 0..2 {
            while let Some(output) = hosts[side].poll_output() {
                match output {
                    HostOutput::Transmit { conn, frame } => {
                        block_on(hosts[1 - side].handle(now(0), conn, ConnInput::Frame(frame)));
                    }
                    HostOutput::Commit { conn, commit } if side == 1 && held.is_none() => {
                        held = Some((conn, commit));
                    }
                    HostOutput::Commit { conn, commit } => {
                        let committed = block_on(commit.run(&*stores[side]));
                        block_on(hosts[side].committed(now(0), conn, committed));
                    }
                    _ => {}
                }
            }
        }
        if held.is_some() {
            break;
        }
    }
    let (conn, commit) = held.expect("side 1 commits the note");
    // The transport goes away before the commit finishes.
    block_on(hosts[1].handle(now(1), conn, ConnInput::TransportClosed));
    while hosts[1].poll_output().is_some() {}
    let committed = block_on(commit.run(&*stores[1]));
    block_on(hosts[1].committed(now(2), conn, committed));
    let mut order = Vec::new();
    while let Some(output) = hosts[1].poll_output() {
        match output {
            HostOutput::Event(NodeEvent::Received { cids, .. }) if cids.contains(note.cid()) => {
                order.push("received");
            }
            HostOutput::Event(NodeEvent::Closed { .. }) => order.push("closed"),
            HostOutput::Ended { .. } => order.push("ended"),
            _ => {}
        }
    }
    assert!(block_on(stores[1].has(note.cid())).unwrap(), "stored");
    // Reported received though its session had closed — before the session's `Closed`, so
    // an application still knows whom it came from — and the session ends once it is in.
    assert_eq!(order, ["received", "closed", "ended"]);
}
