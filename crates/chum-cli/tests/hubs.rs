//! Hubs on PostgreSQL as real processes: `chum init` and `chum serve` with a `postgres://`
//! store, two hub processes over one database on their own ports, devices joined through
//! either, and live push across the hubs (LISTEN/NOTIFY); a hub killed, nothing acknowledged
//! lost, its devices served by the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use chum::{Event, Instance, Value, dagjson};
use chum_store_postgres::cluster::{ClusterOptions, TempCluster};

mod common;

use common::{chum, ok};

/// A running `chum serve`, killed on drop.
struct Hub {
    child: Child,
    url: String,
}

impl Hub {
    fn start(store: &str) -> Hub {
        let (child, url) = common::serve(store, "ws://127.0.0.1:0", &[]);
        Hub { child, url }
    }

    /// `chum serve --hub`.
    fn start_hub(store: &str) -> Hub {
        let (child, url) = common::serve(store, "ws://127.0.0.1:0", &["--hub"]);
        Hub { child, url }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A runtime for the devices a test runs beside the hub processes.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A throwaway cluster with a hub identity made in schema `hub` (`chum init`): the cluster,
/// the store's URL and the hub's person.
fn hub_store() -> (TempCluster, String, chum::PersonId) {
    let cluster = TempCluster::start_with(&ClusterOptions::default()).unwrap();
    let store = format!("{}&schema=hub", cluster.url("postgres"));
    let whoami = ok(&["init", "--store", &store], b"");
    let hub_person = chum::PersonId(
        whoami
            .lines()
            .find_map(|line| line.strip_prefix("person "))
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    (cluster, store, hub_person)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("chum-hub-{name}-{}", std::process::id()));
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

fn message(text: &str) -> Value {
    dagjson::from_str(&format!(r#"{{"$type":"Message","text":"{text}"}}"#)).unwrap()
}

/// Waits until `events` reports `cid` stored.
async fn hears(events: &mut chum::Events, cid: &chum::Cid, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while let Some(event) = events.next().await {
            if let Event::Stored { cid: stored, .. } = &event
                && stored == cid
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

#[test]
fn two_hub_processes_over_one_database_push_live_to_each_others_devices() {
    let cluster = TempCluster::start_with(&ClusterOptions::default()).unwrap();
    let store = format!("{}&schema=hub", cluster.url("postgres"));
    let dir = TempDir::new("two");
    let whoami = ok(&["init", "--store", &store], b"");
    assert!(whoami.starts_with("person "), "{whoami}");
    // A second init is refused; the store works for ordinary commands with no hub running.
    assert!(!chum(&["init", "--store", &store], b"").status.success());
    let put = ok(
        &["put", "--store", &store],
        br#"{"$type":"Message","text":"before the hubs"}"#,
    );
    let (mut hub_a, hub_b) = (Hub::start(&store), Hub::start(&store));
    assert_ne!(hub_a.url, hub_b.url);
    // One device joins through each hub (invitations made by a command over the database,
    // redeemed by whichever hub the device reaches).
    let device = |name: &str, hub: &Hub| {
        let invitation = ok(&["invite", "--store", &store, "--address", &hub.url], b"");
        let path = dir.0.join(name).to_string_lossy().into_owned();
        let joined = ok(
            &[
                "init",
                "--store",
                &path,
                "--join",
                invitation.lines().last().unwrap(),
            ],
            b"",
        );
        assert_eq!(joined.lines().next(), whoami.lines().next(), "same person");
        path
    };
    let (path_a, path_b) = (device("a", &hub_a), device("b", &hub_b));
    let runtime = runtime();
    runtime.block_on(async {
        let a = Instance::builder().path(&path_a).open().await.unwrap();
        let b = Instance::builder().path(&path_b).open().await.unwrap();
        assert!(
            b.has(&put.trim().parse::<chum::Cid>().unwrap())
                .await
                .unwrap()
        );
        // Each device knows both hub addresses, its own hub first.
        let link_a = a.connect_any(&[&hub_a.url, &hub_b.url]).unwrap();
        let link_b = b.connect_any(&[&hub_b.url, &hub_a.url]).unwrap();
        link_a.connected().await.unwrap();
        link_b.connected().await.unwrap();
        let mut events_b = b.events();
        let mut events_a = a.events();
        // A writes through hub A; B hears through hub B, live.
        let written = a.put(&message("from a, through hub a")).await.unwrap();
        assert!(
            hears(&mut events_b, written.cid(), Duration::from_secs(10)).await,
            "b hears a's write through the other hub"
        );
        // And the other way.
        let written = b.put(&message("from b, through hub b")).await.unwrap();
        assert!(
            hears(&mut events_a, written.cid(), Duration::from_secs(10)).await,
            "a hears b's write through the other hub"
        );
        // A command over the database (no hub involved) reaches both devices live too.
        let cid = ok(
            &["put", "--store", &store],
            br#"{"$type":"Message","text":"from a command"}"#,
        );
        let cid: chum::Cid = cid.trim().parse().unwrap();
        assert!(hears(&mut events_a, &cid, Duration::from_secs(10)).await);
        assert!(hears(&mut events_b, &cid, Duration::from_secs(10)).await);

        // Hub A is killed right after acknowledging a burst of A's writes: every acknowledged
        // object is in the database; A's link moves to hub B; B keeps hearing A live.
        let mut acknowledged = Vec::new();
        for i in 0..40 {
            let written = a.put(&message(&format!("burst {i}"))).await.unwrap();
            acknowledged.push(written);
        }
        for written in &acknowledged {
            tokio::time::timeout(Duration::from_secs(10), written.held_by_peer())
                .await
                .expect("hub a acknowledges within 10 s")
                .unwrap();
        }
        hub_a.child.kill().unwrap(); // SIGKILL
        hub_a.child.wait().unwrap();
        let database = chum::PostgresStore::open(&store).await.unwrap();
        for written in &acknowledged {
            assert!(
                chum::Store::has(&database, written.cid()).await.unwrap(),
                "an acknowledged object is in the database"
            );
        }
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if matches!(link_a.state(), chum::LinkState::Connected { .. }) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("a's link reaches hub b");
        let written = a.put(&message("after hub a died")).await.unwrap();
        assert!(
            hears(&mut events_b, written.cid(), Duration::from_secs(10)).await,
            "b hears a through hub b alone"
        );
        link_a.close().await;
        link_b.close().await;
        a.close().await;
        b.close().await;
    });
    drop((hub_a, hub_b));
}

/// Persons whose app types the hubs do not know: each device sends its recipes to the hub it
/// uses; the other hub process learns them from the database (live, and when it starts), so
/// entries of a granted object reach the grantee through either.
#[test]
fn hub_processes_learn_each_persons_recipes_through_the_database() {
    let (_cluster, store, hub_person) = hub_store();
    let (hub_a, hub_b) = (Hub::start_hub(&store), Hub::start_hub(&store));
    let comment_recipe = chum::Recipe::new("Comment", chum::Strategy::AppendOnly)
        .field(chum::Field::new("on", chum::Kind::Link(Vec::new())).collection())
        .field(chum::Field::new("text", chum::Kind::Text));
    let runtime = runtime();
    runtime.block_on(async {
        let device = || async {
            Instance::builder()
                .memory()
                .recipe(comment_recipe.clone())
                .use_hub(hub_person.clone())
                .open()
                .await
                .unwrap()
        };
        let (alice, bob, carol) = (device().await, device().await, device().await);
        // Bob shares a conversation of his own through hub A first: his recipe — the same
        // object as Alice's, as for every user of one app — is stored before Alice's arrives
        // (so hub B hears of Alice's from the hub's note, not from the recipe, which is old).
        let b_chat = bob
            .put(&dagjson::from_str(r#"{"$type":"Conversation","id":"bob's"}"#).unwrap())
            .await
            .unwrap()
            .id()
            .unwrap()
            .clone();
        let _ = bob.grant(&b_chat, &hub_person).await.unwrap();
        assert!(
            bob.sync_once(&hub_a.url, Duration::from_secs(10))
                .await
                .unwrap()
                .synced
        );
        // Bob is on hub B before Alice writes anything.
        let link_b = bob.connect(&hub_b.url).unwrap();
        link_b.connected().await.unwrap();
        let mut events_b = bob.events();
        let chat = alice
            .put(&dagjson::from_str(r#"{"$type":"Conversation","id":"trip"}"#).unwrap())
            .await
            .unwrap()
            .id()
            .unwrap()
            .clone();
        let comment = alice
            .create(
                &dagjson::from_str(&format!(
                    r#"{{"$type":"Comment","on":{{"/":"{chat}"}},"text":"book the train"}}"#
                ))
                .unwrap(),
            )
            .await
            .unwrap()
            .cid()
            .clone();
        let _ = alice.grant(&chat, &hub_person).await.unwrap();
        let _ = alice.grant(&chat, &bob.person()).await.unwrap();
        let link_a = alice.connect(&hub_a.url).unwrap();
        link_a.connected().await.unwrap();
        assert!(
            hears(&mut events_b, &comment, Duration::from_secs(10)).await,
            "bob gets alice's comment through the other hub process, live"
        );
        // A hub process started after the recipe arrived reads it from the database; this one
        // serves Carol's person only (besides its own).
        let carol_person = carol.person().0.to_string();
        let admit_file = std::env::temp_dir().join(format!("chum-admit-{}", std::process::id()));
        std::fs::write(
            &admit_file,
            format!("# who hub C serves\n\nperson {carol_person}\n"),
        )
        .unwrap();
        let (child, url) = common::serve(
            &store,
            "ws://127.0.0.1:0",
            &["--hub", "--admit-file", admit_file.to_str().unwrap()],
        );
        let hub_c = Hub { child, url };
        let _ = alice.grant(&chat, &carol.person()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = carol
            .sync_once(&hub_c.url, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(report.synced);
        assert!(
            carol.has(&comment).await.unwrap(),
            "carol gets the comment from a hub process that started later"
        );
        let refused = bob
            .sync_once(&hub_c.url, Duration::from_secs(10))
            .await
            .expect_err("hub C does not serve bob");
        assert!(refused.to_string().contains("serves only"), "{refused}");
        let _ = std::fs::remove_file(&admit_file);
        link_a.close().await;
        link_b.close().await;
        drop(hub_c);
    });
    drop((hub_a, hub_b));
}

/// `chum serve --hub --quota N` over one database: a person's objects count across hub
/// processes — what it wrote through one counts at the other — and past the quota the
/// person's device hears why its objects were refused.
#[test]
fn a_quota_counts_a_persons_objects_across_hub_processes() {
    const QUOTA: usize = 12;
    let (_cluster, store, hub_person) = hub_store();
    let quota = QUOTA.to_string();
    let start = || {
        let (child, url) = common::serve(&store, "ws://127.0.0.1:0", &["--hub", "--quota", &quota]);
        Hub { child, url }
    };
    let (hub_a, hub_b) = (start(), start());
    let runtime = runtime();
    runtime.block_on(async {
        let alice = Instance::builder()
            .memory()
            .use_hub(hub_person.clone())
            .open()
            .await
            .unwrap();
        let chat = alice
            .put(&chum::dagjson::from_str(r#"{"$type":"Conversation","id":"q"}"#).unwrap())
            .await
            .unwrap()
            .id()
            .unwrap()
            .clone();
        let grant = alice.grant(&chat, &hub_person).await.unwrap();
        let say = |i: usize| {
            let alice = alice.clone();
            let text =
                format!(r#"{{"$type":"Message","text":"{i}","conversation":{{"/":"{chat}"}}}}"#);
            async move {
                alice
                    .create(&chum::dagjson::from_str(&text).unwrap())
                    .await
                    .unwrap()
            }
        };
        // Through hub A: the conversation, the grant and 6 messages, each acknowledged.
        let link = alice.connect(&hub_a.url).unwrap();
        link.connected().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), grant.held_by_peer())
            .await
            .unwrap()
            .unwrap();
        for i in 0..6 {
            let written = say(i).await;
            tokio::time::timeout(Duration::from_secs(10), written.held_by_peer())
                .await
                .unwrap()
                .unwrap();
        }
        link.close().await;
        // Through hub B: what went through hub A counts; the rest of the room, then refusals.
        let mut events = alice.events();
        let link = alice.connect(&hub_b.url).unwrap();
        link.connected().await.unwrap();
        for i in 6..20 {
            let _ = say(i).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let reason = loop {
            let event = tokio::time::timeout_at(deadline, events.next())
                .await
                .expect("alice hears of the refusal within 10 s")
                .unwrap();
            if let chum::Event::PeerRefused { reason, .. } = event
                && reason.contains("quota")
            {
                break reason;
            }
        };
        assert!(reason.contains(&quota), "{reason}");
        link.close().await;
    });
    // The database holds at most the quota of her objects (her conversation — ID object and
    // version —, her grant and her identity count too): the 6 messages acknowledged through
    // hub A, and at most QUOTA − 2 in all. Hub B, had it not counted what went through hub A,
    // would have taken up to 12 more.
    let listed = ok(&["ls", "--type", "Message", "--store", &store], b"");
    let messages = listed
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    assert!((6..=QUOTA - 2).contains(&messages), "{messages}: {listed}");
}

/// One person's two devices on two hub processes, both connected first: a conversation the
/// laptop grants to the hub through hub A covers, at hub B, what the phone then writes into
/// it — stored (not held back as uncovered and acknowledged all the same) and heard by the
/// laptop through hub A.
#[test]
fn a_grant_through_one_hub_process_covers_what_follows_through_the_other() {
    let (_cluster, store, hub_person) = hub_store();
    let (hub_a, hub_b) = (Hub::start_hub(&store), Hub::start_hub(&store));
    let runtime = runtime();
    runtime.block_on(async {
        let laptop = Instance::builder()
            .memory()
            .use_hub(hub_person.clone())
            .open()
            .await
            .unwrap();
        let pairing = laptop.listen("tcp://127.0.0.1:0").await.unwrap();
        let phone = Instance::builder()
            .memory()
            .use_hub(hub_person.clone())
            .join(laptop.invite(Duration::from_secs(60)).await.unwrap())
            .open()
            .await
            .unwrap();
        pairing.close();
        let link_a = laptop.connect(&hub_a.url).unwrap();
        let link_b = phone.connect(&hub_b.url).unwrap();
        link_a.connected().await.unwrap();
        link_b.connected().await.unwrap();
        let mut on_phone = phone.events();
        let mut on_laptop = laptop.events();
        let notes = laptop
            .put(&dagjson::from_str(r#"{"$type":"Conversation","id":"notes"}"#).unwrap())
            .await
            .unwrap();
        let grant = laptop
            .grant(notes.id().unwrap(), &hub_person)
            .await
            .unwrap();
        let mut expected: std::collections::BTreeSet<chum::Cid> =
            [notes.cid().clone(), grant.cid().clone()].into();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !expected.is_empty() {
                if let Some(Event::Stored { cid, .. }) = on_phone.next().await {
                    expected.remove(&cid);
                }
            }
        })
        .await
        .expect("the phone gets the conversation and its grant through hub B");
        for i in 0..3 {
            let text = format!(
                r#"{{"$type":"Message","text":"from the phone {i}","conversation":{{"/":"{}"}}}}"#,
                notes.id().unwrap()
            );
            let written = phone
                .create(&dagjson::from_str(&text).unwrap())
                .await
                .unwrap();
            let heard = hears(&mut on_laptop, written.cid(), Duration::from_secs(10)).await;
            assert!(
                heard,
                "the laptop hears the phone's message {i} through hub A"
            );
        }
        link_a.close().await;
        link_b.close().await;
    });
    drop((hub_a, hub_b));
}
