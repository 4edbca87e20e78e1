//! Set reconciliation, chum beside negentropy on identical sets, in one run.
//!
//! `cargo run --release -p chum-benches --bin reconcile_report [N...]` (default N = 100000 and
//! 1000000). For each N and d ∈ {0, 1, 10, 1000, 100000} differences (split evenly between the
//! sides, at uniformly random positions), both sides hold N objects; it prints the reconcile
//! messages (every message after the hellos up to and including the want list: no objects,
//! acknowledgements or keepalives), round trips, bytes and time each protocol needs to find the
//! whole difference. chum's side is two real `chum_sync::Session`s, each answering from an
//! in-memory set that keeps its small sketches current the way stores do; negentropy 0.5 uses
//! the same objects' 32-byte digests as ids.

use chum_benches::reconciliation::{chum_run, cid, id_bytes, negentropy_run};
use chum_object::Cid;
use chum_sync::memory::MemorySet;

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
        "{:>9} {:>7} | {:>27} | {:>27} | {:>8}",
        "n", "d", "chum: msgs rt bytes ms", "negentropy: msgs rt bytes ms", "bytes"
    );
    for n in sizes {
        for d in [0usize, 1, 10, 1_000, 100_000] {
            if d > n {
                continue;
            }
            // Differences at uniformly random positions: the ids are hashes.
            let common = (n - d / 2) as u64;
            let a_items: Vec<(Cid, Vec<u8>)> = (0..common)
                .chain((0..(d / 2) as u64).map(|i| i | 1 << 40))
                .map(cid)
                .collect();
            let b_items: Vec<(Cid, Vec<u8>)> = (0..common)
                .chain((0..(d - d / 2) as u64).map(|i| i | 1 << 41))
                .map(cid)
                .collect();
            let a_ids: Vec<[u8; 32]> = a_items.iter().map(|(c, _)| id_bytes(c)).collect();
            let b_ids: Vec<[u8; 32]> = b_items.iter().map(|(c, _)| id_bytes(c)).collect();
            let set = |items: Vec<(Cid, Vec<u8>)>| {
                let mut set = MemorySet::new();
                for (cid, bytes) in items {
                    set.insert(cid, bytes).unwrap_or_else(|e| panic!("{e}"));
                }
                set
            };
            let (chum, sets) = chum_run(set(a_items), set(b_items));
            // Freeing two sets of a million objects is not part of the exchange.
            std::mem::forget(sets);
            let neg = match negentropy_run(&a_ids, &b_ids) {
                Ok(row) => row,
                Err(error) => {
                    eprintln!("negentropy failed: {error}");
                    continue;
                }
            };
            assert_eq!(chum.found, d, "chum found the whole difference");
            assert_eq!(neg.found, d, "negentropy found the whole difference");
            println!(
                "{n:>9} {d:>7} | {:>4} {:>2} {:>10} {:>7.1} | {:>4} {:>2} {:>10} {:>7.1} | {:>7.3}×",
                chum.messages,
                chum.round_trips,
                chum.bytes,
                chum.millis,
                neg.messages,
                neg.round_trips,
                neg.bytes,
                neg.millis,
                chum.bytes as f64 / neg.bytes as f64,
            );
        }
    }
}
