//! The PostgreSQL store against a real PostgreSQL (a throwaway cluster each test starts): the
//! whole conformance suite, durability across reopen, several handles over one schema as
//! several hub processes would use it, live notifications between them, damaged rows, and
//! schemas that are not chum stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chum_object::{Cid, Object, dagjson};
use chum_store::{Error, Query, Scope, Store, SyncDigest, conformance};
use chum_store_postgres::cluster::{ClusterOptions, TempCluster};
use chum_store_postgres::{Options, PostgresStore};
use futures::StreamExt;

fn cluster() -> TempCluster {
    TempCluster::start_with(&ClusterOptions {
        fsync: false,
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|error| panic!("a throwaway PostgreSQL cluster: {error}"))
}

fn url(cluster: &TempCluster, schema: &str) -> String {
    format!("{}&schema={schema}", cluster.url("postgres"))
}

async fn open(cluster: &TempCluster, schema: &str) -> PostgresStore {
    PostgresStore::open(&url(cluster, schema)).await.unwrap()
}

fn pair(object: &Object) -> (Cid, Vec<u8>) {
    (object.cid().clone(), object.bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let cluster = cluster();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = cluster.url("postgres");
    let make = move || {
        let url = format!(
            "{base}&schema=conform_{}",
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Box::pin(
            async move { Box::new(PostgresStore::open(&url).await.unwrap()) as Box<dyn Store> },
        ) as futures::future::LocalBoxFuture<'static, Box<dyn Store>>
    };
    conformance::run_all_async(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_reopen() {
    let cluster = cluster();
    let first = Box::new(open(&cluster, "durable").await);
    let url = url(&cluster, "durable");
    let reopen = move || {
        let url = url.clone();
        Box::pin(
            async move { Box::new(PostgresStore::open(&url).await.unwrap()) as Box<dyn Store> },
        ) as futures::future::LocalBoxFuture<'static, Box<dyn Store>>
    };
    conformance::run_durable_async(first, &reopen).await;
}

/// Two handles over one schema (as two hub processes): each sees the other's writes at once;
/// concurrent writers number the journal without gaps or repeats, and the digest stays the
/// digest of the shared set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_write_one_store_concurrently() {
    let cluster = cluster();
    let a = open(&cluster, "hub").await;
    let b = open(&cluster, "hub").await;
    let objects: Vec<Object> = (0..400).map(conformance::message).collect();
    let write = |store: PostgresStore, objects: Vec<Object>| {
        tokio::spawn(async move {
            for chunk in objects.chunks(7) {
                let batch: Vec<_> = chunk.iter().map(pair).collect();
                store.put_many(&batch).await.unwrap();
            }
        })
    };
    // Overlapping halves: 100 objects are written by both at once.
    let ta = write(a.clone(), objects[..250].to_vec());
    let tb = write(b.clone(), objects[150..].to_vec());
    ta.await.unwrap();
    tb.await.unwrap();
    assert_eq!(a.count().await.unwrap(), 400);
    assert_eq!(b.count().await.unwrap(), 400);
    let page = b.journal(0, usize::MAX).await.unwrap();
    assert_eq!(page.head, 400, "each object joined once");
    let positions: Vec<u64> = page.entries.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, (1..=400).collect::<Vec<u64>>());
    let journaled: BTreeSet<&Cid> = page.entries.iter().map(|(_, cid)| cid).collect();
    assert_eq!(journaled, objects.iter().map(Object::cid).collect());
    let shared = a
        .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
        .await
        .unwrap();
    assert_eq!(a.sync_digest().await.unwrap(), SyncDigest::of(&shared));
    for object in objects.iter().step_by(37) {
        assert_eq!(a.get(object.cid()).await.unwrap(), object.bytes());
    }
}

/// Many writers on one handle commit in groups: each batch whole, each object reported new
/// to exactly one writer, local and shared writes kept apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_one_handle_commit_in_groups() {
    let cluster = cluster();
    let store = open(&cluster, "grouped").await;
    let objects: Vec<Object> = (0..200).map(conformance::message).collect();
    let local: Vec<Object> = (1_000..1_020).map(conformance::message).collect();
    let mut tasks = Vec::new();
    for writer in 0..40 {
        let store = store.clone();
        // Overlapping windows of five: most objects are written by several writers at once.
        let batch: Vec<_> = (0..5)
            .map(|k| pair(&objects[(writer * 5 + k * 3) % objects.len()]))
            .collect();
        let own = pair(&local[writer % local.len()]);
        tasks.push(tokio::spawn(async move {
            let shared = store.put_many(&batch).await.unwrap();
            let local = store.put_scoped(&[own], Scope::Local).await.unwrap();
            (batch, shared, local)
        }));
    }
    let mut new_shared: Vec<Cid> = Vec::new();
    let mut new_local = 0;
    for task in tasks {
        let (batch, shared, local) = task.await.unwrap();
        assert_eq!(shared.len(), batch.len());
        new_shared.extend(
            batch
                .iter()
                .zip(&shared)
                .filter(|(_, new)| **new)
                .map(|((cid, _), _)| cid.clone()),
        );
        new_local += local.iter().filter(|new| **new).count();
    }
    let written: BTreeSet<Cid> = (0..40)
        .flat_map(|writer| (0..5).map(move |k| (writer * 5 + k * 3) % 200))
        .map(|i| objects[i].cid().clone())
        .collect();
    let reported: BTreeSet<Cid> = new_shared.iter().cloned().collect();
    assert_eq!(
        new_shared.len(),
        reported.len(),
        "each object new to one writer"
    );
    assert_eq!(reported, written);
    assert_eq!(new_local, local.len());
    let page = store.journal(0, usize::MAX).await.unwrap();
    assert_eq!(
        page.head as usize,
        written.len(),
        "local objects take no position"
    );
    assert_eq!(
        store.count().await.unwrap() as usize,
        written.len() + local.len()
    );
    let shared = store
        .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
        .await
        .unwrap();
    assert_eq!(store.sync_digest().await.unwrap(), SyncDigest::of(&shared));
}

/// Writers that each wait for their last write before the next, with no gap between
/// grouped commits and with a long one (`commit_gap_ms`): every write lands, numbered once,
/// and is answered — the gap only decides how many share a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_turn_land_with_any_commit_gap() {
    let cluster = cluster();
    for (schema, gap) in [("no_gap", 0), ("long_gap", 50)] {
        let store = Options::from_url(&format!("{}&commit_gap_ms={gap}", url(&cluster, schema)))
            .unwrap()
            .open()
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for writer in 0..4u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    let object = conformance::message(writer * 1_000 + n);
                    assert_eq!(store.put_many(&[pair(&object)]).await.unwrap(), [true]);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.count().await.unwrap(), 100, "gap {gap} ms");
        assert_eq!(store.journal(0, usize::MAX).await.unwrap().head, 100);
    }
}

