//! The bugs a new app met first when embedding chum, one regression test each.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TempDir, eventually, json, main_and_laptop, messages, wait_for};

use std::time::Duration;

use chum::{Error, Event, Field, Instance, Kind, Origin, Recipe, RecipeError, Strategy, Value};

/// `Note { id: text (ID), title: text (required), body: text (optional) }`.
fn note_recipe() -> Recipe {
    Recipe::new("Note", Strategy::FieldMerge)
        .field(Field::new("id", Kind::Text).id())
        .field(Field::new("title", Kind::Text))
        .field(Field::new("body", Kind::Text).optional())
}

/// A new person in memory that knows [`note_recipe`].
async fn with_notes() -> Instance {
    Instance::builder()
        .memory()
        .recipe(note_recipe())
        .open()
        .await
        .unwrap()
}

/// Bugs 1 and 2: a versioned recipe with a required non-ID field syncs between instances of
/// one person (the joined instance adopts the recipe from its first sync) and to another
/// person; locally, required fields hold for the merged state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_recipe_with_a_required_field_syncs_and_is_enforced() {
    let main = with_notes().await;
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    let note = main
        .put(&json(r#"{"$type":"Note","id":"n1","title":"first"}"#))
        .await
        .unwrap();
    let id = note.id().unwrap().clone();

    // Locally: a new note without its title, and an update that unsets it, are refused.
    for missing in [
        r#"{"$type":"Note","id":"n2"}"#,
        r#"{"$type":"Note","id":"n2","body":"no title"}"#,
        r#"{"$type":"Note","id":"n1","title":null}"#,
    ] {
        let error = main.update(&json(missing)).await.unwrap_err();
        assert!(
            matches!(&error, Error::Recipe(RecipeError::MissingField { field, .. }) if field == "title"),
            "{missing}: {error:?}"
        );
    }
    assert!(
        main.put(&json(r#"{"$type":"Note","id":"n3"}"#))
            .await
            .is_err()
    );
    // An update of an existing note may give only the fields it changes.
    let _ = main
        .update(&json(r#"{"$type":"Note","id":"n1","body":"text"}"#))
        .await
        .unwrap();

    // Another instance of the person, joined through the builder: it knows `Note` from its
    // first sync, without registering it.
    let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
    let laptop = Instance::builder()
        .memory()
        .join(invitation)
        .open()
        .await
        .unwrap();
    assert_eq!(laptop.person(), main.person());
    assert_eq!(laptop.recipe("Note"), Some(note_recipe()));
    let expected = json(r#"{"$type":"Note","id":"n1","title":"first","body":"text"}"#);
    assert_eq!(laptop.state(&id).await.unwrap(), Some(expected.clone()));

    // Another person with the same recipe, granted the note: the session syncs it (the ID
    // object is checked as an ID object) and stays up.
    let bob = with_notes().await;
    let _ = main.grant(&id, &bob.person()).await.unwrap();
    let report = bob
        .sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(report.synced, "{report:?}");
    assert_eq!(bob.state(&id).await.unwrap(), Some(expected));
}

/// Bug 1, the other half: an object a peer sends that breaks this side's recipe is refused
/// alone, and both apps hear of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_object_reaches_both_apps_as_an_event() {
    let tag_v1 = Recipe::new("Tag", Strategy::AppendOnly).field(Field::new("name", Kind::Text));
    let tag_v2 = Recipe::new("Tag", Strategy::AppendOnly)
        .field(Field::new("name", Kind::Integer))
        .with_version(2);
    let (main, listener, laptop) = main_and_laptop().await;
    // The laptop runs a newer app: its Tag names are integers. main still writes text.
    laptop.register(tag_v2).await.unwrap();
    main.register(tag_v1).await.unwrap();
    let mut laptop_events = laptop.events();
    let mut main_events = main.events();
    let tag = main
        .put(&json(r#"{"$type":"Tag","name":"urgent"}"#))
        .await
        .unwrap();
    let link = laptop.connect(listener.url()).unwrap();
    link.established().await.unwrap();
    let refused = wait_for(&mut laptop_events, |event| {
        matches!(event, Event::Refused { refused, .. } if refused.iter().any(|(cid, _)| cid == tag.cid()))
    })
    .await;
    let Event::Refused { refused, origin } = refused else {
        unreachable!()
    };
    assert!(refused[0].1.contains("name"), "{refused:?}");
    assert!(matches!(origin, Origin::Peer { instance, .. } if instance == main.instance_id()));
    wait_for(
        &mut main_events,
        |event| matches!(event, Event::PeerRefused { cids, .. } if cids.contains(tag.cid())),
    )
    .await;
    assert!(!laptop.has(tag.cid()).await.unwrap());
    // The session goes on: the next object arrives.
    let message = main
        .put(&json(r#"{"$type":"Message","text":"still syncing"}"#))
        .await
        .unwrap();
    eventually("the next object arrives", || async {
        laptop.has(message.cid()).await.unwrap()
    })
    .await;
    link.close().await;
}

/// Bug 3: after a restart, the first reconnect reports nothing as new that was already held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_not_repeated_after_a_restart() {
    let dir = TempDir::new("restart-events");
    let main = Instance::builder().path(&dir.0).open().await.unwrap();
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    let url = listener.url().to_owned();
    let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
    let laptop_dir = TempDir::new("restart-events-laptop");
    let laptop = Instance::builder()
        .path(&laptop_dir.0)
        .join(invitation)
        .open()
        .await
        .unwrap();
    let link = laptop.connect(&url).unwrap();
    link.established().await.unwrap();
    let mut cids = Vec::new();
    for i in 0..20 {
        let from_main = main
            .create(&json(&format!(
                r#"{{"$type":"Message","text":"main {i}"}}"#
            )))
            .await
            .unwrap();
        let from_laptop = laptop
            .create(&json(&format!(
                r#"{{"$type":"Message","text":"laptop {i}"}}"#
            )))
            .await
            .unwrap();
        cids.push(from_main.cid().clone());
        cids.push(from_laptop.cid().clone());
    }
    for cid in &cids {
        eventually("both hold everything", || async {
            main.has(cid).await.unwrap() && laptop.has(cid).await.unwrap()
        })
        .await;
    }
    listener.close();
    link.close().await;
    laptop.close().await;
    main.close().await;

    // Both restart; the laptop reconnects.
    let main = Instance::builder().path(&dir.0).open().await.unwrap();
    let laptop = Instance::builder()
        .path(&laptop_dir.0)
        .open()
        .await
        .unwrap();
    // Each writes while apart, so the two sets differ when they meet (the journal tails since
    // the last checkpoint then travel, with objects the other side holds already).
    let offline_main = main
        .create(&json(r#"{"$type":"Message","text":"main, offline"}"#))
        .await
        .unwrap();
    let offline_laptop = laptop
        .create(&json(r#"{"$type":"Message","text":"laptop, offline"}"#))
        .await
        .unwrap();
    let mut laptop_events = laptop.events();
    let mut events = main.events();
    let _listener = main.listen(&url).await.unwrap();
    let link = laptop.connect(&url).unwrap();
    link.connected().await.unwrap();
    // Whatever the reconnect moves (a journal tail resends what moved since the last
    // checkpoint), nothing already held is announced again; a new write after it is.
    let mut fresh: Option<chum::Cid> = None;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap();
        match event {
            Event::Synced { .. } if fresh.is_none() => {
                let written = laptop
                    .create(&json(r#"{"$type":"Message","text":"after the restart"}"#))
                    .await
                    .unwrap();
                fresh = Some(written.cid().clone());
            }
            Event::Stored { cid, .. } if Some(&cid) == fresh.as_ref() => break,
            Event::Stored { cid, .. } if cid == *offline_laptop.cid() => {}
            Event::Stored { cid, .. } | Event::Changed { version: cid, .. } => {
                panic!("{cid} was held already and reported again on the restarted side")
            }
            _ => {}
        }
    }
    // The same on the side that stayed up.
    let from_main = main
        .create(&json(
            r#"{"$type":"Message","text":"from main after the restart"}"#,
        ))
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), laptop_events.next())
            .await
            .unwrap()
            .unwrap();
        match event {
            Event::Stored { cid, .. } if cid == *from_main.cid() => break,
            Event::Stored { cid, .. } if cid == *offline_main.cid() => {}
            Event::Stored { cid, origin, .. }
            | Event::Changed {
                version: cid,
                origin,
                ..
            } if origin != Origin::Local => {
                panic!("{cid} was held already and reported again on the side that stayed up")
            }
            _ => {}
        }
    }
    link.close().await;
}

/// Bug 4: `state` of an ID whose object is not here (yet) is `None`, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_none_while_the_id_object_is_not_here() {
    let alone = Instance::builder().memory().open().await.unwrap();
    let elsewhere = Instance::builder().memory().open().await.unwrap();
    let id = elsewhere
        .put(&json(
            r#"{"$type":"Contact","email":"ann@example.org","name":"Ann"}"#,
        ))
        .await
        .unwrap()
        .id()
        .unwrap()
        .clone();
    assert_eq!(alone.state(&id).await.unwrap(), None);
    assert!(alone.conflicts(&id).await.unwrap().is_empty());
}

/// Bug 5: a receipt alive across `close` neither keeps the store open nor waits forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_closes_whatever_handles_remain() {
    let dir = TempDir::new("close");
    let instance = Instance::builder().path(&dir.0).open().await.unwrap();
    let written = instance
        .put(&json(r#"{"$type":"Message","text":"kept"}"#))
        .await
        .unwrap();
    let clone = instance.clone();
    let waiting = tokio::spawn({
        let clone = clone.clone();
        let cid = written.cid().clone();
        async move { clone.held_by_peer(&cid).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    instance.close().await;
    // The same store opens again in this process at once.
    let reopened = Instance::builder().path(&dir.0).open().await.unwrap();
    assert!(reopened.has(written.cid()).await.unwrap());
    // What was still held answers Closed, never hangs.
    assert!(matches!(written.held_by_peer().await, Err(Error::Closed)));
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap(),
        Err(Error::Closed)
    ));
    assert!(clone.is_closed());
    assert!(matches!(
        clone
            .put(&json(r#"{"$type":"Message","text":"late"}"#))
            .await,
        Err(Error::Closed)
    ));
    reopened.close().await;
}

/// Bug 6: `established` on an address where nothing listens ends with an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_fails_when_nothing_listens() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let url = format!("ws://127.0.0.1:{port}");
    let instance = Instance::builder().memory().open().await.unwrap();
    let link = instance.connect(&url).unwrap();
    let error = tokio::time::timeout(Duration::from_secs(15), link.established())
        .await
        .expect("established() ends")
        .unwrap_err();
    assert!(
        matches!(&error, Error::Transport(reason) if reason.contains(&url)),
        "{error:?}"
    );
    // The link keeps trying behind: a listener appearing there is found (another person's:
    // a session between persons is admitted, it only sees what is granted).
    let server = Instance::builder().memory().open().await.unwrap();
    let _listener = server.listen(&url).await.unwrap();
    let (instance_id, _) = tokio::time::timeout(Duration::from_secs(20), link.connected())
        .await
        .expect("the link reconnects")
        .unwrap();
    assert_eq!(instance_id, server.instance_id());
    link.close().await;
}

/// Bug 7 (the API half; the CLI test runs `chum put` on a recipe): storing a `Recipe`
/// object registers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putting_a_recipe_registers_it() {
    let instance = Instance::builder().memory().open().await.unwrap();
    let _ = instance.put(&note_recipe().to_value()).await.unwrap();
    assert_eq!(instance.recipe("Note"), Some(note_recipe()));
    let written = instance
        .put(&json(r#"{"$type":"Note","id":"n1","title":"t"}"#))
        .await
        .unwrap();
    let id = written.id().unwrap();
    assert_eq!(
        instance.state(id).await.unwrap(),
        Some(json(r#"{"$type":"Note","id":"n1","title":"t"}"#))
    );
    // A malformed recipe is refused with the reason.
    assert!(matches!(
        instance
            .put(&json(r#"{"$type":"Recipe","name":"Bad","version":0}"#))
            .await,
        Err(Error::Recipe(_))
    ));
}

/// Knowing what may be written: a document another person shared read-only refuses local
/// writes (they would never reach the owner); granted back, it is read-write and writes
/// arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_share_refuses_writes_and_a_grant_back_makes_it_read_write() {
    let alice = with_notes().await;
    let listener = alice.listen("tcp://127.0.0.1:0").await.unwrap();
    let bob = with_notes().await;
    let id = alice
        .put(&json(
            r#"{"$type":"Note","id":"shared","title":"by alice"}"#,
        ))
        .await
        .unwrap()
        .id()
        .unwrap()
        .clone();
    assert!(alice.may_write(&id).await.unwrap(), "her own note");
    let alice_grant = alice.grant(&id, &bob.person()).await.unwrap();
    bob.sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(bob.state(&id).await.unwrap().is_some());
    assert!(!bob.may_write(&id).await.unwrap());
    let refused = bob
        .update(&json(r#"{"$type":"Note","id":"shared","title":"by bob"}"#))
        .await
        .unwrap_err();
    assert!(matches!(&refused, Error::Denied(reason) if reason.contains("read-only")));
    assert!(matches!(bob.delete(&id).await, Err(Error::Denied(_))));
    // Bob shares it back: read-write, and his edit reaches Alice.
    let _ = bob.grant(&id, &alice.person()).await.unwrap();
    assert!(bob.may_write(&id).await.unwrap());
    let _ = bob
        .update(&json(r#"{"$type":"Note","id":"shared","title":"by bob"}"#))
        .await
        .unwrap();
    bob.sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    eventually("bob's edit reaches alice", || async {
        alice.state(&id).await.unwrap()
            == Some(json(r#"{"$type":"Note","id":"shared","title":"by bob"}"#))
    })
    .await;
    // Alice ends her share; Bob's grant to her remains. Her own note stays hers to write.
    let _ = alice.revoke_grant(alice_grant.cid()).await.unwrap();
    assert!(
        alice.may_write(&id).await.unwrap(),
        "the owner is never locked out"
    );
    let _ = alice
        .update(&json(
            r#"{"$type":"Note","id":"shared","title":"alice again"}"#,
        ))
        .await
        .unwrap();
    // A stranger's grant of an ID this person has not written yet does not lock it either.
    let mallory = with_notes().await;
    let predictable = alice
        .id_of(&json(r#"{"$type":"Note","id":"todo","title":"x"}"#))
        .unwrap();
    let _ = mallory.grant(&predictable, &alice.person()).await.unwrap();
    mallory
        .sync_once(listener.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(alice.may_write(&predictable).await.unwrap());
    let _ = alice
        .put(&json(r#"{"$type":"Note","id":"todo","title":"mine"}"#))
        .await
        .unwrap();
}

/// "Synced with link L up to now": resolves once the peer holds what was written before the
/// call, live and after a reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_says_when_its_peer_holds_everything_written_so_far() {
    let (main, listener, laptop) = main_and_laptop().await;
    // Written before the link exists: the first sync carries them.
    let written = messages(&laptop, "before", 50).await;
    let link = laptop.connect(listener.url()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), link.synced())
        .await
        .unwrap()
        .unwrap();
    for cid in &written {
        assert!(
            main.has(cid).await.unwrap(),
            "synced() before {cid} arrived"
        );
    }
    // Written live: pushed and acknowledged.
    let written = messages(&laptop, "live", 200).await;
    tokio::time::timeout(Duration::from_secs(10), link.synced())
        .await
        .unwrap()
        .unwrap();
    for cid in &written {
        assert!(
            main.has(cid).await.unwrap(),
            "synced() before {cid} arrived"
        );
    }
    link.close().await;
    assert!(matches!(link.synced().await, Err(Error::Closed)));
    // Another person's instance: not a question this link can answer.
    let stranger = Instance::builder().memory().open().await.unwrap();
    let to_stranger = stranger.connect(listener.url()).unwrap();
    to_stranger.established().await.unwrap();
    assert!(matches!(to_stranger.synced().await, Err(Error::Denied(_))));
    to_stranger.close().await;
}

/// Refusing costs the refusing side, not the sender: another person's session ends after
/// 1,000 objects refused by recipe (a few are refused one by one, and it goes on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_person_cannot_make_a_node_refuse_without_end() {
    let tag = |kind: Kind, version: u64| {
        Recipe::new("Tag", Strategy::AppendOnly)
            .with_version(version)
            .field(Field::new("name", kind))
            .field(Field::new("on", Kind::Link(vec!["Conversation".into()])).collection())
    };
    let alice = Instance::builder()
        .memory()
        .recipe(tag(Kind::Text, 1))
        .open()
        .await
        .unwrap();
    let listener = alice.listen("tcp://127.0.0.1:0").await.unwrap();
    let bob = Instance::builder()
        .memory()
        .recipe(tag(Kind::Integer, 2))
        .open()
        .await
        .unwrap();
    let chat = alice
        .put(&json(r#"{"$type":"Conversation","id":"tags"}"#))
        .await
        .unwrap()
        .id()
        .unwrap()
        .clone();
    let _ = alice.grant(&chat, &bob.person()).await.unwrap();
    // A few tags bob's recipe refuses: refused one by one, the session syncs.
    let tags = |range: std::ops::Range<u32>| -> Vec<Value> {
        range
            .map(|i| {
                json(&format!(
                    r#"{{"$type":"Tag","name":"t{i}","on":{{"/":"{chat}"}}}}"#
                ))
            })
            .collect()
    };
    let _ = alice.put_many(&tags(0..10)).await.unwrap();
    let report = bob
        .sync_once(listener.url(), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(report.synced);
    assert!(bob.state(&chat).await.unwrap().is_some());
    // Many: the session ends.
    let _ = alice.put_many(&tags(10..1_200)).await.unwrap();
    let ended = bob
        .sync_once(listener.url(), Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        matches!(&ended, Error::Transport(reason) if reason.contains("refused")),
        "{ended:?}"
    );
}

/// The wall clock is the instance's time source (the browser driver passes `Date.now()`;
/// wasm32 has no clock of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_reads_time_from_its_time_source() {
    const NOW: u64 = 1_900_000_000_000;
    let inst = Instance::builder()
        .memory()
        .time_source(std::sync::Arc::new(|| NOW))
        .open()
        .await
        .unwrap();
    assert_eq!(inst.now_ms(), NOW);
    let written = inst
        .create(&json(r#"{"$type":"Message","text":"when?"}"#))
        .await
        .unwrap();
    let message = inst.get(written.cid()).await.unwrap();
    let clock = message.as_map().unwrap().get("clock").unwrap().clone();
    assert_eq!(
        clock,
        json(&format!("[{NOW},0]")),
        "the entry's clock is the source's time"
    );
}

/// A one-use invitation redeemed by several joiners at once welcomes exactly one (issue 15,
/// finding 5: read, certify and write-back were separate steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_use_invitation_welcomes_one_of_many_concurrent_joiners() {
    let dir = TempDir::new("one-use");
    let main = Instance::builder().path(&dir.0).open().await.unwrap();
    let listener = main.listen("tcp://127.0.0.1:0").await.unwrap();
    for _trial in 0..4 {
        let invitation = main.invite(Duration::from_secs(60)).await.unwrap();
        let joins: Vec<_> = (0..6)
            .map(|_| {
                let invitation = invitation.clone();
                tokio::spawn(
                    async move { Instance::builder().memory().join(invitation).open().await },
                )
            })
            .collect();
        let mut welcomed = 0;
        for join in joins {
            match join.await.unwrap() {
                Ok(instance) => {
                    welcomed += 1;
                    instance.close().await;
                }
                Err(error) => assert!(
                    matches!(error, Error::Invitation(_) | Error::Transport(_)),
                    "{error:?}"
                ),
            }
        }
        assert_eq!(welcomed, 1, "one use, one instance");
    }
    listener.close();
    main.close().await;
}
