//! The reconciliation plan the engine will follow, as a pure function over two in-memory sets of
//! short ids, so its cost can be measured and tested before it is wired to stores and sockets.
//!
//! 1. The initiator sends a summary (count, wrapping sum and XOR of its ids). Equal summaries end
//!    the exchange: one round trip.
//! 2. Otherwise the responder sends a sketch of its set of [`SKETCH_SIZES`]`[0]` cells; the
//!    initiator subtracts its own sketch of the same size and peels. Success: it now knows both
//!    halves of the difference and sends the ids it wants.
//! 3. On failure it asks for the next size (8× larger). When a sketch would cost more than the
//!    responder's whole id list (8 bytes an id), the responder sends the list instead, which
//!    always succeeds — so no exchange costs much more than listing the set.

use std::collections::BTreeSet;

use crate::sketch::{Sketch, SketchError};

/// Sketch sizes tried in turn, in cells.
pub const SKETCH_SIZES: [usize; 7] = [36, 288, 2_304, 18_432, 147_456, 1_179_648, 9_437_184];

/// Bytes of a summary message (count, sum, XOR).
const SUMMARY_BYTES: usize = 24;
/// Bytes of a short message (done, retry with the next size).
const SHORT_MESSAGE_BYTES: usize = 4;

/// The set summary sent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of ids.
    pub count: u64,
    /// Wrapping sum of the ids.
    pub sum: u64,
    /// XOR of the ids.
    pub xor: u64,
}

impl Summary {
    /// The summary of a set.
    pub fn of(ids: &[u64]) -> Summary {
        ids.iter().fold(
            Summary {
                count: 0,
                sum: 0,
                xor: 0,
            },
            |s, &id| Summary {
                count: s.count + 1,
                sum: s.sum.wrapping_add(id),
                xor: s.xor ^ id,
            },
        )
    }
}

/// What an exchange found and what it cost.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Ids the initiator has and the responder lacks, sorted.
    pub responder_lacks: Vec<u64>,
    /// Ids the responder has and the initiator lacks, sorted.
    pub initiator_lacks: Vec<u64>,
    /// Messages exchanged (both directions), including the final want list.
    pub messages: usize,
    /// Bytes exchanged (both directions).
    pub bytes: usize,
}

impl Outcome {
    /// Round trips: messages in both directions, halves counted up.
    pub fn round_trips(&self) -> usize {
        self.messages.div_ceil(2)
    }
}

fn sketch_of(ids: &[u64], cells: usize, salt: u64) -> Sketch {
    let mut sketch = Sketch::with_salt(cells, salt);
    ids.iter().for_each(|id| sketch.insert(*id));
    sketch
}