/// Writes queued beyond what one group takes are committed by the next group, each whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_concurrent_writes_fill_several_groups() {
    let cluster = cluster();
    let store = open(&cluster, "groups").await;
    let objects: Vec<Object> = (0..12_000).map(conformance::message).collect();
    let mut tasks = Vec::new();
    for chunk in objects.chunks(3_000) {
        let store = store.clone();
        let batch: Vec<_> = chunk.iter().map(pair).collect();
        tasks.push(tokio::spawn(async move {
            store.put_many(&batch).await.unwrap()
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().iter().all(|new| *new));
    }
    assert_eq!(store.count().await.unwrap(), 12_000);
    let page = store.journal(0, usize::MAX).await.unwrap();
    assert_eq!(page.head, 12_000);
}

/// What one handle adds to the shared set reaches the other's watcher soon (LISTEN/NOTIFY),
/// never its own writes, nothing local; and after the watcher's connection is killed, writes
/// made meanwhile still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_hears_the_other_handles_writes() {
    let cluster = cluster();
    let a = open(&cluster, "live").await;
    let b = open(&cluster, "live").await;
    let mut heard = b.watch_others().expect("a PostgreSQL store watches");
    // Let the watcher listen before the first write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let objects: Vec<Object> = (0..30).map(conformance::message).collect();
    a.put_many(&objects[..10].iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    b.put_many(&objects[10..15].iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    a.put_scoped(&[pair(&objects[15])], Scope::Local)
        .await
        .unwrap();
    a.put_many(&[pair(&objects[16])]).await.unwrap();
    let mut got: Vec<Cid> = Vec::new();
    while got.len() < 11 {
        let batch = tokio::time::timeout(Duration::from_secs(10), heard.next())
            .await
            .expect("the watcher hears within 10 s")
            .expect("the stream lives");
        for added in batch {
            // Small writes tell their objects' bytes with the news (those that fit).
            let object = objects.iter().find(|o| *o.cid() == added.cid).unwrap();
            if added.cid == *objects[16].cid() {
                assert_eq!(added.bytes.as_deref(), Some(object.bytes()));
            } else if let Some(bytes) = &added.bytes {
                assert_eq!(bytes, object.bytes());
            }
            got.push(added.cid);
        }
    }
    let mut expected: Vec<Cid> = objects[..10].iter().map(|o| o.cid().clone()).collect();
    expected.push(objects[16].cid().clone());
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>(),
        expected.iter().collect::<BTreeSet<_>>(),
        "the other handle's shared writes, not b's own, not the local one"
    );
    // Kill every watcher connection; what is written meanwhile still arrives.
    let killer = open(&cluster, "live").await;
    drop(killer);
    let admin = tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(admin.1);
    let killed: i64 = admin
        .0
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the watcher's connection was found");
    a.put_many(&objects[20..25].iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut got: BTreeSet<Cid> = BTreeSet::new();
    while got.len() < 5 {
        let batch = tokio::time::timeout(Duration::from_secs(15), heard.next())
            .await
            .expect("the watcher reconnects and catches up")
            .expect("the stream lives");
        got.extend(batch.into_iter().map(|added| added.cid));
    }
    assert_eq!(
        got,
        objects[20..25].iter().map(|o| o.cid().clone()).collect()
    );
    // A write too large to tell its entries (the journal is read), then one object too large
    // to tell its bytes, then a small one: all heard, in order, bytes only where they fit.
    let many: Vec<Object> = (1_000..1_200).map(conformance::message).collect();
    a.put_many(&many.iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    let large = Object::from_value(
        &dagjson::from_str(&format!(
            r#"{{"$type":"Message","text":"{}"}}"#,
            "x".repeat(6_000)
        ))
        .unwrap(),
    )
    .unwrap();
    a.put_many(&[pair(&large)]).await.unwrap();
    let mut got: Vec<chum_store::Added> = Vec::new();
    while got.len() < 201 {
        let batch = tokio::time::timeout(Duration::from_secs(10), heard.next())
            .await
            .expect("the watcher hears within 10 s")
            .expect("the stream lives");
        got.extend(batch);
    }
    let heard_cids: BTreeSet<&Cid> = got[..200].iter().map(|added| &added.cid).collect();
    assert_eq!(heard_cids, many.iter().map(Object::cid).collect());
    assert_eq!(got[200].cid, *large.cid());
    assert_eq!(got[200].bytes, None, "too large to tell");
    // Every entry handled: the next small write's notice follows, and is passed on as told.
    a.put_many(&[pair(&objects[26])]).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), heard.next())
        .await
        .expect("the watcher hears within 10 s")
        .expect("the stream lives");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].cid, *objects[26].cid());
    assert_eq!(batch[0].bytes.as_deref(), Some(objects[26].bytes()));
}

