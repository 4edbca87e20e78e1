//! `Instance::accept`: an app's own listener hands connections to the instance, which serves
//! them with the same admission rules as `Instance::listen`.
#![cfg(feature = "native")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chum::{Instance, InviteOptions};
use common::{eventually, messages};

/// An app's own WebSocket listener on a free loopback port, handing every upgraded connection
/// to `main.accept`; its `ws://` address.
async fn app_listener(main: Instance) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/chum", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let main = main.clone();
            tokio::spawn(async move {
                if let Ok(connection) = chum_net::ws::accept(stream, None, 4 << 20).await {
                    main.accept(connection).await;
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_pair_and_sync_through_an_apps_own_listener_under_the_listener_limits() {
    let main = Instance::builder().memory().open().await.unwrap();
    let url = app_listener(main.clone()).await;

    // Pairing and sync go through `accept`.
    let invitation = main
        .invite_with(InviteOptions::new(Duration::from_secs(60)).address(url.clone()))
        .await
        .unwrap();
    let written = messages(&main, "from main", 20).await;
    let laptop = Instance::builder()
        .memory()
        .join(invitation)
        .open()
        .await
        .unwrap();
    let link = laptop.connect(&url).unwrap();
    link.established().await.unwrap();
    eventually("the laptop holds main's messages", || async {
        for cid in &written {
            if !laptop.has(cid).await.unwrap_or(false) {
                return false;
            }
        }
        true
    })
    .await;

    // A burst of connections from one address beyond the listener's burst is refused with a
    // close frame saying when to retry.
    let mut connections = Vec::new();
    for _ in 0..48 {
        connections.push(chum_net::ws::connect(&url, 4 << 20, None).await.unwrap());
    }
    let mut refused = 0;
    for connection in &mut connections {
        if let Ok(Ok(Some(frame))) =
            tokio::time::timeout(Duration::from_millis(300), connection.reader.read_frame()).await
            && let Ok(chum_sync::Message::Close { reason, .. }) =
                chum_sync::Message::decode(&frame, &chum_sync::Limits::default())
            && reason.contains("too many connections")
        {
            refused += 1;
        }
    }
    assert!(
        refused >= 48 - 33,
        "at most the burst (32) of 48 quick connections are admitted, {refused} refused"
    );
    link.close().await;
}
