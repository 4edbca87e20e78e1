//! The store conformance suite on IndexedDB, in a real browser (`cargo xtask test` runs it in
//! headless Chromium through `wasm-bindgen-test-runner` and ChromeDriver), and what only this
//! backend has: the Web Lock, reopening, damaged records.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;

use chum_store::{Error, Store, conformance};
use chum_store_idb::IdbStore;
use futures::future::LocalBoxFuture;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

thread_local! {
    static NEXT: Cell<u32> = const { Cell::new(0) };
}

/// A store name no other test uses (the browser profile is shared by the tests of a run).
fn fresh_name(what: &str) -> String {
    let n = NEXT.with(|next| {
        let n = next.get();
        next.set(n + 1);
        n
    });
    format!("{what}-{}-{n}", js_sys::Date::now() as u64)
}

async fn open_new(what: &str) -> Box<dyn Store> {
    Box::new(IdbStore::open(&fresh_name(what)).await.unwrap())
}

/// Waits `ms` milliseconds (a macrotask, so the browser runs what it queued).
async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout: js_sys::Function = js_sys::Reflect::get(&global, &"setTimeout".into())
            .unwrap()
            .unchecked_into();
        set_timeout
            .call2(&global, &resolve, &JsValue::from(ms))
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_whole_conformance_suite() {
    let make = || -> LocalBoxFuture<'static, Box<dyn Store>> { Box::pin(open_new("conformance")) };
    conformance::run_all_async(&make).await;
}

#[wasm_bindgen_test]
async fn what_was_written_is_there_after_reopening() {
    let name = fresh_name("durable");
    let first: Box<dyn Store> = Box::new(IdbStore::open(&name).await.unwrap());
    let reopen = move || -> LocalBoxFuture<'static, Box<dyn Store>> {
        let name = name.clone();
        Box::pin(async move {
            // Dropping the first handle lets go of the lock; the browser releases it soon.
            for _ in 0..200 {
                match IdbStore::open(&name).await {
                    Ok(store) => return Box::new(store) as Box<dyn Store>,
                    Err(Error::Locked(_)) => sleep(5).await,
                    Err(error) => panic!("{error}"),
                }
            }
            panic!("the store stayed locked after its handle was dropped")
        })
    };
    conformance::run_durable_async(first, &reopen).await;
}

#[wasm_bindgen_test]
async fn a_second_open_is_locked_out_until_the_first_closes() {
    let name = fresh_name("locked");
    let first = IdbStore::open(&name).await.unwrap();
    let object = conformance::message(1);
    first.put(object.cid(), object.bytes()).await.unwrap();
    match IdbStore::open(&name).await {
        Err(Error::Locked(why)) => assert!(why.contains(&name), "{why}"),
        other => panic!("a second writer: {other:?}"),
    }
    first.close().await;
    assert_eq!(first.get(object.cid()).await, Err(Error::Closed));
    let second = IdbStore::open(&name).await.unwrap();
    assert_eq!(second.get(object.cid()).await.unwrap(), object.bytes());
    second.close().await;
    IdbStore::delete_store(&name).await.unwrap();
    let empty = IdbStore::open(&name).await.unwrap();
    assert_eq!(empty.count().await.unwrap(), 0, "deleted");
}

/// Overwrites the stored bytes of `cid` behind the store's back.
async fn damage(name: &str, cid: &chum_object::Cid, bytes: &[u8]) {
    let factory: web_sys::IdbFactory = js_sys::Reflect::get(&js_sys::global(), &"indexedDB".into())
        .unwrap()
        .unchecked_into();
    let request = factory.open(&format!("chum:{name}")).unwrap();
    let db: web_sys::IdbDatabase = wait(&request).await.unchecked_into();
    let transaction = db
        .transaction_with_str_and_mode("objects", web_sys::IdbTransactionMode::Readwrite)
        .unwrap();
    let store = transaction.object_store("objects").unwrap();
    let key: JsValue = js_sys::Uint8Array::from(cid.as_bytes()).into();
    let record = wait(&store.get(&key).unwrap()).await;
    js_sys::Reflect::set(
        &record,
        &"b".into(),
        &js_sys::Uint8Array::from(bytes).into(),
    )
    .unwrap();
    wait(&store.put_with_key(&record, &key).unwrap()).await;
    db.close();
}

async fn wait(request: &web_sys::IdbRequest) -> JsValue {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
    request.result().unwrap()
}

#[wasm_bindgen_test]
async fn damaged_bytes_are_never_returned_and_can_be_deleted() {
    let name = fresh_name("damaged");
    let store = IdbStore::open(&name).await.unwrap();
    let objects: Vec<_> = (0..3).map(conformance::message).collect();
    for object in &objects {
        store.put(object.cid(), object.bytes()).await.unwrap();
    }
    damage(&name, objects[1].cid(), b"not the bytes").await;
    assert!(matches!(
        store.get(objects[1].cid()).await,
        Err(Error::Corrupt { .. })
    ));
    let many = store
        .get_many(&objects.iter().map(|o| o.cid().clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(many[0].is_ok() && matches!(many[1], Err(Error::Corrupt { .. })) && many[2].is_ok());
    let (listed, _) = store.sync_objects(None, 10).await.unwrap();
    assert_eq!(
        listed.len(),
        2,
        "a damaged object is left out of sync_objects"
    );
    assert!(store.delete(objects[1].cid()).await.unwrap());
    assert_eq!(store.count().await.unwrap(), 2);
    assert!(!store.has(objects[1].cid()).await.unwrap());
}

/// Batches of every size around the points where a write lets the page run (every 256
/// objects) commit — a batch ending exactly there once waited forever.
#[wasm_bindgen_test]
async fn batches_ending_where_a_write_yields_commit() {
    let store = IdbStore::open(&fresh_name("yield")).await.unwrap();
    let mut total = 0;
    for size in [255usize, 256, 257, 512, 513] {
        let batch: Vec<_> = (0..size)
            .map(|i| {
                let object = conformance::message(u32::try_from(total + i).unwrap());
                (object.cid().clone(), object.bytes().to_vec())
            })
            .collect();
        let changed = store.put_many(&batch).await.unwrap();
        assert!(changed.iter().all(|new| *new), "{size}: all new");
        total += size;
        assert_eq!(store.count().await.unwrap(), total as u64);
        // Again: nothing new, and nothing renumbered.
        let head = store.journal(0, 0).await.unwrap().head;
        assert!(!store.put_many(&batch).await.unwrap().iter().any(|new| *new));
        assert_eq!(store.journal(0, 0).await.unwrap().head, head);
    }
    store.close().await;
}
