//! Set reconciliation, chum beside negentropy on identical sets, in one run.
//!
//! `cargo run --release -p chum-benches --bin reconcile_report [N...]` (default N = 100000 and
//! 1000000). For each N and d ∈ {0, 1, 10, 1000, 100000} differences (split evenly between the
//! sides, at uniformly random positions), both sides hold N ids; it prints the messages, round
//! trips, bytes and time each protocol needs to find the whole difference. chum's side is
//! `chum_sync::reconcile` over 8-byte short ids (today computed from scratch; the engine will keep
//! its sketches in the store); negentropy 0.5 uses the same items as 32-byte ids.

use std::time::Instant;

use chum_sync::reconcile::reconcile;
use negentropy::{Id, Negentropy, NegentropyStorageVector};

fn id_bytes(x: u64) -> [u8; 32] {
    let hash = chum_object::Cid::hash(chum_object::Codec::Raw, &x.to_le_bytes());
    let mut id = [0u8; 32];
    id.copy_from_slice(&hash.as_bytes()[4..36]);
    id
}

fn short(id: &[u8; 32]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&id[..8]);
    u64::from_le_bytes(bytes)
}

struct Row {
    messages: usize,
    bytes: usize,
    millis: f64,
    found: usize,
}

fn negentropy_run(a: &[[u8; 32]], b: &[[u8; 32]]) -> Result<Row, String> {
    let storage = |ids: &[[u8; 32]]| -> Result<NegentropyStorageVector, String> {
        let mut storage = NegentropyStorageVector::with_capacity(ids.len());
        for id in ids {
            storage
                .insert(0, Id::from_slice(id).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        storage.seal().map_err(|e| e.to_string())?;
        Ok(storage)
    };
    let (client_storage, relay_storage) = (storage(a)?, storage(b)?);
    let start = Instant::now();
    let mut client = Negentropy::borrowed(&client_storage, 0).map_err(|e| e.to_string())?;
    let mut relay = Negentropy::borrowed(&relay_storage, 0).map_err(|e| e.to_string())?;
    let mut message = client.initiate().map_err(|e| e.to_string())?;
    let (mut messages, mut bytes) = (1, message.len());
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        let response = relay.reconcile(&message).map_err(|e| e.to_string())?;
        messages += 1;
        bytes += response.len();
        match client
            .reconcile_with_ids(&response, &mut have, &mut need)
            .map_err(|e| e.to_string())?
        {
            Some(next) => {
                messages += 1;
                bytes += next.len();
                message = next;
            }
            None => break,
        }
    }
    Ok(Row {
        messages,
        bytes,
        millis: start.elapsed().as_secs_f64() * 1e3,
        found: have.len() + need.len(),
    })
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    println!(
        "{:>9} {:>7} | {:>24} | {:>24}",
        "n", "d", "chum: msgs rt bytes ms", "negentropy: msgs rt bytes ms"
    );
    for n in sizes {
        for d in [0usize, 1, 10, 1_000, 100_000] {
            if d > n {
                continue;
            }
            let common: Vec<[u8; 32]> = (0..(n - d / 2) as u64).map(id_bytes).collect();
            let mut a = common.clone();
            let mut b = common;
            a.extend((0..(d / 2) as u64).map(|i| id_bytes(i | 1 << 40)));
            b.extend((0..(d - d / 2) as u64).map(|i| id_bytes(i | 1 << 41)));
            let (a_short, b_short): (Vec<u64>, Vec<u64>) =
                (a.iter().map(short).collect(), b.iter().map(short).collect());
            let start = Instant::now();
            let chum = reconcile(&a_short, &b_short);
            let chum_ms = start.elapsed().as_secs_f64() * 1e3;
            let chum_found = chum.responder_lacks.len() + chum.initiator_lacks.len();
            let neg = match negentropy_run(&a, &b) {
                Ok(row) => row,
                Err(error) => {
                    eprintln!("negentropy failed: {error}");
                    continue;
                }
            };
            assert_eq!(chum_found, d, "chum found the whole difference");
            assert_eq!(neg.found, d, "negentropy found the whole difference");
            println!(
                "{n:>9} {d:>7} | {:>4} {:>2} {:>9} {:>6.1} | {:>4} {:>2} {:>9} {:>6.1}   bytes ratio {:.2}",
                chum.messages,
                chum.round_trips(),
                chum.bytes,
                chum_ms,
                neg.messages,
                neg.messages.div_ceil(2),
                neg.bytes,
                neg.millis,
                chum.bytes as f64 / neg.bytes as f64,
            );
        }
    }
}
