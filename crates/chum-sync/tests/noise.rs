//! Encrypted sessions (Noise XX) over an in-memory pipe: the handshake, admission by the
//! driver, records, and what happens to tampered or refused channels.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Duration;

use chum_object::{Cid, Object, dagjson};
use chum_sync::memory::MemorySet;
use chum_sync::noise::{MAX_RECORD, Security, static_keypair};
use chum_sync::{Answer, CloseCode, Config, Event, Input, Output, Request, Role, Session};

fn object(seed: u64) -> (Cid, Vec<u8>) {
    let json = format!(r#"{{"$type":"Message","n":{seed},"text":"secret text number {seed}"}}"#);
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

struct Side {
    session: Session,
    set: MemorySet,
    events: Vec<Event>,
    inbox: VecDeque<Vec<u8>>,
    /// The payload the peer presented, as the driver saw it.
    presented: Option<(Vec<u8>, [u8; 32])>,
    /// Whether the driver admits the peer.
    admit: bool,
    sent: Vec<Vec<u8>>,
}

fn side(role: Role, seed: u8, payload: &[u8], set: MemorySet, admit: bool) -> (Side, [u8; 32]) {
    let (static_secret, static_public) = static_keypair([seed; 32]);
    let mut config = Config::new(role);
    config.security = Some(Security {
        static_secret,
        payload: payload.to_vec(),
        entropy: [seed ^ 0xff; 32],
    });
    let side = Side {
        session: Session::new(config, Duration::ZERO),
        set,
        events: Vec::new(),
        inbox: VecDeque::new(),
        presented: None,
        admit,
        sent: Vec::new(),
    };
    (side, static_public)
}

fn drain(from: &mut Side, to: &mut Side, tamper: &mut Option<usize>) -> bool {
    let mut progress = false;
    while let Some(output) = from.session.poll_output() {
        progress = true;
        match output {
            Output::Transmit(mut frame) => {
                assert!(frame.len() <= MAX_RECORD, "a record over 65,535 bytes");
                from.sent.push(frame.clone());
                if let Some(n) = tamper {
                    if *n == 0 {
                        let middle = frame.len() / 2;
                        frame[middle] ^= 1;
                        *tamper = None;
                    } else {
                        *n -= 1;
                    }
                }
                to.inbox.push_back(frame);
            }
            Output::Request(
                id,
                Request::Admit {
                    payload,
                    remote_static,
                },
            ) => {
                from.presented = Some((payload, remote_static));
                let answer = if from.admit {
                    Answer::Admitted {
                        welcome: None,
                        journal: None,
                    }
                } else {
                    Answer::Refused("not welcome here".into())
                };
                from.session
                    .handle_input(Duration::ZERO, Input::Answer(id, answer));
            }
            Output::Request(id, request) => {
                let (answer, _) = from.set.answer(request);
                from.session
                    .handle_input(Duration::ZERO, Input::Answer(id, answer));
            }
            Output::Event(event) => from.events.push(event),
            _ => {}
        }
    }
    progress
}

fn run(a: &mut Side, b: &mut Side, mut tamper: Option<usize>) {
    for _ in 0..1_000_000 {
        let mut progress = drain(a, b, &mut tamper) | drain(b, a, &mut None);
        if let Some(frame) = a.inbox.pop_front() {
            a.session.handle_input(Duration::ZERO, Input::Frame(frame));
            progress = true;
        }
        if let Some(frame) = b.inbox.pop_front() {
            b.session.handle_input(Duration::ZERO, Input::Frame(frame));
            progress = true;
        }
        if !progress {
            return;
        }
    }
    panic!("livelock");
}

fn closed(side: &Side) -> Option<CloseCode> {
    side.events.iter().find_map(|event| match event {
        Event::Closed { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn encrypted_sessions_sync_and_show_nothing_in_the_clear() {
    let (mut a, a_static) = side(Role::Initiator, 1, b"alice", set_of(0..4_000), true);
    let (mut b, b_static) = side(Role::Responder, 2, b"bob", set_of(3_000..6_000), true);
    run(&mut a, &mut b, None);
    assert!(
        a.session.is_synced() && b.session.is_synced(),
        "{:?} {:?}",
        a.events,
        b.events
    );
    assert!(a.set.cids().eq(b.set.cids()));
    assert_eq!(a.set.len(), 6_000);
    // Each side saw the other's payload and static key.
    assert_eq!(a.presented, Some((b"bob".to_vec(), b_static)));
    assert_eq!(b.presented, Some((b"alice".to_vec(), a_static)));
    // Batches are larger than a record: some records are full ones.
    assert!(a.sent.iter().any(|record| record.len() == MAX_RECORD));
    // No object text, and no CID, appears in the clear.
    let (cid, _) = object(1);
    for record in a.sent.iter().chain(&b.sent) {
        assert!(!record.windows(11).any(|w| w == b"secret text"));
        assert!(
            !record
                .windows(cid.as_bytes().len())
                .any(|w| w == cid.as_bytes())
        );
    }
    // The handshake is three messages; the initiator's first carries only its ephemeral key.
    assert_eq!(a.sent[0].len(), 32);
}

#[test]
fn a_refused_peer_gets_nothing_but_handshake_bytes_and_a_close() {
    // The responder refuses the initiator.
    let (mut a, _) = side(Role::Initiator, 3, b"mallory", set_of(0..10), true);
    let (mut b, _) = side(Role::Responder, 4, b"bob", set_of(100..200), false);
    run(&mut a, &mut b, None);
    assert_eq!(closed(&b), Some(CloseCode::Unauthorized));
    assert_eq!(closed(&a), Some(CloseCode::Unauthorized), "{:?}", a.events);
    for side in [&a, &b] {
        assert!(
            !side
                .events
                .iter()
                .any(|e| matches!(e, Event::Connected { .. }))
        );
    }
    assert_eq!(a.set.len(), 10, "nothing arrived");
    // The responder sent its handshake message and one record: the close.
    assert_eq!(b.sent.len(), 2);

    // The initiator refuses the responder: it never sends its credentials.
    let (mut a, _) = side(Role::Initiator, 5, b"alice", set_of(0..10), false);
    let (mut b, _) = side(Role::Responder, 6, b"mallory", set_of(100..200), true);
    run(&mut a, &mut b, None);
    assert_eq!(closed(&a), Some(CloseCode::Unauthorized));
    assert_eq!(
        a.sent.len(),
        1,
        "only the first handshake message left the initiator"
    );
    assert!(
        b.presented.is_none(),
        "the responder never saw the initiator's payload"
    );
}

#[test]
fn a_tampered_record_closes_the_session() {
    let (mut a, _) = side(Role::Initiator, 7, b"alice", set_of(0..500), true);
    let (mut b, _) = side(Role::Responder, 8, b"bob", set_of(0..10), true);
    // The initiator's fourth transmission is its first record after the handshake.
    run(&mut a, &mut b, Some(2));
    assert_eq!(
        closed(&b),
        Some(CloseCode::ProtocolViolation),
        "{:?}",
        b.events
    );
    assert!(
        !b.events
            .iter()
            .any(|e| matches!(e, Event::Connected { .. }))
    );
}

#[test]
fn garbage_and_truncated_handshakes_close_the_responder() {
    for bytes in [vec![1u8; 5], vec![], vec![7u8; 200]] {
        let (mut b, _) = side(Role::Responder, 9, b"bob", set_of(0..10), true);
        b.session
            .handle_input(Duration::ZERO, Input::Frame(bytes.clone()));
        let mut outputs = Vec::new();
        while let Some(output) = b.session.poll_output() {
            outputs.push(output);
        }
        let closed_now = outputs.iter().any(|o| {
            matches!(
                o,
                Output::Event(Event::Closed {
                    code: CloseCode::ProtocolViolation,
                    ..
                })
            )
        });
        // A 32-byte (or longer) first message is a valid ephemeral key plus payload only if
        // it decodes; everything else closes at once.
        if bytes.len() != 32 {
            assert!(closed_now, "{} bytes: {outputs:?}", bytes.len());
        }
    }
}
