//! A hub: an instance several persons grant access to, which stores what they send and
//! forwards it to whom they granted it — each peer answered from what its own person may see.
//! Real sessions over TCP on 127.0.0.1, encrypted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chum::{Cid, Instance};
use common::{eventually, json, wait_for};

/// A hub opened from `builder`, listening on a free TCP port: it and its address.
async fn hub(builder: chum::Builder) -> (Instance, String) {
    let hub = builder.open().await.unwrap();
    let url = hub
        .listen("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .url()
        .to_owned();
    (hub, url)
}

/// A new person's device (in memory) that uses `hub_person` as a hub.
async fn device(hub_person: &chum::PersonId) -> Instance {
    Instance::builder()
        .memory()
        .use_hub(hub_person.clone())
        .open()
        .await
        .unwrap()
}

/// `instance` writes the Conversation `name`: its ID.
async fn conversation(instance: &Instance, name: &str) -> Cid {
    let value = json(&format!(r#"{{"$type":"Conversation","id":"{name}"}}"#));
    instance.put(&value).await.unwrap().id().unwrap().clone()
}

/// `instance` writes a Message with `text` into `conversation`: its CID.
async fn say(instance: &Instance, conversation: &Cid, text: &str) -> Cid {
    let message =
        format!(r#"{{"$type":"Message","text":"{text}","conversation":{{"/":"{conversation}"}}}}"#);
    instance
        .create(&json(&message))
        .await
        .unwrap()
        .cid()
        .clone()
}

/// Every object `instance` holds.
async fn held(instance: &Instance) -> BTreeSet<Cid> {
    instance.list().await.unwrap().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_forwards_what_each_person_granted_and_nothing_else() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let device = |join: Option<chum::Invitation>| {
        let hub_person = hub_person.clone();
        async move {
            let builder = Instance::builder().memory().use_hub(hub_person);
            match join {
                Some(invitation) => builder.join(invitation),
                None => builder,
            }
            .open()
            .await
            .unwrap()
        }
    };
    // Person P with two devices (the second joined through the first), Q, and R.
    let p1 = device(None).await;
    let pairing = p1.listen("tcp://127.0.0.1:0").await.unwrap();
    let p2 = device(Some(p1.invite(Duration::from_secs(60)).await.unwrap())).await;
    pairing.close();
    let q = device(None).await;
    let r = device(None).await;

    // R computes the ID of P's conversation (ID objects are deterministic), writes the same
    // ID object, grants the hub access to it and syncs — before P ever reaches the hub.
    let shared_chat = json(r#"{"$type":"Conversation","id":"plans"}"#);
    let chat = p1.id_of(&shared_chat).unwrap();
    assert_eq!(r.id_of(&shared_chat).unwrap(), chat);
    let r_chat = r.put(&shared_chat).await.unwrap();
    assert_eq!(r_chat.id(), Some(&chat));
    let _ = r.grant(&chat, &hub_person).await.unwrap();
    let report = r
        .sync_once(&hub_url, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(report.synced);

    // P: the shared conversation with messages, granted to the hub and to Q; a private one
    // granted to the hub only.
    let _ = p1.put(&shared_chat).await.unwrap();
    let mut shared_messages = Vec::new();
    for i in 0..5 {
        shared_messages.push(say(&p1, &chat, &format!("plan {i}")).await);
    }
    let private = conversation(&p1, "diary").await;
    let secret = say(&p1, &private, "secret").await;
    let _ = p1.grant(&chat, &hub_person).await.unwrap();
    let _ = p1.grant(&private, &hub_person).await.unwrap();
    let to_q = p1.grant(&chat, &q.person()).await.unwrap();
    let link = p1.connect(&hub_url).unwrap();
    link.connected().await.unwrap();
    eventually("the hub holds P's conversations", || async {
        hub.has(&secret).await.unwrap() && hub.has(shared_messages.last().unwrap()).await.unwrap()
    })
    .await;

    // Q (granted the shared conversation by P) gets it through the hub, not the diary.
    let q_link = q.connect(&hub_url).unwrap();
    q_link.connected().await.unwrap();
    eventually("q holds P's shared messages", || async {
        let held = held(&q).await;
        shared_messages.iter().all(|cid| held.contains(cid))
    })
    .await;
    assert!(!q.has(&secret).await.unwrap(), "q never sees P's diary");
    assert!(!q.has(&private).await.unwrap());

    // P's second device gets everything P sent, through the hub alone.
    let p2_link = p2.connect(&hub_url).unwrap();
    p2_link.connected().await.unwrap();
    eventually("p2 holds everything of P's", || async {
        p2.has(&secret).await.unwrap()
            && shared_messages
                .iter()
                .all(|cid| futures::executor::block_on(p2.has(cid)).unwrap())
    })
    .await;

    // Live: a new message of P's reaches Q and P's other device at once.
    let r_link = r.connect(&hub_url).unwrap();
    r_link.connected().await.unwrap();
    let live = say(&p1, &chat, "live").await;
    eventually("q and p2 hear the live message", || async {
        q.has(&live).await.unwrap() && p2.has(&live).await.unwrap()
    })
    .await;

    // R — who granted the hub the same conversation ID before P synced — got nothing of P's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r_held = held(&r).await;
    let p_held = held(&p1).await;
    // What both hold legitimately: the hub's public identity (its person and certificate,
    // which every peer of the hub learns) and the conversation's ID object R wrote itself.
    let mut leaked = Vec::new();
    for cid in r_held.intersection(&p_held) {
        if *cid == chat || *cid == hub_person.0 {
            continue;
        }
        let value = r.get(cid).await.unwrap();
        let of_hub = value
            .as_map()
            .and_then(|map| map.get("person"))
            .and_then(chum::Value::as_link)
            == Some(&hub_person.0);
        if !of_hub {
            leaked.push(chum::dagjson::to_string(&value).unwrap());
        }
    }
    assert!(leaked.is_empty(), "objects of P's at R: {leaked:?}");
    assert!(!r.has(&live).await.unwrap());
    assert!(!r.has(&secret).await.unwrap());
    for cid in &shared_messages {
        assert!(!r.has(cid).await.unwrap(), "R sees none of P's messages");
    }
    // The hub store holds what it was sent, and nothing of R's leaked the other way.
    assert!(hub.has(r_chat.cid()).await.unwrap());
    let q_held = held(&q).await;
    assert!(!q_held.contains(&secret));
    // P withdraws Q's grant: the revocation reaches the hub, and Q hears nothing more of the
    // conversation (P's other device does).
    let _ = p1.revoke_grant(to_q.cid()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = say(&p1, &chat, "after the revocation").await;
    eventually("p2 hears the message after the revocation", || async {
        p2.has(&after).await.unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !q.has(&after).await.unwrap(),
        "a revoked grant forwards nothing more"
    );
    for link in [link, q_link, p2_link, r_link] {
        link.close().await;
    }
}

/// An app type whose `on` field links to a conversation, as a collection field or not.
fn entry_recipe(name: &str, collection: bool) -> chum::Recipe {
    let on = chum::Field::new("on", chum::Kind::Link(Vec::new()));
    chum::Recipe::new(name, chum::Strategy::AppendOnly)
        .field(if collection { on.collection() } else { on })
        .field(chum::Field::new("text", chum::Kind::Text))
}

/// The hub knows none of the app's types: the devices send it their recipes, and it applies
/// each person's to that person's objects only — another person's recipe for the same type
/// name widens nothing of theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_applies_each_persons_recipes_to_that_persons_objects_only() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let device = |recipes: Vec<chum::Recipe>| {
        let hub_person = hub_person.clone();
        async move {
            let mut builder = Instance::builder().memory().use_hub(hub_person);
            for recipe in recipes {
                builder = builder.recipe(recipe);
            }
            builder.open().await.unwrap()
        }
    };
    // Alice's Comments are entries of what they are `on`; her Replies are not.
    let alice = device(vec![
        entry_recipe("Comment", true),
        entry_recipe("Reply", false),
    ])
    .await;
    let bob = device(vec![entry_recipe("Comment", true)]).await;
    // Mallory's own recipe makes a Reply an entry of what it is `on` (a newer version than
    // Alice's: were it taken as hers, it would win).
    let mallory = device(vec![entry_recipe("Reply", true).with_version(2)]).await;

    // Mallory shares something with the hub first: its recipes reach the hub. It also tries
    // to pass its Reply recipe off as Alice's, with a forged hub note granted to the hub.
    let m_chat = conversation(&mallory, "mallory").await;
    let _ = mallory.grant(&m_chat, &hub_person).await.unwrap();
    let m_recipe =
        chum::Object::from_value(&entry_recipe("Reply", true).with_version(2).to_value())
            .unwrap()
            .cid()
            .clone();
    let forged = mallory
        .put(&json(&format!(
            r#"{{"$type":"HubRecipeNote","person":{{"/":"{}"}},"recipe":{{"/":"{m_recipe}"}}}}"#,
            alice.person().0
        )))
        .await
        .unwrap()
        .cid()
        .clone();
    let _ = mallory.grant(&forged, &hub_person).await.unwrap();
    let report = mallory
        .sync_once(&hub_url, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(report.synced);
    assert!(
        !hub.has(&forged).await.unwrap(),
        "a hub takes no recipe note from a peer"
    );

    // Alice: a conversation with a comment and a reply, granted to the hub, Bob and Mallory;
    // the reply granted to the hub on its own (for Alice's other devices), to nobody else.
    let chat = conversation(&alice, "trip").await;
    let entry = |type_name: &str, text: &str| {
        json(&format!(
            r#"{{"$type":"{type_name}","on":{{"/":"{chat}"}},"text":"{text}"}}"#
        ))
    };
    let comment = alice
        .create(&entry("Comment", "book the train"))
        .await
        .unwrap()
        .cid()
        .clone();
    let reply = alice
        .create(&entry("Reply", "private"))
        .await
        .unwrap()
        .cid()
        .clone();
    let _ = alice.grant(&chat, &hub_person).await.unwrap();
    let _ = alice.grant(&reply, &hub_person).await.unwrap();
    let _ = alice.grant(&chat, &bob.person()).await.unwrap();
    let _ = alice.grant(&chat, &mallory.person()).await.unwrap();
    let a_link = alice.connect(&hub_url).unwrap();
    a_link.connected().await.unwrap();
    eventually("the hub stores Alice's comment and reply", || async {
        hub.has(&comment).await.unwrap() && hub.has(&reply).await.unwrap()
    })
    .await;

    // Bob gets the comment through the hub (as an entry of the conversation he was granted).
    let b_link = bob.connect(&hub_url).unwrap();
    b_link.connected().await.unwrap();
    eventually("bob holds Alice's comment", || async {
        bob.has(&comment).await.unwrap()
    })
    .await;
    // Mallory too, but not the reply its own recipe would make an entry.
    let m_link = mallory.connect(&hub_url).unwrap();
    m_link.connected().await.unwrap();
    eventually("mallory holds Alice's comment", || async {
        mallory.has(&comment).await.unwrap()
    })
    .await;

    // Live: a new comment reaches Bob; a new reply reaches neither.
    let live = alice
        .create(&entry("Comment", "and the hotel"))
        .await
        .unwrap()
        .cid()
        .clone();
    let live_reply = alice
        .create(&entry("Reply", "also private"))
        .await
        .unwrap()
        .cid()
        .clone();
    let _ = alice.grant(&live_reply, &hub_person).await.unwrap();
    eventually("bob and mallory hear the live comment", || async {
        bob.has(&live).await.unwrap() && mallory.has(&live).await.unwrap()
    })
    .await;
    eventually("the hub stores the live reply", || async {
        hub.has(&live_reply).await.unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for cid in [&reply, &live_reply] {
        assert!(
            !mallory.has(cid).await.unwrap(),
            "mallory never sees a reply"
        );
        assert!(!bob.has(cid).await.unwrap(), "bob never sees a reply");
    }
    for link in [a_link, b_link, m_link] {
        link.close().await;
    }
}

/// A hub that serves only the persons its operator admits refuses everyone else at admission,
/// and stores nothing of theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_serves_only_the_persons_it_admits() {
    let alice = Instance::builder().memory().open().await.unwrap();
    let mallory = Instance::builder().memory().open().await.unwrap();
    let (hub, hub_url) = hub(Instance::builder()
        .memory()
        .hub()
        .admit_only([alice.person()]))
    .await;
    let write = |instance: &Instance, label: &str| {
        let instance = instance.clone();
        let hub_person = hub.person();
        let label = label.to_owned();
        async move {
            let chat = instance
                .put(&json(&format!(
                    r#"{{"$type":"Conversation","id":"{label}"}}"#
                )))
                .await
                .unwrap()
                .id()
                .unwrap()
                .clone();
            instance
                .grant(&chat, &hub_person)
                .await
                .unwrap()
                .cid()
                .clone()
        }
    };
    let a_grant = write(&alice, "alice").await;
    let m_grant = write(&mallory, "mallory").await;
    let before = hub.store().count().await.unwrap();
    let refused = mallory
        .sync_once(&hub_url, Duration::from_secs(10))
        .await
        .expect_err("mallory is not served");
    assert!(
        refused.to_string().contains("serves only the persons"),
        "{refused}"
    );
    assert_eq!(
        hub.store().count().await.unwrap(),
        before,
        "nothing of mallory's is stored, not even its identity"
    );
    assert!(!hub.has(&m_grant).await.unwrap());
    let report = alice
        .sync_once(&hub_url, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(report.synced);
    assert!(hub.has(&a_grant).await.unwrap(), "alice is served");
}

/// Entries the hub holds before it knows their person's recipe become visible to grantees,
/// live, once the recipe arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_that_arrives_later_uncovers_earlier_entries() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let alice = device(&hub_person).await;
    let bob = Instance::builder()
        .memory()
        .use_hub(hub_person.clone())
        .recipe(entry_recipe("Comment", true))
        .open()
        .await
        .unwrap();
    // Alice has no recipe for her comments yet; she grants the hub the comment itself (so it
    // is stored there), and Bob the conversation.
    let chat = conversation(&alice, "later").await;
    let comment = alice
        .create(&json(&format!(
            r#"{{"$type":"Comment","on":{{"/":"{chat}"}},"text":"early"}}"#
        )))
        .await
        .unwrap()
        .cid()
        .clone();
    let _ = alice.grant(&chat, &hub_person).await.unwrap();
    let _ = alice.grant(&comment, &hub_person).await.unwrap();
    let _ = alice.grant(&chat, &bob.person()).await.unwrap();
    assert!(
        alice
            .sync_once(&hub_url, Duration::from_secs(10))
            .await
            .unwrap()
            .synced
    );
    assert!(hub.has(&comment).await.unwrap());
    let b_link = bob.connect(&hub_url).unwrap();
    b_link.connected().await.unwrap();
    eventually("bob holds alice's grant", || async {
        held(&bob).await.len() > 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !bob.has(&comment).await.unwrap(),
        "not an entry of the conversation by any recipe of Alice's yet"
    );
    // Alice's app learns the type; her next session brings the recipe to the hub.
    let _ = alice.register(entry_recipe("Comment", true)).await.unwrap();
    assert!(
        alice
            .sync_once(&hub_url, Duration::from_secs(10))
            .await
            .unwrap()
            .synced
    );
    eventually("bob gets the earlier comment, live", || async {
        bob.has(&comment).await.unwrap()
    })
    .await;
    b_link.close().await;
}

/// A grant made while its grantee is connected reaches the grantee's sessions at once, and so
/// does everything the granter writes after it (a hub visits, for ordinary objects, only the
/// sessions of their senders and of whom those grant to: the grant must add the grantee).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_to_a_connected_person_forwards_what_follows_live() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let (alice, bob, carol) = (
        device(&hub_person).await,
        device(&hub_person).await,
        device(&hub_person).await,
    );
    // Bob's second device (its sessions with the hub share Bob's set there).
    let pairing = bob.listen("tcp://127.0.0.1:0").await.unwrap();
    let bob_phone = Instance::builder()
        .memory()
        .use_hub(hub_person.clone())
        .join(bob.invite(Duration::from_secs(60)).await.unwrap())
        .open()
        .await
        .unwrap();
    pairing.close();
    let chat = conversation(&alice, "later").await;
    let _ = alice.grant(&chat, &hub_person).await.unwrap();
    let before = say(&alice, &chat, "before the grant").await;
    let links: Vec<chum::Link> = [&alice, &bob, &bob_phone, &carol]
        .iter()
        .map(|instance| instance.connect(&hub_url).unwrap())
        .collect();
    for link in &links {
        link.connected().await.unwrap();
    }
    eventually("the hub holds alice's first message", || async {
        hub.has(&before).await.unwrap()
    })
    .await;
    let during = say(&alice, &chat, "while bob is connected, not yet granted").await;
    eventually("the hub holds the second message", || async {
        hub.has(&during).await.unwrap()
    })
    .await;
    assert!(!bob.has(&before).await.unwrap());

    let _ = alice.grant(&chat, &bob.person()).await.unwrap();
    for device in [&bob, &bob_phone] {
        eventually(
            "bob's devices get what alice wrote before the grant",
            || async { device.has(&before).await.unwrap() && device.has(&during).await.unwrap() },
        )
        .await;
    }
    for i in 0..3 {
        let live = say(&alice, &chat, &format!("live {i}")).await;
        eventually("bob's devices hear alice's new message live", || async {
            bob.has(&live).await.unwrap() && bob_phone.has(&live).await.unwrap()
        })
        .await;
    }
    // What one of Bob's devices writes reaches the other through the hub (the writer's
    // session and its sibling share one set).
    let notes = conversation(&bob, "bob's notes").await;
    let _ = bob.grant(&notes, &hub_person).await.unwrap();
    let note = say(&bob, &notes, "from the laptop").await;
    eventually("bob's phone hears the laptop's message", || async {
        bob_phone.has(&note).await.unwrap()
    })
    .await;
    assert!(!carol.has(&note).await.unwrap());
    // Carol, connected all along and granted nothing, got none of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!carol.has(&before).await.unwrap());
    assert!(!carol.has(&during).await.unwrap());
    for link in links {
        link.close().await;
    }
}

/// A hub with a quota stores at most that many objects of one person's, whichever of its
/// instances sends them; past it, the sender hears why each was refused; another person's
/// objects still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_stores_at_most_its_quota_of_a_persons_objects() {
    const QUOTA: u64 = 16;
    let (hub, hub_url) = hub(Instance::builder().memory().hub().hub_quota(QUOTA)).await;
    let hub_person = hub.person();
    let (alice, bob) = (device(&hub_person).await, device(&hub_person).await);
    let mut alice_events = alice.events();
    let chat = conversation(&alice, "busy").await;
    let grant = alice.grant(&chat, &hub_person).await.unwrap().cid().clone();
    let bob_chat = conversation(&bob, "quiet").await;
    let _ = bob.grant(&bob_chat, &hub_person).await.unwrap();
    let links = [
        alice.connect(&hub_url).unwrap(),
        bob.connect(&hub_url).unwrap(),
    ];
    for link in &links {
        link.connected().await.unwrap();
    }
    eventually("the hub holds alice's grant", || async {
        hub.has(&grant).await.unwrap()
    })
    .await;
    // Live, one by one: each covered by the grant when it arrives.
    let mut sent = vec![chat.clone(), grant];
    for i in 0..30 {
        sent.push(say(&alice, &chat, &format!("busy {i}")).await);
    }
    let bob_messages = [
        say(&bob, &bob_chat, "one").await,
        say(&bob, &bob_chat, "two").await,
    ];
    let refused = wait_for(&mut alice_events, |event| {
        matches!(event, chum::Event::PeerRefused { reason, .. } if reason.contains("quota"))
    })
    .await;
    let chum::Event::PeerRefused { reason, .. } = refused else {
        unreachable!()
    };
    assert!(reason.contains(&QUOTA.to_string()), "{reason}");
    eventually("bob's objects are stored", || async {
        hub.has(&bob_messages[1]).await.unwrap() && hub.has(&bob_messages[0]).await.unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Of everything alice sent (her conversation, her grant, 30 messages), the quota's worth.
    let mut stored = 0;
    for cid in &sent {
        stored += u64::from(hub.has(cid).await.unwrap());
    }
    assert!(
        stored > 0 && stored <= QUOTA,
        "{stored} of alice's objects stored"
    );
    for link in links {
        link.close().await;
    }
}

/// An object a hub keeps waiting for its link target is released — its arrival told — when
/// the target comes, live, from another person, who grants the waiting session's person
/// nothing: an announcement that concerns other sessions still completes what waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_releases_what_waited_for_a_target_another_person_sent() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let mut hub_events = hub.events();
    let alice = device(&hub_person).await;
    let bob = device(&hub_person).await;
    // Alice shares a conversation with the hub (not with Bob) and is connected.
    let chat = conversation(&alice, "alice's").await;
    let grant = alice.grant(&chat, &hub_person).await.unwrap().cid().clone();
    let alice_link = alice.connect(&hub_url).unwrap();
    alice_link.connected().await.unwrap();
    eventually("the hub holds alice's grant", || async {
        hub.has(&grant).await.unwrap()
    })
    .await;
    // The message she will write, known by its CID already.
    let original = json(&format!(
        r#"{{"$type":"Message","text":"the original","conversation":{{"/":"{chat}"}}}}"#
    ));
    let original_cid = chum::Object::from_value(&original).unwrap().cid().clone();
    // Bob writes a message in his own conversation that links to it, and connects.
    let notes = conversation(&bob, "bob's").await;
    let _ = bob.grant(&notes, &hub_person).await.unwrap();
    let reply = format!(
        r#"{{"$type":"Message","text":"about yours","conversation":{{"/":"{notes}"}},"originalId":{{"/":"{original_cid}"}}}}"#
    );
    let reply = bob.create(&json(&reply)).await.unwrap().cid().clone();
    let bob_link = bob.connect(&hub_url).unwrap();
    bob_link.connected().await.unwrap();
    eventually("the hub holds bob's reply", || async {
        hub.has(&reply).await.unwrap()
    })
    .await;
    // Its target is nowhere the hub can fetch it from: stored, but not told as arrived.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(1), hub_events.next()).await
    {
        assert!(
            !matches!(&event, chum::Event::Stored { cid, .. } if *cid == reply),
            "told before its target arrived"
        );
    }
    // Alice writes the message (an ordinary object, announced to her sessions' concerns).
    let written = alice.put(&original).await.unwrap();
    assert_eq!(written.cid(), &original_cid);
    wait_for(
        &mut hub_events,
        |event| matches!(event, chum::Event::Stored { cid, .. } if *cid == reply),
    )
    .await;
    assert!(hub.has(&original_cid).await.unwrap());
    for link in [alice_link, bob_link] {
        link.close().await;
    }
}

/// A person's two devices on one hub, both connected first: a conversation the laptop
/// grants to the hub reaches the phone, and what the phone then writes into it goes to the
/// hub (the grant, arriving through the hub, changes what the phone's session lets the hub
/// see) and is covered there (the grant, taken in the laptop's session, covers the phone's)
/// — stored, and heard by the laptop. The phone stores on disk (redb): its commits are not
/// done at once, so what it receives may be committed in several turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_one_device_made_covers_what_another_writes_later() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let laptop = device(&hub_person).await;
    let pairing = laptop.listen("tcp://127.0.0.1:0").await.unwrap();
    let dir = common::TempDir::new("hub-grant-phone");
    let phone = Instance::builder()
        .path(dir.0.join("phone"))
        .use_hub(hub_person.clone())
        .join(laptop.invite(Duration::from_secs(60)).await.unwrap())
        .open()
        .await
        .unwrap();
    pairing.close();
    let links: Vec<chum::Link> = [&laptop, &phone]
        .iter()
        .map(|instance| instance.connect(&hub_url).unwrap())
        .collect();
    for link in &links {
        link.connected().await.unwrap();
    }
    // Earlier objects in the same session first, so that the grant may come in a later
    // commit than theirs.
    for i in 0..20 {
        let _ = conversation(&laptop, &format!("other {i}")).await;
    }
    let notes = conversation(&laptop, "notes").await;
    let grant = laptop.grant(&notes, &hub_person).await.unwrap();
    eventually("the phone gets the grant through the hub", || async {
        phone.has(grant.cid()).await.unwrap()
    })
    .await;
    let written = say(&phone, &notes, "from the phone").await;
    eventually("the laptop hears the phone's message", || async {
        laptop.has(&written).await.unwrap()
    })
    .await;
    assert!(hub.has(&written).await.unwrap());
    for link in links {
        link.close().await;
    }
}

/// A stranger (a new person with its key at hand) who uses the hub, has written `conversation`
/// (the ID object `{"$type":"Conversation","id":"diary"}`), granted it to the hub and written
/// `text` into it; with a group of its own naming `victim` and a grant of the conversation to
/// that group, made but not stored. The stranger, its message, and the group, statement and
/// grant objects.
async fn stranger_with_group(
    hub_person: &chum::PersonId,
    conversation: &Cid,
    victim: &chum::PersonId,
    text: &str,
) -> (Instance, Cid, [chum::Object; 3]) {
    let identity = chum::Identity::new_person(1).unwrap();
    let key = identity.person_key().unwrap().clone();
    let stranger = Instance::builder()
        .memory()
        .identity(identity)
        .use_hub(hub_person.clone())
        .open()
        .await
        .unwrap();
    let same = json(r#"{"$type":"Conversation","id":"diary"}"#);
    assert_eq!(stranger.put(&same).await.unwrap().id(), Some(conversation));
    let _ = stranger.grant(conversation, hub_person).await.unwrap();
    let message = say(&stranger, conversation, text).await;
    let group = chum_access::grant::group(&stranger.person(), "friends").unwrap();
    let group_cid = group.cid().clone();
    let members =
        chum_access::GroupMembers::issue(&key, group_cid.clone(), std::slice::from_ref(victim), 2)
            .unwrap();
    let to_group = chum_access::Access::issue(&key, conversation.clone(), group_cid, 3).unwrap();
    (stranger, message, [group, members.object, to_group.object])
}

/// Stores `objects` at `instance` as they are.
async fn store_objects(instance: &Instance, objects: &[&chum::Object]) {
    let pairs: Vec<(Cid, Vec<u8>)> = objects
        .iter()
        .map(|object| (object.cid().clone(), object.bytes().to_vec()))
        .collect();
    instance.store().put_many(&pairs).await.unwrap();
}

/// A stranger who knows the ID of a person's conversation (ID objects are deterministic)
/// grants it to the hub and to that person, and writes into it. The hub refuses the grant —
/// the conversation is what that person sent it — so the message reaches none of her
/// devices, as a direct session would refuse it. The same through a group the stranger puts
/// her in, with the grant and the statement in one sync. What the stranger wrote stays hers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_write_into_a_persons_conversation_through_a_hub() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let alice = device(&hub_person).await;
    let diary = conversation(&alice, "diary").await;
    let mine = say(&alice, &diary, "mine").await;
    let _ = alice.grant(&diary, &hub_person).await.unwrap();
    let alice_link = alice.connect(&hub_url).unwrap();
    alice_link.connected().await.unwrap();
    eventually("the hub holds alice's diary", || async {
        hub.has(&mine).await.unwrap()
    })
    .await;
    let diary_object = json(r#"{"$type":"Conversation","id":"diary"}"#);
    let refused_with = |cid: Cid| {
        move |event: &chum::Event| {
            matches!(event, chum::Event::PeerRefused { cids, reason, .. }
                if cids.contains(&cid) && reason.contains("sent this hub itself"))
        }
    };

    // Mallory grants the diary to Alice directly.
    let mallory = device(&hub_person).await;
    let mut mallory_events = mallory.events();
    assert_eq!(mallory.put(&diary_object).await.unwrap().id(), Some(&diary));
    let _ = mallory.grant(&diary, &hub_person).await.unwrap();
    let to_alice = mallory.grant(&diary, &alice.person()).await.unwrap();
    let intrusion = say(&mallory, &diary, "intrusion").await;
    // Synced twice: the second session, with the grant to the hub held there, hears the
    // refusal on arrival (in the first, it may wait for that grant and be dropped then).
    for _ in 0..2 {
        let report = mallory.sync_once(&hub_url, Duration::from_secs(10)).await;
        assert!(report.unwrap().synced);
    }
    wait_for(&mut mallory_events, refused_with(to_alice.cid().clone())).await;
    assert!(
        hub.has(&intrusion).await.unwrap(),
        "mallory's message, as hers"
    );
    assert!(!hub.has(to_alice.cid()).await.unwrap());

    // Trudy puts Alice in a group of hers and grants the diary to the group, both at once.
    let (trudy, intrusion_too, [group, members, to_group]) =
        stranger_with_group(&hub_person, &diary, &alice.person(), "intrusion too").await;
    let mut trudy_events = trudy.events();
    store_objects(&trudy, &[&group, &members, &to_group]).await;
    for _ in 0..2 {
        let report = trudy.sync_once(&hub_url, Duration::from_secs(10)).await;
        assert!(report.unwrap().synced);
    }
    // The grant or the statement is refused, whichever came second.
    let refused = wait_for(&mut trudy_events, |event| {
        refused_with(to_group.cid().clone())(event) || refused_with(members.cid().clone())(event)
    })
    .await;
    assert!(
        hub.has(&intrusion_too).await.unwrap(),
        "trudy's message, as hers"
    );
    assert!(
        !(hub.has(to_group.cid()).await.unwrap() && hub.has(members.cid()).await.unwrap()),
        "{refused:?}"
    );

    // Alice, synced in full with the hub: her diary, none of theirs.
    let report = alice
        .sync_once(&hub_url, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(report.synced);
    let held = held(&alice).await;
    assert!(held.contains(&mine));
    assert!(!held.contains(&intrusion) && !held.contains(&intrusion_too));
    alice_link.close().await;
}

/// What the hub refuses a stranger it takes from a person a conversation was shared with:
/// Bob shares his conversation with Alice, she grants it back to him and to the hub and
/// replies in it (so she too has sent the hub Bob's conversation), and each still hears the
/// other through the hub — Bob's grant came before Alice sent the conversation, and hers
/// names what Bob granted her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_replies_in_a_conversation_shared_with_it_through_a_hub() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let alice = device(&hub_person).await;
    let bob = device(&hub_person).await;
    let plans = conversation(&bob, "plans").await;
    let hello = say(&bob, &plans, "hello").await;
    let _ = bob.grant(&plans, &hub_person).await.unwrap();
    let _ = bob.grant(&plans, &alice.person()).await.unwrap();
    let links: Vec<chum::Link> = [&alice, &bob]
        .iter()
        .map(|instance| instance.connect(&hub_url).unwrap())
        .collect();
    for link in &links {
        link.connected().await.unwrap();
    }
    eventually("alice gets bob's message", || async {
        alice.has(&hello).await.unwrap()
    })
    .await;
    let mut alice_events = alice.events();
    let back = alice.grant(&plans, &bob.person()).await.unwrap();
    let _ = alice.grant(&plans, &hub_person).await.unwrap();
    let reply = say(&alice, &plans, "hello to you").await;
    eventually("bob gets alice's reply", || async {
        bob.has(&reply).await.unwrap()
    })
    .await;
    assert!(hub.has(back.cid()).await.unwrap());
    let again = say(&bob, &plans, "and again").await;
    eventually("alice still gets bob's messages", || async {
        alice.has(&again).await.unwrap()
    })
    .await;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(1), alice_events.next()).await
    {
        assert!(
            !matches!(event, chum::Event::PeerRefused { .. }),
            "{event:?}"
        );
    }
    for link in links {
        link.close().await;
    }
}

/// A stranger's group grant of a person's conversation, with the statement that puts her in
/// the group sent in a sync of its own before or after the grant: whichever comes second is
/// refused, and she never gets the stranger's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_grant_cannot_reach_into_a_members_data_in_either_order() {
    let (hub, hub_url) = hub(Instance::builder().memory().hub()).await;
    let hub_person = hub.person();
    let alice = device(&hub_person).await;
    let diary = conversation(&alice, "diary").await;
    let _ = alice.grant(&diary, &hub_person).await.unwrap();
    let report = alice.sync_once(&hub_url, Duration::from_secs(10)).await;
    assert!(report.unwrap().synced);
    for statement_first in [true, false] {
        let (trudy, intrusion, [group, members, to_group]) =
            stranger_with_group(&hub_person, &diary, &alice.person(), "intrusion").await;
        let mut events = trudy.events();
        // The group (with the grant, which brings it along, or alone) first.
        let (first, second) = if statement_first {
            (members.clone(), to_group.clone())
        } else {
            (to_group.clone(), members.clone())
        };
        for objects in [vec![&group, &first], vec![&second]] {
            store_objects(&trudy, &objects).await;
            for _ in 0..2 {
                let report = trudy.sync_once(&hub_url, Duration::from_secs(10)).await;
                assert!(report.unwrap().synced);
            }
        }
        let late = second.cid().clone();
        wait_for(&mut events, |event| {
            matches!(event, chum::Event::PeerRefused { cids, reason, .. }
                if cids.contains(&late) && reason.contains("sent this hub itself"))
        })
        .await;
        assert!(
            !hub.has(&late).await.unwrap(),
            "statement first: {statement_first}"
        );
        assert!(hub.has(&intrusion).await.unwrap());
        let report = alice.sync_once(&hub_url, Duration::from_secs(10)).await;
        assert!(report.unwrap().synced);
        assert!(
            !alice.has(&intrusion).await.unwrap(),
            "statement first: {statement_first}"
        );
    }
}
