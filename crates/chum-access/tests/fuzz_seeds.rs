//! Writes seed inputs for the `access_objects` and `handshake` fuzz targets when
//! `CHUM_WRITE_FUZZ_SEEDS=1` (otherwise it only checks that the seeds can be built).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chum_access::grant::{Access, GroupMembers, group};
use chum_access::{Identity, Invitation, handshake};
use chum_sync::noise::{Security, static_keypair};
use chum_sync::{Answer, Config, Input, Output, Request, Role, Session};

fn frames(session: &mut Session) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(output) = session.poll_output() {
        match output {
            Output::Transmit(frame) => out.push(frame),
            Output::Request(id, Request::Admit { .. }) => session.handle_input(
                Duration::ZERO,
                Input::Answer(
                    id,
                    Answer::Admitted {
                        welcome: None,
                        journal: None,
                    },
                ),
            ),
            _ => {}
        }
    }
    out
}

fn script(flags: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![flags];
    for frame in frames {
        out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

#[test]
fn fuzz_seeds() {
    let alice = Identity::from_keys(
        chum_object::sign::SigningKey::from_bytes(&[1; 32]),
        chum_object::sign::SigningKey::from_bytes(&[2; 32]),
        1,
    )
    .unwrap();
    let key = alice.person_key().unwrap();
    let team = group(&alice.person(), "team").unwrap();
    let members = GroupMembers::issue(key, team.cid().clone(), &[alice.person()], 2).unwrap();
    let grant = Access::issue(key, team.cid().clone(), alice.person().0, 3).unwrap();
    let payload = handshake::payload(&alice, &[7; 32]).unwrap();
    let invitation = Invitation {
        secret: [9; 32],
        expires_ms: 10,
        person_key: *alice.person_public(),
        inviter: alice.instance(),
        address: Some("ws://127.0.0.1:8765".into()),
    };
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("certificate", alice.certificate().object().bytes().to_vec()),
        ("group_members", members.object.bytes().to_vec()),
        ("access", grant.object.bytes().to_vec()),
        ("payload", payload),
        ("invitation", invitation.to_text().into_bytes()),
    ];

    // A real handshake: the initiator's first message, the responder's answer.
    let side = |role, seed: u8| {
        let (static_secret, _) = static_keypair([seed; 32]);
        let mut config = Config::new(role);
        config.security = Some(Security {
            static_secret,
            payload: b"fuzz".to_vec(),
            entropy: [seed ^ 0x55; 32],
        });
        Session::new(config, Duration::ZERO)
    };
    let mut initiator = side(Role::Initiator, 1);
    let mut responder = side(Role::Responder, 2);
    let first = frames(&mut initiator);
    for frame in &first {
        responder.handle_input(Duration::ZERO, Input::Frame(frame.clone()));
    }
    let second = frames(&mut responder);
    for frame in &second {
        initiator.handle_input(Duration::ZERO, Input::Frame(frame.clone()));
    }
    let third = frames(&mut initiator);
    let scripts = vec![
        ("responder_first", script(1, &first)),
        (
            "responder_full",
            script(1, &[first.clone(), third.clone()].concat()),
        ),
        ("initiator_second", script(0, &second)),
    ];
    assert!(!third.is_empty());

    if std::env::var("CHUM_WRITE_FUZZ_SEEDS").as_deref() == Ok("1") {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        for (dir, seeds) in [("access_objects", &objects), ("handshake", &scripts)] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            for (name, bytes) in seeds {
                std::fs::write(root.join(dir).join(name), bytes).unwrap();
            }
        }
    }
}
