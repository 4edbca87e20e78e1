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
//!
//! A second table shows peers that synced before: each holds a journal position of the
//! other's (a checkpoint), then both sides add their part of the difference. The whole
//! exchange — finding the difference and transferring it, until the initiator reports
//! `Synced` — runs once with journals (the fast path) and once without (sketches), on the same
//! sets in the same process.

use chum_benches::reconciliation::{chum_complete_run, chum_run, cid, id_bytes, negentropy_run};
use chum_object::Cid;
use chum_sync::memory::MemorySet;

/// `set` with `items` inserted.
fn add(mut set: MemorySet, items: impl IntoIterator<Item = (Cid, Vec<u8>)>) -> MemorySet {
    for (cid, bytes) in items {
        set.insert(cid, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
    set
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
        "{:>9} {:>7} | {:>27} | {:>27} | {:>8}",
        "n", "d", "chum: msgs rt bytes ms", "negentropy: msgs rt bytes ms", "bytes"
    );
    for &n in &sizes {
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
            let (chum, sets) = chum_run(
                add(MemorySet::new(), a_items),
                add(MemorySet::new(), b_items),
            );
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
    println!();
    println!("after a checkpoint, the whole exchange until Synced (transfer included):");
    println!(
        "{:>9} {:>7} | {:>27} | {:>27} | {:>8}",
        "n", "d", "journal: msgs rt bytes ms", "sketches: msgs rt bytes ms", "time"
    );
    for &n in &sizes {
        for d in [0usize, 1, 10, 1_000, 100_000] {
            if d > n {
                continue;
            }
            let common = (n - d / 2) as u64;
            let a = add(MemorySet::new(), (0..common).map(cid));
            let b = add(MemorySet::new(), (0..common).map(cid));
            // The checkpoint both learned when they last matched.
            let a_holds = vec![(b.journal_id(), b.journal_head())];
            let b_holds = vec![(a.journal_id(), a.journal_head())];
            let a = add(a, (0..(d / 2) as u64).map(|i| cid(i | 1 << 40)));
            let b = add(b, (0..(d - d / 2) as u64).map(|i| cid(i | 1 << 41)));
            let (a2, b2) = (a.clone(), b.clone());
            let (journal, sets) = chum_complete_run(a, b, Some((a_holds, b_holds)));
            std::mem::forget(sets);
            let (sketches, sets) = chum_complete_run(a2, b2, None);
            std::mem::forget(sets);
            assert_eq!(journal.found, sketches.found, "both end with the union");
            println!(
                "{n:>9} {d:>7} | {:>4} {:>2} {:>10} {:>7.1} | {:>4} {:>2} {:>10} {:>7.1} | {:>7.3}×",
                journal.messages,
                journal.round_trips,
                journal.bytes,
                journal.millis,
                sketches.messages,
                sketches.round_trips,
                sketches.bytes,
                sketches.millis,
                journal.millis / sketches.millis,
            );
        }
    }
}
