//! The conformance suite: plain async functions that check a [`Store`] against every contract
//! of the trait. Every backend runs all of them; a third-party backend can too:
//!
//! ```
//! use chum_store::{MemoryStore, Store, conformance};
//! futures::executor::block_on(conformance::run_all(&|| Box::new(MemoryStore::new()) as Box<dyn Store>));
//! ```
//!
//! Each function panics (like an assertion) on the first broken contract, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use chum_crdt::{InstanceId, Timestamp, Version, clock_value};
use chum_object::{Cid, Codec, Map, Object, Value};
use futures::future::LocalBoxFuture;

use crate::error::Error;
use crate::store::{LOOKUP_PAGE, LookupAsk, Query, Store};
use crate::sync::{self, KEPT_SKETCH_CELLS, Scope, SyncDigest};

/// Makes a fresh, empty store.
pub type MakeStore<'a> = &'a dyn Fn() -> Box<dyn Store>;

/// Makes a fresh, empty store asynchronously (for backends that open asynchronously, such as
/// IndexedDB).
pub type MakeStoreAsync<'a> = &'a dyn Fn() -> LocalBoxFuture<'static, Box<dyn Store>>;

/// A synchronous maker as an asynchronous one.
fn made_async(make: MakeStore<'_>) -> impl Fn() -> LocalBoxFuture<'static, Box<dyn Store>> + '_ {
    move || {
        let store = make();
        Box::pin(async move { store })
    }
}

/// Runs every contract check on fresh stores from `make`.
pub async fn run_all(make: MakeStore<'_>) {
    run_all_async(&made_async(make)).await;
}

/// [`run_all`] with stores that open asynchronously.
pub async fn run_all_async(make: MakeStoreAsync<'_>) {
    put_get_has_count(&*make().await).await;
    put_is_idempotent(&*make().await).await;
    invalid_objects_are_refused_atomically(&*make().await).await;
    raw_blocks_are_stored(&*make().await).await;
    delete_removes_object_and_indexes(&*make().await).await;
    list_respects_ranges_and_limits(&*make().await).await;
    type_and_link_indexes(&*make().await).await;
    lookups_answer_like_single_calls(&*make().await).await;
    versions_and_heads_in_any_arrival_order(&*make().await).await;
    author_index_orders_by_clock(&*make().await).await;
    local_area(&*make().await).await;
    limits_and_bad_batches(&*make().await).await;
    scopes_and_the_sync_digest(&*make().await).await;
    the_journal(&*make().await).await;
    verified_batches(&*make().await).await;
    model_check(&*make().await, 0x5eed_0001, 400).await;
    model_check(&*make().await, 0x5eed_0002, 400).await;
}

/// Checks that what one store handle wrote, a reopened handle (from `reopen`, on the same
/// durable location) still holds: objects, indexes, count and the local area.
pub async fn run_durable(first: Box<dyn Store>, reopen: &dyn Fn() -> Box<dyn Store>) {
    run_durable_async(first, &made_async(reopen)).await;
}

