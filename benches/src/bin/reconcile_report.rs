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

use std::time::{Duration, Instant};

use chum_object::{Cid, Codec};
use chum_sync::memory::MemorySet;
use chum_sync::{Config, Event, Input, Message, Output, Role, Session};
use negentropy::{Id, Negentropy, NegentropyStorageVector};

/// The object behind item `x`: an 8-byte raw block.
fn cid(x: u64) -> (Cid, Vec<u8>) {
    let bytes = x.to_le_bytes().to_vec();
    (Cid::hash(Codec::Raw, &bytes), bytes)
}

fn id_bytes(cid: &Cid) -> [u8; 32] {
    let mut id = [0u8; 32];
    id.copy_from_slice(&cid.as_bytes()[4..36]);
    id
}

struct Row {
    messages: usize,
    round_trips: usize,
    bytes: usize,
    millis: f64,
    found: usize,
}

/// Runs two sessions until the initiator has found the difference and sent its want list.
fn chum_run(a: MemorySet, b: MemorySet) -> Row {
    let now = Duration::ZERO;
    let mut peers = [
        (Session::new(Config::new(Role::Initiator), now), a),
        (Session::new(Config::new(Role::Responder), now), b),
    ];
    let (mut messages, mut bytes, mut flights) = (0, 0, 0);
    let mut found = None;
    let start = Instant::now();
    let mut in_flight: Vec<(usize, Vec<u8>)> = Vec::new();
    'rounds: loop {
        for (side, (session, set)) in peers.iter_mut().enumerate() {
            let mut sent = false;
            while let Some(output) = session.poll_output() {
                match output {
                    Output::Transmit(frame) => {
                        let counted = !matches!(
                            Message::decode(&frame, &chum_sync::Limits::default()),
                            Ok(Message::Hello(_)
                                | Message::Objects { .. }
                                | Message::Ack { .. }
                                | Message::SendDone
                                | Message::Ping
                                | Message::Pong)
                        );
                        if counted {
                            messages += 1;
                            bytes += frame.len();
                            sent = true;
                        }
                        in_flight.push((1 - side, frame));
                    }
                    Output::Request(id, request) => {
                        let (answer, _) = set.answer(request);
                        session.handle_input(now, Input::Answer(id, answer));
                    }
                    Output::Event(Event::Reconciled {
                        peer_lacks,
                        we_lack,
                    }) => found = Some(peer_lacks + we_lack),
                    Output::Event(Event::Closed { reason, .. }) => panic!("closed: {reason}"),
                    _ => {}
                }
            }
            flights += usize::from(sent);
            if side == 0 && found.is_some() {
                break 'rounds;
            }
        }
        for (to, frame) in std::mem::take(&mut in_flight) {
            peers[to].0.handle_input(now, Input::Frame(frame));
        }
    }
    let millis = start.elapsed().as_secs_f64() * 1e3;
    // Freeing two sets of a million objects is not part of the exchange.
    std::mem::forget(peers);
    Row {
        messages,
        round_trips: flights.div_ceil(2),
        bytes,
        millis,
        found: found.unwrap_or(0),
    }
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
        round_trips: messages.div_ceil(2),
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
            let chum = chum_run(set(a_items), set(b_items));
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
