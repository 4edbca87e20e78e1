//! Two sessions over an in-memory pipe, each answering from its own [`MemorySet`].
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Duration;

use chum_object::{Cid, Codec, Object, dagjson};
use chum_sync::memory::MemorySet;
use chum_sync::session::Journal;
use chum_sync::wire::{Hello, Limits};
use chum_sync::{Answer, CloseCode, Config, Event, Input, Message, Output, Request, Role, Session};

fn object(seed: u64) -> (Cid, Vec<u8>) {
    let json = format!(
        r#"{{"$type":"Message","n":{seed},"text":"message number {seed}, about a hundred bytes long"}}"#
    );
    let object = Object::from_value(&dagjson::from_str(&json).unwrap()).unwrap();
    (object.cid().clone(), object.bytes().to_vec())
}

fn set_of(seeds: impl IntoIterator<Item = u64>) -> MemorySet {
    let mut set = MemorySet::new();
    for seed in seeds {
        let (cid, bytes) = object(seed);
        set.insert(cid, bytes).unwrap();
    }
    set
}

struct Peer {
    session: Session,
    set: MemorySet,
    events: Vec<Event>,
    inbox: VecDeque<Vec<u8>>,
    /// Frames sent after the hello, and their bytes.
    frames_sent: usize,
    bytes_sent: usize,
    objects_received: usize,
    /// The tag byte of every frame sent.
    tags: Vec<u8>,
    /// Bytes of frames other than hellos, objects, acknowledgements and send-done: what
    /// finding the difference cost.
    reconcile_bytes: usize,
    /// An object this peer refuses one by one (as a recipe of another app version would).
    refuse: Option<Cid>,
}

impl Peer {
    fn new(role: Role, set: MemorySet) -> Peer {
        Peer {
            session: Session::new(Config::new(role), Duration::ZERO),
            set,
            events: Vec::new(),
            inbox: VecDeque::new(),
            frames_sent: 0,
            bytes_sent: 0,
            objects_received: 0,
            tags: Vec::new(),
            reconcile_bytes: 0,
            refuse: None,
        }
    }

    /// A peer offering its set's journal, holding these positions of others'.
    fn with_journal(role: Role, set: MemorySet, holds: Vec<([u8; 16], u64)>) -> Peer {
        let mut config = Config::new(role);
        config.journal = Some(Journal {
            id: set.journal_id(),
            holds,
        });
        let mut peer = Peer::new(role, set);
        peer.session = Session::new(config, Duration::ZERO);
        peer
    }

    /// The journal positions this peer learned, newest last.
    fn checkpoints(&self) -> Vec<([u8; 16], u64)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::Checkpoint { journal, position } => Some((*journal, *position)),
                _ => None,
            })
            .collect()
    }

    fn closed(&self) -> Option<(CloseCode, bool)> {
        self.events.iter().find_map(|event| match event {
            Event::Closed { code, by_peer, .. } => Some((*code, *by_peer)),
            _ => None,
        })
    }
}

/// Drains `from`'s outputs: frames to `to`'s inbox, requests answered at once. Returns whether
/// anything happened.
fn drain(now: Duration, from: &mut Peer, to: &mut Peer) -> bool {
    let mut progress = false;
    while let Some(output) = from.session.poll_output() {
        progress = true;
        match output {
            Output::Transmit(frame) => {
                from.tags.push(frame[0]);
                if !frame.starts_with(&[0x01]) {
                    from.frames_sent += 1;
                    from.bytes_sent += frame.len();
                }
                if !matches!(frame[0], 0x01 | 0x09 | 0x0a | 0x0b) {
                    from.reconcile_bytes += frame.len();
                }
                if let Ok(Message::Objects { objects, .. }) =
                    Message::decode(&frame, &Limits::default())
                {
                    to.objects_received += objects.len();
                }
                to.inbox.push_back(frame);
            }
            Output::Request(id, request) => {
                let answer = match (request, &from.refuse) {
                    (Request::Store(objects), Some(refused))
                        if objects.iter().any(|(cid, _)| cid == refused) =>
                    {
                        let rest = objects.into_iter().filter(|(cid, _)| cid != refused);
                        for (cid, bytes) in rest {
                            from.set.insert(cid, bytes).unwrap();
                        }
                        Answer::StoredExcept(vec![(refused.clone(), "breaks a recipe".into())])
                    }
                    (request, _) => from.set.answer(request).0,
                };
                from.session.handle_input(now, Input::Answer(id, answer));
            }
            Output::Event(event) => from.events.push(event),
            _ => {}
        }
    }
    progress
}

/// One step of both peers: their outputs drained, then one frame each delivered. Returns
/// whether anything happened.
fn step(a: &mut Peer, b: &mut Peer) -> bool {
    step_at(Duration::ZERO, a, b)
}

/// [`step`] at time `now`.
fn step_at(now: Duration, a: &mut Peer, b: &mut Peer) -> bool {
    let mut progress = drain(now, a, b) | drain(now, b, a);
    for peer in [a, b] {
        if let Some(frame) = peer.inbox.pop_front() {
            peer.session.handle_input(now, Input::Frame(frame));
            progress = true;
        }
    }
    progress
}

/// Runs both peers until neither has anything left to do.
fn run(a: &mut Peer, b: &mut Peer) {
    run_at(Duration::ZERO, a, b);
}

/// [`run`] at time `now`.
fn run_at(now: Duration, a: &mut Peer, b: &mut Peer) {
    for _ in 0..1_000_000 {
        if !step_at(now, a, b) {
            return;
        }
    }
    panic!("no quiescence after a million steps: livelock");
}