/// [`run_durable`] with a store that reopens asynchronously.
pub async fn run_durable_async(first: Box<dyn Store>, reopen: MakeStoreAsync<'_>) {
    let objects: Vec<Object> = (0..20).map(message).collect();
    put_objects(&*first, &objects).await;
    let version = version_of(&id(1), vec![], 5, 1);
    first.put(version.cid(), version.bytes()).await.unwrap();
    first.local_put(b"peer/alice", b"state").await.unwrap();
    first.delete(objects[0].cid()).await.unwrap();
    let setting = message(1_000);
    first
        .put_scoped(
            &[(setting.cid().clone(), setting.bytes().to_vec())],
            Scope::Local,
        )
        .await
        .unwrap();
    let digest = first.sync_digest().await.unwrap();
    let journal = first.journal(0, usize::MAX).await.unwrap();
    drop(first);
    let store = reopen().await;
    assert_eq!(
        store.journal(0, usize::MAX).await.unwrap(),
        journal,
        "the journal (id, positions, entries) survives reopen"
    );
    assert_eq!(
        journal.entries.len(),
        20,
        "20 shared, one deleted, one local"
    );
    assert_eq!(store.count().await.unwrap(), 21, "count survives reopen");
    assert_eq!(
        store.sync_digest().await.unwrap(),
        digest,
        "the sync digest survives reopen"
    );
    let shared = store
        .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
        .await
        .unwrap();
    assert!(!shared.contains(setting.cid()), "scope survives reopen");
    assert_eq!(
        digest,
        SyncDigest::of(&shared),
        "the digest matches the shared set"
    );
    assert!(
        !store.has(objects[0].cid()).await.unwrap(),
        "a delete survives reopen"
    );
    for object in &objects[1..] {
        assert_eq!(
            store.get(object.cid()).await.unwrap(),
            object.bytes(),
            "objects survive reopen"
        );
    }
    assert_eq!(
        store.query(Query::Heads(&id(1))).await.unwrap(),
        [version.cid().clone()],
        "heads survive reopen"
    );
    let messages = store
        .query(Query::ByType {
            type_name: "Message",
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        messages.len(),
        20,
        "type index survives reopen (19 shared messages, 1 local)"
    );
    assert_eq!(
        store.local_get(b"peer/alice").await.unwrap().as_deref(),
        Some(&b"state"[..])
    );
}

/// The journal numbers every object that joins the shared set, in order, from 1: stored as
/// shared or promoted from local; never a local object, never twice while it stays shared; a
/// deleted object's entry is left out of pages (its position is not reused); pages are exact.
pub async fn the_journal(store: &dyn Store) {
    let empty = store.journal(0, 10).await.unwrap();
    assert_eq!((empty.head, empty.last), (0, 0));
    assert!(empty.entries.is_empty());
    let objects: Vec<Object> = (0..10).map(message).collect();
    let pair = |o: &Object| (o.cid().clone(), o.bytes().to_vec());
    store
        .put_many(&objects[..6].iter().map(pair).collect::<Vec<_>>())
        .await
        .unwrap();
    store
        .put_scoped(&[pair(&objects[6])], Scope::Local)
        .await
        .unwrap();
    store
        .put_many(&[pair(&objects[7]), pair(&objects[0])])
        .await
        .unwrap();
    store.put_many(&[pair(&objects[6])]).await.unwrap(); // promoted
    let page = store.journal(0, usize::MAX).await.unwrap();
    assert_eq!(page.id, empty.id, "the journal id is stable");
    assert_eq!(page.head, 8);
    assert_eq!(page.last, 8);
    // Within one batch in any order; batch after batch in order.
    let positions: Vec<u64> = page.entries.iter().map(|(position, _)| *position).collect();
    assert_eq!(positions, (1..=8).collect::<Vec<u64>>());
    let first: BTreeSet<&Cid> = page.entries[..6].iter().map(|(_, cid)| cid).collect();
    assert_eq!(first, objects[..6].iter().map(Object::cid).collect());
    assert_eq!(&page.entries[6].1, objects[7].cid(), "never twice");
    assert_eq!(&page.entries[7].1, objects[6].cid(), "a promotion joins");
    // Pages: after a position, at most `limit` examined.
    let middle = store.journal(2, 3).await.unwrap();
    assert_eq!(middle.entries, page.entries[2..5]);
    assert_eq!(middle.last, 5);
    let beyond = store.journal(100, 5).await.unwrap();
    assert!(beyond.entries.is_empty());
    assert_eq!((beyond.last, beyond.head), (100, 8));
    // A deleted object's entry is skipped; positions are not reused.
    let deleted = page.entries[3].1.clone();
    store.delete(&deleted).await.unwrap();
    let after_delete = store.journal(2, 3).await.unwrap();
    assert_eq!(
        after_delete.entries,
        [page.entries[2].clone(), page.entries[4].clone()]
    );
    assert_eq!(after_delete.last, 5);
    store.put_many(&[pair(&objects[8])]).await.unwrap();
    let tail = store.journal(8, 10).await.unwrap();
    assert_eq!(tail.entries, [(9, objects[8].cid().clone())]);
    assert_eq!(tail.head, 9);
    // Stored again, a deleted object joins again, at a new position.
    let again = objects.iter().find(|o| o.cid() == &deleted).map(pair);
    store
        .put_many(&again.into_iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let tail = store.journal(9, 10).await.unwrap();
    assert_eq!(tail.entries, [(10, deleted)]);
}

/// A Message object, distinct per `n`.
pub fn message(n: u32) -> Object {
    let mut map = Map::new();
    map.insert("$type", "Message");
    map.insert("text", format!("message {n}"));
    Object::from_value(&Value::Map(map)).unwrap()
}

fn id(n: u32) -> Cid {
    let value = Value::Map(
        [
            ("$type", Value::from("Contact")),
            ("email", Value::Text(format!("{n}@example.org").into())),
        ]
        .into(),
    );
    Object::from_value(&value).unwrap().cid().clone()
}

fn version_of(of: &Cid, parents: Vec<Cid>, ms: u64, author: u8) -> Object {
    let version = Version::new(
        of.clone(),
        parents,
        Timestamp::new(ms, 0),
        InstanceId([author; 32]),
        Map::new(),
    );
    version.to_object().unwrap()
}

async fn put_objects(store: &dyn Store, objects: &[Object]) {
    let batch: Vec<(Cid, Vec<u8>)> = objects
        .iter()
        .map(|o| (o.cid().clone(), o.bytes().to_vec()))
        .collect();
    store.put_many(&batch).await.unwrap();
}

fn sorted(mut cids: Vec<Cid>) -> Vec<Cid> {
    cids.sort();
    cids
}

/// `put` stores, `get` returns the bytes, `has` and `count` agree; absent objects are `NotFound`.
pub async fn put_get_has_count(store: &dyn Store) {
    let object = message(1);
    assert!(!store.has(object.cid()).await.unwrap());
    assert!(
        matches!(store.get(object.cid()).await, Err(Error::NotFound(_))),
        "get of an absent CID is NotFound"
    );
    assert!(
        store.put(object.cid(), object.bytes()).await.unwrap(),
        "first put is new"
    );
    assert!(store.has(object.cid()).await.unwrap());
    assert_eq!(store.get(object.cid()).await.unwrap(), object.bytes());
    assert_eq!(store.count().await.unwrap(), 1);
    let absent = message(2);
    let many = store
        .get_many(&[
            absent.cid().clone(),
            object.cid().clone(),
            object.cid().clone(),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&many[0], Err(Error::NotFound(cid)) if cid == absent.cid()),
        "get_many reports absent objects in place"
    );
    assert_eq!(many[1].as_deref().unwrap(), object.bytes());
    assert_eq!(many[2].as_deref().unwrap(), object.bytes());
    assert!(store.get_many(&[]).await.unwrap().is_empty());
}

/// Putting the same object twice (alone or in a batch with itself) stores it once.
pub async fn put_is_idempotent(store: &dyn Store) {
    let (a, b) = (message(1), message(2));
    store.put(a.cid(), a.bytes()).await.unwrap();
    let batch = vec![
        (a.cid().clone(), a.bytes().to_vec()),
        (b.cid().clone(), b.bytes().to_vec()),
        (b.cid().clone(), b.bytes().to_vec()),
    ];
    assert_eq!(store.put_many(&batch).await.unwrap(), [false, true, false]);
    assert_eq!(store.count().await.unwrap(), 2);
    let listed = store
        .query(Query::ByType {
            type_name: "Message",
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "an index entry is not duplicated");
}

/// Bytes that do not match their CID, non-canonical bytes and unverifiable CIDs are refused,
/// and a batch with one bad object stores nothing.
pub async fn invalid_objects_are_refused_atomically(store: &dyn Store) {
    let good = message(1);
    let other = message(2);
    let mismatched = (good.cid().clone(), other.bytes().to_vec());
    assert!(matches!(
        store.put_many(std::slice::from_ref(&mismatched)).await,
        Err(Error::Invalid { .. })
    ));
    // Non-canonical: a map with unsorted keys, under its own (correct) hash.
    let unsorted = vec![0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02];
    let unsorted_cid = Cid::hash(Codec::DagCbor, &unsorted);
    assert!(matches!(
        store.put(&unsorted_cid, &unsorted).await,
        Err(Error::Invalid { .. })
    ));
    // A CID chum cannot verify (CIDv0, SHA2-256).
    let v0: Cid = "QmQg1v4o9xdT3Q14wh4S7dxZkDjyZ9ssFzFzyep1YrVJBY"
        .parse()
        .unwrap();
    assert!(matches!(
        store.put(&v0, b"x").await,
        Err(Error::Invalid { .. })
    ));
    let batch = vec![(other.cid().clone(), other.bytes().to_vec()), mismatched];
    assert!(store.put_many(&batch).await.is_err());
    assert!(
        !store.has(other.cid()).await.unwrap(),
        "nothing of a refused batch is stored"
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

/// Raw blocks (blob chunks) are stored and verified by hash.
pub async fn raw_blocks_are_stored(store: &dyn Store) {
    let chunk = b"a chunk of some blob".to_vec();
    let cid = Cid::hash(Codec::Raw, &chunk);
    assert!(store.put(&cid, &chunk).await.unwrap());
    assert_eq!(store.get(&cid).await.unwrap(), chunk);
    let wrong = Cid::hash(Codec::Raw, b"other");
    assert!(matches!(
        store.put(&wrong, &chunk).await,
        Err(Error::Invalid { .. })
    ));
}

/// `delete` removes the object and its index entries, and is idempotent.
pub async fn delete_removes_object_and_indexes(store: &dyn Store) {
    let target = message(1);
    let mut map = Map::new();
    map.insert("$type", "Message");
    map.insert("text", "reply");
    map.insert("originalId", target.cid().clone());
    let reply = Object::from_value(&Value::Map(map)).unwrap();
    put_objects(store, &[target.clone(), reply.clone()]).await;
    assert!(store.delete(reply.cid()).await.unwrap());
    assert!(
        !store.delete(reply.cid()).await.unwrap(),
        "delete is idempotent"
    );
    assert!(!store.has(reply.cid()).await.unwrap());
    assert_eq!(store.count().await.unwrap(), 1);
    let linking = store
        .query(Query::LinksTo {
            target: target.cid(),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(linking.is_empty(), "link index entries go with the object");
    let messages = store
        .query(Query::ByType {
            type_name: "Message",
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        messages,
        [target.cid().clone()],
        "type index entries go with the object"
    );
}

/// `list` returns CIDs in byte order within the range, up to the limit.
pub async fn list_respects_ranges_and_limits(store: &dyn Store) {
    let objects: Vec<Object> = (0..30).map(message).collect();
    put_objects(store, &objects).await;
    let all = sorted(objects.iter().map(|o| o.cid().clone()).collect());
    assert_eq!(
        store
            .list((Bound::Unbounded, Bound::Unbounded), 1000)
            .await
            .unwrap(),
        all
    );
    assert_eq!(
        store
            .list((Bound::Unbounded, Bound::Unbounded), 7)
            .await
            .unwrap(),
        all[..7]
    );
    assert_eq!(
        store
            .list((Bound::Included(&all[5]), Bound::Excluded(&all[9])), 100)
            .await
            .unwrap(),
        all[5..9]
    );
    assert_eq!(
        store
            .list((Bound::Excluded(&all[5]), Bound::Included(&all[9])), 100)
            .await
            .unwrap(),
        all[6..10]
    );
    assert!(
        store
            .list((Bound::Included(&all[9]), Bound::Excluded(&all[5])), 100)
            .await
            .unwrap()
            .is_empty(),
        "an inverted range is empty, not a panic"
    );
    assert!(
        store
            .list((Bound::Excluded(&all[5]), Bound::Excluded(&all[5])), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list((Bound::Unbounded, Bound::Unbounded), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The `$type` index pages in CID order; the link index finds every object linking to a target.
pub async fn type_and_link_indexes(store: &dyn Store) {
    let conversation = id(7);
    let mut entries = Vec::new();
    for n in 0..12 {
        let mut map = Map::new();
        map.insert("$type", if n % 3 == 0 { "Note" } else { "Message" });
        map.insert("text", format!("entry {n}"));
        map.insert("conversation", conversation.clone());
        entries.push(Object::from_value(&Value::Map(map)).unwrap());
    }
    put_objects(store, &entries).await;
    let messages = sorted(
        entries
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 3 != 0)
            .map(|(_, o)| o.cid().clone())
            .collect(),
    );
    let first = store
        .query(Query::ByType {
            type_name: "Message",
            after: None,
            limit: 5,
        })
        .await
        .unwrap();
    assert_eq!(first, messages[..5]);
    let rest = store
        .query(Query::ByType {
            type_name: "Message",
            after: Some(&first[4]),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(rest, messages[5..]);
    assert!(
        store
            .query(Query::ByType {
                type_name: "Messag",
                after: None,
                limit: 100
            })
            .await
            .unwrap()
            .is_empty(),
        "type names match exactly"
    );
    let linking = store
        .query(Query::LinksTo {
            target: &conversation,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        linking,
        sorted(entries.iter().map(|o| o.cid().clone()).collect())
    );
    let paged = store
        .query(Query::LinksTo {
            target: &conversation,
            after: Some(&linking[9]),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(paged, linking[10..]);
    // `after` need not be in the index: paging continues from where it would sort.
    let absent = message(999);
    let expected: Vec<Cid> = linking
        .iter()
        .filter(|c| *c > absent.cid())
        .cloned()
        .collect();
    let from_absent = store
        .query(Query::LinksTo {
            target: &conversation,
            after: Some(absent.cid()),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(from_absent, expected);
}

/// `lookup_many` answers, per ask and in order, what `get`, paging `Query::LinksTo` and
/// `local_keys` answer one by one: more linking objects and local keys than a page, objects
/// not stored, bytes not asked for, no prefix, a prefix of 0xff bytes, a CID asked twice.
pub async fn lookups_answer_like_single_calls(store: &dyn Store) {
    assert!(store.lookup_many(&[]).await.unwrap().is_empty());
    let conversation = message(70_000);
    let lonely = message(70_001);
    let absent = message(70_002);
    let raw_bytes = b"raw block for lookups".to_vec();
    let raw = Cid::hash(Codec::Raw, &raw_bytes);
    let mut linking = Vec::new();
    for n in 0..LOOKUP_PAGE as u32 + 3 {
        let mut map = Map::new();
        map.insert("$type", "Message");
        map.insert("text", format!("lookup {n}"));
        map.insert("conversation", conversation.cid().clone());
        linking.push(Object::from_value(&Value::Map(map)).unwrap());
    }
    let mut map = Map::new();
    map.insert("$type", "Message");
    map.insert("about", lonely.cid().clone());
    let one_link = Object::from_value(&Value::Map(map)).unwrap();
    let mut objects = linking.clone();
    objects.extend([conversation.clone(), lonely.clone(), one_link.clone()]);
    put_objects(store, &objects).await;
    store.put(&raw, &raw_bytes).await.unwrap();
    // Local keys: more than a page under the conversation's prefix, one under the lonely
    // object's, some under a prefix of 0xff bytes, and neighbours that must not match.
    let prefix = |cid: &Cid| {
        let mut key = b"lookup/".to_vec();
        key.extend_from_slice(cid.as_bytes());
        key
    };
    let mut local: Vec<(Vec<u8>, Vec<u8>)> = (0..LOOKUP_PAGE as u32 + 2)
        .map(|n| {
            let mut key = prefix(conversation.cid());
            key.extend_from_slice(&n.to_be_bytes());
            (key, b"v".to_vec())
        })
        .collect();
    local.push((prefix(lonely.cid()), b"exact".to_vec()));
    let mut after_lonely = prefix(lonely.cid());
    after_lonely.push(0xff);
    local.push((after_lonely, b"longer".to_vec()));
    local.push((vec![0xff, 0xff], b"x".to_vec()));
    local.push((vec![0xff, 0xff, 0x00], b"x".to_vec()));
    local.push((vec![0xff, 0xfe], b"not under".to_vec()));
    local.push((b"lookup0".to_vec(), b"not under".to_vec()));
    store.local_put_many(&local).await.unwrap();

    let ff: &[u8] = &[0xff, 0xff];
    let prefixes: Vec<Vec<u8>> = [conversation.cid(), lonely.cid(), absent.cid()]
        .into_iter()
        .map(prefix)
        .collect();
    let asks = [
        LookupAsk {
            cid: conversation.cid(),
            bytes: true,
            local_prefix: Some(&prefixes[0]),
        },
        LookupAsk {
            cid: lonely.cid(),
            bytes: true,
            local_prefix: Some(&prefixes[1]),
        },
        LookupAsk {
            cid: absent.cid(),
            bytes: true,
            local_prefix: Some(&prefixes[2]),
        },
        LookupAsk {
            cid: &raw,
            bytes: false,
            local_prefix: None,
        },
        LookupAsk {
            cid: one_link.cid(),
            bytes: true,
            local_prefix: Some(ff),
        },
        LookupAsk {
            cid: lonely.cid(),
            bytes: false,
            local_prefix: None,
        },
    ];
    let found = store.lookup_many(&asks).await.unwrap();
    assert_eq!(found.len(), asks.len(), "one answer per ask");
    for (ask, found) in asks.iter().zip(&found) {
        let bytes = if ask.bytes {
            Some(store.get(ask.cid).await)
        } else {
            None
        };
        assert_eq!(found.bytes, bytes, "the bytes of {}", ask.cid);
        let mut linked_by: Vec<Cid> = Vec::new();
        loop {
            let page = store
                .query(Query::LinksTo {
                    target: ask.cid,
                    after: linked_by.last(),
                    limit: 100,
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            linked_by.extend(page);
        }
        assert_eq!(found.linked_by, linked_by, "what links to {}", ask.cid);
        let local_keys = match ask.local_prefix {
            Some(prefix) => store.local_keys(prefix).await.unwrap(),
            None => Vec::new(),
        };
        assert_eq!(
            found.local_keys, local_keys,
            "the local keys of {}",
            ask.cid
        );
    }
    // The counts the single calls give, so the comparison above compared something.
    assert_eq!(found[0].linked_by.len(), LOOKUP_PAGE + 3);
    assert_eq!(found[0].local_keys.len(), LOOKUP_PAGE + 2);
    assert_eq!(found[1].linked_by, [one_link.cid().clone()]);
    assert_eq!(found[1].local_keys.len(), 2);
    assert!(matches!(found[2].bytes, Some(Err(Error::NotFound(_)))));
    assert!(found[3].bytes.is_none());
    assert_eq!(found[4].local_keys.len(), 2);
    assert_eq!(found[5].bytes, None);
    // Again, now that the objects were read (a store may answer from memory), with a CID
    // asked twice for its bytes: the same answers.
    let twice = [asks[0], asks[1], asks[1], asks[2]];
    let again = store.lookup_many(&twice).await.unwrap();
    assert_eq!(again[0], found[0]);
    assert_eq!(again[1], found[1]);
    assert_eq!(again[2], found[1]);
    assert_eq!(again[3], found[2]);
}

/// Heads are the versions no stored version names as parent, whatever order versions arrive
/// in; deleting a head makes its parents heads again.
pub async fn versions_and_heads_in_any_arrival_order(store: &dyn Store) {
    let of = id(1);
    let root = version_of(&of, vec![], 1, 1);
    let left = version_of(&of, vec![root.cid().clone()], 2, 1);
    let right = version_of(&of, vec![root.cid().clone()], 2, 2);
    let merge = version_of(&of, vec![left.cid().clone(), right.cid().clone()], 3, 1);
    // Children first.
    for object in [&merge, &left, &root, &right] {
        store.put(object.cid(), object.bytes()).await.unwrap();
    }
    assert_eq!(
        store.query(Query::Heads(&of)).await.unwrap(),
        [merge.cid().clone()]
    );
    let all = sorted(vec![
        root.cid().clone(),
        left.cid().clone(),
        right.cid().clone(),
        merge.cid().clone(),
    ]);
    assert_eq!(store.query(Query::Versions(&of)).await.unwrap(), all);
    store.delete(merge.cid()).await.unwrap();
    assert_eq!(
        store.query(Query::Heads(&of)).await.unwrap(),
        sorted(vec![left.cid().clone(), right.cid().clone()])
    );
    // Delete a middle version and put it back: heads follow.
    store.delete(left.cid()).await.unwrap();
    assert_eq!(
        store.query(Query::Heads(&of)).await.unwrap(),
        [right.cid().clone()]
    );
    assert_eq!(
        store.query(Query::Versions(&of)).await.unwrap(),
        sorted(vec![root.cid().clone(), right.cid().clone()])
    );
    store.put(left.cid(), left.bytes()).await.unwrap();
    store.put(merge.cid(), merge.bytes()).await.unwrap();
    assert_eq!(
        store.query(Query::Heads(&of)).await.unwrap(),
        [merge.cid().clone()]
    );
    store.delete(merge.cid()).await.unwrap();
    // Another object's versions are separate.
    // A version of another object naming a current head of `of` as its parent does not make
    // that head stop being one.
    let other = version_of(&id(2), vec![left.cid().clone()], 9, 1);
    store.put(other.cid(), other.bytes()).await.unwrap();
    assert_eq!(
        store.query(Query::Heads(&id(2))).await.unwrap(),
        [other.cid().clone()]
    );
    assert_eq!(
        store.query(Query::Heads(&of)).await.unwrap(),
        sorted(vec![left.cid().clone(), right.cid().clone()]),
        "a version of another object does not hide a head"
    );
}

/// Objects with an `author` are listed per author in clock order, pageable.
pub async fn author_index_orders_by_clock(store: &dyn Store) {
    let author = [9u8; 32];
    let mut objects = Vec::new();
    for (n, ms) in [30u64, 10, 20, 40].into_iter().enumerate() {
        let mut map = Map::new();
        map.insert("$type", "Message");
        map.insert("text", format!("m{n}"));
        map.insert("author", author.to_vec());
        map.insert("clock", clock_value(Timestamp::new(ms, 0)));
        objects.push((ms, Object::from_value(&Value::Map(map)).unwrap()));
    }
    let version = version_of(&id(3), vec![], 25, 9);
    put_objects(
        store,
        &objects.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
    )
    .await;
    store.put(version.cid(), version.bytes()).await.unwrap();
    let mut expected: Vec<(u64, Cid)> = objects
        .iter()
        .map(|(ms, o)| (*ms, o.cid().clone()))
        .collect();
    expected.push((25, version.cid().clone()));
    expected.sort();
    let listed = store
        .query(Query::ByAuthor {
            author: &author,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        listed,
        expected.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>()
    );
    let after = (Timestamp::new(expected[1].0, 0), &expected[1].1);
    let rest = store
        .query(Query::ByAuthor {
            author: &author,
            after: Some(after),
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(rest, [expected[2].1.clone(), expected[3].1.clone()]);
    assert!(
        store
            .query(Query::ByAuthor {
                author: &[8u8; 32],
                after: None,
                limit: 100
            })
            .await
            .unwrap()
            .is_empty()
    );
}

/// The instance-local area: get, put (overwrite), delete, prefix listing; never mixed with objects.
pub async fn local_area(store: &dyn Store) {
    assert_eq!(store.local_get(b"k").await.unwrap(), None);
    store.local_put(b"peer/a", b"1").await.unwrap();
    store.local_put(b"peer/b", b"2").await.unwrap();
    store.local_put(b"peer/a", b"3").await.unwrap();
    store.local_put(b"settings", b"x").await.unwrap();
    assert_eq!(
        store.local_get(b"peer/a").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(
        store.local_keys(b"peer/").await.unwrap(),
        [b"peer/a".to_vec(), b"peer/b".to_vec()]
    );
    assert!(store.local_delete(b"peer/a").await.unwrap());
    assert!(!store.local_delete(b"peer/a").await.unwrap());
    assert_eq!(store.local_keys(b"").await.unwrap().len(), 2);
    // Several at once; the last of a repeated key wins; existing ones are overwritten.
    store
        .local_put_many(&[
            (b"many/1".to_vec(), b"a".to_vec()),
            (b"many/2".to_vec(), b"b".to_vec()),
            (b"many/1".to_vec(), b"c".to_vec()),
            (b"settings".to_vec(), b"y".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.local_keys(b"many/").await.unwrap(),
        [b"many/1".to_vec(), b"many/2".to_vec()]
    );
    assert_eq!(
        store.local_get(b"many/1").await.unwrap().as_deref(),
        Some(&b"c"[..])
    );
    assert_eq!(
        store.local_get(b"settings").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    store.local_put_many(&[]).await.unwrap();
    assert_eq!(store.local_keys(b"").await.unwrap().len(), 4);
    // Prefixes are bytes: one ending in 0xff takes its extensions and nothing past them.
    store
        .local_put_many(&[
            (vec![0xfe, 0xff], Vec::new()),
            (vec![0xfe, 0xff, 0x00], Vec::new()),
            (vec![0xfe, 0xff, 0xff], Vec::new()),
            (vec![0xff], Vec::new()),
            (vec![0xff, 0xff], Vec::new()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.local_keys(&[0xfe, 0xff]).await.unwrap(),
        [
            vec![0xfe, 0xff],
            vec![0xfe, 0xff, 0x00],
            vec![0xfe, 0xff, 0xff]
        ]
    );
    assert_eq!(
        store.local_keys(&[0xff]).await.unwrap(),
        [vec![0xff], vec![0xff, 0xff]]
    );
    for key in [
        &[0xfe, 0xff][..],
        &[0xfe, 0xff, 0x00],
        &[0xfe, 0xff, 0xff],
        &[0xff],
        &[0xff, 0xff],
    ] {
        assert!(store.local_delete(key).await.unwrap());
    }
    assert_eq!(store.local_keys(b"").await.unwrap().len(), 4);
    assert_eq!(
        store.count().await.unwrap(),
        0,
        "local values are not objects"
    );
    // Objects with local values noted beside them.
    let noted = message(7_001);
    let pair = (noted.cid().clone(), noted.bytes().to_vec());
    let note = |value: &[u8]| vec![(b"noted/1".to_vec(), value.to_vec())];
    assert_eq!(
        store
            .put_with_local(std::slice::from_ref(&pair), Scope::Shared, &note(b"x"))
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        store.local_get(b"noted/1").await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert_eq!(store.get(noted.cid()).await.unwrap(), noted.bytes());
    // Stored already: not new, and the value is written all the same.
    assert_eq!(
        store
            .put_with_local(std::slice::from_ref(&pair), Scope::Shared, &note(b"y"))
            .await
            .unwrap(),
        [false]
    );
    assert_eq!(
        store.local_get(b"noted/1").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert!(
        store
            .put_with_local(&[], Scope::Shared, &[(b"noted/2".to_vec(), Vec::new())])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.local_keys(b"noted/").await.unwrap(),
        [b"noted/1".to_vec(), b"noted/2".to_vec()]
    );
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(
        store.sync_digest().await.unwrap(),
        SyncDigest::of([noted.cid()])
    );
    // The same for a batch verified beforehand.
    let second = message(7_002);
    let batch = crate::index::Verified::check(
        vec![
            pair.clone(),
            (second.cid().clone(), second.bytes().to_vec()),
        ],
        &store.limits(),
    )
    .unwrap();
    assert_eq!(
        store
            .put_verified_with_local(batch, Scope::Shared, &note(b"z"))
            .await
            .unwrap(),
        [false, true]
    );
    assert_eq!(
        store.local_get(b"noted/1").await.unwrap().as_deref(),
        Some(&b"z"[..])
    );
    assert_eq!(store.get(second.cid()).await.unwrap(), second.bytes());
    assert_eq!(
        store.sync_digest().await.unwrap(),
        SyncDigest::of([noted.cid(), second.cid()])
    );
}

/// Oversized objects (dag-cbor or raw) are refused, and a batch holding a stored CID with wrong
/// bytes is refused whole.
pub async fn limits_and_bad_batches(store: &dyn Store) {
    let big_chunk = vec![7u8; (1 << 20) + 1];
    let cid = Cid::hash(Codec::Raw, &big_chunk);
    assert!(
        matches!(
            store.put(&cid, &big_chunk).await,
            Err(Error::Invalid { .. })
        ),
        "a raw block over the size limit"
    );
    let (a, b) = (message(1), message(2));
    store.put(a.cid(), a.bytes()).await.unwrap();
    let batch = vec![
        (b.cid().clone(), b.bytes().to_vec()),
        (a.cid().clone(), b.bytes().to_vec()),
    ];
    assert!(
        matches!(store.put_many(&batch).await, Err(Error::Invalid { .. })),
        "wrong bytes under a stored CID"
    );
    assert!(
        !store.has(b.cid()).await.unwrap(),
        "nothing of that batch is stored"
    );
    let long_type = "T".repeat(crate::index::MAX_TYPE_NAME + 1);
    let odd = Object::from_value(&Value::Map([("$type", long_type.as_str())].into())).unwrap();
    assert!(
        matches!(
            store.put(odd.cid(), odd.bytes()).await,
            Err(Error::Invalid { .. })
        ),
        "a $type too long to index"
    );
}

/// The heads a set of versions must have: those no other present version of the same object
/// names as a parent.
fn model_heads(versions: &BTreeMap<Cid, Version>, of: &Cid) -> Vec<Cid> {
    let mine: Vec<(&Cid, &Version)> = versions.iter().filter(|(_, v)| v.of == *of).collect();
    mine.iter()
        .filter(|(cid, _)| !mine.iter().any(|(_, other)| other.parents.contains(cid)))
        .map(|(cid, _)| (*cid).clone())
        .collect()
}

/// Local objects are stored and read like any other but stay out of the shared set; storing
/// one as shared promotes it; the digest always equals the digest of the shared set, and the
/// protocol's helpers (short ids, resolution, built sketches) agree with it.
pub async fn scopes_and_the_sync_digest(store: &dyn Store) {
    let shared: Vec<Object> = (0..40).map(message).collect();
    let local: Vec<Object> = (40..45).map(message).collect();
    let pairs = |objects: &[Object]| -> Vec<(Cid, Vec<u8>)> {
        objects
            .iter()
            .map(|o| (o.cid().clone(), o.bytes().to_vec()))
            .collect()
    };
    assert_eq!(store.sync_digest().await.unwrap(), SyncDigest::new());
    assert_eq!(
        store
            .put_scoped(&pairs(&local), Scope::Local)
            .await
            .unwrap(),
        vec![true; 5]
    );
    store.put_many(&pairs(&shared)).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 45, "local objects are stored");
    assert_eq!(store.get(local[0].cid()).await.unwrap(), local[0].bytes());
    let mut expected: Vec<Cid> = shared.iter().map(|o| o.cid().clone()).collect();
    expected.sort();
    let listed = store
        .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        listed, expected,
        "sync_list holds exactly the shared objects"
    );
    assert_eq!(
        store.sync_digest().await.unwrap(),
        SyncDigest::of(&expected),
        "the digest is the shared set's"
    );
    // Which of some CIDs are shared: in the order asked, once each; local and absent ones
    // left out.
    let absent = message(99).cid().clone();
    let asked = vec![
        shared[3].cid().clone(),
        local[0].cid().clone(),
        absent,
        shared[1].cid().clone(),
        shared[3].cid().clone(),
    ];
    assert_eq!(
        store.shared_among(&asked).await.unwrap(),
        [shared[3].cid().clone(), shared[1].cid().clone()]
    );
    assert!(store.shared_among(&[]).await.unwrap().is_empty());
    // Shared wins: a local object stored again as shared is promoted; never the reverse.
    assert_eq!(
        store
            .put_scoped(&pairs(&local[..1]), Scope::Shared)
            .await
            .unwrap(),
        [true],
        "a promotion is a change"
    );
    assert_eq!(
        store
            .put_scoped(&pairs(&shared[..1]), Scope::Local)
            .await
            .unwrap(),
        [false],
        "a shared object stays shared"
    );
    expected.push(local[0].cid().clone());
    expected.sort();
    assert_eq!(
        store.sync_digest().await.unwrap(),
        SyncDigest::of(&expected),
        "promotion updates the digest"
    );
    // Deleting a local object leaves the digest alone; deleting a shared one updates it.
    store.delete(local[1].cid()).await.unwrap();
    store.delete(shared[1].cid()).await.unwrap();
    expected.retain(|cid| cid != shared[1].cid());
    let digest = store.sync_digest().await.unwrap();
    assert_eq!(
        digest,
        SyncDigest::of(&expected),
        "deletes update the digest"
    );
    // The protocol's helpers.
    let mut ids: Vec<u64> = expected.iter().map(chum_sketch::short_id).collect();
    ids.sort_unstable();
    assert_eq!(
        sync::shared_short_ids(store, None, usize::MAX)
            .await
            .unwrap(),
        ids
    );
    assert_eq!(
        sync::shared_short_ids(store, Some(ids[9]), 5)
            .await
            .unwrap(),
        ids[10..15],
        "short ids page after a bound"
    );
    let mut resolved = sync::resolve_short_ids(store, &[ids[3], ids[7], 12345])
        .await
        .unwrap();
    resolved.sort();
    let mut wanted: Vec<Cid> = expected
        .iter()
        .filter(|cid| [ids[3], ids[7]].contains(&chum_sketch::short_id(cid)))
        .cloned()
        .collect();
    wanted.sort();
    assert_eq!(resolved, wanted, "short ids resolve to their CIDs");
    let local_id = chum_sketch::short_id(local[2].cid());
    assert!(
        sync::resolve_short_ids(store, &[local_id])
            .await
            .unwrap()
            .is_empty(),
        "a local object is never resolved for a peer"
    );
    // Bulk reads of the shared set, paged.
    let (all, next) = store.sync_objects(None, usize::MAX).await.unwrap();
    assert_eq!(next, None);
    assert_eq!(
        all.iter().map(|(cid, _)| cid.clone()).collect::<Vec<_>>(),
        expected,
        "sync_objects reads exactly the shared set"
    );
    for (cid, bytes) in &all {
        assert!(cid.verify(bytes).unwrap(), "sync_objects bytes verify");
    }
    let (first, next) = store.sync_objects(None, 5).await.unwrap();
    assert_eq!(first.len(), 5);
    assert_eq!(next.as_ref(), Some(&expected[4]));
    let (rest, _) = store.sync_objects(next.as_ref(), usize::MAX).await.unwrap();
    assert_eq!(
        rest.len(),
        expected.len() - 5,
        "paging continues after the cursor"
    );
    let (summary, kept) = sync::shared_sketch(store, KEPT_SKETCH_CELLS[1], 0)
        .await
        .unwrap();
    assert_eq!(summary, digest.summary);
    assert_eq!(Some(&kept), digest.sketch(KEPT_SKETCH_CELLS[1], 0));
    let (summary, built) = sync::shared_sketch(store, 99, 5).await.unwrap();
    let mut direct = chum_sketch::sketch::Sketch::with_salt(99, 5);
    expected
        .iter()
        .for_each(|cid| direct.insert(chum_sketch::short_id(cid)));
    assert_eq!((summary, built), (digest.summary, direct), "built sketches");
}

/// A batch checked in advance stores like any other; one checked under other limits than the
/// store's is checked again, so a store never takes what its own limits refuse.
pub async fn verified_batches(store: &dyn Store) {
    let objects: Vec<(Cid, Vec<u8>)> = (0..10)
        .map(message)
        .map(|o| (o.cid().clone(), o.bytes().to_vec()))
        .collect();
    let batch = crate::index::Verified::check(objects.clone(), &store.limits()).unwrap();
    assert_eq!(
        store.put_verified(batch, Scope::Shared).await.unwrap(),
        vec![true; 10]
    );
    let messages = store
        .query(Query::ByType {
            type_name: "Message",
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(messages.len(), 10, "a verified batch is indexed");
    let digest = store.sync_digest().await.unwrap();
    assert_eq!(digest, SyncDigest::of(objects.iter().map(|(cid, _)| cid)));
    // Checked under limits the store does not have: the store checks again and refuses.
    let too_big = vec![7u8; store.limits().max_size + 1];
    let cid = Cid::hash(Codec::Raw, &too_big);
    let batch =
        crate::index::Verified::check(vec![(cid.clone(), too_big)], &crate::index::widest_limits())
            .unwrap();
    assert!(
        matches!(
            store.put_verified(batch, Scope::Shared).await,
            Err(Error::Invalid { .. })
        ),
        "the store's own limits hold"
    );
    assert!(!store.has(&cid).await.unwrap());
}

/// Drives `steps` random operations (seeded; a failure names the seed and step) against the
/// store and a `BTreeMap` model, comparing everything observable after each step.
pub async fn model_check(store: &dyn Store, seed: u64, steps: usize) {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Messages and versions of two objects whose parents point anywhere among earlier versions.
    let mut pool: Vec<Object> = (0..30).map(message).collect();
    let mut version_pool: Vec<(Cid, Version)> = Vec::new();
    for n in 0..20u32 {
        let of = id(n % 2);
        let earlier: Vec<Cid> = version_pool
            .iter()
            .filter(|(_, v)| v.of == of)
            .map(|(c, _)| c.clone())
            .collect();
        let parents: Vec<Cid> = earlier
            .iter()
            .rev()
            .take((n % 3) as usize)
            .cloned()
            .collect();
        let version = Version::new(
            of,
            parents,
            Timestamp::new(u64::from(n), 0),
            InstanceId([3; 32]),
            Map::new(),
        );
        let object = version.to_object().unwrap();
        version_pool.push((object.cid().clone(), version));
        pool.push(object);
    }
    let versions_of: BTreeMap<Cid, Version> = version_pool.into_iter().collect();
    let size = pool.len() as u64;
    let mut model: BTreeMap<Cid, Vec<u8>> = BTreeMap::new();
    let mut shared: BTreeSet<Cid> = BTreeSet::new();
    let mut local: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for step in 0..steps {
        let context = format!("model check seed {seed:#x} step {step}");
        match next() % 6 {
            0 | 1 => {
                let batch: Vec<&Object> = (0..1 + next() % 4)
                    .map(|_| &pool[(next() % 40) as usize])
                    .collect();
                let pairs: Vec<(Cid, Vec<u8>)> = batch
                    .iter()
                    .map(|o| (o.cid().clone(), o.bytes().to_vec()))
                    .collect();
                let scope = if next() % 4 == 0 {
                    Scope::Local
                } else {
                    Scope::Shared
                };
                let stored = store.put_scoped(&pairs, scope).await.unwrap();
                let mut seen = BTreeSet::new();
                for ((cid, bytes), new) in pairs.iter().zip(stored) {
                    let first = seen.insert(cid.clone());
                    let expected_new = first
                        && (!model.contains_key(cid)
                            || (scope == Scope::Shared && !shared.contains(cid)));
                    assert_eq!(new, expected_new, "{context}: put_scoped change flags");
                    model.insert(cid.clone(), bytes.clone());
                    if scope == Scope::Shared {
                        shared.insert(cid.clone());
                    }
                }
            }
            2 => {
                let object = &pool[(next() % size) as usize];
                let removed = store.delete(object.cid()).await.unwrap();
                assert_eq!(
                    removed,
                    model.remove(object.cid()).is_some(),
                    "{context}: delete"
                );
                shared.remove(object.cid());
            }
            3 => {
                let key = format!("k{}", next() % 8).into_bytes();
                let value = next().to_le_bytes().to_vec();
                store.local_put(&key, &value).await.unwrap();
                local.insert(key, value);
            }
            4 => {
                let key = format!("k{}", next() % 8).into_bytes();
                assert_eq!(
                    store.local_delete(&key).await.unwrap(),
                    local.remove(&key).is_some(),
                    "{context}: local_delete"
                );
            }
            _ => {
                let object = &pool[(next() % size) as usize];
                match model.get(object.cid()) {
                    Some(bytes) => assert_eq!(
                        &store.get(object.cid()).await.unwrap(),
                        bytes,
                        "{context}: get"
                    ),
                    None => assert!(
                        matches!(store.get(object.cid()).await, Err(Error::NotFound(_))),
                        "{context}: get absent"
                    ),
                }
            }
        }
        assert_eq!(
            store.count().await.unwrap(),
            model.len() as u64,
            "{context}: count"
        );
        if step % 10 == 0 {
            let listed = store
                .list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                listed,
                model.keys().cloned().collect::<Vec<_>>(),
                "{context}: list"
            );
            let by_type = store
                .query(Query::ByType {
                    type_name: "Message",
                    after: None,
                    limit: usize::MAX,
                })
                .await
                .unwrap();
            let messages: Vec<Cid> = listed
                .iter()
                .filter(|c| !versions_of.contains_key(*c))
                .cloned()
                .collect();
            assert_eq!(by_type, messages, "{context}: type index");
            let present: BTreeMap<Cid, Version> = versions_of
                .iter()
                .filter(|(c, _)| model.contains_key(*c))
                .map(|(c, v)| (c.clone(), v.clone()))
                .collect();
            for n in 0..2 {
                let of = id(n);
                assert_eq!(
                    store.query(Query::Heads(&of)).await.unwrap(),
                    model_heads(&present, &of),
                    "{context}: heads of {n}"
                );
                let versions: Vec<Cid> = present
                    .iter()
                    .filter(|(_, v)| v.of == of)
                    .map(|(c, _)| c.clone())
                    .collect();
                assert_eq!(
                    store.query(Query::Versions(&of)).await.unwrap(),
                    versions,
                    "{context}: versions of {n}"
                );
            }
            let synced = store
                .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                synced,
                shared.iter().cloned().collect::<Vec<_>>(),
                "{context}: sync_list"
            );
            assert_eq!(
                store.sync_digest().await.unwrap(),
                SyncDigest::of(&shared),
                "{context}: sync digest"
            );
            let journal = store.journal(0, usize::MAX).await.unwrap();
            assert!(
                journal.entries.windows(2).all(|w| w[0].0 < w[1].0),
                "{context}: journal positions ascend"
            );
            let journaled: BTreeSet<Cid> =
                journal.entries.iter().map(|(_, cid)| cid.clone()).collect();
            assert_eq!(
                &journaled, &shared,
                "{context}: the journal holds the shared set"
            );
            assert!(
                journal.head >= shared.len() as u64,
                "{context}: journal head"
            );
            let keys = store.local_keys(b"").await.unwrap();
            assert_eq!(
                keys,
                local.keys().cloned().collect::<Vec<_>>(),
                "{context}: local keys"
            );
            for (key, value) in &local {
                assert_eq!(
                    store.local_get(key).await.unwrap().as_ref(),
                    Some(value),
                    "{context}: local_get"
                );
            }
        }
    }
}
