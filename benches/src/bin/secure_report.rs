//! Encrypted sessions: handshake time, and throughput over loopback TCP for bulk blobs and for
//! small objects — each beside its baseline measured in the same run (the AEAD's own
//! single-core speed, and the same transfer without encryption). Natively the records are
//! sealed with ring's ChaCha20-Poly1305 (through snow's ring resolver); RustCrypto's, which
//! wasm32 builds use, is measured too. The sender's store is filled once and shared by every
//! round (filling it is not part of any transfer); each transfer goes into a fresh store.
//!
//! Run: `cargo run --release -p chum-benches --bin secure_report [MiB] [small objects]`
//! (defaults: 512 MiB of 1 MiB blob chunks, 200,000 objects of ~100 bytes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chum_access::Identity;
use chum_benches::blob_chunk as chunk;
use chum_net::transport::tcp;
use chum_net::{Node, SessionOptions};
use chum_object::{Cid, Object, dagjson};
use chum_store::MemoryStore;
use chum_sync::noise::{Security, static_keypair};
use chum_sync::{Answer, Config, Input, Output, Request, Role, Session};

/// MiB/s of `seal` (which seals a buffer in place under a nonce and returns the tag's
/// length) on `size`-byte messages for 1.5 s, one core.
fn seal_rate(size: usize, mut seal: impl FnMut(&mut [u8], [u8; 12]) -> usize) -> f64 {
    let mut buffer = vec![0u8; size];
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut n = 0u64;
    while started.elapsed() < Duration::from_millis(1_500) {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&n.to_le_bytes());
        bytes += buffer.len() + seal(&mut buffer, nonce);
        n += 1;
    }
    bytes as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

/// The AEAD the sessions use natively (ring's ChaCha20-Poly1305), one core: MiB/s sealing
/// `size`-byte messages in place (as snow does after copying the plaintext in).
fn aead_mib_s(size: usize) -> f64 {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    let Ok(key) = UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]) else {
        return 0.0;
    };
    let key = LessSafeKey::new(key);
    seal_rate(size, |buffer, nonce| {
        key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), buffer)
            .map(|tag| tag.as_ref().len())
            .unwrap_or(0)
    })
}

/// RustCrypto's ChaCha20-Poly1305 (what wasm32 builds use), one core, the same way.
fn rustcrypto_aead_mib_s(size: usize) -> f64 {
    let cipher = ChaCha20Poly1305::new(&[7u8; 32].into());
    seal_rate(size, |buffer, nonce| {
        cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", buffer)
            .map(|tag| tag.len())
            .unwrap_or(0)
    })
}