fn sync(a: MemorySet, b: MemorySet) -> (Peer, Peer) {
    let mut a = Peer::new(Role::Initiator, a);
    let mut b = Peer::new(Role::Responder, b);
    run(&mut a, &mut b);
    assert!(a.session.is_synced(), "initiator synced: {:?}", a.events);
    assert!(b.session.is_synced(), "responder synced: {:?}", b.events);
    assert_eq!(a.set.summary(), b.set.summary());
    assert!(a.set.cids().eq(b.set.cids()));
    (a, b)
}

#[test]
fn equal_sets_finish_in_one_round_trip_under_100_bytes() {
    let (a, b) = sync(set_of(0..2_000), set_of(0..2_000));
    assert_eq!((a.frames_sent, b.frames_sent), (1, 1));
    assert!(
        a.bytes_sent + b.bytes_sent < 100,
        "{}",
        a.bytes_sent + b.bytes_sent
    );
    assert_eq!(a.objects_received + b.objects_received, 0);
}

#[test]
fn small_differences_both_ways_send_exactly_the_missing_objects() {
    for (only_a, only_b) in [(1u64, 0u64), (0, 1), (5, 5), (400, 600)] {
        let a = set_of((0..3_000).chain(10_000..10_000 + only_a));
        let b = set_of((0..3_000).chain(20_000..20_000 + only_b));
        let (a, b) = sync(a, b);
        assert_eq!(b.objects_received as u64, only_a, "sent to the responder");
        assert_eq!(a.objects_received as u64, only_b, "sent to the initiator");
        assert_eq!(a.set.len() as u64, 3_000 + only_a + only_b);
    }
}

#[test]
fn one_difference_costs_at_most_two_round_trips_and_600_bytes_of_reconciliation() {
    let (a, b) = sync(set_of(0..5_000), set_of(0..5_001));
    // Summary → sketch → want; then the object and its acknowledgement.
    let reconcile_bytes: usize = a.bytes_sent + b.bytes_sent;
    assert_eq!(a.objects_received, 1);
    assert!(reconcile_bytes < 600 + 200, "{reconcile_bytes}");
}

#[test]
fn disjoint_and_empty_sides_fall_back_to_listing() {
    sync(set_of(0..3_000), MemorySet::new());
    sync(MemorySet::new(), set_of(0..3_000));
    let (a, _) = sync(set_of(0..2_000), set_of(2_000..4_000));
    assert_eq!(a.set.len(), 4_000);
    sync(MemorySet::new(), MemorySet::new());
}

#[test]
fn an_empty_initiator_asks_for_everything_right_behind_its_summary() {
    let (a, b) = sync(MemorySet::new(), set_of(0..3_000));
    // Hello, summary, want-all at once; never a sketch, list or want from either side.
    assert_eq!(&a.tags[..3], &[0x01, 0x02, 0x11], "{:x?}", a.tags);
    assert!(
        !b.tags.iter().any(|tag| [0x04, 0x07, 0x10].contains(tag)),
        "{:x?}",
        b.tags
    );
    // The responder answered with its summary (for the count), then the objects.
    assert_eq!(b.tags[1], 0x02, "{:x?}", b.tags);
    assert!(a.events.iter().any(|event| matches!(
        event,
        Event::Reconciled {
            peer_lacks: 0,
            we_lack: 3_000
        }
    )));
    assert_eq!(a.objects_received, 3_000);
    // Both empty: still in sync, nothing sent.
    let (a, b) = sync(MemorySet::new(), MemorySet::new());
    assert_eq!(a.objects_received + b.objects_received, 0);
}

#[test]
fn an_initiator_holding_next_to_nothing_asks_for_everything_without_a_list() {
    // A new instance holds a few objects of its own (its identity), one of them already the
    // peer's; the peer holds thousands. No list of the peer's ids crosses the wire: the
    // initiator asks for everything and sends the little it holds.
    let (a, b) = sync(set_of([1, 90_000, 90_001]), set_of(0..5_000));
    assert_eq!(a.set.len(), 5_002);
    assert!(
        !a.tags.iter().any(|tag| [0x05, 0x06, 0x0f].contains(tag))
            && !b.tags.iter().any(|tag| [0x07, 0x10].contains(tag)),
        "no second sketch, list requests or lists: {:?} / {:?}",
        a.tags,
        b.tags
    );
    // Finding the difference cost a summary, a sketch and a want-all.
    assert!(
        a.reconcile_bytes + b.reconcile_bytes < 800,
        "{} + {}",
        a.reconcile_bytes,
        b.reconcile_bytes
    );
    // At most the initiator's own objects went both ways twice.
    assert_eq!(b.objects_received, 3, "all of the initiator's");
    assert!(a.objects_received <= 5_000);
    // Beyond 1/64 of the peer's set, the exact difference is found instead.
    let (a, b) = sync(set_of((0..100).chain(90_000..90_100)), set_of(0..5_000));
    assert_eq!(b.objects_received, 100, "only what the responder lacked");
    assert_eq!(a.objects_received, 4_900);
}

#[test]
fn a_short_id_collision_is_found_by_the_fingerprint_and_resolved_with_full_cids() {
    // The same bytes as a raw block and as a dag-cbor object: one short id, two CIDs.
    let (_, bytes) = object(7);
    let raw = Cid::hash(Codec::Raw, &bytes);
    let cbor = Cid::hash(Codec::DagCbor, &bytes);
    assert_eq!(chum_sync::short_id(&raw), chum_sync::short_id(&cbor));
    let mut a = set_of(0..500);
    let mut b = set_of(0..500);
    a.insert(raw.clone(), bytes.clone()).unwrap();
    b.insert(cbor.clone(), bytes).unwrap();
    let (a, b) = sync(a, b);
    assert!(a.set.contains(&cbor) && b.set.contains(&raw));
    const CID_LIST_REQUEST: u8 = 0x0f;
    assert!(
        a.tags.contains(&CID_LIST_REQUEST),
        "the full-CID fallback ran"
    );
}

