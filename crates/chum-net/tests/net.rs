//! Real sessions: memory pipes and TCP on 127.0.0.1, MemoryStore and redb on disk.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chum_net::listener::{ListenerLimits, serve_tcp};
use chum_net::transport::tcp;
use chum_net::{Node, NodeEvent, SessionOptions, memory_pair};
use chum_object::{Cid, Object, dagjson};
use chum_store::{MemoryStore, Scope, Store};
use chum_store_redb::RedbStore;
use chum_sync::{CloseCode, Limits, Message, Role};
use tokio::net::TcpListener;

fn object(seed: u64) -> (Cid, Vec<u8>) {
    let json = format!(r#"{{"$type":"Message","n":{seed},"text":"message {seed} of a test"}}"#);
    let object = Object::from_value(&dagjson::from_str(&json).unwrap()).unwrap();
    (object.cid().clone(), object.bytes().to_vec())
}

fn objects(range: std::ops::Range<u64>) -> Vec<(Cid, Vec<u8>)> {
    range.map(object).collect()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "chum-net-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

const SYNC_ONCE: SessionOptions = SessionOptions {
    close_when_synced: true,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pipe_syncs_both_ways_and_keeps_local_objects_home() {
    let a = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    let b = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    a.put(&objects(0..300)).await.unwrap();
    b.put(&objects(200..500)).await.unwrap();
    let setting = object(9_999);
    a.store()
        .put_scoped(std::slice::from_ref(&setting), Scope::Local)
        .await
        .unwrap();
    let (left, right) = memory_pair(16);
    let (ra, rb) = tokio::join!(
        a.run(Role::Initiator, left, SYNC_ONCE),
        b.run(Role::Responder, right, SessionOptions::default())
    );
    assert!(ra.synced && rb.synced, "{ra:?} {rb:?}");
    assert_eq!((ra.received, rb.received), (200, 200));
    assert_eq!(rb.code, CloseCode::Normal);
    assert!(rb.by_peer);
    assert_eq!(shared(&**a.store()).await, shared(&**b.store()).await);
    assert!(
        !b.store().has(&setting.0).await.unwrap(),
        "local objects never leave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_into_redb_syncs_then_pushes_live_then_resumes() {
    let dir = TempDir::new("tcp");
    let server = Arc::new(Node::new(Arc::new(
        RedbStore::open(dir.0.join("server.redb")).unwrap(),
    )));
    let client = Arc::new(Node::new(Arc::new(
        RedbStore::open(dir.0.join("client.redb")).unwrap(),
    )));
    server.put(&objects(0..3_000)).await.unwrap();
    client.put(&objects(2_500..4_000)).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve_tcp(
        Arc::clone(&server),
        listener,
        ListenerLimits::default(),
    ));

    // Initial sync, then stay live.
    let connection = tcp::connect(&address, Limits::default().max_frame)
        .await
        .unwrap();
    let mut client_events = client.events();
    let mut server_events = server.events();
    let live_client = Arc::clone(&client);
    let session = tokio::spawn(async move {
        live_client
            .run(Role::Initiator, connection, SessionOptions::default())
            .await
    });
    support::synced(&mut client_events).await;
    assert_eq!(shared(&**client.store()).await.len(), 4_000);
    // Both stores hold the same shared set; wait until the server acknowledged its last batch.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shared(&**server.store()).await.len() < 4_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never caught up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Live: a put on the server reaches the client with no polling.
    let (cid, bytes) = object(50_000);
    server.put(&[(cid.clone(), bytes)]).await.unwrap();
    support::received(&mut client_events, &cid).await;
    assert!(client.store().has(&cid).await.unwrap());
    // And the other way.
    let (cid, bytes) = object(50_001);
    client.put(&[(cid.clone(), bytes)]).await.unwrap();
    support::received(&mut server_events, &cid).await;
    // Once traffic settles (a second), each side learns how far it holds the other's journal.
    support::holds_all_of(&client, &server).await;
    support::holds_all_of(&server, &client).await;
    session.abort();
    let _ = session.await;

    // While disconnected both sides write; the next session moves only those, by the journal
    // fast path: no sketch, no list.
    server.put(&objects(60_000..60_040)).await.unwrap();
    client.put(&objects(70_000..70_007)).await.unwrap();
    let connection = tcp::connect(&address, Limits::default().max_frame)
        .await
        .unwrap();
    let report = client.run(Role::Initiator, connection, SYNC_ONCE).await;
    assert!(report.synced, "{report:?}");
    assert_eq!(report.received, 40);
    assert_eq!(report.sent, 7);
    assert_eq!(
        shared(&**client.store()).await,
        shared(&**server.store()).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_objects_travel_along_a_chain_of_live_sessions() {
    let nodes: Vec<Arc<Node>> = (0..3)
        .map(|_| Arc::new(Node::new(Arc::new(MemoryStore::new()))))
        .collect();
    let mut events = nodes[2].events();
    for pair in nodes.windows(2) {
        let (left, right) = memory_pair(16);
        let (a, b) = (Arc::clone(&pair[0]), Arc::clone(&pair[1]));
        tokio::spawn(async move {
            a.run(Role::Initiator, left, SessionOptions::default())
                .await
        });
        tokio::spawn(async move {
            b.run(Role::Responder, right, SessionOptions::default())
                .await
        });
    }
    let (cid, bytes) = object(7);
    // Give the sessions a moment to finish their (empty) first reconciliation.
    tokio::time::sleep(Duration::from_millis(50)).await;
    nodes[0].put(&[(cid.clone(), bytes)]).await.unwrap();
    support::received(&mut events, &cid).await;
    assert!(nodes[2].store().has(&cid).await.unwrap());
}

/// Reads frames from a raw TCP connection until a close frame.
async fn close_frame_of(connection: &mut chum_net::Connection) -> Option<(CloseCode, String)> {
    loop {
        let frame = connection.reader.read_frame().await.ok()??;
        if let Ok(Message::Close { code, reason }) = Message::decode(&frame, &Limits::default()) {
            return Some((code, reason));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_refuses_floods_with_a_reason_and_garbage_with_a_close() {
    let server = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    server.put(&objects(0..10)).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let limits = ListenerLimits {
        burst: 3,
        per_second: 1.0,
        ..ListenerLimits::default()
    };
    tokio::spawn(serve_tcp(Arc::clone(&server), listener, limits));

    // Garbage after the length prefix: the server answers with a protocol-violation close.
    let mut garbage = tcp::connect(&address, 1 << 20).await.unwrap();
    garbage
        .writer
        .write_frame(b"GET / HTTP/1.1".to_vec())
        .await
        .unwrap();
    garbage.writer.flush().await.unwrap();
    let (code, _) = close_frame_of(&mut garbage).await.unwrap();
    assert_eq!(code, CloseCode::ProtocolViolation);
    // A length prefix above the frame limit: refused before anything is read for it, with a
    // close frame saying so.
    let mut oversized = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut oversized, &u32::MAX.to_be_bytes())
        .await
        .unwrap();
    let mut oversized = tcp::connection(oversized, 1 << 20).unwrap();
    let (code, reason) = close_frame_of(&mut oversized).await.unwrap();
    assert_eq!(code, CloseCode::LimitExceeded, "{reason}");
    let _idle = tcp::connect(&address, 1 << 20).await.unwrap();
    // The burst is used up (3 connections); the next is refused with a retry hint.
    let mut refused = tcp::connect(&address, 1 << 20).await.unwrap();
    let (code, reason) = close_frame_of(&mut refused).await.unwrap();
    assert_eq!(code, CloseCode::LimitExceeded);
    assert!(reason.contains("retry in"), "{reason}");
    // A second later the same address is served normally: refusals never become a ban.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let client = Node::new(Arc::new(MemoryStore::new()));
    let connection = tcp::connect(&address, 1 << 20).await.unwrap();
    let report = client.run(Role::Initiator, connection, SYNC_ONCE).await;
    assert!(report.synced, "{report:?}");
    assert_eq!(report.received, 10);
}

/// What a node did with one batch from a hand-driven peer.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Stored and acknowledged.
    Stored,
    /// Refused alone (the batch acknowledged, the session up), with the reason.
    Refused(String),
    /// The session closed.
    Closed(CloseCode),
}

/// Sends a hello and one batch holding `json` to a node configured with the preset recipes.
async fn send_to_recipe_node(json: &str) -> Outcome {
    let node =
        Arc::new(Node::new(Arc::new(MemoryStore::new())).with_recipes(chum_crdt::preset::seed()));
    assert_eq!(
        node.config().types[..3],
        ["Message", "Conversation", "Contact"],
        "announced types"
    );
    assert!(node.config().types.iter().any(|name| name == "Access"));
    assert!(!node.config().types.iter().any(|name| name == "Settings"));
    let (mut peer, theirs) = memory_pair(16);
    let running = Arc::clone(&node);
    let session = tokio::spawn(async move {
        running
            .run(Role::Responder, theirs, SessionOptions::default())
            .await
    });
    let object = Object::from_value(&dagjson::from_str(json).unwrap()).unwrap();
    for message in [
        support::hello(),
        Message::Objects {
            seq: 0,
            objects: vec![(object.cid().clone(), object.bytes().to_vec())],
        },
    ] {
        peer.writer.write_frame(message.encode()).await.unwrap();
    }
    let mut refused = None;
    let outcome = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), peer.reader.read_frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match Message::decode(&frame, &Limits::default()).unwrap() {
            Message::Close { code, .. } => break Outcome::Closed(code),
            Message::Refused {
                seq: 0,
                cids,
                reason,
            } => {
                assert_eq!(cids, [object.cid().clone()]);
                refused = Some(reason);
            }
            Message::Ack { seq: 0 } => match refused.take() {
                Some(reason) => break Outcome::Refused(reason),
                None => break Outcome::Stored,
            },
            _ => {}
        }
    };
    assert_eq!(
        node.store().has(object.cid()).await.unwrap(),
        outcome == Outcome::Stored,
        "stored exactly when accepted"
    );
    session.abort();
    outcome
}

fn refused(outcome: Outcome, words: &str) {
    match outcome {
        Outcome::Refused(reason) => assert!(reason.contains(words), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_checked_against_recipes_before_they_are_stored() {
    assert_eq!(
        send_to_recipe_node(r#"{"$type":"Message","text":"hello"}"#).await,
        Outcome::Stored
    );
    // Objects that break a recipe are refused one by one; the session goes on.
    refused(
        send_to_recipe_node(r#"{"$type":"Message","text":"hi","mood":"great"}"#).await,
        "mood",
    );
    refused(send_to_recipe_node(r#"{"$type":"Message"}"#).await, "text");
    refused(
        send_to_recipe_node(r#"{"$type":"Settings","key":"theme","value":"dark"}"#).await,
        "instance-local",
    );
    refused(
        send_to_recipe_node(r#"{"$type":"Version","of":"not a link"}"#).await,
        "version",
    );
    // A type without a recipe passes.
    assert_eq!(
        send_to_recipe_node(r#"{"$type":"Sticker","emoji":"x"}"#).await,
        Outcome::Stored
    );
    // A signed type with a broken signature closes the session: that is a forgery, not a
    // difference of versions.
    let forged = r#"{"$type":"InstanceRevocation","person":{"/":"bafyr4ihhu7ye7ffavepke4we236iykkruow542gksayxfz6ic2c7fwcthq"},"personKey":{"/":{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"instance":{"/":{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"created":1,"signature":{"/":{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}}"#;
    assert_eq!(
        send_to_recipe_node(forged).await,
        Outcome::Closed(CloseCode::InvalidObject)
    );
}

/// A node (initiator) and a hand-driven peer that is "in sync" and then pushes a message whose
/// conversation it sends only when asked (`send_target`), or never.
async fn message_before_its_conversation(send_target: bool) -> Vec<NodeEvent> {
    let node = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    let mut events = node.events();
    let (ours, mut peer) = memory_pair(16);
    let running = Arc::clone(&node);
    let session = tokio::spawn(async move {
        running
            .run(Role::Initiator, ours, SessionOptions::default())
            .await
    });
    let conversation = Object::from_value(
        &dagjson::from_str(r#"{"$type":"Conversation","name":"plans"}"#).unwrap(),
    )
    .unwrap();
    let message = Object::from_value(
        &dagjson::from_str(&format!(
            r#"{{"$type":"Message","text":"see you","conversation":{{"/":"{}"}}}}"#,
            conversation.cid()
        ))
        .unwrap(),
    )
    .unwrap();
    let pair = |o: &Object| (o.cid().clone(), o.bytes().to_vec());
    for frame in [
        support::hello().encode(),
        Message::InSync.encode(),
        Message::Objects {
            seq: 0,
            objects: vec![pair(&message)],
        }
        .encode(),
    ] {
        peer.writer.write_frame(frame).await.unwrap();
    }
    // The node asks for the missing conversation.
    let fetched = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), peer.reader.read_frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Fetch { cids } = Message::decode(&frame, &Limits::default()).unwrap() {
            break cids;
        }
    };
    assert_eq!(fetched, [conversation.cid().clone()]);
    assert!(
        node.store().has(message.cid()).await.unwrap(),
        "stored at once"
    );
    if send_target {
        let frame = Message::Objects {
            seq: 1,
            objects: vec![pair(&conversation)],
        }
        .encode();
        peer.writer.write_frame(frame).await.unwrap();
        support::received(&mut events, message.cid()).await;
    }
    drop(peer);
    let _ = session.await;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_is_announced_only_once_what_it_links_to_is_stored() {
    let events = message_before_its_conversation(true).await;
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, NodeEvent::Incomplete { .. })),
        "{events:?}"
    );
    let events = message_before_its_conversation(false).await;
    let incomplete: Vec<&NodeEvent> = events
        .iter()
        .filter(|event| matches!(event, NodeEvent::Incomplete { .. }))
        .collect();
    assert_eq!(incomplete.len(), 1, "{events:?}");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, NodeEvent::Received { .. })),
        "never announced as received: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_never_returns_an_instance_local_object() {
    let node = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    let shared = object(1);
    let local = object(2);
    node.put(std::slice::from_ref(&shared)).await.unwrap();
    node.store()
        .put_scoped(std::slice::from_ref(&local), Scope::Local)
        .await
        .unwrap();
    let (ours, mut peer) = memory_pair(16);
    let running = Arc::clone(&node);
    let session = tokio::spawn(async move {
        running
            .run(Role::Responder, ours, SessionOptions::default())
            .await
    });
    let unknown = object(3).0;
    for frame in [
        support::hello().encode(),
        Message::Fetch {
            cids: vec![local.0.clone(), shared.0.clone(), unknown],
        }
        .encode(),
    ] {
        peer.writer.write_frame(frame).await.unwrap();
    }
    let sent = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), peer.reader.read_frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Objects { objects, .. } =
            Message::decode(&frame, &Limits::default()).unwrap()
        {
            break objects;
        }
    };
    let cids: Vec<&Cid> = sent.iter().map(|(cid, _)| cid).collect();
    assert_eq!(
        cids,
        [&shared.0],
        "only the shared object, never the local one"
    );
    session.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_different_recipes_keep_syncing_what_both_accept() {
    use chum_object::recipe::{Field, Kind};
    // A newer app version: Message has an optional `mood`.
    let newer = chum_crdt::preset::message()
        .with_version(2)
        .field(Field::new("mood", Kind::Text).optional());
    let mut recipes = chum_crdt::preset::seed();
    recipes[0] = newer;
    let a = Arc::new(Node::new(Arc::new(MemoryStore::new())).with_recipes(recipes));
    let b =
        Arc::new(Node::new(Arc::new(MemoryStore::new())).with_recipes(chum_crdt::preset::seed()));
    let plain: Vec<(Cid, Vec<u8>)> = (0..100)
        .map(|i| {
            let value =
                dagjson::from_str(&format!(r#"{{"$type":"Message","text":"plain {i}"}}"#)).unwrap();
            let object = Object::from_value(&value).unwrap();
            (object.cid().clone(), object.bytes().to_vec())
        })
        .collect();
    let moody = Object::from_value(
        &dagjson::from_str(r#"{"$type":"Message","text":"hi","mood":"great"}"#).unwrap(),
    )
    .unwrap();
    a.put(&plain).await.unwrap();
    a.put(&[(moody.cid().clone(), moody.bytes().to_vec())])
        .await
        .unwrap();
    let mut a_events = a.events();
    let (left, right) = memory_pair(16);
    let (ra, rb) = tokio::join!(
        a.run(Role::Initiator, left, SYNC_ONCE),
        b.run(Role::Responder, right, SessionOptions::default())
    );
    assert!(ra.synced, "{ra:?} {rb:?}");
    for (cid, _) in &plain {
        assert!(b.store().has(cid).await.unwrap());
    }
    assert!(!b.store().has(moody.cid()).await.unwrap());
    assert_eq!(ra.sent, 100, "the refused object is not counted as held");
    let mut refused = None;
    while let Ok(event) = a_events.try_recv() {
        if let NodeEvent::PeerRefused { cids, reason, .. } = event {
            refused = Some((cids, reason));
        }
    }
    let (cids, reason) = refused.expect("a PeerRefused event");
    assert_eq!(cids, [moody.cid().clone()]);
    assert!(reason.contains("mood"), "{reason}");
}

/// A receiver that takes few objects per batch (a browser takes 512) still gets everything,
/// from empty and into a store holding part of it, either side initiating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_with_a_small_batch_limit_gets_everything() {
    for (held, receiver_initiates) in [(0, true), (0, false), (700, true)] {
        let mut config = chum_sync::Config::new(Role::Initiator);
        config.limits.max_batch_objects = 512;
        let sender = Arc::new(Node::new(Arc::new(MemoryStore::new())));
        let receiver = Arc::new(Node::new(Arc::new(MemoryStore::new())).with_config(config));
        sender.put(&objects(0..3_000)).await.unwrap();
        receiver.put(&objects(0..held)).await.unwrap();
        let (left, right) = memory_pair(16);
        let (rr, rs) = if receiver_initiates {
            tokio::join!(
                receiver.run(Role::Initiator, left, SYNC_ONCE),
                sender.run(Role::Responder, right, SessionOptions::default())
            )
        } else {
            let (rs, rr) = tokio::join!(
                sender.run(Role::Initiator, left, SYNC_ONCE),
                receiver.run(Role::Responder, right, SessionOptions::default())
            );
            (rr, rs)
        };
        assert!(rr.synced && rs.synced, "held {held}: {rr:?} {rs:?}");
        assert_eq!(rr.received, 3_000 - held);
        assert_eq!(
            shared(&**receiver.store()).await.len(),
            3_000,
            "held {held}, receiver initiates: {receiver_initiates}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_path_delays_each_frame_by_its_delay_and_its_length_over_the_bandwidth() {
    use chum_net::transport::simulated::{Path, pair};
    // 20 ms one way, 1 Mbit/s: a 1,000-byte frame takes 8 ms on the link.
    let path = Path::new(Duration::from_millis(40), 1_000_000);
    let (mut left, mut right, counters) = pair(path);
    let start = std::time::Instant::now();
    for n in 0..3_u8 {
        left.writer.write_frame(vec![n; 1_000]).await.unwrap();
    }
    for n in 0..3_u8 {
        let frame = right.reader.read_frame().await.unwrap().unwrap();
        assert_eq!(frame, vec![n; 1_000], "in order, whole");
        // Never earlier than the delay plus the frames before it and itself on the link.
        let earliest = Duration::from_millis(20 + 8 * (u64::from(n) + 1));
        assert!(
            start.elapsed() >= earliest,
            "frame {n} at {:?}",
            start.elapsed()
        );
    }
    assert_eq!(
        counters[0].load(std::sync::atomic::Ordering::Relaxed),
        3_000
    );
    left.writer.close().await.unwrap();
    assert!(right.reader.read_frame().await.unwrap().is_none(), "closed");
}

/// A store that panics while committing what a peer sent ends that session with a store
/// failure, not the node: the next session stores everything. The memory store never blocks,
/// so its commit runs on the node's own task first (see `Node`'s commits); redb's runs on a
/// thread of the blocking pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_panics_ends_the_session_not_the_node() {
    use chum_store::decorators::{Fault, FaultStore};
    let dir = TempDir::new("panicking-store");
    for never_blocks in [true, false] {
        let a = Arc::new(Node::new(Arc::new(MemoryStore::new())));
        a.put(&objects(0..50)).await.unwrap();
        let store: Arc<dyn Store> = if never_blocks {
            Arc::new(FaultStore::new(MemoryStore::new(), Fault::PanicWrite(1)))
        } else {
            Arc::new(FaultStore::new(
                RedbStore::open(dir.0.join("b.redb")).unwrap(),
                Fault::PanicWrite(1),
            ))
        };
        assert_eq!(store.never_blocks(), never_blocks);
        let b = Arc::new(Node::new(Arc::clone(&store)));
        let (left, right) = memory_pair(16);
        let (_, rb) = tokio::join!(
            a.run(Role::Initiator, left, SYNC_ONCE),
            b.run(Role::Responder, right, SessionOptions::default())
        );
        assert_eq!(rb.code, CloseCode::StoreFailure, "{rb:?}");
        assert!(rb.reason.contains("panicked"), "{rb:?}");
        let (left, right) = memory_pair(16);
        let (ra, rb) = tokio::join!(
            a.run(Role::Initiator, left, SYNC_ONCE),
            b.run(Role::Responder, right, SessionOptions::default())
        );
        assert!(ra.synced && rb.synced, "{ra:?} {rb:?}");
        assert_eq!(shared(&*store).await, shared(&**a.store()).await);
    }
}
