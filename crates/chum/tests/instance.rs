//! The Instance API end to end: objects and versions, collections, events, links that
//! reconnect, restarts on disk, grants between persons.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TempDir, json, wait_for};

use std::sync::Arc;
use std::time::Duration;

use chum::{Error, Event, Instance, LinkState, Origin, Value};
use chum_store::{MemoryStore, Store};

/// Two paired instances of one person; `b` connected to `a`.
async fn pair() -> (Instance, Instance, chum::Link) {
    let a = Instance::builder().memory().open().await.unwrap();
    let listener = a.listen("tcp://127.0.0.1:0").await.unwrap();
    let invitation = a.invite(Duration::from_secs(60)).await.unwrap();
    let b = Instance::join(Arc::new(MemoryStore::new()), invitation, None, None)
        .await
        .unwrap();
    let link = b.connect(listener.url()).unwrap();
    link.established().await.unwrap();
    (a, b, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_merge_across_instances_and_unversioned_objects_stay_as_given() {
    let (a, b, link) = pair().await;
    // Unversioned: stored exactly as given, one object on both sides.
    let message = json(r#"{"$type":"Message","text":"as given"}"#);
    let written = a.put(&message).await.unwrap();
    assert_eq!(
        written.cid(),
        chum_object::Object::from_value(&message).unwrap().cid()
    );
    assert_eq!(written.held_by_peer().await.unwrap(), b.instance_id());
    assert_eq!(b.get(written.cid()).await.unwrap(), message);

    // Field-merge: concurrent edits of different fields both survive.
    let id = a
        .id_of(&json(r#"{"$type":"Contact","email":"ann@example.org"}"#))
        .unwrap();
    link.close().await;
    let _ = a
        .update(&json(
            r#"{"$type":"Contact","email":"ann@example.org","name":"Ann","tags":["x","y"]}"#,
        ))
        .await
        .unwrap();
    let _ = b
        .update(&json(
            r#"{"$type":"Contact","email":"ann@example.org","phone":"555"}"#,
        ))
        .await
        .unwrap();
    let link = b.connect(&a.listening()[0]).unwrap();
    link.established().await.unwrap();
    let expected = json(
        r#"{"$type":"Contact","email":"ann@example.org","name":"Ann","phone":"555","tags":["x","y"]}"#,
    );
    // (Events of the earlier session may still be on their way; wait for the state itself.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for side in [&b, &a] {
        while side.state(&id).await.unwrap().as_ref() != Some(&expected) {
            assert!(tokio::time::Instant::now() < deadline, "never converged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A set given as a list becomes exactly that set; null unsets a field.
    let _ = a
        .update(&json(
            r#"{"$type":"Contact","email":"ann@example.org","tags":["y","z"],"phone":null}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        a.state(&id).await.unwrap().unwrap(),
        json(r#"{"$type":"Contact","email":"ann@example.org","name":"Ann","tags":["y","z"]}"#)
    );
    // Last-write: the latest state wins; delete removes it.
    let conversation = json(r#"{"$type":"Conversation","id":"c1","title":"first"}"#);
    let written = a.put(&conversation).await.unwrap();
    let conversation_id = written.id().unwrap().clone();
    let _ = a
        .update(&json(
            r#"{"$type":"Conversation","id":"c1","title":"second"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(
        a.state(&conversation_id).await.unwrap().unwrap(),
        json(r#"{"$type":"Conversation","id":"c1","title":"second"}"#)
    );
    let _ = a.delete(&conversation_id).await.unwrap();
    assert_eq!(a.state(&conversation_id).await.unwrap(), None);
    // Wrong input is a clear error.
    assert!(matches!(
        a.update(&json(
            r#"{"$type":"Contact","email":"ann@example.org","name":7}"#
        ))
        .await,
        Err(Error::Recipe(_))
    ));
    assert!(matches!(
        a.update(&json(r#"{"$type":"Nope","x":1}"#)).await,
        Err(Error::UnknownRecipe(_))
    ));
    assert!(matches!(
        a.put(&json(r#"{"$type":"Message"}"#)).await,
        Err(Error::Recipe(_))
    ));
    link.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_keep_entry_order_and_events_say_where_changes_came_from() {
    let (a, b, link) = pair().await;
    let conversation = a
        .put(&json(r#"{"$type":"Conversation","id":"chat"}"#))
        .await
        .unwrap();
    let chat = conversation.id().unwrap().clone();
    let mut a_events = a.events();
    let mut sent = Vec::new();
    for i in 0..5 {
        // Each entry is written as soon as the previous one is stored at its writer (causal
        // order): its clock was observed before it was stored, so the hybrid clocks order the
        // entries as written, within the same millisecond too.
        let entry =
            format!(r#"{{"$type":"Message","text":"m{i}","conversation":{{"/":"{chat}"}}}}"#);
        let instance = if i % 2 == 0 { &a } else { &b };
        if let Some(previous) = sent.last() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !instance.has(previous).await.unwrap() {
                assert!(tokio::time::Instant::now() < deadline);
                tokio::task::yield_now().await;
            }
        }
        sent.push(instance.create(&json(&entry)).await.unwrap().cid().clone());
    }
    // b's entries arrive at a with b as their origin.
    let from_b = wait_for(&mut a_events, |event| {
        matches!(event, Event::Stored { cid, origin: Origin::Peer { .. }, .. } if *cid == sent[3])
    })
    .await;
    if let Event::Stored {
        origin: Origin::Peer { instance, .. },
        ..
    } = from_b
    {
        assert_eq!(instance, b.instance_id());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.entries(&chat).await.unwrap().len() < 5 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.entries(&chat).await.unwrap(), sent, "creation order");
    // Each entry got its clock and author.
    let first = a.get(&sent[0]).await.unwrap();
    assert!(first.as_map().unwrap().contains_key("clock"));
    assert!(first.as_map().unwrap().contains_key("author"));
    link.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_told_it_lagged() {
    let instance = Instance::builder()
        .memory()
        .event_capacity(16)
        .open()
        .await
        .unwrap();
    let mut events = instance.events();
    for i in 0..100 {
        let _ = instance
            .put(&json(&format!(r#"{{"$type":"Message","text":"{i}"}}"#)))
            .await
            .unwrap();
    }
    let first = events.next().await.unwrap();
    assert!(
        matches!(first, Event::Lagged { missed } if missed > 0),
        "{first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_reconnect_with_backoff_and_offline_writes_arrive() {
    // Reserve a port, then free it: the link starts before anyone listens there.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let url = format!("ws://127.0.0.1:{port}");

    let dir = TempDir::new("offline");
    let main = Instance::builder().path(&dir.0).open().await.unwrap();
    let listener = main.listen(&url).await.unwrap();
    let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
    let renderer = Instance::join(Arc::new(MemoryStore::new()), invitation, None, None)
        .await
        .unwrap();
    listener.close();
    let person = main.person();
    main.close().await;

    let link = renderer.connect(&url).unwrap();
    let mut states = link.states();
    // Nobody listens: the link keeps trying.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let state = tokio::time::timeout(left, states.next())
            .await
            .expect("no retries")
            .unwrap();
        if matches!(state, LinkState::Reconnecting { attempt, .. } if attempt >= 2) {
            break;
        }
    }
    // Offline writes.
    let mut written = Vec::new();
    for i in 0..20 {
        written.push(
            renderer
                .create(&json(&format!(
                    r#"{{"$type":"Message","text":"offline {i}"}}"#
                )))
                .await
                .unwrap()
                .cid()
                .clone(),
        );
    }
    // main comes back on the same port, from its store on disk.
    let main = Instance::builder().path(&dir.0).open().await.unwrap();
    assert_eq!(main.person(), person, "the identity persisted");
    let _listener = main.listen(&url).await.unwrap();
    link.connected().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for cid in &written {
        while !main.has(cid).await.unwrap() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "offline writes never arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // close() really closes: the state says so and main sees the session end.
    let mut main_events = main.events();
    link.close().await;
    assert_eq!(link.state(), LinkState::Closed);
    wait_for(&mut main_events, |event| {
        matches!(event, Event::PeerDisconnected { .. })
    })
    .await;
    // A second open of the same store is refused while the first is open.
    assert!(matches!(
        Instance::builder().path(&dir.0).open().await,
        Err(Error::StoreLocked(_))
    ));
    main.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_person_sees_only_what_is_granted() {
    let alice = Instance::builder().memory().open().await.unwrap();
    let listener = alice.listen("tcp://127.0.0.1:0").await.unwrap();
    let bob = Instance::builder().memory().open().await.unwrap();
    let diary = alice
        .put(&json(r#"{"$type":"Message","text":"diary"}"#))
        .await
        .unwrap();
    let chat = alice
        .put(&json(r#"{"$type":"Conversation","id":"shared"}"#))
        .await
        .unwrap()
        .id()
        .unwrap()
        .clone();
    let entry = alice
        .create(&json(&format!(
            r#"{{"$type":"Message","text":"hi bob","conversation":{{"/":"{chat}"}}}}"#
        )))
        .await
        .unwrap();
    let grant = alice.grant(&chat, &bob.person()).await.unwrap();
    let report = bob
        .sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(report.synced);
    assert!(bob.has(entry.cid()).await.unwrap());
    assert_eq!(
        bob.state(&chat).await.unwrap().unwrap(),
        json(r#"{"$type":"Conversation","id":"shared"}"#)
    );
    assert!(!bob.has(diary.cid()).await.unwrap());
    // Revoked: the next entry does not arrive.
    let _ = alice.revoke_grant(grant.cid()).await.unwrap();
    let later = alice
        .create(&json(&format!(
            r#"{{"$type":"Message","text":"after","conversation":{{"/":"{chat}"}}}}"#
        )))
        .await
        .unwrap();
    bob.sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!bob.has(later.cid()).await.unwrap());
    // Bob cannot grant Alice's things on her behalf... he has no access to her person key,
    // and his own grants cover only what he shares.
    assert!(matches!(
        bob.sync_once("http://nope", Duration::from_secs(1)).await,
        Err(Error::Transport(_))
    ));
    let _ = Store::count(&**bob.store()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_under_an_older_recipe_read_upgraded() {
    use chum_object::recipe::{Field, Kind, Recipe, Strategy};
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // Version 1: a Note with `body`.
    let v1 = Recipe::new("Note", Strategy::AppendOnly).field(Field::new("body", Kind::Text));
    let old = Instance::builder()
        .store(Arc::clone(&store))
        .recipe(v1)
        .open()
        .await
        .unwrap();
    let written = old
        .put(&json(r#"{"$type":"Note","body":"written long ago"}"#))
        .await
        .unwrap();
    let cid = written.cid().clone();
    drop(written);
    old.close().await;
    // Version 2 renamed `body` to `text`; the upgrade maps old notes.
    let v2 = Recipe::new("Note", Strategy::AppendOnly)
        .with_version(2)
        .field(Field::new("text", Kind::Text));
    let new = Instance::builder()
        .store(store)
        .recipe(v2)
        .upgrade("Note", 1, |value| {
            let mut map = value.as_map().cloned().ok_or("not a map")?;
            let body = map.remove("body").ok_or("no body")?;
            map.insert("text", body);
            Ok(Value::Map(map))
        })
        .open()
        .await
        .unwrap();
    assert_eq!(
        new.read(&cid).await.unwrap(),
        json(r#"{"$type":"Note","text":"written long ago"}"#)
    );
    // The stored bytes are unchanged: `get` returns them as written.
    assert_eq!(
        new.get(&cid).await.unwrap(),
        json(r#"{"$type":"Note","body":"written long ago"}"#)
    );
    // New notes follow version 2.
    assert!(matches!(
        new.put(&json(r#"{"$type":"Note","body":"old shape"}"#))
            .await,
        Err(Error::Recipe(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_link_handle_keeps_the_link() {
    let (a, b, link) = pair().await;
    drop(link);
    let written = b
        .put(&json(
            r#"{"$type":"Message","text":"after the handle was dropped"}"#,
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !a.has(written.cid()).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the link closed with its handle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.close().await;
}
