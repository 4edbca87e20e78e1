//! Coalescing (`Builder::coalesce`): quick successive edits of one object become one version,
//! merging stays per field, and nothing a peer already holds is replaced.
#![allow(clippy::unwrap_used)]

mod common;

use common::json;

use std::sync::Arc;
use std::time::Duration;

use chum::{Instance, Value};
use chum_store::{MemoryStore, Query};

const EMAIL: &str = "ann@example.org";

fn contact(fields: &str) -> Value {
    json(&format!(
        r#"{{"$type":"Contact","email":"{EMAIL}"{}{fields}}}"#,
        if fields.is_empty() { "" } else { "," }
    ))
}

async fn versions(instance: &Instance) -> usize {
    let id = instance.id_of(&contact("")).unwrap();
    instance
        .store()
        .query(Query::Versions(&id))
        .await
        .unwrap()
        .len()
}

async fn state(instance: &Instance) -> Value {
    let id = instance.id_of(&contact("")).unwrap();
    instance.state(&id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_edits_of_one_object_become_one_version_with_every_field() {
    let coalescing = Instance::builder()
        .memory()
        .coalesce(Duration::from_secs(60))
        .open()
        .await
        .unwrap();
    let plain = Instance::builder().memory().open().await.unwrap();
    let mut receipts = Vec::new();
    for n in 0..200 {
        let edit = if n % 2 == 0 {
            contact(&format!(r#""name":"Ann {n}""#))
        } else {
            contact(&format!(r#""phone":"555-{n}""#))
        };
        receipts.push(coalescing.update(&edit).await.unwrap());
        let _ = plain.update(&edit).await.unwrap();
    }
    // One version holds all 200 edits; without coalescing there are 200.
    assert_eq!(versions(&coalescing).await, 1);
    assert_eq!(versions(&plain).await, 200);
    let expected = contact(r#""name":"Ann 198","phone":"555-199""#);
    assert_eq!(state(&coalescing).await, state(&plain).await);
    assert_eq!(state(&coalescing).await, expected);
    // Replaced versions are gone from the store; the last receipt's is there.
    assert!(
        coalescing
            .get(receipts[0].cid())
            .await
            .is_err_and(|error| matches!(error, chum::Error::NotFound(_)))
    );
    assert!(coalescing.has(receipts[199].cid()).await.unwrap());
    // Replaced versions do not stay "at risk": one version is, against 200.
    assert_eq!(coalescing.at_risk() + 199, plain.at_risk());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_a_peer_holds_is_never_replaced_and_merging_stays_per_field() {
    // Pushed 200 ms after the first edit of a burst.
    let a = Instance::builder()
        .memory()
        .coalesce(Duration::from_millis(200))
        .open()
        .await
        .unwrap();
    let listener = a.listen("tcp://127.0.0.1:0").await.unwrap();
    let invitation = a.invite(Duration::from_secs(60)).await.unwrap();
    let b = Instance::join(Arc::new(MemoryStore::new()), invitation, None, None)
        .await
        .unwrap();
    let link = b.connect(listener.url()).unwrap();
    link.established().await.unwrap();

    // Two quick edits: one version, pushed once the window passed, which b comes to hold;
    // the first receipt follows it.
    let first = a.update(&contact(r#""name":"Ann""#)).await.unwrap();
    let second = a.update(&contact(r#""phone":"555""#)).await.unwrap();
    assert_eq!(versions(&a).await, 1);
    assert_eq!(first.held_by_peer().await.unwrap(), b.instance_id());
    assert_eq!(second.held_by_peer().await.unwrap(), b.instance_id());
    assert_eq!(state(&b).await, contact(r#""name":"Ann","phone":"555""#));

    // It was pushed (and b holds it): the next edit is a new version after it.
    let third = a.update(&contact(r#""name":"Ann B""#)).await.unwrap();
    assert_eq!(versions(&a).await, 2);
    assert!(a.has(second.cid()).await.unwrap());
    assert_eq!(third.held_by_peer().await.unwrap(), b.instance_id());

    // Offline, a edits the name twice (coalesced) while b edits the phone: both survive.
    link.close().await;
    let _ = a.update(&contact(r#""name":"Ann C""#)).await.unwrap();
    let _ = a.update(&contact(r#""name":"Ann D""#)).await.unwrap();
    let _ = b.update(&contact(r#""phone":"556""#)).await.unwrap();
    assert_eq!(
        versions(&a).await,
        3,
        "the two offline edits are one version"
    );
    let link = b.connect(listener.url()).unwrap();
    link.established().await.unwrap();
    let merged = contact(r#""name":"Ann D","phone":"556""#);
    for _ in 0..200 {
        if state(&a).await == merged && state(&b).await == merged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state(&a).await, merged);
    assert_eq!(state(&b).await, merged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_further_apart_than_the_window_and_set_fields_are_their_own_versions() {
    let a = Instance::builder()
        .memory()
        .coalesce(Duration::from_millis(20))
        .open()
        .await
        .unwrap();
    let _ = a.update(&contact(r#""name":"Ann""#)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let _ = a.update(&contact(r#""name":"Ann B""#)).await.unwrap();
    assert_eq!(versions(&a).await, 2, "beyond the window");
    // A set field's change is never merged into another version (its body depends on what
    // its author observed).
    let _ = a.update(&contact(r#""tags":["x"]"#)).await.unwrap();
    let _ = a.update(&contact(r#""phone":"555""#)).await.unwrap();
    assert!(versions(&a).await >= 3);
    assert_eq!(
        state(&a).await,
        contact(r#""name":"Ann B","phone":"555","tags":["x"]"#)
    );
}
