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

/// A new instance of `person`'s (certified by it, its identity saved in a memory store).
async fn second_instance(person: &Identity) -> Node {
    let key = generate_key().unwrap();
    let certificate = person
        .certify(
            chum_access::InstanceId(key.verifying_key().to_bytes()),
            now_ms(),
        )
        .unwrap();
    let identity = Identity::joined(key, certificate).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    identity.save(&*store, None).await.unwrap();
    Node::new(store)
        .with_identity(identity)
        .with_recipes(preset::seed())
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

    // Each side remembers the other instance (one record per peer instance, in the local area).
    let remembered = second.peers().await.unwrap();
    assert_eq!(remembered.len(), 1);
    assert_eq!(remembered[0].instance, alice_id.instance());
    assert!(remembered[0].same_person && remembered[0].last_synced_ms.is_some());
    assert_eq!(
        remembered[0].acknowledged, 1,
        "alice acknowledged the one new message"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = alice.peers().await.unwrap();
        if records
            .iter()
            .any(|r| r.instance == second.identity().unwrap().instance() && r.received >= 1)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{records:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let local_keys = second.store().local_keys(b"chum-net/peer/").await.unwrap();
    assert_eq!(local_keys.len(), 1);
    // Instances of one person learn how far they hold each other's journals (even a session
    // that ends once synced), so their next session can take the journal fast path.
    support::holds_all_of(&second, &alice).await;
    support::holds_all_of(&alice, &second).await;
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
    // No journal positions between persons: they would count ungranted objects.
    for node in [&alice, &bob] {
        assert!(
            chum_net::journals::recent(&**node.store(), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
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

/// A stranger (no grant either way) pushes its own identity objects — 2,000 self-signed
/// revocations of made-up instances, its Person, its certificate: none of it becomes shared
/// (it would sync on to every instance of Alice's), and a paired instance's admission reads no
/// more than before (revocations are looked up by person, not scanned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_writes_nothing_shared_and_costs_paired_admission_nothing() {
    use chum_access::InstanceId;
    use chum_store::decorators::CountingStore;
    use std::sync::atomic::Ordering;
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    let alice_id = Identity::new_person(now_ms()).unwrap();
    alice_id.save(&*store, None).await.unwrap();
    let alice = Node::new(store)
        .with_identity(alice_id.clone())
        .with_recipes(preset::seed());
    let notes: Vec<_> = (0..20).map(|i| message(&format!("n{i}"), None)).collect();
    alice.put(&notes).await.unwrap();
    let laptop = second_instance(&alice_id).await;
    // Objects Alice's store read during one paired sync.
    let paired = || async {
        let before = counting.counts.get.load(Ordering::Relaxed);
        let (left, right) = memory_pair(16);
        let (rl, ra) = tokio::join!(
            laptop.run(Role::Initiator, left, SYNC_ONCE),
            alice.run(Role::Responder, right, SessionOptions::default())
        );
        assert!(rl.synced, "{rl:?} {ra:?}");
        counting.counts.get.load(Ordering::Relaxed) - before
    };
    paired().await;
    let quiet = paired().await;

    let (mallory, mallory_id) = person_node().await;
    let revocations: Vec<_> = (0..2_000u32)
        .map(|i| {
            let mut instance = [7u8; 32];
            instance[..4].copy_from_slice(&i.to_le_bytes());
            of(mallory_id
                .revoke(InstanceId(instance), now_ms())
                .unwrap()
                .object())
        })
        .collect();
    mallory.put(&revocations).await.unwrap();
    let before = shared(&**alice.store()).await;
    let (left, right) = memory_pair(16);
    let (rm, ra) = tokio::join!(
        mallory.run(Role::Initiator, left, SYNC_ONCE),
        alice.run(Role::Responder, right, SessionOptions::default())
    );
    // Refusing a stranger's flood costs Alice next to nothing (its objects are neither hashed
    // nor checked), and past 1,000 refusals the session ends.
    assert!(rm.synced || ra.reason.contains("refused"), "{rm:?} {ra:?}");
    let after = shared(&**alice.store()).await;
    let added = after.iter().filter(|cid| !before.contains(cid)).count();
    assert_eq!(
        added, 0,
        "a stranger wrote {added} objects into Alice's shared set"
    );
    for (cid, _) in &revocations {
        assert!(!alice.store().has(cid).await.unwrap());
    }
    // Nothing of the stranger is kept: no Person, no certificate, no peer record.
    assert!(!alice.store().has(&mallory_id.person().0).await.unwrap());
    assert!(
        !alice
            .store()
            .has(mallory_id.certificate().object().cid())
            .await
            .unwrap()
    );
    assert!(
        alice
            .peers()
            .await
            .unwrap()
            .iter()
            .all(|record| record.person != mallory_id.person()),
        "a stranger left a peer record"
    );
    let attacked = paired().await;
    assert!(
        attacked <= quiet + 10,
        "a paired sync read {attacked} objects, {quiet} before the stranger came"
    );
}

/// Strangers have their own small share of sessions and an idle budget: with room for one, a
/// second stranger is refused as busy while an instance of the same person still gets in, and
/// the first stranger's idle session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_have_their_own_small_share_and_an_idle_budget() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let alice_id = Identity::new_person(now_ms()).unwrap();
    alice_id.save(&*store, None).await.unwrap();
    let alice = Arc::new(
        Node::new(store)
            .with_identity(alice_id.clone())
            .with_recipes(preset::seed())
            .with_limits(chum_net::HostLimits {
                max_strangers: 1,
                stranger_idle: std::time::Duration::from_millis(500),
                ..chum_net::HostLimits::default()
            }),
    );
    let (first, _) = person_node().await;
    let (second, _) = person_node().await;
    let (left, right) = memory_pair(16);
    let alice_side = Arc::clone(&alice);
    let first_run = tokio::spawn(async move {
        alice_side
            .run(Role::Responder, right, SessionOptions::default())
            .await
    });
    let mut first_events = first.events();
    let first_session = tokio::spawn({
        let first = Arc::clone(&first);
        async move {
            first
                .run(Role::Initiator, left, SessionOptions::default())
                .await
        }
    });
    support::synced(&mut first_events).await;
    // A second stranger while the first is connected: busy.
    let (left, right) = memory_pair(16);
    let (rs, ra) = tokio::join!(
        second.run(Role::Initiator, left, SYNC_ONCE),
        alice.run(Role::Responder, right, SessionOptions::default())
    );
    assert!(!rs.synced && ra.peer.is_none(), "{rs:?} {ra:?}");
    assert!(rs.reason.contains("busy"), "{rs:?}");
    // An instance of Alice's own gets in regardless.
    let key = generate_key().unwrap();
    let certificate = alice_id
        .certify(
            chum_access::InstanceId(key.verifying_key().to_bytes()),
            now_ms(),
        )
        .unwrap();
    let laptop_store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let laptop_id = Identity::joined(key, certificate).unwrap();
    laptop_id.save(&*laptop_store, None).await.unwrap();
    let laptop = Node::new(laptop_store)
        .with_identity(laptop_id)
        .with_recipes(preset::seed());
    let (left, right) = memory_pair(16);
    let (rl, _) = tokio::join!(
        laptop.run(Role::Initiator, left, SYNC_ONCE),
        alice.run(Role::Responder, right, SessionOptions::default())
    );
    assert!(rl.synced, "{rl:?}");
    // The first stranger moves nothing: its session ends once idle.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), first_run)
        .await
        .expect("the idle stranger's session ended")
        .unwrap();
    assert!(ended.peer.is_some());
    let _ = first_session.await;
}

mod attacks {
    use super::*;
    use chum_access::keys::{Certificate, generate_key};
    use chum_access::{InstanceId, handshake};
    use chum_net::transport::Connection;
    use chum_sync::memory::MemorySet;
    use chum_sync::noise::{Security, static_keypair};
    use chum_sync::{Answer, Config, Event, Input, Output, Request, Session};
    use std::time::Duration;

    /// What a hand-driven client saw, and the frames it sent.
    struct Seen {
        events: Vec<Event>,
        sent: Vec<Vec<u8>>,
        received_frames: usize,
    }

    /// Security for a client presenting `payload` built for its static key.
    fn security(payload: impl FnOnce(&[u8; 32]) -> Vec<u8>) -> Security {
        let (static_secret, static_public) =
            static_keypair(chum_access::keys::random_bytes().unwrap());
        Security {
            static_secret,
            payload: payload(&static_public),
            entropy: chum_access::keys::random_bytes().unwrap(),
        }
    }

    /// Runs a client session (admitting any server) over `connection` until it closes.
    async fn drive(security: Security, connection: Connection) -> Seen {
        drive_with(security, connection, MemorySet::new()).await
    }

    /// [`drive`], offering the objects of `set`.
    async fn drive_with(security: Security, connection: Connection, set: MemorySet) -> Seen {
        drive_tampering(security, connection, set, false).await
    }

    /// [`drive_with`]; with `tamper`, every object loaded for sending has a byte flipped (so
    /// its bytes no longer hash to its CID).
    async fn drive_tampering(
        security: Security,
        mut connection: Connection,
        mut set: MemorySet,
        tamper: bool,
    ) -> Seen {
        let mut config = Config::new(Role::Initiator);
        config.security = Some(security);
        let start = tokio::time::Instant::now();
        let mut session = Session::new(config, Duration::ZERO);
        let mut seen = Seen {
            events: Vec::new(),
            sent: Vec::new(),
            received_frames: 0,
        };
        loop {
            while let Some(output) = session.poll_output() {
                match output {
                    Output::Transmit(frame) => {
                        seen.sent.push(frame.clone());
                        let _ = connection.writer.write_frame(frame).await;
                        let _ = connection.writer.flush().await;
                    }
                    Output::Request(id, Request::Admit { .. }) => session.handle_input(
                        start.elapsed(),
                        Input::Answer(
                            id,
                            Answer::Admitted {
                                welcome: None,
                                journal: None,
                            },
                        ),
                    ),
                    Output::Request(id, request) => {
                        let (mut answer, _) = set.answer(request);
                        if tamper {
                            match &mut answer {
                                Answer::Loaded(objects) | Answer::Objects { objects, .. } => {
                                    for (_, bytes) in objects.iter_mut() {
                                        let last = bytes.len() - 1;
                                        bytes[last] ^= 1;
                                    }
                                }
                                _ => {}
                            }
                        }
                        session.handle_input(start.elapsed(), Input::Answer(id, answer));
                    }
                    Output::Event(event) => {
                        let synced = matches!(event, Event::Synced);
                        seen.events.push(event);
                        if synced {
                            session.handle_input(start.elapsed(), Input::Close);
                        }
                    }
                    _ => {}
                }
            }
            if session.is_closed() {
                return seen;
            }
            let frame =
                tokio::time::timeout(Duration::from_secs(10), connection.reader.read_frame())
                    .await
                    .expect("the server answered within 10 s");
            match frame {
                Ok(Some(frame)) => {
                    seen.received_frames += 1;
                    session.handle_input(start.elapsed(), Input::Frame(frame));
                }
                _ => session.handle_input(start.elapsed(), Input::TransportClosed),
            }
        }
    }

    fn refused_with(seen: &Seen, words: &str) {
        assert!(
            !seen
                .events
                .iter()
                .any(|event| matches!(event, Event::Connected { .. } | Event::Received(_))),
            "application data was exchanged: {:?}",
            seen.events
        );
        let closed = seen
            .events
            .iter()
            .find_map(|event| match event {
                Event::Closed { code, reason, .. } => Some((*code, reason.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(closed.0, CloseCode::Unauthorized, "{closed:?}");
        assert!(closed.1.contains(words), "{words:?} not in {:?}", closed.1);
        // The server sent its handshake message and the close, nothing else.
        assert!(seen.received_frames <= 2, "{} frames", seen.received_frames);
    }

    async fn server() -> (Arc<Node>, Identity, String) {
        let (alice, alice_id) = person_node().await;
        let private: Vec<_> = (0..30).map(|i| message(&format!("p{i}"), None)).collect();
        alice.put(&private).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(serve_tcp(
            Arc::clone(&alice),
            listener,
            ListenerLimits::default(),
        ));
        (alice, alice_id, address)
    }

    async fn connect(address: &str) -> Connection {
        tcp::connect(address, Limits::default().max_frame)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stolen_forged_and_revoked_credentials_are_refused() {
        let (alice, alice_id, address) = server().await;
        let before = shared(&**alice.store()).await;

        // A genuine second instance of Alice syncs (the control).
        let key = generate_key().unwrap();
        let certificate = alice_id
            .certify(InstanceId(key.verifying_key().to_bytes()), now_ms())
            .unwrap();
        let laptop = Identity::joined(key.clone(), certificate.clone()).unwrap();
        let good = drive(
            security(|static_public| handshake::payload(&laptop, static_public).unwrap()),
            connect(&address).await,
        )
        .await;
        assert!(
            good.events
                .iter()
                .any(|event| matches!(event, Event::Synced)),
            "{:?}",
            good.events
        );

        // Wrong key: the laptop's certificate presented by someone without the laptop's key.
        let mallory = Identity::new_person(now_ms()).unwrap();
        let stolen = drive(
            security(|static_public| {
                let mut payload = handshake::payload(&mallory, static_public).unwrap();
                // Swap in the stolen certificate, keep mallory's binding signature.
                let value = chum_object::dagcbor::decode(&payload).unwrap();
                let mut map = value.as_map().unwrap().clone();
                map.insert("cert", certificate.object().bytes().to_vec());
                payload = chum_object::dagcbor::encode(&Value::Map(map)).unwrap();
                payload
            }),
            connect(&address).await,
        )
        .await;
        refused_with(&stolen, "signature");

        // A certificate naming Alice's person but signed by another person's key.
        let forged_key = generate_key().unwrap();
        let forged = forged_certificate(&alice_id, &mallory, &forged_key);
        let forger = Identity::joined(forged_key, forged);
        assert!(
            forger.is_err(),
            "a forged certificate does not even verify locally"
        );
        let forged_payload = drive(
            security(|static_public| {
                let mut payload = handshake::payload(&mallory, static_public).unwrap();
                let value = chum_object::dagcbor::decode(&payload).unwrap();
                let mut map = value.as_map().unwrap().clone();
                map.insert("cert", forged_certificate_bytes(&alice_id, &mallory));
                payload = chum_object::dagcbor::encode(&Value::Map(map)).unwrap();
                payload
            }),
            connect(&address).await,
        )
        .await;
        refused_with(&forged_payload, "signature");

        // Revoked: the laptop, once Alice revokes it, is refused.
        let revocation = alice_id
            .revoke(InstanceId(key.verifying_key().to_bytes()), now_ms())
            .unwrap();
        alice.put(&[of(revocation.object())]).await.unwrap();
        let revoked = drive(
            security(|static_public| handshake::payload(&laptop, static_public).unwrap()),
            connect(&address).await,
        )
        .await;
        refused_with(&revoked, "revoked");

        // Blocked persons are refused too.
        chum_access::handshake::set_blocked(&**alice.store(), &mallory.person(), true)
            .await
            .unwrap();
        let blocked = drive(
            security(|static_public| handshake::payload(&mallory, static_public).unwrap()),
            connect(&address).await,
        )
        .await;
        refused_with(&blocked, "blocked");

        // Nothing the refused peers did reached Alice's store (the laptop's sync aside).
        let after = shared(&**alice.store()).await;
        assert_eq!(
            after.len(),
            before.len() + 2,
            "the laptop's certificate and the revocation"
        );
    }

    /// A certificate for `mallory`'s instance that claims Alice's person, signed by Mallory.
    /// 600 connections from 20 addresses start a frame and stall (the finding: they held every
    /// session slot for 45 s). Each address gets 8 waiting sessions, the rest are refused at
    /// once; a paired instance still syncs; a client from a flooding address hears why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_that_never_finish_their_handshake_do_not_keep_paired_instances_out() {
        use tokio::io::AsyncWriteExt;
        let (_alice, alice_id, address) = server().await;
        let server_address: std::net::SocketAddr = address.parse().unwrap();
        let mut held = Vec::new();
        for a in 2..22u8 {
            for _ in 0..30 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket
                    .bind(std::net::SocketAddr::from(([127, 0, 0, a], 0)))
                    .unwrap();
                if let Ok(mut stream) = socket.connect(server_address).await {
                    // A frame of 100 bytes announced, 3 sent, then nothing.
                    let _ = stream.write_all(&[0, 0, 0, 100, 1, 2, 3]).await;
                    held.push(stream);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A second instance of Alice's connects and syncs.
        let laptop = second_instance(&alice_id).await;
        let report = laptop
            .run(Role::Initiator, connect(&address).await, SYNC_ONCE)
            .await;
        assert!(report.synced, "{report:?}");
        // One more from a flooding address, as a client of the protocol: told it is busy.
        let mallory = Identity::new_person(now_ms()).unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0)))
            .unwrap();
        let stream = socket.connect(server_address).await.unwrap();
        let connection = tcp::connection(stream, Limits::default().max_frame).unwrap();
        let seen = drive(
            security(|static_public| handshake::payload(&mallory, static_public).unwrap()),
            connection,
        )
        .await;
        let closed = seen.events.iter().find_map(|event| match event {
            Event::Closed { code, reason, .. } => Some((*code, reason.clone())),
            _ => None,
        });
        let (code, reason) = closed.unwrap();
        assert_eq!(code, CloseCode::LimitExceeded, "{reason}");
        assert!(reason.contains("busy"), "{reason}");
        drop(held);
    }

    fn forged_certificate(
        alice: &Identity,
        mallory: &Identity,
        _key: &chum_object::sign::SigningKey,
    ) -> Certificate {
        // Re-sign Alice's certificate shape with Mallory's person key: `person` stays Alice's.
        let bytes = forged_certificate_bytes(alice, mallory);
        match Certificate::from_bytes(&bytes) {
            Ok(certificate) => certificate,
            Err(_) => mallory.certificate().clone(),
        }
    }

    fn forged_certificate_bytes(alice: &Identity, mallory: &Identity) -> Vec<u8> {
        let value = chum_object::dagcbor::decode(alice.certificate().object().bytes()).unwrap();
        let mut map = value.as_map().unwrap().clone();
        map.remove("signature");
        map.insert("instance", mallory.instance().0.to_vec());
        let unsigned = Object::from_value(&Value::Map(map.clone())).unwrap();
        let signature = chum_object::sign::sign(mallory.person_key().unwrap(), unsigned.cid());
        map.insert("signature", signature.to_vec());
        Object::from_value(&Value::Map(map))
            .unwrap()
            .bytes()
            .to_vec()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_objects_are_refused_and_nothing_is_stored() {
        let (alice, alice_id, address) = server().await;
        let key = generate_key().unwrap();
        let certificate = alice_id
            .certify(InstanceId(key.verifying_key().to_bytes()), now_ms())
            .unwrap();
        let laptop = Identity::joined(key, certificate).unwrap();
        // A grant that claims Alice as granter but carries Mallory's signature.
        let mallory = Identity::new_person(now_ms()).unwrap();
        let grant = Access::issue(
            mallory.person_key().unwrap(),
            message("x", None).0,
            mallory.person().0,
            now_ms(),
        )
        .unwrap();
        let value = chum_object::dagcbor::decode(grant.object.bytes()).unwrap();
        let mut map = value.as_map().unwrap().clone();
        map.insert("person", alice_id.person().0);
        map.insert("personKey", alice_id.person_public().to_vec());
        let forged = Object::from_value(&Value::Map(map)).unwrap();
        let innocent = message("sent beside the forgery", None);
        let mut set = MemorySet::new();
        set.insert(forged.cid().clone(), forged.bytes().to_vec())
            .unwrap();
        set.insert(innocent.0.clone(), innocent.1.clone()).unwrap();
        let seen = drive_with(
            security(|static_public| handshake::payload(&laptop, static_public).unwrap()),
            connect(&address).await,
            set,
        )
        .await;
        let closed = seen
            .events
            .iter()
            .find_map(|event| match event {
                Event::Closed { code, reason, .. } => Some((*code, reason.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(closed.0, CloseCode::InvalidObject, "{closed:?}");
        assert!(closed.1.contains("signature"), "{}", closed.1);
        assert!(!alice.store().has(forged.cid()).await.unwrap());
        assert!(
            !alice.store().has(&innocent.0).await.unwrap(),
            "the batch is refused whole"
        );

        // Bytes that do not hash to their CID: refused the same way.
        let mut set = MemorySet::new();
        set.insert(innocent.0.clone(), innocent.1.clone()).unwrap();
        let seen = drive_tampering(
            security(|static_public| handshake::payload(&laptop, static_public).unwrap()),
            connect(&address).await,
            set,
            true,
        )
        .await;
        let closed = seen
            .events
            .iter()
            .find_map(|event| match event {
                Event::Closed { code, reason, .. } => Some((*code, reason.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(closed.0, CloseCode::InvalidObject, "{closed:?}");
        assert!(closed.1.contains("hash"), "{}", closed.1);
        assert!(!alice.store().has(&innocent.0).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replayed_truncated_and_garbage_handshakes_are_refused() {
        let (alice, alice_id, address) = server().await;
        let before = shared(&**alice.store()).await;
        let mut events = alice.events();
        let key = generate_key().unwrap();
        let certificate = alice_id
            .certify(InstanceId(key.verifying_key().to_bytes()), now_ms())
            .unwrap();
        let laptop = Identity::joined(key, certificate).unwrap();
        let good = drive(
            security(|static_public| handshake::payload(&laptop, static_public).unwrap()),
            connect(&address).await,
        )
        .await;
        assert!(
            good.events
                .iter()
                .any(|event| matches!(event, Event::Synced))
        );
        let connected_before = drain_connected(&mut events);
        assert_eq!(connected_before, 1);

        // Replay: the recorded first and third handshake messages, on a new connection.
        let mut replay = connect(&address).await;
        replay
            .writer
            .write_frame(good.sent[0].clone())
            .await
            .unwrap();
        replay.writer.flush().await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), replay.reader.read_frame())
            .await
            .unwrap()
            .unwrap();
        assert!(
            answer.is_some(),
            "the server answers the replayed first message"
        );
        replay
            .writer
            .write_frame(good.sent[1].clone())
            .await
            .unwrap();
        replay.writer.flush().await.unwrap();
        assert_closed_without_data(&mut replay).await;

        // Truncated first message.
        let mut truncated = connect(&address).await;
        truncated
            .writer
            .write_frame(good.sent[0][..10].to_vec())
            .await
            .unwrap();
        truncated.writer.flush().await.unwrap();
        assert_closed_without_data(&mut truncated).await;

        // Garbage after a valid first message.
        let mut garbage = connect(&address).await;
        garbage
            .writer
            .write_frame(good.sent[0].clone())
            .await
            .unwrap();
        garbage.writer.flush().await.unwrap();
        let _ = garbage.reader.read_frame().await.unwrap();
        garbage.writer.write_frame(vec![0x5a; 96]).await.unwrap();
        garbage.writer.flush().await.unwrap();
        assert_closed_without_data(&mut garbage).await;

        // A plaintext hello instead of a handshake.
        let mut plain = connect(&address).await;
        plain
            .writer
            .write_frame(support::hello().encode())
            .await
            .unwrap();
        plain.writer.flush().await.unwrap();
        // A hello is a well-formed first message's length? It is refused either way: the
        // server may answer with its handshake message, never with data.
        let mut frames = 0;
        while let Ok(Ok(Some(_))) =
            tokio::time::timeout(Duration::from_secs(10), plain.reader.read_frame()).await
        {
            frames += 1;
            assert!(frames <= 1, "data after a plaintext hello");
        }

        assert_eq!(
            drain_connected(&mut events),
            0,
            "no session got past the handshake"
        );
        assert_eq!(shared(&**alice.store()).await.len(), before.len() + 1);
    }

    fn drain_connected(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>) -> usize {
        let mut connected = 0;
        while let Ok(event) = events.try_recv() {
            if matches!(event, NodeEvent::Connected { .. }) {
                connected += 1;
            }
        }
        connected
    }

    /// The server closes the connection, having sent nothing (beyond a handshake message).
    async fn assert_closed_without_data(connection: &mut Connection) {
        let mut frames = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), connection.reader.read_frame())
                .await
                .expect("the server closed within 10 s")
            {
                Ok(Some(_)) => {
                    frames += 1;
                    assert!(frames <= 1, "more than a handshake message");
                }
                _ => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_person_cannot_write_into_data_it_was_not_given() {
    let (alice, alice_id) = person_node().await;
    let (mallory, mallory_id) = person_node().await;
    // Alice's private conversation; its ID hash is guessable from its type and id.
    let (chat, chat_bytes) = conversation("family");
    alice
        .put(&[(chat.clone(), chat_bytes.clone())])
        .await
        .unwrap();
    let version = |text: &str, author: u8| {
        let body: chum_object::Map = [("title", text)].into();
        let version = chum_crdt::Version::new(
            chat.clone(),
            Vec::new(),
            chum_crdt::Timestamp::default(),
            chum_crdt::InstanceId([author; 32]),
            body,
        );
        of(&version.to_object().unwrap())
    };
    let forged = version("hacked", 9);
    // Mallory "grants" Alice her own conversation, hoping to push a version of it.
    let grant_back = Access::issue(
        mallory_id.person_key().unwrap(),
        chat.clone(),
        alice_id.person().0,
        now_ms(),
    )
    .unwrap();
    mallory
        .put(&[
            (chat.clone(), chat_bytes),
            forged.clone(),
            of(&grant_back.object),
        ])
        .await
        .unwrap();
    let mut alice_events = alice.events();
    let (left, right) = memory_pair(16);
    let (rm, ra) = tokio::join!(
        mallory.run(Role::Initiator, left, SYNC_ONCE),
        alice.run(Role::Responder, right, SessionOptions::default())
    );
    assert!(rm.synced, "{rm:?} {ra:?}");
    while let Ok(event) = alice_events.try_recv() {
        if let NodeEvent::Received { cids, .. } = event {
            assert!(
                !cids.contains(&forged.0),
                "an unstored object was announced"
            );
        }
    }
    assert!(
        !alice.store().has(&forged.0).await.unwrap(),
        "a version of Alice's own data from a person she never shared it with"
    );
    assert!(!alice.store().has(grant_back.object.cid()).await.unwrap());
    assert!(
        alice
            .store()
            .query(chum_store::Query::Versions(&chat))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_connected_instance_ends_its_session() {
    let (alice, alice_id) = person_node().await;
    let key = generate_key().unwrap();
    let certificate = alice_id
        .certify(
            chum_access::InstanceId(key.verifying_key().to_bytes()),
            now_ms(),
        )
        .unwrap();
    let laptop_id = Identity::joined(key, certificate).unwrap();
    let laptop = Arc::new(
        Node::new(Arc::new(MemoryStore::new()))
            .with_identity(laptop_id.clone())
            .with_recipes(preset::seed()),
    );
    let (left, right) = memory_pair(16);
    let mut laptop_events = laptop.events();
    let live_alice = Arc::clone(&alice);
    let server = tokio::spawn(async move {
        live_alice
            .run(Role::Responder, right, SessionOptions::default())
            .await
    });
    let live_laptop = Arc::clone(&laptop);
    let client = tokio::spawn(async move {
        live_laptop
            .run(Role::Initiator, left, SessionOptions::default())
            .await
    });
    support::synced(&mut laptop_events).await;
    // A "revocation" of the laptop signed by another person revokes nothing: the session
    // stays up (issue 15, finding 7).
    let stranger = Identity::new_person(now_ms()).unwrap();
    let forged = stranger.revoke(laptop_id.instance(), now_ms()).unwrap();
    alice.put(&[of(forged.object())]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !server.is_finished(),
        "another person's revocation ended the session"
    );
    let revocation = alice_id.revoke(laptop_id.instance(), now_ms()).unwrap();
    alice.put(&[of(revocation.object())]).await.unwrap();
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the session ended")
        .unwrap();
    assert_eq!(report.code, CloseCode::Normal, "{report:?}");
    let _ = client.await;
}

/// A joiner that takes few objects per batch (a browser takes 512) pairs and receives all of
/// its person's objects over an encrypted session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_with_a_small_batch_limit_receives_everything() {
    let (alice, alice_id) = person_node().await;
    let messages: Vec<_> = (0..1_500)
        .map(|i| message(&format!("m{i}"), None))
        .collect();
    alice.put(&messages).await.unwrap();
    let invitation = invite::create(&**alice.store(), &alice_id, None, now_ms(), 60_000)
        .await
        .unwrap();
    let mut config = chum_sync::Config::new(Role::Initiator);
    config.limits.max_batch_objects = 512;
    let joiner = Node::new(Arc::new(MemoryStore::new()))
        .with_recipes(preset::seed())
        .with_config(config);
    let (left, right) = memory_pair(16);
    let (report, served) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tokio::join!(
            joiner.join(invitation, generate_key().unwrap(), left, SYNC_ONCE),
            alice.run(Role::Responder, right, SessionOptions::default())
        )
    })
    .await
    .expect("the join finished");
    assert!(report.synced, "{report:?} {served:?}");
    assert_eq!(
        shared(&**joiner.store()).await,
        shared(&**alice.store()).await
    );
}
