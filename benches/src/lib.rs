//! Shared inputs for chum's benchmarks.

use chum_object::{Cid, Codec, Map, Value};

/// A typical small object (about 100 bytes encoded): a chat message as the Instance API writes
/// it, with its hybrid-logical-clock reading.
pub fn small_object(i: u64) -> Value {
    let mut map = Map::new();
    map.insert("$type", "Message");
    map.insert("text", format!("hello number {i}, how are you today?"));
    map.insert("needsAI", true);
    map.insert("status", "pending");
    map.insert(
        "clock",
        Value::List(vec![Value::from(1_700_000_000_000 + i), Value::from(0u32)]),
    );
    Value::Map(map)
}

/// A small object that links to another (about 140 bytes): a message in a conversation.
pub fn small_linked_object(i: u64) -> Value {
    let mut value = small_object(i);
    if let Value::Map(map) = &mut value {
        map.insert("conversation", Cid::hash(Codec::DagCbor, b"conversation"));
    }
    value
}

/// A 16 KiB object: a document with many fields, nested lists and a byte payload.
pub fn large_object() -> Value {
    let mut map = Map::new();
    map.insert("$type", "Document");
    map.insert("title", "A larger object for codec benchmarks");
    let paragraphs: Vec<Value> = (0..48)
        .map(|i| Value::Text(format!("paragraph {i}: {}", "lorem ipsum dolor ".repeat(9)).into()))
        .collect();
    map.insert("paragraphs", Value::List(paragraphs));
    let links: Vec<Value> = (0..32u32)
        .map(|i| Value::Link(Cid::hash(Codec::Raw, &i.to_be_bytes())))
        .collect();
    map.insert("attachments", Value::List(links));
    map.insert(
        "thumbnail",
        Value::Bytes((0..4096u32).map(|i| (i % 251) as u8).collect()),
    );
    Value::Map(map)
}

/// The same value as a `ciborium::Value`, for the baseline.
pub fn to_ciborium(value: &Value) -> ciborium::Value {
    match value {
        Value::Null => ciborium::Value::Null,
        Value::Bool(b) => ciborium::Value::Bool(*b),
        Value::Integer(int) => ciborium::Value::Integer(
            ciborium::value::Integer::try_from(int.to_i128())
                .unwrap_or(ciborium::value::Integer::from(0)),
        ),
        Value::Float(f) => ciborium::Value::Float(*f),
        Value::Bytes(bytes) => ciborium::Value::Bytes(bytes.clone()),
        Value::Text(text) => ciborium::Value::Text(text.to_string()),
        Value::List(list) => ciborium::Value::Array(list.iter().map(to_ciborium).collect()),
        Value::Map(map) => ciborium::Value::Map(
            map.iter()
                .map(|(k, v)| (ciborium::Value::Text(k.to_owned()), to_ciborium(v)))
                .collect(),
        ),
        Value::Link(cid) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(cid.as_bytes());
            ciborium::Value::Tag(42, Box::new(ciborium::Value::Bytes(bytes)))
        }
    }
}

/// The same value as an `ipld_core::ipld::Ipld`, for the serde_ipld_dagcbor comparison.
pub fn to_ipld(value: &Value) -> ipld_core::ipld::Ipld {
    use ipld_core::ipld::Ipld;
    match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Integer(int) => Ipld::Integer(int.to_i128()),
        Value::Float(f) => Ipld::Float(*f),
        Value::Bytes(bytes) => Ipld::Bytes(bytes.clone()),
        Value::Text(text) => Ipld::String(text.to_string()),
        Value::List(list) => Ipld::List(list.iter().map(to_ipld).collect()),
        Value::Map(map) => Ipld::Map(
            map.iter()
                .map(|(k, v)| (k.to_owned(), to_ipld(v)))
                .collect(),
        ),
        Value::Link(cid) => match ipld_core::cid::Cid::try_from(cid.as_bytes()) {
            Ok(cid) => Ipld::Link(cid),
            Err(_) => Ipld::Null,
        },
    }
}

/// Blob chunk `i`: 1 MiB of pseudo-random bytes (xorshift), as a raw block.
pub fn blob_chunk(i: u64) -> (Cid, Vec<u8>) {
    let mut bytes = vec![0u8; 1 << 20];
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for word in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
    (Cid::hash(Codec::Raw, &bytes), bytes)
}

/// What this process has used, read from `/proc/self` (Linux).
pub mod process {
    /// CPU seconds (all threads, user + system) this process has used so far, from the
    /// process CPU-time clock (nanoseconds).
    pub fn cpu_seconds() -> f64 {
        let time = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
    }

