//! The session state machine fed arbitrary sequences of inputs: frames from a peer, answers
//! (honest ones from a small in-memory set, or wrong ones), time passing, new local objects.
//! It must never panic, never produce unbounded output for one input, and stay silent once
//! closed.
#![no_main]

use std::time::Duration;

use chum_object::{Cid, Codec};
use chum_sync::memory::MemorySet;
use chum_sync::session::Journal;
use chum_sync::{Answer, Config, Event, Input, Output, Request, RequestId, Role, Session};
use libfuzzer_sys::fuzz_target;

/// Our journal and the peer's, fixed so that inputs can name them.
const OURS: [u8; 16] = [0x11; 16];
const THEIRS: [u8; 16] = [0x22; 16];

fn set() -> MemorySet {
    let mut set = MemorySet::new().with_journal_id(OURS);
    for i in 0u8..6 {
        let bytes = vec![i; 3];
        let _ = set.insert(Cid::hash(Codec::Raw, &bytes), bytes);
    }
    set
}

fuzz_target!(|data: &[u8]| {
    let Some((&role, mut script)) = data.split_first() else {
        return;
    };
    let journals = role & 2 != 0;
    let role = if role & 1 == 0 { Role::Initiator } else { Role::Responder };
    let mut config = Config::new(role);
    if journals {
        // Offering a journal and holding a position of the peer's: the fast path.
        config.journal = Some(Journal { id: OURS, holds: vec![(THEIRS, 3)] });
    }
    config.limits.max_sketch_cells = 4_096;
    config.request_chunk = 16;
    let mut now = Duration::ZERO;
    let mut session = Session::new(config, now);
    let mut set = set();
    let mut pending: Vec<(RequestId, Request)> = Vec::new();
    let mut closed = false;
    loop {
        let mut outputs = 0usize;
        while let Some(output) = session.poll_output() {
            outputs += 1;
            assert!(outputs < 100_000, "unbounded output for one input");
            assert!(!closed, "output after the close event");
            match output {
                Output::Request(id, request) => pending.push((id, request)),
                Output::Event(Event::Closed { .. }) => closed = true,
                _ => {}
            }
        }
        let Some((&op, rest)) = script.split_first() else {
            break;
        };
        let Some((len, rest)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (payload, rest) = rest.split_at(len);
        script = rest;
        let input = match op % 6 {
            0 | 1 => Input::Frame(payload.to_vec()),
            2 => {
                // The oldest request answered honestly.
                if pending.is_empty() {
                    continue;
                }
                let (id, request) = pending.remove(0);
                Input::Answer(id, set.answer(request).0)
            }
            3 => {
                // A request answered wrongly (or an unknown request id).
                let id = pending.first().map_or(u64::from(payload.first().copied().unwrap_or(0)), |(id, _)| *id);
                let number = |at: usize| u64::from(payload.get(at).copied().unwrap_or(0));
                let answer = match payload.len() % 6 {
                    0 => Answer::Failed("disk on fire".into()),
                    1 => Answer::Invalid("bad object".into()),
                    2 => Answer::ShortIds(payload.chunks(8).map(|c| c.iter().fold(0u64, |a, b| a << 8 | u64::from(*b))).collect()),
                    3 => Answer::Journal { objects: Vec::new(), last: number(0), head: number(1) },
                    4 => Answer::Summary(chum_sync::Summary::EMPTY, Some(number(0))),
                    _ => Answer::Stored,
                };
                if !pending.is_empty() {
                    pending.remove(0);
                }
                Input::Answer(id, answer)
            }
            4 => {
                now += Duration::from_millis(u64::from(payload.first().copied().unwrap_or(0)) * 500);
                Input::Tick
            }
            _ => Input::LocalStored(
                payload
                    .iter()
                    .map(|b| Cid::hash(Codec::Raw, &[*b % 8; 3]))
                    .collect(),
            ),
        };
        session.handle_input(now, input);
    }
});