/// Two handles writing at once, each watching: each hears exactly the other's shared writes —
/// none missed among its own (which it passes over without reading them), none of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_of_two_busy_writers_hear_exactly_each_others_writes() {
    let cluster = cluster();
    let a = open(&cluster, "busy").await;
    let b = open(&cluster, "busy").await;
    let mut heard_by_a = a.watch_others().expect("a PostgreSQL store watches");
    let mut heard_by_b = b.watch_others().expect("a PostgreSQL store watches");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let objects: Vec<Object> = (0..1_000).map(conformance::message).collect();
    // Runs of seven objects each, taken in turn.
    let by = |turn: usize| -> Vec<&Object> {
        objects
            .iter()
            .enumerate()
            .filter(|(i, _)| (i / 7) % 2 == turn)
            .map(|(_, object)| object)
            .collect()
    };
    let (by_a, by_b) = (by(0), by(1));
    // Small batches (their notifications tell their entries), then batches too large to
    // tell them (the journal is read), a few at a time on each handle.
    let write = |store: PostgresStore, mine: Vec<Object>| {
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            let (small, large) = mine.split_at(mine.len() / 2);
            for chunk in small.chunks(3).chain(large.chunks(40)) {
                let store = store.clone();
                let chunk: Vec<(Cid, Vec<u8>)> = chunk.iter().map(pair).collect();
                tasks.push(tokio::spawn(async move { store.put_many(&chunk).await }));
                if tasks.len() == 4 {
                    for task in tasks.drain(..) {
                        task.await.unwrap().unwrap();
                    }
                }
            }
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        })
    };
    let writers = [
        write(a.clone(), by_a.iter().map(|o| (*o).clone()).collect()),
        write(b.clone(), by_b.iter().map(|o| (*o).clone()).collect()),
    ];
    for writer in writers {
        writer.await.unwrap();
    }
    let cids = |objects: &[&Object]| -> BTreeSet<Cid> {
        objects.iter().map(|o| o.cid().clone()).collect()
    };
    for (heard, expected, who) in [
        (&mut heard_by_a, cids(&by_b), "a hears b's"),
        (&mut heard_by_b, cids(&by_a), "b hears a's"),
    ] {
        let mut got = BTreeSet::new();
        while got.len() < expected.len() {
            let batch = tokio::time::timeout(Duration::from_secs(10), heard.next())
                .await
                .unwrap_or_else(|_| panic!("{who}: {} of {}", got.len(), expected.len()))
                .expect("the stream lives");
            got.extend(batch.into_iter().map(|added| added.cid));
        }
        assert_eq!(got, expected, "{who}, and nothing else");
    }
}

