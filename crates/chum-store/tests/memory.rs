//! The in-memory backend runs the whole conformance suite; the decorators behave as documented.
#![allow(clippy::unwrap_used)]

use chum_store::decorators::{CountingStore, Fault, FaultStore};
use chum_store::{Error, MemoryStore, Store, conformance};
use futures::executor::block_on;

#[test]
fn memory_store_conforms() {
    block_on(conformance::run_all(&|| {
        Box::new(MemoryStore::new()) as Box<dyn Store>
    }));
}

#[test]
fn wrapped_stores_conform_too() {
    block_on(conformance::run_all(&|| {
        Box::new(CountingStore::new(MemoryStore::new())) as Box<dyn Store>
    }));
    block_on(conformance::run_all(&|| {
        Box::new(FaultStore::new(
            MemoryStore::new(),
            Fault::FailWrite(u64::MAX),
        )) as Box<dyn Store>
    }));
}

#[test]
fn injected_faults_do_what_they_say() {
    block_on(async {
        let objects: Vec<_> = (0..4).map(conformance::message).collect();
        let pairs: Vec<_> = objects
            .iter()
            .map(|o| (o.cid().clone(), o.bytes().to_vec()))
            .collect();

        let store = FaultStore::new(MemoryStore::new(), Fault::FailWrite(2));
        store.put_many(&pairs[..1]).await.unwrap();
        assert!(matches!(
            store.put_many(&pairs[1..2]).await,
            Err(Error::Injected(_))
        ));
        assert!(
            !store.has(objects[1].cid()).await.unwrap(),
            "a failed write leaves nothing"
        );
        store.put_many(&pairs[1..2]).await.unwrap();

        let store = FaultStore::new(MemoryStore::new(), Fault::PowerLoss(2));
        store.put_many(&pairs[..1]).await.unwrap();
        assert!(store.put_many(&pairs[1..]).await.is_err());
        assert!(
            store.get(objects[0].cid()).await.is_err(),
            "nothing answers after power loss"
        );
        store.restore_power();
        assert!(
            store.has(objects[0].cid()).await.unwrap(),
            "what was acknowledged survives"
        );
        assert!(
            !store.has(objects[1].cid()).await.unwrap(),
            "what was not acknowledged is not there"
        );

        let store = FaultStore::new(MemoryStore::new(), Fault::TornBatch(1, 2));
        assert!(store.put_many(&pairs).await.is_err());
        assert_eq!(
            store.inner().count().await.unwrap(),
            2,
            "a torn batch leaves its first objects"
        );

        let store = CountingStore::new(MemoryStore::new());
        store.put_many(&pairs).await.unwrap();
        store.get(objects[0].cid()).await.unwrap();
        assert_eq!(
            store
                .counts
                .objects_put
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
        assert_eq!(
            store.counts.get.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    });
}

#[test]
fn deleting_most_objects_keeps_the_rest_whole() {
    // Enough bytes (40,000 objects of ~40 bytes: > 1 MiB) that deleting three in four compacts the store's byte arena: the
    // objects left must read back exactly, listed and by CID, and the deleted ones be gone.
    block_on(async {
        let store = MemoryStore::new();
        let pairs: Vec<_> = (0..40_000)
            .map(conformance::message)
            .map(|o| (o.cid().clone(), o.bytes().to_vec()))
            .collect();
        for chunk in pairs.chunks(1_000) {
            store.put_many(chunk).await.unwrap();
        }
        for (i, (cid, _)) in pairs.iter().enumerate() {
            if i % 4 != 0 {
                assert!(store.delete(cid).await.unwrap());
            }
        }
        assert_eq!(store.count().await.unwrap(), 10_000);
        for (i, (cid, bytes)) in pairs.iter().enumerate() {
            if i % 4 == 0 {
                assert_eq!(&store.get(cid).await.unwrap(), bytes);
            } else {
                assert!(matches!(store.get(cid).await, Err(Error::NotFound(_))));
            }
        }
        let (page, _) = store.sync_objects(None, 10_000).await.unwrap();
        assert_eq!(page.len(), 10_000);
        for (cid, bytes) in page {
            let index = pairs.iter().position(|(c, _)| *c == cid).unwrap();
            assert_eq!(bytes, pairs[index].1);
        }
        // Written after compaction: still whole.
        let more = conformance::message(99_999);
        store
            .put_many(&[(more.cid().clone(), more.bytes().to_vec())])
            .await
            .unwrap();
        assert_eq!(store.get(more.cid()).await.unwrap(), more.bytes());
    });
}