    /// Resets the peak resident set size to the current one (Linux: `/proc/self/clear_refs`),
    /// so that [`peak_rss_mb`] afterwards is the peak of what follows.
    pub fn reset_peak_rss() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }

    /// The peak resident set size of this process so far, in MB (NaN if unknown).
    pub fn peak_rss_mb() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

/// Set reconciliation runs shared by `reconcile_report` and the `reconcile` benchmark.
pub mod reconciliation {
    use std::time::{Duration, Instant};

    use chum_object::{Cid, Codec};
    use chum_sync::memory::MemorySet;
    use chum_sync::{Config, Event, Input, Output, Role, Session};
    use negentropy::{Id, Negentropy, NegentropyStorageVector};

    /// The object behind item `x`: an 8-byte raw block.
    pub fn cid(x: u64) -> (Cid, Vec<u8>) {
        let bytes = x.to_le_bytes().to_vec();
        (Cid::hash(Codec::Raw, &bytes), bytes)
    }

    /// The 32-byte digest of a CID (negentropy's id for it).
    pub fn id_bytes(cid: &Cid) -> [u8; 32] {
        let mut id = [0u8; 32];
        id.copy_from_slice(&cid.as_bytes()[4..36]);
        id
    }

    /// What one exchange cost.
    #[derive(Debug, Clone, Copy)]
    pub struct Row {
        /// Reconcile messages after the hellos, including the want list.
        pub messages: usize,
        /// Round trips (flights in both directions, halved, rounded up).
        pub round_trips: usize,
        /// Bytes of those messages.
        pub bytes: usize,
        /// Milliseconds until the difference was known.
        pub millis: f64,
        /// Size of the difference found (for a whole exchange: the objects each side ends with).
        pub found: usize,
    }

    /// Two sessions passing frames in memory, each answering from its own set, counting the
    /// reconcile messages, their bytes and the flights (passes in which a side sent one).
    struct Exchange {
        peers: [(Session, MemorySet); 2],
        messages: usize,
        bytes: usize,
        flights: usize,
        /// Bytes of every frame each side sent.
        sent: [usize; 2],
        /// Of those, bytes of frames that carry no objects (hellos, summaries, sketches, id
        /// lists, wants, acknowledgements, checkpoints).
        meta: usize,
        /// Passes (both sides drained, then frames delivered) in which anything was sent:
        /// each is one one-way trip.
        passes: usize,
        /// Time each side spent handling input and answering its session's requests.
        busy: [Duration; 2],
        in_flight: Vec<(usize, Vec<u8>)>,
    }

    impl Exchange {
        fn new(a: Config, a_set: MemorySet, b: Config, b_set: MemorySet) -> Exchange {
            Exchange {
                peers: [
                    (Session::new(a, Duration::ZERO), a_set),
                    (Session::new(b, Duration::ZERO), b_set),
                ],
                messages: 0,
                bytes: 0,
                flights: 0,
                sent: [0; 2],
                meta: 0,
                passes: 0,
                busy: [Duration::ZERO; 2],
                in_flight: Vec::new(),
            }
        }

        /// Drains one side's outputs (requests answered at once); returns its events and
        /// whether it sent a reconcile message.
        fn drain(&mut self, side: usize) -> (Vec<Event>, bool) {
            let started = Instant::now();
            let (session, set) = &mut self.peers[side];
            let (mut events, mut sent) = (Vec::new(), false);
            while let Some(output) = session.poll_output() {
                match output {
                    Output::Transmit(frame) => {
                        self.sent[side] += frame.len();
                        if frame.first() != Some(&tag::OBJECTS) {
                            self.meta += frame.len();
                        }
                        if is_reconciliation(&frame) {
                            self.messages += 1;
                            self.bytes += frame.len();
                            sent = true;
                        }
                        self.in_flight.push((1 - side, frame));
                    }
                    Output::Request(id, request) => {
                        let (answer, _) = set.answer(request);
                        session.handle_input(Duration::ZERO, Input::Answer(id, answer));
                    }
                    Output::Event(Event::Closed { reason, .. }) => panic!("closed: {reason}"),
                    Output::Event(event) => events.push(event),
                    _ => {}
                }
            }
            self.flights += usize::from(sent);
            self.busy[side] += started.elapsed();
            (events, sent)
        }