/// A handle keeps objects it read or wrote in memory; a delete through another handle (another
/// process) reaches it through its watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_elsewhere_empties_the_cache() {
    let cluster = cluster();
    let a = open(&cluster, "cached").await;
    let b = open(&cluster, "cached").await;
    let _watching = a.watch_others().expect("a PostgreSQL store watches");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let objects: Vec<Object> = (0..3).map(conformance::message).collect();
    b.put_many(&objects.iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    let cids: Vec<Cid> = objects.iter().map(|o| o.cid().clone()).collect();
    assert!(a.get_many(&cids).await.unwrap().iter().all(Result::is_ok));
    assert!(b.delete(&cids[1]).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.get(&cids[1]).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted object is still read through the other handle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(a.get(&cids[1]).await, Err(Error::NotFound(_))));
    let many = a.get_many(&cids).await.unwrap();
    assert!(many[0].is_ok() && many[2].is_ok());
    assert!(matches!(many[1], Err(Error::NotFound(_))));
    // Deleted through this handle: gone at once.
    assert!(a.delete(&cids[0]).await.unwrap());
    assert!(matches!(a.get(&cids[0]).await, Err(Error::NotFound(_))));
}

/// Damaged bytes in the database are never returned: `Corrupt`, left out of sync, and the
/// object can still be deleted (its index rows found by search).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_rows_are_reported_not_returned() {
    let cluster = cluster();
    let store = open(&cluster, "damage").await;
    let objects: Vec<Object> = (0..5).map(conformance::message).collect();
    store
        .put_many(&objects.iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    // A handle that has not read or written them: nothing in its memory hides the damage.
    let store = open(&cluster, "damage").await;
    let victim = objects[2].cid();
    client
        .execute(
            "UPDATE damage.objects SET bytes = '\\x00'::bytea || bytes WHERE cid = $1",
            &[&victim.as_bytes()],
        )
        .await
        .unwrap();
    assert!(matches!(
        store.get(victim).await,
        Err(Error::Corrupt { .. })
    ));
    let many = store
        .get_many(&[objects[1].cid().clone(), victim.clone()])
        .await
        .unwrap();
    assert_eq!(many[0].as_deref().unwrap(), objects[1].bytes());
    assert!(matches!(many[1], Err(Error::Corrupt { .. })));
    let looked = store
        .lookup_many(&[chum_store::LookupAsk {
            cid: victim,
            bytes: true,
            local_prefix: None,
        }])
        .await
        .unwrap();
    assert!(matches!(looked[0].bytes, Some(Err(Error::Corrupt { .. }))));
    let (synced, _) = store.sync_objects(None, 100).await.unwrap();
    assert_eq!(synced.len(), 4, "a damaged object is never sent");
    assert!(store.delete(victim).await.unwrap());
    let messages = store
        .query(Query::ByType {
            type_name: "Message",
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(messages.len(), 4, "its index rows went with it");
    assert_eq!(store.count().await.unwrap(), 4);
}

/// A schema holding someone else's tables is refused untouched; a newer schema version is
/// refused; a `$type` with a NUL character is an ordinary type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_newer_schemas_are_refused() {
    let cluster = cluster();
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE SCHEMA app; CREATE TABLE app.users (id int)")
        .await
        .unwrap();
    let refused = PostgresStore::open(&url(&cluster, "app"))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Damaged(_)), "{refused}");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'app'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "nothing was created in it");

    let store = open(&cluster, "newer").await;
    let odd =
        Object::from_value(&dagjson::from_str(r#"{"$type":"A\u0000B","n":1}"#).unwrap()).unwrap();
    store.put(odd.cid(), odd.bytes()).await.unwrap();
    let found = store
        .query(Query::ByType {
            type_name: "A\0B",
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(found, [odd.cid().clone()]);
    drop(store);
    client
        .execute(
            "INSERT INTO newer.chum_migrations (version) VALUES (99)",
            &[],
        )
        .await
        .unwrap();
    let refused = PostgresStore::open(&url(&cluster, "newer"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::NewerFormat { found: 99, .. }),
        "{refused}"
    );
}

/// Bad URLs and schema names are clear errors, not panics or surprises.
#[test]
fn bad_urls_are_refused() {
    for url in [
        "mysql://x/y",
        "postgres://x/y?schema=Bad-Name",
        "postgres://x/y?schema=",
        "postgres://x/y?schema=1abc",
        "postgres://x:notaport/y",
        "postgres://x/y?commit_gap_ms=soon",
        "postgres://x/y?commit_gap_ms=-1",
    ] {
        assert!(Options::from_url(url).is_err(), "{url}");
    }
    let options =
        Options::from_url("postgres://u@h/db?schema=hub_1&commit_gap_ms=0&application_name=x")
            .unwrap();
    assert_eq!(options.schema(), "hub_1");
}

/// The digest is its stored part plus the objects numbered after it; writers fold the tail in
/// every 1,024 positions, and deletes fold it first. Through all of that it stays the digest
/// of the shared set: across folds, deletes of folded and unfolded objects, local objects and
/// promotions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_stays_exact_across_folds_and_deletes() {
    let cluster = cluster();
    let store = open(&cluster, "digest").await;
    let objects: Vec<Object> = (0..3_000).map(conformance::message).collect();
    let check = |label: &'static str| {
        let store = store.clone();
        async move {
            let shared = store
                .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                store.sync_digest().await.unwrap(),
                SyncDigest::of(&shared),
                "{label}"
            );
        }
    };
    for chunk in objects[..2_500].chunks(100) {
        store
            .put_many(&chunk.iter().map(pair).collect::<Vec<_>>())
            .await
            .unwrap();
    }
    check("after folds").await;
    let (client, connection) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let folded: i64 = client
        .query_one("SELECT digest_position FROM digest.chum_state", &[])
        .await
        .unwrap()
        .get(0);
    assert!(folded >= 2_048, "writers folded the tail ({folded})");
    // A folded object, and one in the tail.
    store.delete(objects[10].cid()).await.unwrap();
    store
        .put_many(&objects[2_500..2_600].iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    store.delete(objects[2_550].cid()).await.unwrap();
    check("after deletes").await;
    store
        .put_scoped(
            &objects[2_600..2_700].iter().map(pair).collect::<Vec<_>>(),
            Scope::Local,
        )
        .await
        .unwrap();
    check("local objects are not in it").await;
    store
        .put_many(&objects[2_650..2_800].iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    check("after promotions").await;
    store.delete(objects[2_660].cid()).await.unwrap();
    store.delete(objects[2_610].cid()).await.unwrap();
    check("after deleting a promoted and a local object").await;
    assert_eq!(store.count().await.unwrap(), 2_800 - 4);
    let page = store.journal(0, usize::MAX).await.unwrap();
    assert_eq!(
        page.entries.len(),
        2_800 - 100 + 50 - 3,
        "local ones never joined"
    );
}

/// A write whose caller stops waiting mid-way leaves nothing half-done and the store usable:
/// its transaction is rolled back before the connection is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_write_leaves_the_store_consistent() {
    let cluster = cluster();
    let store = open(&cluster, "abandon").await;
    let objects: Vec<Object> = (0..2_000).map(conformance::message).collect();
    for (round, chunk) in objects.chunks(200).enumerate() {
        let batch: Vec<_> = chunk.iter().map(pair).collect();
        // Give up after a varying moment (sometimes before, sometimes after the commit).
        let wait = Duration::from_micros(200 * round as u64);
        let _ = tokio::time::timeout(wait, store.put_many(&batch)).await;
    }
    // Whatever committed is whole; the rest is absent; every later write works.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .put_many(&objects.iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 2_000);
    let page = store.journal(0, usize::MAX).await.unwrap();
    let positions: Vec<u64> = page.entries.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        positions,
        (1..=2_000).collect::<Vec<u64>>(),
        "no gap, no repeat"
    );
    let shared = store
        .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
        .await
        .unwrap();
    assert_eq!(store.sync_digest().await.unwrap(), SyncDigest::of(&shared));
}
