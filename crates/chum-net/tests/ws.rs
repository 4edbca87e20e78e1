//! WebSocket sessions on 127.0.0.1: `ws://` and `wss://` (a self-signed certificate), between
//! nodes on redb files.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use chum_net::listener::{ListenerLimits, serve_ws};
use chum_net::ws::{self, ClientTls, ServerTls};
use chum_net::{Node, SessionOptions};
use chum_object::{Cid, Object, dagjson};
use chum_store::MemoryStore;
use chum_store_redb::RedbStore;
use chum_sync::{Limits, Role};
use tokio::net::TcpListener;

fn object(seed: u64) -> (Cid, Vec<u8>) {
    let json = format!(r#"{{"$type":"Message","n":{seed},"text":"over a websocket"}}"#);
    let object = Object::from_value(&dagjson::from_str(&json).unwrap()).unwrap();
    (object.cid().clone(), object.bytes().to_vec())
}

const SYNC_ONCE: SessionOptions = SessionOptions {
    close_when_synced: true,
};

async fn listen(node: Arc<Node>, tls: Option<ServerTls>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_ws(node, listener, ListenerLimits::default(), tls));
    port.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_between_redb_stores_syncs_and_pushes_live() {
    let dir = std::env::temp_dir().join(format!("chum-ws-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = Arc::new(Node::new(Arc::new(
        RedbStore::open(dir.join("server.redb")).unwrap(),
    )));
    let client = Arc::new(Node::new(Arc::new(
        RedbStore::open(dir.join("client.redb")).unwrap(),
    )));
    server
        .put(&(0..500).map(object).collect::<Vec<_>>())
        .await
        .unwrap();
    let port = listen(Arc::clone(&server), None).await;
    let connection = ws::connect(&format!("ws://127.0.0.1:{port}"), 1 << 22, None)
        .await
        .unwrap();
    let mut events = client.events();
    let live = Arc::clone(&client);
    let session = tokio::spawn(async move {
        live.run(Role::Initiator, connection, SessionOptions::default())
            .await
    });
    support::synced(&mut events).await;
    assert_eq!(client.store().count().await.unwrap(), 500);
    let (cid, bytes) = object(9_000);
    server.put(&[(cid.clone(), bytes)]).await.unwrap();
    support::received(&mut events, &cid).await;
    assert!(client.store().has(&cid).await.unwrap());
    session.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_trusted_certificate_syncs_and_an_untrusted_one_is_refused() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let tls = ServerTls::new(vec![cert.clone()], key).unwrap();
    let server = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    server
        .put(&(0..50).map(object).collect::<Vec<_>>())
        .await
        .unwrap();
    let port = listen(Arc::clone(&server), Some(tls)).await;
    let url = format!("wss://localhost:{port}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let trusted = ClientTls::with_roots(roots).unwrap();
    let client = Node::new(Arc::new(MemoryStore::new()));
    let connection = ws::connect(&url, Limits::default().max_frame, Some(trusted))
        .await
        .unwrap();
    let report = client.run(Role::Initiator, connection, SYNC_ONCE).await;
    assert!(report.synced, "{report:?}");
    assert_eq!(report.received, 50);

    // The public web PKI does not vouch for a self-signed certificate.
    let untrusted = ws::connect(&url, Limits::default().max_frame, None).await;
    assert!(untrusted.is_err(), "an untrusted certificate is refused");
}

/// Reads until a CHUM close frame; `None` if the connection ends first.
async fn close_code<S>(socket: &mut S) -> Option<chum_sync::CloseCode>
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .ok()??
        {
            Ok(WsMessage::Binary(frame)) => {
                if let Ok(chum_sync::Message::Close { code, .. }) =
                    chum_sync::Message::decode(&frame, &Limits::default())
                {
                    return Some(code);
                }
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_or_an_oversized_one_is_refused() {
    use chum_sync::CloseCode;
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let server = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    server.put(&[object(1)]).await.unwrap();
    let port = listen(Arc::clone(&server), None).await;
    let url = format!("ws://127.0.0.1:{port}");

    // A text message: a protocol violation, said in a close frame.
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    socket.send(WsMessage::Text("hello".into())).await.unwrap();
    assert_eq!(
        close_code(&mut socket).await,
        Some(CloseCode::ProtocolViolation)
    );

    // A message over the frame limit: refused from its header, the connection ends (the
    // close frame may be lost to the reset of a connection still sending).
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let oversized = vec![0u8; Limits::default().max_frame + 1];
    let _ = socket.send(WsMessage::Binary(oversized.into())).await;
    let code = close_code(&mut socket).await;
    assert!(
        matches!(code, None | Some(CloseCode::LimitExceeded)),
        "{code:?}"
    );

    // The server is unharmed.
    let client = Node::new(Arc::new(MemoryStore::new()));
    let connection = ws::connect(&url, Limits::default().max_frame, None)
        .await
        .unwrap();
    let report = client.run(Role::Initiator, connection, SYNC_ONCE).await;
    assert!(report.synced && report.received == 1, "{report:?}");
}

/// Half-open WebSocket upgrades from one address (a byte each, then nothing) cannot take the
/// handshake slots of everyone else: a client from another address still syncs at once
/// (issue 15, finding 3 — before, 260 such connections left 0 of 20 syncs through for 40 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_upgrades_from_one_address_do_not_lock_others_out() {
    let server = Arc::new(Node::new(Arc::new(MemoryStore::new())));
    server.put(&[object(1), object(2)]).await.unwrap();
    let port = listen(Arc::clone(&server), None).await;
    let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut half_open = Vec::new();
    for _ in 0..260 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let Ok(mut stream) = socket.connect(target).await else {
            continue;
        };
        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"G").await;
        half_open.push(stream);
    }
    assert!(
        half_open.len() >= 200,
        "{} connections opened",
        half_open.len()
    );
    for _ in 0..5 {
        let client = Node::new(Arc::new(MemoryStore::new()));
        let connection = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            ws::connect(
                &format!("ws://127.0.0.1:{port}"),
                Limits::default().max_frame,
                None,
            ),
        )
        .await
        .expect("the upgrade is answered")
        .unwrap();
        let report = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.run(Role::Initiator, connection, SYNC_ONCE),
        )
        .await
        .expect("the session syncs");
        assert!(report.synced, "{report:?}");
        assert_eq!(report.received, 2);
    }
    drop(half_open);
}