#[test]
fn objects_stored_after_sync_are_pushed_live() {
    let (mut a, mut b) = sync(set_of(0..100), set_of(0..100));
    let (cid, bytes) = object(5_000);
    a.set.insert(cid.clone(), bytes).unwrap();
    a.session
        .handle_input(Duration::ZERO, Input::LocalStored(vec![cid.clone()]));
    run(&mut a, &mut b);
    assert!(b.set.contains(&cid));
    assert!(b.events.contains(&Event::Received(vec![cid.clone()])));
    assert!(a.events.contains(&Event::PeerStored(vec![cid])));
}

#[test]
fn a_resumed_session_sends_only_what_is_still_missing() {
    let mut a = Peer::new(Role::Initiator, set_of(0..20_000));
    let mut b = Peer::new(Role::Responder, MemorySet::new());
    // Run until the responder holds part of the set, then drop the connection.
    while b.set.len() < 5_000 {
        step(&mut a, &mut b);
    }
    let held = b.set.len();
    let (a_set, b_set) = (a.set, b.set);
    let (_, b) = sync(a_set, b_set);
    assert_eq!(b.objects_received, 20_000 - held);
}

fn hello_frame(min: u64, max: u64) -> Vec<u8> {
    Message::Hello(Hello {
        min_version: min,
        max_version: max,
        ..Hello::new(Limits::default(), 8, Vec::new())
    })
    .encode()
}

/// Feeds `frames` to a fresh responder; returns how it closed.
fn responder_fed(frames: Vec<Vec<u8>>) -> Option<(CloseCode, bool)> {
    let mut peer = Peer::new(Role::Responder, set_of(0..10));
    let mut sink = Peer::new(Role::Initiator, MemorySet::new());
    for frame in frames {
        peer.session
            .handle_input(Duration::ZERO, Input::Frame(frame));
        drain(Duration::ZERO, &mut peer, &mut sink);
    }
    peer.closed()
}

#[test]
fn a_peer_breaking_the_protocol_is_closed_with_a_reason() {
    let code = |frames| responder_fed(frames).map(|(code, _)| code);
    assert_eq!(code(vec![vec![0xff]]), Some(CloseCode::ProtocolViolation));
    assert_eq!(
        code(vec![Message::Ping.encode()]),
        Some(CloseCode::ProtocolViolation)
    );
    assert_eq!(
        code(vec![hello_frame(7, 9)]),
        Some(CloseCode::IncompatibleVersion)
    );
    assert_eq!(
        code(vec![hello_frame(1, 1), hello_frame(1, 1)]),
        Some(CloseCode::ProtocolViolation)
    );
    // A batch out of sequence.
    let (cid, bytes) = object(1);
    let batch = |seq| {
        Message::Objects {
            seq,
            objects: vec![(cid.clone(), bytes.clone())],
        }
        .encode()
    };
    assert_eq!(
        code(vec![hello_frame(1, 1), batch(3)]),
        Some(CloseCode::ProtocolViolation)
    );
    assert_eq!(code(vec![hello_frame(1, 1), batch(0)]), None);
    // An object whose bytes do not match its CID.
    let forged = Message::Objects {
        seq: 0,
        objects: vec![(object(2).0, bytes.clone())],
    };
    assert_eq!(
        code(vec![hello_frame(1, 1), forged.encode()]),
        Some(CloseCode::InvalidObject)
    );
    // An acknowledgement of nothing; a want before any summary.
    assert_eq!(
        code(vec![hello_frame(1, 1), Message::Ack { seq: 0 }.encode()]),
        Some(CloseCode::ProtocolViolation)
    );
    assert_eq!(
        code(vec![
            hello_frame(1, 1),
            Message::Want {
                last: true,
                ids: vec![1]
            }
            .encode()
        ]),
        Some(CloseCode::ProtocolViolation)
    );
    // A newer peer that still speaks version 1 is accepted.
    assert_eq!(code(vec![hello_frame(1, 5)]), None);
}

/// A responder fed `batches` (of `objects` each) whose store requests stay unanswered:
/// how it closed, if it did.
fn flooded(window: u64, window_bytes: u64, batches: u64, per_batch: u64) -> Option<CloseCode> {
    let mut config = Config::new(Role::Responder);
    config.window = window;
    config.window_bytes = window_bytes;
    let mut peer = Peer::new(Role::Responder, MemorySet::new());
    peer.session = Session::new(config, Duration::ZERO);
    peer.session
        .handle_input(Duration::ZERO, Input::Frame(hello_frame(1, 1)));
    for seq in 0..batches {
        let objects = (0..per_batch)
            .map(|i| object(seq * per_batch + i))
            .collect();
        let frame = Message::Objects { seq, objects }.encode();
        peer.session
            .handle_input(Duration::ZERO, Input::Frame(frame));
    }
    let mut closed = None;
    while let Some(output) = peer.session.poll_output() {
        if let Output::Event(Event::Closed { code, .. }) = output {
            closed = Some(code);
        }
    }
    closed
}