/// Runs the exchange between an initiator holding `initiator` and a responder holding
/// `responder` (sets of distinct ids).
pub fn reconcile(initiator: &[u64], responder: &[u64]) -> Outcome {
    let mut outcome = Outcome {
        messages: 1,
        bytes: SUMMARY_BYTES,
        ..Outcome::default()
    };
    if Summary::of(initiator) == Summary::of(responder) {
        outcome.messages += 1;
        outcome.bytes += SHORT_MESSAGE_BYTES;
        return outcome;
    }
    let mut attempt = 0u64;
    let mut sizes = SKETCH_SIZES.iter().peekable();
    while let Some(&cells) = sizes.peek() {
        let sketch = sketch_of(responder, *cells, attempt);
        let wire = sketch.to_bytes();
        if wire.len() > responder.len() * 8 + 8 {
            break; // listing is cheaper from here on
        }
        if attempt > 0 {
            outcome.messages += 1; // the initiator's "next sketch, please"
            outcome.bytes += SHORT_MESSAGE_BYTES;
        }
        outcome.messages += 1;
        outcome.bytes += wire.len();
        attempt += 1;
        match sketch_of(initiator, *cells, attempt - 1)
            .subtract(&sketch)
            .and_then(Sketch::decode)
        {
            Ok(difference) => {
                outcome.responder_lacks = difference.only_mine;
                outcome.initiator_lacks = difference.only_theirs;
                outcome.messages += 1; // the want list
                outcome.bytes += 4 + outcome.initiator_lacks.len() * 8;
                return outcome;
            }
            // A few cells left over is a small stopping set, not an overload: the same size
            // with fresh hashing almost surely decodes. Otherwise grow 8×.
            Err(SketchError::Undecodable { undecoded }) if undecoded * 50 <= *cells => {}
            Err(_) => {
                sizes.next();
            }
        }
    }
    // The responder's whole list.
    if outcome.messages > 1 {
        outcome.messages += 1;
        outcome.bytes += SHORT_MESSAGE_BYTES;
    }
    outcome.messages += 1;
    outcome.bytes += 4 + responder.len() * 8;
    let theirs: BTreeSet<u64> = responder.iter().copied().collect();
    let mine: BTreeSet<u64> = initiator.iter().copied().collect();
    outcome.responder_lacks = mine.difference(&theirs).copied().collect();
    outcome.initiator_lacks = theirs.difference(&mine).copied().collect();
    outcome.messages += 1;
    outcome.bytes += 4 + outcome.initiator_lacks.len() * 8;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(mut x: u64) -> u64 {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    /// n ids per side, of which `d` differences split evenly between the sides.
    fn sets(n: usize, d: usize, seed: u64) -> (Vec<u64>, Vec<u64>) {
        let common: Vec<u64> = (0..(n - d / 2) as u64).map(|i| mix(i ^ seed)).collect();
        let mut a = common.clone();
        let mut b = common;
        a.extend((0..(d / 2) as u64).map(|i| mix(i ^ seed ^ 0xaaaa_0000_0000)));
        b.extend((0..(d - d / 2) as u64).map(|i| mix(i ^ seed ^ 0xbbbb_0000_0000)));
        (a, b)
    }

    fn check(n: usize, d: usize) -> Outcome {
        let (a, b) = sets(n, d, n as u64 ^ (d as u64) << 32);
        let outcome = reconcile(&a, &b);
        assert_eq!(
            outcome.responder_lacks.len() + outcome.initiator_lacks.len(),
            d,
            "n {n} d {d}: whole difference found"
        );
        let a_set: BTreeSet<u64> = a.iter().copied().collect();
        let b_set: BTreeSet<u64> = b.iter().copied().collect();
        assert!(
            outcome
                .responder_lacks
                .iter()
                .all(|id| a_set.contains(id) && !b_set.contains(id))
        );
        assert!(
            outcome
                .initiator_lacks
                .iter()
                .all(|id| b_set.contains(id) && !a_set.contains(id))
        );
        outcome
    }

    #[test]
    fn costs_stay_within_the_targets_at_100k() {
        let n = 100_000;
        let equal = check(n, 0);
        assert_eq!(equal.round_trips(), 1);
        assert!(equal.bytes < 100, "{equal:?}");
        let one = check(n, 1);
        assert!(
            one.round_trips() <= 2 && one.bytes <= 600,
            "d=1: {} messages, {} bytes",
            one.messages,
            one.bytes
        );
        let ten = check(n, 10);
        assert!(ten.bytes <= 2_000, "d=10: {} bytes", ten.bytes);
        let thousand = check(n, 1_000);
        assert!(
            thousand.bytes <= 150_000,
            "d=1000: {} bytes",
            thousand.bytes
        );
        let many = check(n, 10_000);
        assert!(
            many.bytes <= n * 8 + 100_000,
            "d=10000: {} bytes",
            many.bytes
        );
        // A difference as large as the set: escalating sketches first, then the list; the
        // sketches tried cost at most about 1.2× the list (sizes grow 8×).
        let most = check(n, 100_000);
        assert!(
            most.bytes <= n * 8 * 23 / 10,
            "d=100000: {} bytes",
            most.bytes
        );
        println!(
            "n=100k: d=0 {}B/{}rt, d=1 {}B/{}rt, d=10 {}B/{}rt, d=1000 {}B/{}rt, d=10000 {}B/{}rt, d=100000 {}B/{}rt",
            equal.bytes,
            equal.round_trips(),
            one.bytes,
            one.round_trips(),
            ten.bytes,
            ten.round_trips(),
            thousand.bytes,
            thousand.round_trips(),
            many.bytes,
            many.round_trips(),
            most.bytes,
            most.round_trips()
        );
    }

    #[test]
    fn a_tenth_different_at_a_million_costs_less_than_listing() {
        let n = 1_000_000;
        let outcome = check(n, 100_000);
        println!(
            "n=1M d=100000: {} B, {} round trips",
            outcome.bytes,
            outcome.round_trips()
        );
        assert!(outcome.bytes <= n * 8, "{} bytes", outcome.bytes);
    }
}
