//! Two instances of one person, each with its own redb store on disk, syncing over an
//! encrypted WebSocket session on 127.0.0.1: the "renderer" joins the person with an
//! invitation from the "main process", the first sync sends exactly what each lacks, then a new
//! message is pushed live.
//!
//! Run: `cargo run --release -p chum-examples --example sync [N]` (N messages, default 20,000)

use std::sync::Arc;
use std::time::Instant;

use chum_access::{Identity, invite};
use chum_net::listener::{ListenerLimits, serve_ws};
use chum_net::{Node, NodeEvent, SessionOptions, ws};
use chum_object::{Cid, Object, dagjson};
use chum_store::Store;
use chum_store_redb::RedbStore;
use chum_sync::Role;

fn message(n: usize, from: &str) -> Result<(Cid, Vec<u8>), Box<dyn std::error::Error>> {
    let json = format!(r#"{{"$type":"Message","text":"message {n} from {from}"}}"#);
    let object = Object::from_value(&dagjson::from_str(&json)?)?;
    Ok((object.cid().clone(), object.bytes().to_vec()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("chum-sync-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let seed = chum_crdt::preset::seed;

    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };

    // The "main process" peer: a new person, a store on disk, listening on a WebSocket.
    let main_store = Arc::new(RedbStore::open(dir.join("main.redb"))?);
    let person = Identity::new_person(now_ms())?;
    person.save(&*main_store, None).await?;
    let main = Arc::new(
        Node::new(main_store.clone())
            .with_identity(person.clone())
            .with_recipes(seed()),
    );
    let batch: Vec<_> = (0..n)
        .map(|i| message(i, "main"))
        .collect::<Result<_, _>>()?;
    main.put(&batch).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    tokio::spawn(serve_ws(
        Arc::clone(&main),
        listener,
        ListenerLimits::default(),
        None,
    ));
    let invitation =
        invite::create(&*main_store, &person, Some(url.clone()), now_ms(), 60_000).await?;
    println!("person {}", person.person());
    println!("invitation {}", invitation.to_text());

    // The "renderer" peer: its own store, which already holds a few messages of its own. It
    // joins the person with the invitation (first sync included) and keeps its identity.
    let renderer_store = Arc::new(RedbStore::open(dir.join("renderer.redb"))?);
    let joining = Node::new(renderer_store.clone()).with_recipes(seed());
    let own: Vec<_> = (0..10)
        .map(|i| message(i, "renderer"))
        .collect::<Result<_, _>>()?;
    joining.put(&own).await?;
    let started = Instant::now();
    let max_frame = chum_sync::Limits::default().max_frame;
    let report = joining
        .join(
            invitation,
            chum_access::keys::generate_key()?,
            ws::connect(&url, max_frame, None).await?,
            SessionOptions {
                close_when_synced: true,
            },
        )
        .await;
    let identity = report.joined.ok_or(report.reason)?;
    identity.save(&*renderer_store, None).await?;
    println!(
        "joined as instance {} of person {}: the renderer holds {} objects, the main process {} ({:.0} ms)",
        chum_access::keys::instance_text(&identity.instance()),
        identity.person(),
        renderer_store.count().await?,
        main_store.count().await?,
        started.elapsed().as_secs_f64() * 1e3
    );

    // From now on the renderer connects as an instance of the person.
    let renderer = Arc::new(
        Node::new(renderer_store.clone())
            .with_identity(identity)
            .with_recipes(seed()),
    );
    let mut events = renderer.events();
    let started = Instant::now();
    let connection = ws::connect(&url, max_frame, None).await?;
    let peer = Arc::clone(&renderer);
    tokio::spawn(async move {
        peer.run(Role::Initiator, connection, SessionOptions::default())
            .await
    });
    loop {
        match events.recv().await? {
            NodeEvent::Synced { .. } => break,
            NodeEvent::Closed { reason, .. } => return Err(reason.into()),
            _ => {}
        }
    }
    println!(
        "reconnected, encrypted: in sync again; the renderer holds {} objects, the main process {} ({:.0} ms)",
        renderer.store().count().await?,
        main.store().count().await?,
        started.elapsed().as_secs_f64() * 1e3
    );

    // Live: a new message on the main process reaches the renderer at once, no polling.
    let (cid, bytes) = message(n, "main, live")?;
    let put_at = Instant::now();
    main.put(&[(cid.clone(), bytes)]).await?;
    loop {
        if let NodeEvent::Received { cids, .. } = events.recv().await?
            && cids.contains(&cid)
        {
            break;
        }
    }
    println!(
        "live: stored on the renderer {:.2} ms after the main process's put began",
        put_at.elapsed().as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
