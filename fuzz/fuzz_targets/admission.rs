//! Admission (`chum_access::admit_peer`) against a store that already holds thousands of other
//! persons' revocations and certificates: one of the genuine handshake payloads built below
//! (chosen by the first byte, optionally followed by fuzzed bytes in place of it), or arbitrary
//! bytes. Never a panic, and one admission reads only the admitted person's own objects (a few
//! passes over them) and Alice's — revocations, certificates and grants are looked up by
//! person, never scanned: whatever else the store holds costs it nothing.
#![no_main]

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use chum_access::{HubViews, Identity, InstanceId, Policy, admit_peer, handshake};
use chum_store::decorators::CountingStore;
use chum_store::{MemoryStore, Scope, Store};
use libfuzzer_sys::fuzz_target;

/// Persons whose objects fill the store, and revocations each.
const PERSONS: usize = 40;
const REVOCATIONS: usize = 50;
const NOW: u64 = 1_700_000_000_000;

/// Runs a future that never waits (the memory store's never do).
fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

struct World {
    store: CountingStore<MemoryStore>,
    alice: Identity,
    /// Genuine payloads (and the static keys they bind): each flooding person's, Alice's
    /// second instance's.
    payloads: Vec<([u8; 32], Vec<u8>)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let store = CountingStore::new(MemoryStore::new());
        let alice = Identity::new_person(NOW).expect("a person");
        run(alice.save(&store, None)).expect("saved");
        let mut payloads = Vec::new();
        for p in 0..PERSONS {
            let person = Identity::new_person(NOW).expect("a person");
            let mut objects = vec![(
                person.certificate().object().cid().clone(),
                person.certificate().object().bytes().to_vec(),
            )];
            for r in 0..REVOCATIONS {
                let mut instance = [p as u8; 32];
                instance[..2].copy_from_slice(&(r as u16).to_le_bytes());
                let revocation = person.revoke(InstanceId(instance), NOW).expect("revoked");
                objects.push((
                    revocation.object().cid().clone(),
                    revocation.object().bytes().to_vec(),
                ));
            }
            run(store.put_scoped(&objects, Scope::Shared)).expect("stored");
            let static_public = [p as u8 ^ 0xa5; 32];
            let payload = handshake::payload(&person, &static_public).expect("payload");
            payloads.push((static_public, payload));
        }
        let key = chum_access::keys::generate_key().expect("a key");
        let certificate = alice
            .certify(InstanceId(key.verifying_key().to_bytes()), NOW)
            .expect("certified");
        let laptop = Identity::joined(key, certificate).expect("joined");
        let static_public = [0x5a; 32];
        payloads.push((
            static_public,
            handshake::payload(&laptop, &static_public).expect("payload"),
        ));
        World {
            store,
            alice,
            payloads,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let (static_public, payload) = match world.payloads.get(usize::from(choice)) {
        Some((static_public, payload)) if rest.is_empty() => (*static_public, payload.clone()),
        _ => {
            let mut static_public = [0u8; 32];
            let take = rest.len().min(32);
            static_public[..take].copy_from_slice(&rest[..take]);
            (static_public, rest[take..].to_vec())
        }
    };
    let before = world.store.counts.get.load(Ordering::Relaxed);
    let _ = run(admit_peer(
        &world.store,
        &world.alice,
        &Policy::default(),
        &mut HubViews::new(),
        &payload,
        &static_public,
        NOW,
    ));
    let reads = world.store.counts.get.load(Ordering::Relaxed) - before;
    // The admitted person's own objects (its certificate and revocations: looked up for
    // revocation, grants and group statements, three passes) and Alice's few — never the
    // other persons' thousands.
    let own = REVOCATIONS as u64 + 1;
    assert!(reads <= 3 * own + 16, "one admission read {reads} objects");
});