        /// Delivers the frames in flight; whether there were any.
        fn deliver(&mut self) -> bool {
            let frames = std::mem::take(&mut self.in_flight);
            let any = !frames.is_empty();
            for (to, frame) in frames {
                let started = Instant::now();
                self.peers[to]
                    .0
                    .handle_input(Duration::ZERO, Input::Frame(frame));
                self.busy[to] += started.elapsed();
            }
            any
        }
    }

    /// Frame tags of the CHUM wire format (`docs/protocol.md`, §4): the first byte of a
    /// plaintext frame.
    mod tag {
        pub const HELLO: u8 = 0x01;
        pub const OBJECTS: u8 = 0x09;
        pub const ACK: u8 = 0x0a;
        pub const SEND_DONE: u8 = 0x0b;
        pub const PING: u8 = 0x0c;
        pub const PONG: u8 = 0x0d;
    }

    /// Whether a frame counts as reconciliation: anything but hellos, objects,
    /// acknowledgements, send-done and keepalives (read from its tag, not decoded).
    fn is_reconciliation(frame: &[u8]) -> bool {
        !matches!(
            frame.first(),
            Some(
                &tag::HELLO | &tag::OBJECTS | &tag::ACK | &tag::SEND_DONE | &tag::PING | &tag::PONG
            )
        )
    }

