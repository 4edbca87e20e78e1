//! An encrypted session (either role) fed arbitrary frames before, during and after the Noise
//! handshake, with the driver admitting or refusing: never a panic, bounded output, nothing
//! after the close, and no request but admission before the driver admitted the peer.
#![no_main]

use std::time::Duration;

use chum_sync::noise::{Security, static_keypair};
use chum_sync::{Answer, Config, Event, Input, Output, Request, Role, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut script)) = data.split_first() else {
        return;
    };
    let role = if flags & 1 == 0 { Role::Initiator } else { Role::Responder };
    let admit = flags & 2 == 0;
    let (static_secret, _) = static_keypair([flags; 32]);
    let mut config = Config::new(role);
    config.security = Some(Security {
        static_secret,
        payload: b"fuzz".to_vec(),
        entropy: [flags ^ 0x55; 32],
    });
    let mut session = Session::new(config, Duration::ZERO);
    let mut admitted = false;
    let mut closed = false;
    loop {
        let mut outputs = 0usize;
        while let Some(output) = session.poll_output() {
            outputs += 1;
            assert!(outputs < 10_000, "unbounded output for one input");
            assert!(!closed, "output after the close event");
            match output {
                Output::Request(id, Request::Admit { .. }) => {
                    let answer = if admit {
                        admitted = true;
                        Answer::Admitted {
                        welcome: None,
                        journal: None,
                    }
                    } else {
                        Answer::Refused("fuzz".into())
                    };
                    session.handle_input(Duration::ZERO, Input::Answer(id, answer));
                }
                Output::Request(_, _) => {
                    assert!(admitted, "a store request before the peer was admitted");
                }
                Output::Event(Event::Closed { .. }) => closed = true,
                Output::Event(Event::Connected { .. }) => {
                    assert!(admitted, "connected before admission");
                }
                _ => {}
            }
        }
        let Some((len, rest)) = script.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (frame, rest) = rest.split_at(len);
        script = rest;
        session.handle_input(Duration::ZERO, Input::Frame(frame.to_vec()));
    }
});
