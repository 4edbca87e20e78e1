//! Encrypted, authenticated sessions: pairing with invitations, grants that decide what a
//! peer of another person sees, and refused credentials.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use chum_access::grant::{Access, AccessRevocation};
use chum_access::keys::generate_key;
use chum_access::{Identity, invite};
use chum_crdt::preset;
use chum_net::listener::{ListenerLimits, serve_tcp};
use chum_net::transport::tcp;
use chum_net::{Node, NodeEvent, SessionOptions, memory_pair};
use chum_object::{Cid, Object, Value, dagjson};
use chum_store::{MemoryStore, Store};
use chum_sync::{CloseCode, Limits, Role};
use tokio::net::TcpListener;

const SYNC_ONCE: SessionOptions = SessionOptions {
    close_when_synced: true,
};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn object(json: &str) -> (Cid, Vec<u8>) {
    let object = Object::from_value(&dagjson::from_str(json).unwrap()).unwrap();
    (object.cid().clone(), object.bytes().to_vec())
}

fn of(object: &Object) -> (Cid, Vec<u8>) {
    (object.cid().clone(), object.bytes().to_vec())
}

/// A conversation's ID object (its CID is the ID hash messages link to).
fn conversation(id: &str) -> (Cid, Vec<u8>) {
    let value = dagjson::from_str(&format!(r#"{{"$type":"Conversation","id":"{id}"}}"#)).unwrap();
    let id_object = preset::conversation().id_object(&value).unwrap();
    of(&Object::from_value(&id_object).unwrap())
}

fn message(text: &str, conversation: Option<&Cid>) -> (Cid, Vec<u8>) {
    match conversation {
        Some(cid) => object(&format!(
            r#"{{"$type":"Message","text":"{text}","conversation":{{"/":"{cid}"}}}}"#
        )),
        None => object(&format!(r#"{{"$type":"Message","text":"{text}"}}"#)),
    }
}

/// A node with a fresh person (saved in its memory store).
async fn person_node() -> (Arc<Node>, Identity) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let identity = Identity::new_person(now_ms()).unwrap();
    identity.save(&*store, None).await.unwrap();
    let node = Node::new(store)
        .with_identity(identity.clone())
        .with_recipes(preset::seed());
    (Arc::new(node), identity)
}

async fn shared(store: &dyn Store) -> Vec<Cid> {
    store
        .sync_list(
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            usize::MAX,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_pairs_a_new_instance_once_over_tcp() {
    let (alice, alice_id) = person_node().await;
    let messages: Vec<_> = (0..50).map(|i| message(&format!("m{i}"), None)).collect();
    alice.put(&messages).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve_tcp(
        Arc::clone(&alice),
        listener,
        ListenerLimits::default(),
    ));
    let invitation = invite::create(
        &**alice.store(),
        &alice_id,
        Some(format!("tcp://{address}")),
        now_ms(),
        60_000,
    )
    .await
    .unwrap();
    let text = invitation.to_text();
    let parsed = chum_access::Invitation::from_text(&text).unwrap();
    assert_eq!(parsed, invitation);

    // The new instance joins and syncs everything of its person.
    let joiner = Node::new(Arc::new(MemoryStore::new())).with_recipes(preset::seed());
    let key = generate_key().unwrap();
    let connect = || tcp::connect(&address, Limits::default().max_frame);
    let report = joiner
        .join(
            parsed.clone(),
            key.clone(),
            connect().await.unwrap(),
            SYNC_ONCE,
        )
        .await;
    assert!(report.synced, "{report:?}");
    let joined = report.joined.clone().unwrap();
    assert_eq!(joined.person(), alice_id.person());
    assert!(!joined.holds_person_key());
    assert_eq!(joined.instance().0, key.verifying_key().to_bytes());
    assert_eq!(
        shared(&**joiner.store()).await,
        shared(&**alice.store()).await
    );

    // The same instance may retry: the same certificate again.
    let again = joiner
        .join(
            parsed.clone(),
            key.clone(),
            connect().await.unwrap(),
            SYNC_ONCE,
        )
        .await;
    assert_eq!(again.joined.unwrap().certificate(), joined.certificate());

    // Any other instance is refused, with nothing exchanged.
    let thief = Node::new(Arc::new(MemoryStore::new()));
    let refused = thief
        .join(
            parsed.clone(),
            generate_key().unwrap(),
            connect().await.unwrap(),
            SYNC_ONCE,
        )
        .await;
    assert!(refused.joined.is_none() && !refused.synced);
    assert_eq!(refused.code, CloseCode::Unauthorized, "{refused:?}");
    assert!(
        refused.reason.contains("already used"),
        "{}",
        refused.reason
    );
    assert!(shared(&**thief.store()).await.is_empty());

    // A wrong secret and an expired invitation are refused too.
    let mut wrong = parsed.clone();
    wrong.secret[0] ^= 1;
    let report = thief
        .join(
            wrong,
            generate_key().unwrap(),
            connect().await.unwrap(),
            SYNC_ONCE,
        )
        .await;
    assert_eq!(report.code, CloseCode::Unauthorized);
    assert!(
        report.reason.contains("unknown invitation"),
        "{}",
        report.reason
    );
    let expired = invite::create(&**alice.store(), &alice_id, None, now_ms() - 10_000, 1)
        .await
        .unwrap();
    let report = thief
        .join(
            expired,
            generate_key().unwrap(),
            connect().await.unwrap(),
            SYNC_ONCE,
        )
        .await;
    assert_eq!(report.code, CloseCode::Unauthorized);
    assert!(report.reason.contains("expired"), "{}", report.reason);
    assert!(shared(&**thief.store()).await.is_empty());

    // The joined instance is now an instance of the person: it syncs both ways.
    joined.save(&**joiner.store(), None).await.unwrap();
    let second = Node::new(Arc::clone(joiner.store()))
        .with_identity(joined)
        .with_recipes(preset::seed());
    let mine = message("from the joined instance", None);
    second.put(std::slice::from_ref(&mine)).await.unwrap();
    let report = second
        .run(Role::Initiator, connect().await.unwrap(), SYNC_ONCE)
        .await;
    assert!(report.synced, "{report:?}");
    assert_eq!(report.peer.unwrap().person, alice_id.person());
    assert!(alice.store().has(&mine.0).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_person_sees_only_what_grants_cover() {
    let (alice, alice_id) = person_node().await;
    let (bob, bob_id) = person_node().await;
    let private: Vec<_> = (0..200)
        .map(|i| message(&format!("private {i}"), None))
        .collect();
    let (chat, chat_bytes) = conversation("chat");
    let (other, other_bytes) = conversation("other");
    let chat_messages: Vec<_> = (0..20)
        .map(|i| message(&format!("chat {i}"), Some(&chat)))
        .collect();
    let other_messages: Vec<_> = (0..20)
        .map(|i| message(&format!("other {i}"), Some(&other)))
        .collect();
    alice.put(&private).await.unwrap();
    alice
        .put(&[(chat.clone(), chat_bytes), (other.clone(), other_bytes)])
        .await
        .unwrap();
    alice.put(&chat_messages).await.unwrap();
    alice.put(&other_messages).await.unwrap();
    let person_key = alice_id.person_key().unwrap();
    let grant = Access::issue(person_key, chat.clone(), bob_id.person().0, now_ms()).unwrap();
    alice.put(&[of(&grant.object)]).await.unwrap();

    // Bob's first sync: the grant, the conversation, its messages, Alice's public identity.
    let (left, right) = memory_pair(16);
    let mut bob_events = bob.events();
    let live_alice = Arc::clone(&alice);
    let server = tokio::spawn(async move {
        live_alice
            .run(Role::Responder, right, SessionOptions::default())
            .await
    });
    let live_bob = Arc::clone(&bob);
    let client = tokio::spawn(async move {
        live_bob
            .run(Role::Initiator, left, SessionOptions::default())
            .await
    });
    support::synced(&mut bob_events).await;
    let bob_has = |cid: Cid| {
        let bob = Arc::clone(&bob);
        async move { bob.store().has(&cid).await.unwrap() }
    };
    for (cid, _) in &chat_messages {
        assert!(bob_has(cid.clone()).await);
    }
    assert!(bob_has(chat.clone()).await && bob_has(grant.object.cid().clone()).await);
    for (cid, _) in private.iter().chain(&other_messages) {
        assert!(
            !bob_has(cid.clone()).await,
            "an ungranted object reached bob"
        );
    }
    assert!(!bob_has(other.clone()).await);

    // Live: a new chat message arrives; a new private one does not.
    let secret = message("new private", None);
    alice.put(std::slice::from_ref(&secret)).await.unwrap();
    let live = message("chat live", Some(&chat));
    alice.put(std::slice::from_ref(&live)).await.unwrap();
    support::received(&mut bob_events, &live.0).await;
    assert!(!bob_has(secret.0.clone()).await);

    // A grant added later: the other conversation's existing messages arrive live.
    let second = Access::issue(person_key, other.clone(), bob_id.person().0, now_ms()).unwrap();
    alice.put(&[of(&second.object)]).await.unwrap();
    let last = other_messages.last().unwrap().0.clone();
    support::received(&mut bob_events, &last).await;
    for (cid, _) in &other_messages {
        assert!(bob_has(cid.clone()).await);
    }

    // Revoked: new chat messages stop; the other conversation still flows (and marks the
    // point by which the revoked one would have arrived).
    let revocation =
        AccessRevocation::issue(person_key, grant.object.cid().clone(), now_ms()).unwrap();
    alice.put(&[of(&revocation.object)]).await.unwrap();
    let after = message("chat after revocation", Some(&chat));
    alice.put(std::slice::from_ref(&after)).await.unwrap();
    let marker = message("other marker", Some(&other));
    alice.put(std::slice::from_ref(&marker)).await.unwrap();
    support::received(&mut bob_events, &marker.0).await;
    assert!(
        !bob_has(after.0.clone()).await,
        "a revoked grant still delivered"
    );

    // Bob sends Alice only what her grants to Bob cover: nothing of his own private data.
    let bobs = message("bob's private note", None);
    bob.put(std::slice::from_ref(&bobs)).await.unwrap();
    let mut alice_events = alice.events();
    let probe = message("probe", Some(&other));
    alice.put(std::slice::from_ref(&probe)).await.unwrap();
    support::received(&mut bob_events, &probe.0).await;
    let _ = &mut alice_events;
    assert!(!alice.store().has(&bobs.0).await.unwrap());
    server.abort();
    client.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_without_grants_connects_and_receives_nothing_private() {
    let (alice, alice_id) = person_node().await;
    let (mallory, _) = person_node().await;
    let private: Vec<_> = (0..100).map(|i| message(&format!("p{i}"), None)).collect();
    alice.put(&private).await.unwrap();
    let (left, right) = memory_pair(16);
    let (rm, ra) = tokio::join!(
        mallory.run(Role::Initiator, left, SYNC_ONCE),
        alice.run(Role::Responder, right, SessionOptions::default())
    );
    assert!(rm.synced, "{rm:?} {ra:?}");
    assert_eq!(rm.peer.unwrap().person, alice_id.person());
    // Only Alice's public identity (Person, certificate) arrived.
    let public: Vec<Cid> = alice_id
        .public_objects()
        .iter()
        .map(|object| object.cid().clone())
        .collect();
    for cid in shared(&**mallory.store()).await {
        assert!(
            public.contains(&cid)
                || mallory
                    .identity()
                    .unwrap()
                    .public_objects()
                    .iter()
                    .any(|o| o.cid() == &cid),
            "{cid} reached a person without grants"
        );
    }
    for (cid, _) in &private {
        assert!(!mallory.store().has(cid).await.unwrap());
    }
    let _ = NodeEvent::Synced { session: 0 };
    let _ = Value::Null;
}