    /// Runs two sessions until the initiator has found the difference and sent its want list;
    /// returns the cost and the two sets (freeing them is left to the caller).
    pub fn chum_run(a: MemorySet, b: MemorySet) -> (Row, [MemorySet; 2]) {
        let mut exchange = Exchange::new(
            Config::new(Role::Initiator),
            a,
            Config::new(Role::Responder),
            b,
        );
        let mut found = None;
        let start = Instant::now();
        'rounds: loop {
            for side in 0..2 {
                for event in exchange.drain(side).0 {
                    if let Event::Reconciled {
                        peer_lacks,
                        we_lack,
                    } = event
                    {
                        found = Some(peer_lacks + we_lack);
                    }
                }
                if side == 0 && found.is_some() {
                    break 'rounds;
                }
            }
            exchange.deliver();
        }
        let Exchange {
            peers,
            messages,
            bytes,
            flights,
            ..
        } = exchange;
        let millis = start.elapsed().as_secs_f64() * 1e3;
        let [(_, a), (_, b)] = peers;
        (
            Row {
                messages,
                round_trips: flights.div_ceil(2),
                bytes,
                millis,
                found: found.unwrap_or(0),
            },
            [a, b],
        )
    }

    /// Journal positions a side holds of others' journals.
    pub type Holds = Vec<(chum_sync::ids::JournalId, u64)>;

    /// Runs two sessions (optionally offering journals, holding these positions of each
    /// other's) until both report `Synced` and nothing is in flight: the whole exchange,
    /// transfer included. Counts reconcile messages (not hellos, objects, acknowledgements,
    /// send-done or keepalives; checkpoints count) and round trips until the initiator is
    /// synced.
    pub fn chum_complete_run(
        a: MemorySet,
        b: MemorySet,
        journals: Option<(Holds, Holds)>,
    ) -> (Row, [MemorySet; 2]) {
        let (a_holds, b_holds) = match journals {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let a_config = journal_config(Role::Initiator, &a, a_holds);
        let b_config = journal_config(Role::Responder, &b, b_holds);
        let (whole, sets) = chum_whole_run(a_config, a, b_config, b);
        assert!(
            sets[0].cids().eq(sets[1].cids()),
            "both sides hold the same set"
        );
        (whole.row, sets)
    }

    /// A session configuration for `role` over `set`, offering its journal and holding these
    /// positions of the peer's (`None`: no journal, sketches only).
    pub fn journal_config(role: Role, set: &MemorySet, holds: Option<Holds>) -> Config {
        let mut config = Config::new(role);
        config.journal = holds.map(|holds| chum_sync::session::Journal {
            id: set.journal_id(),
            holds,
        });
        config
    }

    /// What a whole exchange cost, beyond the reconcile messages of [`Row`].
    #[derive(Debug, Clone, Copy)]
    pub struct Whole {
        /// Reconcile messages, their bytes and round trips, time until synced.
        pub row: Row,
        /// Bytes of every frame each side sent (initiator, responder).
        pub sent: [usize; 2],
        /// Round trips until the initiator was synced: passes in which anything was sent
        /// (each a one-way trip), halved.
        pub all_round_trips: usize,
        /// Bytes of frames that carry no objects, both ways (hellos included).
        pub meta: usize,
        /// Time each side spent in its session and answering it from its set.
        pub busy: [Duration; 2],
    }

    /// [`chum_complete_run`] with these configurations, and the whole cost (the caller checks
    /// that both sides ended with the same set, outside whatever it times).
    pub fn chum_whole_run(
        a_config: Config,
        a: MemorySet,
        b_config: Config,
        b: MemorySet,
    ) -> (Whole, [MemorySet; 2]) {
        let mut exchange = Exchange::new(a_config, a, b_config, b);
        let mut synced_at = None;
        let start = Instant::now();
        loop {
            let before = exchange.sent[0] + exchange.sent[1];
            for side in 0..2 {
                let (events, sent) = exchange.drain(side);
                if side == 0 && synced_at.is_none() && events.contains(&Event::Synced) {
                    // What it sends once synced (a checkpoint) is no round trip.
                    synced_at = Some((
                        exchange.flights - usize::from(sent),
                        exchange.passes,
                        start.elapsed(),
                    ));
                }
            }
            if exchange.sent[0] + exchange.sent[1] > before {
                exchange.passes += 1;
            }
            if !exchange.deliver() {
                break;
            }
        }
        let Exchange {
            peers,
            messages,
            bytes,
            flights,
            passes,
            sent,
            meta,
            busy,
            ..
        } = exchange;
        let (flights, passes, elapsed) = synced_at.unwrap_or((flights, passes, start.elapsed()));
        let [(_, a), (_, b)] = peers;
        let found = a.len();
        (
            Whole {
                row: Row {
                    messages,
                    round_trips: flights.div_ceil(2),
                    bytes,
                    millis: elapsed.as_secs_f64() * 1e3,
                    found,
                },
                sent,
                all_round_trips: passes.div_ceil(2),
                meta,
                busy,
            },
            [a, b],
        )
    }

    /// Runs two sessions as [`chum_whole_run`] does, as over one stream that breaks once
    /// `cut` bytes from the second side have crossed it: frames before the break arrive (and
    /// are stored), the rest is lost. Returns the bytes each side sent (the second side's:
    /// what crossed before the break), and the two sets.
    pub fn chum_cut_run(
        a_config: Config,
        a: MemorySet,
        b_config: Config,
        b: MemorySet,
        cut: usize,
    ) -> ([usize; 2], [MemorySet; 2]) {
        let mut exchange = Exchange::new(a_config, a, b_config, b);
        let mut crossed = 0;
        'run: loop {
            exchange.drain(0);
            exchange.drain(1);
            let frames = std::mem::take(&mut exchange.in_flight);
            if frames.is_empty() {
                break;
            }
            for (to, frame) in frames {
                if to == 0 {
                    crossed += frame.len();
                    if crossed > cut {
                        // The receiver handles what arrived before the break, then both go.
                        exchange.drain(0);
                        exchange.in_flight.clear();
                        break 'run;
                    }
                }
                exchange.peers[to]
                    .0
                    .handle_input(Duration::ZERO, Input::Frame(frame));
            }
        }
        let [(_, a), (_, b)] = exchange.peers;
        // The second side is charged what crossed before the break, not what it had queued.
        let sent = [exchange.sent[0], exchange.sent[1].min(cut)];
        (sent, [a, b])
    }

    /// negentropy 0.5 between two sides holding these 32-byte ids (storage built before the
    /// clock starts).
    pub fn negentropy_run(a: &[[u8; 32]], b: &[[u8; 32]]) -> Result<Row, String> {
        negentropy_exchange(&negentropy_storage(a)?, &negentropy_storage(b)?)
    }

    /// A sealed negentropy storage of these ids.
    pub fn negentropy_storage(ids: &[[u8; 32]]) -> Result<NegentropyStorageVector, String> {
        let mut storage = NegentropyStorageVector::with_capacity(ids.len());
        for id in ids {
            storage
                .insert(0, Id::from_slice(id).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        storage.seal().map_err(|e| e.to_string())?;
        Ok(storage)
    }

    /// The negentropy exchange between two sealed storages.
    pub fn negentropy_exchange(
        client_storage: &NegentropyStorageVector,
        relay_storage: &NegentropyStorageVector,
    ) -> Result<Row, String> {
        let start = Instant::now();
        let mut client = Negentropy::borrowed(client_storage, 0).map_err(|e| e.to_string())?;
        let mut relay = Negentropy::borrowed(relay_storage, 0).map_err(|e| e.to_string())?;
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
}