#[test]
fn a_sender_beyond_the_window_is_closed() {
    // Batches beyond the count: closed; up to it, not.
    assert_eq!(flooded(8, 1 << 30, 9, 1), Some(CloseCode::LimitExceeded));
    assert_eq!(flooded(8, 1 << 30, 8, 1), None);
    let default = Config::new(Role::Responder);
    assert_eq!(
        flooded(default.window, 1 << 30, default.window + 1, 1),
        Some(CloseCode::LimitExceeded)
    );
    // Bytes beyond the bound, well within the count: closed. An object here is ~60 bytes
    // with its CID, so 20 batches of 10 are ~12 kB.
    assert_eq!(flooded(256, 8_000, 20, 10), Some(CloseCode::LimitExceeded));
    assert_eq!(flooded(256, 64_000, 20, 10), None);
    // One batch is always taken, however large.
    assert_eq!(flooded(256, 100, 1, 10), None);
}

#[test]
fn silence_brings_a_ping_then_a_timeout() {
    let mut session = Session::new(Config::new(Role::Responder), Duration::ZERO);
    while session.poll_output().is_some() {}
    let ping_at = session.poll_timeout().unwrap();
    session.handle_input(ping_at, Input::Tick);
    assert_eq!(
        session.poll_output(),
        Some(Output::Transmit(Message::Ping.encode()))
    );
    let close_at = session.poll_timeout().unwrap();
    assert!(close_at > ping_at);
    session.handle_input(close_at, Input::Tick);
    let outputs: Vec<Output> = std::iter::from_fn(|| session.poll_output()).collect();
    assert!(outputs.iter().any(|output| matches!(
        output,
        Output::Event(Event::Closed {
            code: CloseCode::Timeout,
            ..
        })
    )));
    assert!(session.is_closed());
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn a_store_failure_closes_the_session() {
    let mut session = Session::new(Config::new(Role::Initiator), Duration::ZERO);
    let request = std::iter::from_fn(|| session.poll_output())
        .find_map(|output| match output {
            Output::Request(id, Request::Summary) => Some(id),
            _ => None,
        })
        .unwrap();
    session.handle_input(
        Duration::ZERO,
        Input::Answer(request, Answer::Failed("disk full".into())),
    );
    let outputs: Vec<Output> = std::iter::from_fn(|| session.poll_output()).collect();
    assert!(outputs.iter().any(|output| matches!(
        output,
        Output::Event(Event::Closed {
            code: CloseCode::StoreFailure,
            ..
        })
    )));
}

#[test]
fn a_peer_that_answers_pings_but_never_acknowledges_is_timed_out() {
    let mut peer = Peer::new(Role::Responder, set_of(0..3));
    let mut sink = Peer::new(Role::Initiator, MemorySet::new());
    // Hello, then the peer asks for everything and gets a batch it never acknowledges.
    peer.session
        .handle_input(Duration::ZERO, Input::Frame(hello_frame(1, 1)));
    peer.session.handle_input(
        Duration::ZERO,
        Input::Frame(Message::ListRequest { after: None }.encode()),
    );
    let ids: Vec<u64> = peer.set.cids().map(chum_sync::short_id).collect();
    peer.session.handle_input(
        Duration::ZERO,
        Input::Frame(Message::Want { last: true, ids }.encode()),
    );
    drain(Duration::ZERO, &mut peer, &mut sink);
    assert!(
        sink.inbox.iter().any(|frame| frame[0] == 0x09),
        "a batch went out"
    );
    // Pings keep arriving; acknowledgements never do.
    let mut now = Duration::ZERO;
    while peer.closed().is_none() && now < Duration::from_secs(600) {
        now += Duration::from_secs(5);
        peer.session
            .handle_input(now, Input::Frame(Message::Ping.encode()));
        peer.session.handle_input(now, Input::Tick);
        drain(now, &mut peer, &mut sink);
    }
    assert_eq!(peer.closed(), Some((CloseCode::Timeout, false)));
    assert!(now <= Config::new(Role::Responder).progress_timeout + Duration::from_secs(5));
}

#[test]
fn an_object_larger_than_the_peers_frames_is_reported_not_sent() {
    let mut small = Peer::new(Role::Responder, MemorySet::new());
    let mut big = Peer::new(Role::Initiator, MemorySet::new());
    let mut responder_config = Config::new(Role::Responder);
    responder_config.limits.max_frame = 1_024;
    small.session = Session::new(responder_config, Duration::ZERO);
    let bytes = vec![7u8; 4_000];
    let cid = Cid::hash(Codec::Raw, &bytes);
    big.set.insert(cid.clone(), bytes).unwrap();
    let (cid_small, bytes_small) = object(1);
    big.set.insert(cid_small.clone(), bytes_small).unwrap();
    run(&mut big, &mut small);
    assert!(small.set.contains(&cid_small), "the small object arrives");
    assert!(!small.set.contains(&cid));
    assert!(
        big.events.contains(&Event::TooLarge(vec![cid])),
        "{:?}",
        big.events
    );
}

const SKETCH: u8 = 0x04;
const SKETCH_REQUEST: u8 = 0x05;
const LIST_REQUEST: u8 = 0x06;
const WANT: u8 = 0x08;
const RESUME: u8 = 0x15;

/// Syncs `a` and `b` with journals on both sides from scratch; returns the sets and the
/// positions each learned of the other's journal.
fn first_sync_with_journals(a: MemorySet, b: MemorySet) -> (Peer, Peer) {
    let mut a = Peer::with_journal(Role::Initiator, a, Vec::new());
    let mut b = Peer::with_journal(Role::Responder, b, Vec::new());
    run(&mut a, &mut b);
    assert!(a.session.is_synced() && b.session.is_synced());
    (a, b)
}

#[test]
fn checkpointed_peers_exchange_journal_tails_instead_of_sketches() {
    let (a, b) = first_sync_with_journals(set_of(0..4_000), set_of(2_000..6_000));
    assert!(a.set.cids().eq(b.set.cids()));
    // Each learned how far the other's journal goes: to its head when they matched.
    assert_eq!(
        a.checkpoints(),
        [(b.set.journal_id(), b.set.journal_head())]
    );
    assert_eq!(
        b.checkpoints(),
        [(a.set.journal_id(), a.set.journal_head())]
    );
    for (only_a, only_b) in [(1u64, 0u64), (0, 1), (1, 1), (1_000, 1_000), (30_000, 5)] {
        let (mut a_set, mut b_set) = (a.set.clone(), b.set.clone());
        let (a_holds, b_holds) = (a.checkpoints(), b.checkpoints());
        let base = 100_000 * (only_a + 1) + only_b;
        for seed in base..base + only_a {
            let (cid, bytes) = object(seed);
            a_set.insert(cid, bytes).unwrap();
        }
        for seed in base + 50_000..base + 50_000 + only_b {
            let (cid, bytes) = object(seed);
            b_set.insert(cid, bytes).unwrap();
        }
        let mut a2 = Peer::with_journal(Role::Initiator, a_set, a_holds);
        let mut b2 = Peer::with_journal(Role::Responder, b_set, b_holds);
        run(&mut a2, &mut b2);
        assert!(a2.session.is_synced() && b2.session.is_synced());
        assert!(
            a2.set.cids().eq(b2.set.cids()),
            "{only_a}/{only_b}: converged"
        );
        assert_eq!(
            b2.objects_received as u64, only_a,
            "exactly what the responder lacked"
        );
        assert_eq!(
            a2.objects_received as u64, only_b,
            "exactly what the initiator lacked"
        );
        let tags: Vec<u8> = a2.tags.iter().chain(&b2.tags).copied().collect();
        assert!(tags.contains(&RESUME), "the fast path ran");
        for tag in [SKETCH, SKETCH_REQUEST, LIST_REQUEST, WANT] {
            assert!(
                !tags.contains(&tag),
                "{only_a}/{only_b}: no sketch or list ({tag:#04x})"
            );
        }
        // Two summaries, resume, in-sync and two checkpoints, whatever the difference.
        let cost = a2.reconcile_bytes + b2.reconcile_bytes;
        assert!(
            cost < 120,
            "{only_a}/{only_b}: {cost} bytes to find the difference"
        );
        // And the new positions are learned for the next time.
        assert_eq!(
            a2.checkpoints().last(),
            Some(&(b2.set.journal_id(), b2.set.journal_head()))
        );
    }
}

#[test]
fn equal_sets_with_journals_still_finish_in_one_round_trip_under_100_bytes() {
    let (a, b) = first_sync_with_journals(set_of(0..2_000), set_of(0..2_000));
    // Summary one way; a checkpoint and in-sync back; a checkpoint forth (needs no answer).
    assert_eq!(a.tags, [0x01, 0x02, 0x16]);
    assert_eq!(b.tags, [0x01, 0x16, 0x03]);
    assert!(a.bytes_sent + b.bytes_sent < 100);
    let mut a2 = Peer::with_journal(Role::Initiator, a.set.clone(), a.checkpoints());
    let mut b2 = Peer::with_journal(Role::Responder, b.set.clone(), b.checkpoints());
    run(&mut a2, &mut b2);
    assert_eq!(a2.objects_received + b2.objects_received, 0);
    assert!(a2.bytes_sent + b2.bytes_sent < 100);
}

#[test]
fn wrong_journal_positions_fall_back_to_sketches_and_still_converge() {
    let (a, b) = first_sync_with_journals(set_of(0..3_000), set_of(0..3_000));
    let (mut a_set, mut b_set) = (a.set.clone(), b.set.clone());
    // The responder lost objects it had confirmed (a restored backup), and claims a position
    // beyond the initiator's journal; the initiator's claim is right.
    let lost: Vec<Cid> = b_set.cids().take(40).cloned().collect();
    lost.iter().for_each(|cid| {
        b_set.remove(cid);
    });
    for seed in 9_000..9_010 {
        let (cid, bytes) = object(seed);
        a_set.insert(cid, bytes).unwrap();
    }
    let b_holds = vec![(a_set.journal_id(), a_set.journal_head() + 1_000)];
    let mut a2 = Peer::with_journal(Role::Initiator, a_set, a.checkpoints());
    let mut b2 = Peer::with_journal(Role::Responder, b_set, b_holds);
    run(&mut a2, &mut b2);
    assert!(a2.session.is_synced() && b2.session.is_synced());
    assert!(a2.set.cids().eq(b2.set.cids()), "converged");
    assert!(lost.iter().all(|cid| b2.set.contains(cid)));
    assert!(a2.tags.contains(&RESUME) || b2.tags.contains(&RESUME));
    assert!(
        b2.tags.contains(&SKETCH),
        "the second summary differed: sketches ran"
    );
}

#[test]
fn live_traffic_is_checkpointed_once_it_settles() {
    let (mut a, mut b) = first_sync_with_journals(set_of(0..100), set_of(0..100));
    let before = b.checkpoints().len();
    let (cid, bytes) = object(7_777);
    a.set.insert(cid.clone(), bytes).unwrap();
    a.session.handle_input(
        Duration::from_secs(1),
        Input::LocalStored(vec![cid.clone()]),
    );
    run(&mut a, &mut b);
    assert!(b.set.contains(&cid));
    assert_eq!(b.checkpoints().len(), before, "not while traffic may go on");
    let due = a.session.poll_timeout().unwrap();
    assert!(due <= Duration::from_secs(1) + Config::new(Role::Initiator).checkpoint_delay);
    a.session.handle_input(due, Input::Tick);
    run(&mut a, &mut b);
    assert_eq!(
        b.checkpoints().last(),
        Some(&(a.set.journal_id(), a.set.journal_head())),
        "the responder learned the new position"
    );
}

#[test]
fn a_journal_transfer_cut_short_resumes_where_it_stopped() {
    let (a, b) = first_sync_with_journals(set_of(0..1_000), set_of(0..1_000));
    let mut a_set = a.set.clone();
    for seed in 100_000..120_000 {
        let (cid, bytes) = object(seed);
        a_set.insert(cid, bytes).unwrap();
    }
    let mut a2 = Peer::with_journal(Role::Initiator, a_set, a.checkpoints());
    let mut b2 = Peer::with_journal(Role::Responder, b.set.clone(), b.checkpoints());
    // Run until the responder holds about half, then drop the connection.
    while b2.set.len() < 11_000 {
        step(&mut a2, &mut b2);
    }
    drain(Duration::ZERO, &mut b2, &mut a2);
    let held = b2.set.len() - 1_000;
    let learned = b2.checkpoints();
    let position = learned.last().map(|(_, position)| *position).unwrap();
    assert!(
        position > 1_000,
        "positions were learned along the way: {learned:?}"
    );
    // The next session sends what is missing, and at most one page that was in flight.
    let mut a3 = Peer::with_journal(Role::Initiator, a2.set.clone(), a.checkpoints());
    let mut b3 = Peer::with_journal(Role::Responder, b2.set.clone(), learned);
    run(&mut a3, &mut b3);
    assert!(a3.set.cids().eq(b3.set.cids()), "converged");
    let missing = 20_000 - held;
    assert!(
        b3.objects_received >= missing && b3.objects_received <= missing + 2_048,
        "{} sent for {missing} missing",
        b3.objects_received
    );
}

#[test]
fn live_pushes_during_rounds_never_break_the_comparison_that_follows() {
    // Both sides keep storing new objects (pushed live) while they reconcile and compare
    // again: no protocol violation, and all converge.
    for seed in 0..6u64 {
        let mut a = Peer::with_journal(Role::Initiator, set_of(0..400), Vec::new());
        let mut b = Peer::with_journal(Role::Responder, set_of(200..700), Vec::new());
        let now = Duration::ZERO;
        let mut next = 100_000 + seed * 1_000;
        for round in 0..20_000u64 {
            let mut progress = false;
            if round % (3 + seed) == 0 && next < 100_000 + seed * 1_000 + 300 {
                let side = if round % 2 == 0 { &mut a } else { &mut b };
                let (cid, bytes) = object(next);
                next += 1;
                side.set.insert(cid.clone(), bytes).unwrap();
                side.session
                    .handle_input(now, Input::LocalStored(vec![cid]));
                progress = true;
            }
            if !(step(&mut a, &mut b) || progress) {
                break;
            }
        }
        run(&mut a, &mut b);
        assert_eq!(a.closed(), None, "seed {seed}: {:?}", a.events.last());
        assert_eq!(b.closed(), None, "seed {seed}: {:?}", b.events.last());
        assert!(
            a.session.is_synced() && b.session.is_synced(),
            "seed {seed}"
        );
        assert!(a.set.cids().eq(b.set.cids()), "seed {seed}: converged");
    }
}

#[test]
fn a_refused_object_costs_no_endless_comparisons() {
    let (poison, poison_bytes) = object(66_666);
    let mut a_set = set_of(0..300);
    a_set.insert(poison.clone(), poison_bytes).unwrap();
    let mut a = Peer::with_journal(Role::Initiator, a_set, Vec::new());
    let mut b = Peer::with_journal(Role::Responder, set_of(0..300), Vec::new());
    b.refuse = Some(poison.clone());
    run(&mut a, &mut b);
    assert!(a.session.is_synced() && b.session.is_synced());
    assert!(!b.set.contains(&poison));
    // Live traffic, then ticks for 40 s: the sets can never match, so after the refusal
    // the initiator stops comparing (each comparison would resend the refused object).
    let (cid, bytes) = object(77_777);
    a.set.insert(cid.clone(), bytes).unwrap();
    a.session
        .handle_input(Duration::from_secs(1), Input::LocalStored(vec![cid]));
    run(&mut a, &mut b);
    let summaries_before = a.tags.iter().filter(|t| **t == 0x02).count();
    for second in 2..40 {
        a.session
            .handle_input(Duration::from_secs(second), Input::Tick);
        b.session
            .handle_input(Duration::from_secs(second), Input::Tick);
        run(&mut a, &mut b);
    }
    let summaries_after = a.tags.iter().filter(|t| **t == 0x02).count();
    assert_eq!(
        summaries_after, summaries_before,
        "no comparison after a refusal"
    );
    assert_eq!(a.closed(), None);
}

#[test]
fn a_copy_of_the_same_store_syncs_without_the_journal_fast_path() {
    let a_set = set_of(0..500).with_journal_id([9; 16]);
    let b_set = set_of(250..800).with_journal_id([9; 16]);
    let mut a = Peer::with_journal(Role::Initiator, a_set, vec![([9; 16], 250)]);
    let mut b = Peer::with_journal(Role::Responder, b_set, vec![([9; 16], 250)]);
    run(&mut a, &mut b);
    assert_eq!((a.closed(), b.closed()), (None, None));
    assert!(a.session.is_synced() && a.set.cids().eq(b.set.cids()));
    assert!(!a.tags.contains(&RESUME) && !b.tags.contains(&RESUME));
    assert!(a.checkpoints().is_empty() && b.checkpoints().is_empty());
}

/// A peer claiming room for huge sketches asks a responder that holds three objects for a sketch
/// of 4,194,304 cells (54 MB): refused with a reason, after a few hundred bytes — a reply is
/// bounded by what the responder holds, not by what the peer asks.
#[test]
fn a_sketch_request_is_bounded_by_what_the_responder_holds() {
    let mut peer = Peer::new(Role::Responder, set_of(0..3));
    let mut sink = Peer::new(Role::Initiator, MemorySet::new());
    let hello = Message::Hello(Hello::new(
        Limits {
            max_sketch_cells: 1 << 22,
            ..Limits::default()
        },
        8,
        Vec::new(),
    ))
    .encode();
    let (Answer::Summary(theirs, _), _) = set_of(100..110).answer(Request::Summary) else {
        panic!("a summary");
    };
    let frames = [
        hello,
        Message::Summary(theirs).encode(),
        Message::SketchRequest {
            cells: 1 << 22,
            salt: 0,
        }
        .encode(),
    ];
    for frame in frames {
        peer.session
            .handle_input(Duration::ZERO, Input::Frame(frame));
        drain(Duration::ZERO, &mut peer, &mut sink);
    }
    assert_eq!(peer.closed(), Some((CloseCode::LimitExceeded, false)));
    let sent: usize = sink.inbox.iter().map(Vec::len).sum();
    assert!(sent < 2_000, "{sent} bytes sent");
}

/// Two sessions over a simulated path: `one_way` delay each way, `bytes_per_ms` of bandwidth
/// each way, and a receiver whose store takes `store_ms` per batch (one at a time). Runs
/// until both are synced and idle; returns the finishing time (ms), the largest sending
/// window the responder reached and the bytes it sent.
fn over_a_path(
    a: MemorySet,
    b: MemorySet,
    config: impl Fn(Role) -> Config,
    one_way: u64,
    bytes_per_ms: u64,
    store_ms: u64,
) -> (u64, usize, usize) {
    use std::collections::BinaryHeap;
    // (Reverse(time), sequence, to-peer, frame)
    type Event = (std::cmp::Reverse<u64>, u64, usize, Vec<u8>);
    let mut peers = [Peer::new(Role::Initiator, a), Peer::new(Role::Responder, b)];
    for (peer, role) in peers.iter_mut().zip([Role::Initiator, Role::Responder]) {
        peer.session = Session::new(config(role), Duration::ZERO);
    }
    let mut queue: BinaryHeap<Event> = BinaryHeap::new();
    let mut sequence = 0_u64;
    let mut link_free = [0_u64; 2];
    let mut store_free = [0_u64; 2];
    let mut largest = 0;
    let mut now = 0_u64;
    // Store answers come back after the store's time; they are frames of a kind of their own
    // here (an empty frame marks "answer the oldest store request").
    let mut answers: [VecDeque<(u64, Answer)>; 2] = [VecDeque::new(), VecDeque::new()];
    loop {
        for side in 0..2 {
            while let Some(output) = peers[side].session.poll_output() {
                match output {
                    Output::Transmit(frame) => {
                        peers[side].bytes_sent += frame.len();
                        let departs = link_free[side].max(now)
                            + (frame.len() as u64).div_ceil(bytes_per_ms.max(1));
                        link_free[side] = departs;
                        sequence += 1;
                        queue.push((
                            std::cmp::Reverse(departs + one_way),
                            sequence,
                            1 - side,
                            frame,
                        ));
                    }
                    Output::Request(id, request) => {
                        let is_store = matches!(request, Request::Store(_));
                        let answer = peers[side].set.answer(request).0;
                        if is_store {
                            let done = store_free[side].max(now) + store_ms;
                            store_free[side] = done;
                            answers[side].push_back((id, answer));
                            sequence += 1;
                            queue.push((std::cmp::Reverse(done), sequence, side, Vec::new()));
                        } else {
                            peers[side].session.handle_input(
                                Duration::from_millis(now),
                                Input::Answer(id, answer),
                            );
                        }
                    }
                    Output::Event(event) => peers[side].events.push(event),
                    _ => {}
                }
            }
        }
        largest = largest.max(peers[1].session.send_window());
        if peers.iter().all(|p| p.session.is_synced()) && queue.is_empty() {
            return (now, largest, peers[1].bytes_sent);
        }
        let Some((std::cmp::Reverse(at), _, to, frame)) = queue.pop() else {
            panic!("stuck before both sides synced: {:?}", peers[0].events);
        };
        now = at;
        assert!(now < 3_600_000, "an hour of simulated time: livelock");
        let time = Duration::from_millis(now);
        if frame.is_empty() {
            let (id, answer) = answers[to].pop_front().expect("an answer due");
            peers[to]
                .session
                .handle_input(time, Input::Answer(id, answer));
        } else {
            peers[to].session.handle_input(time, Input::Frame(frame));
        }
    }
}

#[test]
fn the_sending_window_grows_to_fill_a_long_path_and_stays_small_on_a_short_one() {
    // 40,000 objects of ~110 bytes in batches of 8 kB: ~550 batches, ~4.5 MB.
    let config = |role| {
        let mut config = Config::new(role);
        config.batch_bytes = 8 << 10;
        config
    };
    let source = || set_of(0..40_000);
    // (ms of bytes / bandwidth + 3 round trips) for what the responder sent.
    let floor = |sent: usize, bytes_per_ms: u64, rtt: u64| sent as u64 / bytes_per_ms + 3 * rtt;
    // A 100 ms round trip at 1 MB/s: the path holds ~100 kB, ~12 batches (a window of 8
    // would leave a third of it idle). Within 1.3× of the floor.
    let (took, largest, sent) = over_a_path(MemorySet::new(), source(), config, 50, 1_000, 0);
    let expected = floor(sent, 1_000, 100);
    assert!(largest >= 12, "window reached {largest}");
    assert!(
        took * 10 <= expected * 13,
        "took {took} ms; bytes/bandwidth + 3 RTT is {expected} ms"
    );
    // At 10 MB/s the path holds ~1 MB, ~120 batches: the window grows to them (slow start
    // costs a few round trips of this short transfer).
    let (took, largest, sent) = over_a_path(MemorySet::new(), source(), config, 50, 10_000, 0);
    let expected = floor(sent, 10_000, 100);
    assert!(largest >= 120, "window reached {largest}");
    assert!(
        took <= expected * 2,
        "took {took} ms; bytes/bandwidth + 3 RTT is {expected} ms"
    );
    // No delay to speak of, but a store that takes 2 ms a batch: batches queue at the
    // store, acknowledgements slow down, and the window stays near where it started.
    let (_, largest, _) = over_a_path(MemorySet::new(), source(), config, 0, 1_000_000, 2);
    assert!(
        largest <= 2 * chum_sync::session::INITIAL_WINDOW,
        "window reached {largest}"
    );
}

/// Acknowledgements `peer` sent so far.
fn acks(peer: &Peer) -> usize {
    peer.tags.iter().filter(|tag| **tag == 0x0a).count()
}

/// `a` stores one new object (numbered `seed`) at `now` and pushes it live to `b`.
fn push(now: Duration, seed: u64, a: &mut Peer, b: &mut Peer) -> Cid {
    let (cid, bytes) = object(seed);
    a.set.insert(cid.clone(), bytes).unwrap();
    a.session
        .handle_input(now, Input::LocalStored(vec![cid.clone()]));
    run_at(now, a, b);
    assert!(b.set.contains(&cid));
    cid
}

#[test]
fn live_batches_arriving_together_are_acknowledged_by_one_message() {
    let (mut a, mut b) = sync(set_of(0..10), set_of(0..10));
    let ms = Duration::from_millis;
    let delay = Config::new(Role::Responder).ack_delay;
    // After a quiet spell: acknowledged at once.
    let start = Duration::from_secs(10);
    let first = push(start, 100, &mut a, &mut b);
    let before = acks(&b);
    assert!(a.events.contains(&Event::PeerStored(vec![first])));
    // Two more soon after: stored and reported at once, acknowledged together once the
    // delay since the last acknowledgement is over.
    let second = push(start + ms(10), 101, &mut a, &mut b);
    let third = push(start + ms(20), 102, &mut a, &mut b);
    assert!(b.events.contains(&Event::Received(vec![third.clone()])));
    assert_eq!(acks(&b), before, "none yet");
    let due = b.session.poll_timeout().unwrap();
    assert_eq!(due, start + delay, "due one delay after the last");
    b.session.handle_input(due, Input::Tick);
    run_at(due, &mut a, &mut b);
    assert_eq!(acks(&b), before + 1, "one for both");
    assert!(
        a.events
            .contains(&Event::PeerStored(vec![second.clone(), third.clone()])),
        "{:?}",
        a.events
    );
    // Half the smallest sending window owed: acknowledged at once, whatever the delay.
    let at = due + ms(1);
    for n in 0..chum_sync::session::INITIAL_WINDOW as u64 / 2 {
        push(at, 200 + n, &mut a, &mut b);
    }
    assert_eq!(acks(&b), before + 2);
    // An acknowledgement owed rides in the next frame this side sends anyway.
    let owed = push(at + ms(1), 300, &mut a, &mut b);
    let tags = b.tags.len();
    push(at + ms(2), 301, &mut b, &mut a);
    assert_eq!(
        &b.tags[tags..tags + 2],
        &[0x0a, 0x09],
        "the acknowledgement first"
    );
    assert!(a.events.iter().any(|event| matches!(
        event,
        Event::PeerStored(cids) if cids.contains(&owed)
    )));
    assert_eq!(
        b.session.poll_timeout().map(|due| due > at + delay),
        Some(true)
    );
}

#[test]
fn every_live_batch_is_acknowledged_for_a_peer_without_cumulative_acks_or_with_no_delay() {
    use chum_sync::wire::capability;
    for without in [true, false] {
        let mut a = Peer::new(Role::Initiator, set_of(0..10));
        let mut config = Config::new(Role::Responder);
        if !without {
            config.ack_delay = Duration::ZERO;
        }
        let mut b = Peer::new(Role::Responder, set_of(0..10));
        b.session = Session::new(config, Duration::ZERO);
        // The initiator's hello, as a build without the capability would send it.
        drain(Duration::ZERO, &mut a, &mut b);
        let hello = b.inbox.pop_front().unwrap();
        let Ok(Message::Hello(mut hello)) = Message::decode(&hello, &Limits::default()) else {
            panic!("the hello comes first");
        };
        if without {
            hello.capabilities &= !capability::CUMULATIVE_ACK;
        }
        b.inbox.push_front(Message::Hello(hello).encode());
        run(&mut a, &mut b);
        assert!(b.session.is_synced());
        let before = acks(&b);
        let start = Duration::from_secs(10);
        for n in 0..3 {
            push(start + Duration::from_millis(n), 100 + n, &mut a, &mut b);
        }
        assert_eq!(acks(&b), before + 3, "without the capability: {without}");
    }
}