/// A full Noise XX handshake between two sessions in memory (no store, no network): µs.
fn handshake_us(rounds: usize) -> f64 {
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let side = |role, seed: u8| {
            let (static_secret, _) = static_keypair([seed; 32]);
            let mut config = Config::new(role);
            config.security = Some(Security {
                static_secret,
                payload: vec![0xa0; 200],
                entropy: [seed ^ round as u8; 32],
            });
            config
        };
        let started = Instant::now();
        let mut sessions = [
            Session::new(side(Role::Initiator, 1), Duration::ZERO),
            Session::new(side(Role::Responder, 2), Duration::ZERO),
        ];
        let mut connected = 0;
        for _ in 0..8 {
            for index in [0usize, 1] {
                let [first, second] = &mut sessions;
                let (from, to) = if index == 0 {
                    (first, second)
                } else {
                    (second, first)
                };
                let mut frames = Vec::new();
                while let Some(output) = from.poll_output() {
                    match output {
                        Output::Transmit(frame) => frames.push(frame),
                        Output::Request(id, Request::Admit { .. }) => from.handle_input(
                            Duration::ZERO,
                            Input::Answer(
                                id,
                                Answer::Admitted {
                                    welcome: None,
                                    journal: None,
                                },
                            ),
                        ),
                        Output::Request(id, Request::Summary) => from.handle_input(
                            Duration::ZERO,
                            Input::Answer(id, Answer::Summary(chum_sync::Summary::EMPTY, None)),
                        ),
                        Output::Event(chum_sync::Event::Connected { .. }) => connected += 1,
                        _ => {}
                    }
                }
                for frame in frames {
                    to.handle_input(Duration::ZERO, Input::Frame(frame));
                }
            }
            if connected == 2 {
                break;
            }
        }
        assert_eq!(connected, 2, "both sides connected");
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Both sessions of a transfer in one thread, no network, no store beyond two in-memory sets:
/// CPU time per MiB of the session layer (framing, records, AEAD both ways, verification).
fn sans_io_ms_per_mib(blobs: &[(Cid, Vec<u8>)], encrypted: bool) -> f64 {
    use chum_sync::memory::MemorySet;
    let mut sender_set = MemorySet::new();
    for (cid, bytes) in blobs {
        let _ = sender_set.insert(cid.clone(), bytes.clone());
    }
    let mut sets = [sender_set, MemorySet::new()];
    let config = |role, seed: u8| {
        let mut config = Config::new(role);
        if encrypted {
            let (static_secret, _) = static_keypair([seed; 32]);
            config.security = Some(Security {
                static_secret,
                payload: Vec::new(),
                entropy: [seed ^ 1; 32],
            });
        }
        config
    };
    let mut sessions = [
        Session::new(config(Role::Responder, 1), Duration::ZERO),
        Session::new(config(Role::Initiator, 2), Duration::ZERO),
    ];
    let started = Instant::now();
    let mut inboxes: [std::collections::VecDeque<Vec<u8>>; 2] = Default::default();
    loop {
        let mut progress = false;
        for side in 0..2 {
            while let Some(output) = sessions[side].poll_output() {
                progress = true;
                match output {
                    Output::Transmit(frame) => inboxes[1 - side].push_back(frame),
                    Output::Request(id, Request::Admit { .. }) => sessions[side].handle_input(
                        Duration::ZERO,
                        Input::Answer(
                            id,
                            Answer::Admitted {
                                welcome: None,
                                journal: None,
                            },
                        ),
                    ),
                    Output::Request(id, request) => {
                        let (answer, _) = sets[side].answer(request);
                        sessions[side].handle_input(Duration::ZERO, Input::Answer(id, answer));
                    }
                    _ => {}
                }
            }
            if let Some(frame) = inboxes[side].pop_front() {
                progress = true;
                sessions[side].handle_input(Duration::ZERO, Input::Frame(frame));
            }
        }
        if !progress {
            break;
        }
    }
    assert_eq!(sets[1].len(), blobs.len(), "everything arrived");
    started.elapsed().as_secs_f64() * 1e3 / blobs.len() as f64
}

fn message(i: u64) -> (Cid, Vec<u8>) {
    let json =
        format!(r#"{{"$type":"Message","n":{i},"text":"a small object, message number {i}"}}"#);
    let object = Object::from_value(&dagjson::from_str(&json).unwrap_or(chum_object::Value::Null))
        .unwrap_or_else(|_| {
            Object::from_value(&chum_object::Value::Null).unwrap_or_else(|_| unreachable!())
        });
    (object.cid().clone(), object.bytes().to_vec())
}

/// Sends `objects` from one node to an empty one over loopback TCP; the time from connecting
/// to the receiver's "synced", and bytes on the wire from the sender.
async fn transfer(
    objects: &[(Cid, Vec<u8>)],
    source: &Arc<MemoryStore>,
    encrypted: bool,
) -> (Duration, u64) {
    let person = Identity::new_person(1).unwrap_or_else(|_| unreachable!());
    let laptop_key = chum_access::keys::generate_key().unwrap_or_else(|_| unreachable!());
    let certificate = person
        .certify(
            chum_access::InstanceId(laptop_key.verifying_key().to_bytes()),
            1,
        )
        .unwrap_or_else(|_| unreachable!());
    let laptop = Identity::joined(laptop_key, certificate).unwrap_or_else(|_| unreachable!());
    let source: Arc<dyn chum_store::Store> = Arc::clone(source) as Arc<dyn chum_store::Store>;
    let mut sender = Node::new(source);
    let mut receiver = Node::new(Arc::new(MemoryStore::new()));
    if encrypted {
        sender = sender.with_identity(person);
        receiver = receiver.with_identity(laptop);
    }
    let sender = Arc::new(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|_| unreachable!());
    let address = listener
        .local_addr()
        .unwrap_or_else(|_| unreachable!())
        .to_string();
    let serving = Arc::clone(&sender);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap_or_else(|_| unreachable!());
        let connection = tcp::connection(stream, chum_sync::Limits::default().max_frame)
            .unwrap_or_else(|_| unreachable!());
        serving
            .run(Role::Responder, connection, SessionOptions::default())
            .await
    });
    let started = Instant::now();
    let connection = tcp::connect(&address, chum_sync::Limits::default().max_frame)
        .await
        .unwrap_or_else(|_| unreachable!());
    let report = receiver
        .run(
            Role::Initiator,
            connection,
            SessionOptions {
                close_when_synced: true,
            },
        )
        .await;
    let elapsed = started.elapsed();
    assert!(report.synced, "{report:?}");
    assert!(report.received as usize >= objects.len(), "{report:?}");
    let served = server.await.unwrap_or_else(|_| unreachable!());
    (elapsed, served.bytes_out)
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let small: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|_| unreachable!());

    println!(
        "AEAD (ChaCha20-Poly1305, one core): ring (used natively) 64 B {:.0} MiB/s, 64 KiB {:.0} MiB/s; RustCrypto (wasm32) 64 KiB {:.0} MiB/s",
        aead_mib_s(64),
        aead_mib_s(65_519),
        rustcrypto_aead_mib_s(65_519)
    );
    println!(
        "Noise XX handshake + hellos, in memory (median of 500): {:.0} µs",
        handshake_us(500)
    );

    let blobs: Vec<_> = (0..mib).map(chunk).collect();
    let sample = &blobs[..blobs.len().min(128)];
    println!(
        "session layer alone, both sides on one thread, per MiB: encrypted {:.2} ms, plain {:.2} ms",
        sans_io_ms_per_mib(sample, true),
        sans_io_ms_per_mib(sample, false)
    );
    let messages: Vec<_> = (0..small).map(message).collect();
    // The senders' stores, filled once (not part of any transfer).
    let fill = |objects: &[(Cid, Vec<u8>)]| {
        let store = Arc::new(MemoryStore::new());
        for batch in objects.chunks(1_000) {
            futures::executor::block_on(chum_store::Store::put_many(&*store, batch))
                .unwrap_or_default();
        }
        store
    };
    let blob_source = fill(&blobs);
    let message_source = fill(&messages);
    // One transfer of each kind first, not counted: the first hundreds of MiB a fresh process
    // touches cost page faults that later rounds do not pay.
    runtime.block_on(transfer(&blobs, &blob_source, false));
    runtime.block_on(transfer(&blobs, &blob_source, true));
    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    let per_s = |d: Duration| small as f64 / d.as_secs_f64();
    let (mut bulk, mut objects) = (Vec::new(), Vec::new());
    for round in 1..=5 {
        let aead = aead_mib_s(65_519);
        let (plain, _) = runtime.block_on(transfer(&blobs, &blob_source, false));
        let (secure, wire) = runtime.block_on(transfer(&blobs, &blob_source, true));
        println!(
            "round {round}: bulk {mib} MiB of 1 MiB chunks over TCP: encrypted {:.0} MiB/s ({:.2}× the AEAD's one-core {:.0} MiB/s), plain {:.0} MiB/s; {:.1}% bytes over payload",
            rate(secure),
            rate(secure) / aead,
            aead,
            rate(plain),
            (wire as f64 / (mib << 20) as f64 - 1.0) * 100.0
        );
        bulk.push((rate(secure), rate(plain), aead));
        let (plain, _) = runtime.block_on(transfer(&messages, &message_source, false));
        let (secure, _) = runtime.block_on(transfer(&messages, &message_source, true));
        println!(
            "round {round}: {small} small objects over TCP: encrypted {:.0} objects/s, plain {:.0} objects/s ({:.2}×)",
            per_s(secure),
            per_s(plain),
            per_s(secure) / per_s(plain)
        );
        objects.push((per_s(secure), per_s(plain)));
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "median of 5: bulk encrypted {:.0} MiB/s ({:.2}× the AEAD), plain {:.0} MiB/s; small objects encrypted {:.0}/s, plain {:.0}/s",
        median(bulk.iter().map(|b| b.0).collect()),
        median(bulk.iter().map(|b| b.0 / b.2).collect()),
        median(bulk.iter().map(|b| b.1).collect()),
        median(objects.iter().map(|o| o.0).collect()),
        median(objects.iter().map(|o| o.1).collect()),
    );
}
