//! `test-vectors/protocol.json`: every CHUM message as bytes, with its fields, and frames every
//! implementation must refuse. The test checks that chum decodes each valid frame to exactly
//! the stated fields and encodes those back to the same bytes, and refuses every invalid one;
//! `CHUM_BLESS=1 cargo test -p chum-sync --test vectors` rewrites the file.
#![allow(clippy::unwrap_used)]

use chum_object::{Cid, Codec};
use chum_sync::Summary;
use chum_sync::sketch::Sketch;
use chum_sync::wire::{CloseCode, Hello, Limits, Message};
use serde_json::{Value, json};

fn cid(seed: &[u8], codec: Codec) -> Cid {
    Cid::hash(codec, seed)
}

/// The fields of a message, as the vector file states them (u64 as decimal strings, bytes as
/// hex, CIDs as their string form).
fn fields(message: &Message) -> Value {
    let u = |n: u64| Value::String(n.to_string());
    let ids = |ids: &[u64]| {
        Value::Array(
            ids.iter()
                .map(|id| Value::String(format!("{id:016x}")))
                .collect(),
        )
    };
    let summary = |s: &Summary| json!({"count": u(s.count), "sum": format!("{:016x}", s.sum), "fingerprint": format!("{:016x}", s.fingerprint)});
    match message {
        Message::Hello(h) => {
            json!({"type": "hello", "min_version": u(h.min_version), "max_version": u(h.max_version),
            "capabilities": u(h.capabilities), "max_frame": u(h.limits.max_frame as u64), "max_ids": u(h.limits.max_ids as u64),
            "max_batch_objects": u(h.limits.max_batch_objects as u64), "max_sketch_cells": u(h.limits.max_sketch_cells as u64),
            "window": u(h.window), "types": h.types, "journal_hex": h.journal.map(hex::encode),
            "holds": h.holds.iter().map(|(journal, position)| json!({"journal_hex": hex::encode(journal), "position": u(*position)})).collect::<Vec<_>>()})
        }
        Message::Summary(s) => json!({"type": "summary", "summary": summary(s)}),
        Message::InSync => json!({"type": "in_sync"}),
        Message::Sketch { summary: s, sketch } => json!({"type": "sketch", "summary": summary(s),
            "cells": u(sketch.len() as u64), "salt": u(sketch.salt()), "sketch_hex": hex::encode(sketch.to_bytes())}),
        Message::SketchRequest { cells, salt } => {
            json!({"type": "sketch_request", "cells": u(*cells), "salt": u(*salt)})
        }
        Message::ListRequest { after } => {
            json!({"type": "list_request", "after": after.map(|a| format!("{a:016x}"))})
        }
        Message::IdList { last, ids: list } => {
            json!({"type": "id_list", "last": last, "ids": ids(list)})
        }
        Message::CidListRequest { after } => {
            json!({"type": "cid_list_request", "after": after.as_ref().map(Cid::to_string)})
        }
        Message::CidList { last, cids } => {
            json!({"type": "cid_list", "last": last, "cids": cids.iter().map(Cid::to_string).collect::<Vec<_>>()})
        }
        Message::WantAll => json!({"type": "want_all"}),
        Message::Fetch { cids } => {
            json!({"type": "fetch", "cids": cids.iter().map(Cid::to_string).collect::<Vec<_>>()})
        }
        Message::Want { last, ids: list } => {
            json!({"type": "want", "last": last, "ids": ids(list)})
        }
        Message::Objects { seq, objects } => json!({"type": "objects", "seq": u(*seq),
            "objects": objects.iter().map(|(c, b)| json!({"cid": c.to_string(), "bytes_hex": hex::encode(b)})).collect::<Vec<_>>()}),
        Message::Ack { seq } => json!({"type": "ack", "seq": u(*seq)}),
        Message::SendDone => json!({"type": "send_done"}),
        Message::Resume => json!({"type": "resume"}),
        Message::Checkpoint { position } => {
            json!({"type": "checkpoint", "position": u(*position)})
        }
        Message::Welcome { certificate } => {
            json!({"type": "welcome", "certificate_hex": hex::encode(certificate)})
        }
        Message::Refused { seq, cids, reason } => {
            json!({"type": "refused", "seq": u(*seq), "cids": cids.iter().map(Cid::to_string).collect::<Vec<_>>(), "reason": reason})
        }
        Message::Ping => json!({"type": "ping"}),
        Message::Pong => json!({"type": "pong"}),
        Message::Close { code, reason } => {
            json!({"type": "close", "code": u(code.code()), "reason": reason})
        }
        other => panic!("a message the vectors do not cover: {other:?}"),
    }
}

fn valid() -> Vec<(&'static str, Message)> {
    let mut sketch = Sketch::with_salt(6, 0);
    sketch.insert(0x0123_4567_89ab_cdef);
    sketch.insert(42);
    let mut difference = Sketch::with_salt(6, 1);
    difference.remove(7);
    let summary = Summary {
        count: 1_000_000,
        sum: 0xdead_beef_0000_0001,
        fingerprint: 0x0102_0304_0506_0708,
    };
    vec![
        (
            "hello, version 1, defaults, two types",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                capabilities: 0,
                limits: Limits::default(),
                window: 8,
                types: vec!["Message".into(), "Conversation".into()],
                journal: None,
                holds: vec![],
                window_bytes: None,
            }),
        ),
        (
            "hello with a journal and positions held of two others",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                capabilities: 0,
                limits: Limits::default(),
                window: 8,
                types: vec![],
                journal: Some([0x11; 16]),
                holds: vec![([0x22; 16], 0), ([0x33; 16], 1_000_000)],
                window_bytes: None,
            }),
        ),
        (
            "hello from a newer peer speaking versions 1 to 3",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 3,
                capabilities: 0,
                limits: Limits {
                    max_frame: 1 << 20,
                    ..Limits::default()
                },
                window: 2,
                types: vec![],
                journal: None,
                holds: vec![],
                window_bytes: None,
            }),
        ),
        ("summary", Message::Summary(summary)),
        ("summary of the empty set", Message::Summary(Summary::EMPTY)),
        ("in-sync", Message::InSync),
        (
            "sketch of 6 cells holding two ids",
            Message::Sketch { summary, sketch },
        ),
        (
            "sketch with a negative count (salt 1)",
            Message::Sketch {
                summary: Summary::EMPTY,
                sketch: difference,
            },
        ),
        (
            "sketch request",
            Message::SketchRequest {
                cells: 2_304,
                salt: 1,
            },
        ),
        (
            "list request from the start",
            Message::ListRequest { after: None },
        ),
        (
            "list request after an id",
            Message::ListRequest {
                after: Some(0x00ff_0000_0000_0001),
            },
        ),
        (
            "id list, more to come",
            Message::IdList {
                last: false,
                ids: vec![1, 2, 0xffff_ffff_ffff_ffff],
            },
        ),
        (
            "id list, last and empty",
            Message::IdList {
                last: true,
                ids: vec![],
            },
        ),
        (
            "CID list request from the start",
            Message::CidListRequest { after: None },
        ),
        (
            "CID list request after a CID",
            Message::CidListRequest {
                after: Some(cid(b"after", Codec::DagCbor)),
            },
        ),
        (
            "CID list",
            Message::CidList {
                last: true,
                cids: vec![cid(b"a", Codec::Raw), cid(b"b", Codec::DagCbor)],
            },
        ),
        (
            "fetch: a conversation a message links to",
            Message::Fetch {
                cids: vec![cid(b"conversation", Codec::DagCbor)],
            },
        ),
        ("want-all", Message::WantAll),
        (
            "refused: one object of batch 3 breaks the receiver's recipe",
            Message::Refused {
                seq: 3,
                cids: vec![cid(b"newer shape", Codec::DagCbor)],
                reason: "breaks its recipe: unknown field `mood`".into(),
            },
        ),
        (
            "welcome: a certificate's bytes (here an empty map)",
            Message::Welcome {
                certificate: vec![0xa0],
            },
        ),
        (
            "want, last",
            Message::Want {
                last: true,
                ids: vec![0x0123_4567_89ab_cdef],
            },
        ),
        (
            "objects: a raw block and a dag-cbor map",
            Message::Objects {
                seq: 0,
                objects: vec![
                    (cid(b"chunk", Codec::Raw), b"chunk".to_vec()),
                    (
                        cid(&[0xa1, 0x61, 0x61, 0x01], Codec::DagCbor),
                        vec![0xa1, 0x61, 0x61, 0x01],
                    ),
                ],
            },
        ),
        (
            "objects: batch 300, empty",
            Message::Objects {
                seq: 300,
                objects: vec![],
            },
        ),
        ("ack", Message::Ack { seq: 300 }),
        ("send-done", Message::SendDone),
        ("resume", Message::Resume),
        (
            "checkpoint at position 300",
            Message::Checkpoint { position: 300 },
        ),
        ("ping", Message::Ping),
        ("pong", Message::Pong),
        (
            "close: protocol violation",
            Message::Close {
                code: CloseCode::ProtocolViolation,
                reason: "batch 3 where batch 2 was due".into(),
            },
        ),
        (
            "close: a code from a newer version",
            Message::Close {
                code: CloseCode::Other(99),
                reason: String::new(),
            },
        ),
    ]
}

fn invalid() -> Vec<(&'static str, String)> {
    let hello = Message::Hello(Hello {
        min_version: 1,
        max_version: 1,
        capabilities: 0,
        limits: Limits::default(),
        window: 8,
        types: vec![],
        journal: None,
        holds: vec![],
        window_bytes: None,
    })
    .encode();
    let mut wrong_magic = hello.clone();
    wrong_magic[1] = b'X';
    let ids = Message::IdList {
        last: true,
        ids: vec![1, 2],
    }
    .encode();
    let mut bad_flag = ids.clone();
    bad_flag[1] = 2;
    let mut fields_out_of_order = b"\x01CHUM\x01\x01".to_vec();
    fields_out_of_order.extend_from_slice(&[2, 1, 0x10, 1, 1, 0]);
    let mut too_many = vec![0x07, 1];
    too_many.extend_from_slice(&[0x81, 0x80, 0x04]); // 65,537 ids
    // (refused for the count alone, before any id is read)
    let mut ack_non_shortest = vec![0x0a, 0x80, 0x00];
    ack_non_shortest.truncate(3);
    vec![
        ("empty frame", String::new()),
        ("unknown tag", "ff".into()),
        ("hello without the magic", hex::encode(&wrong_magic)),
        (
            "hello whose oldest version is newer than its newest",
            hex::encode(b"\x01CHUM\x02\x01"),
        ),
        (
            "hello fields out of order",
            hex::encode(&fields_out_of_order),
        ),
        (
            "summary truncated",
            hex::encode(&Message::Summary(Summary::EMPTY).encode()[..5]),
        ),
        ("id list whose flag is 2", hex::encode(&bad_flag)),
        (
            "id list with a trailing byte",
            hex::encode([ids.as_slice(), &[0]].concat()),
        ),
        (
            "id list count not matching its bytes",
            hex::encode(&ids[..ids.len() - 1]),
        ),
        (
            "id list over the default limit of 65,536 ids",
            hex::encode(&too_many),
        ),
        (
            "ack with a non-shortest varint",
            hex::encode(&ack_non_shortest),
        ),
        ("in-sync with a trailing byte", "0300".into()),
        (
            "hello with a 15-byte journal id",
            hex::encode([hello.as_slice(), &[8, 15], &[0x11; 15]].concat()),
        ),
        (
            "hello naming one journal twice in its positions",
            hex::encode(
                [
                    hello.as_slice(),
                    &[9, 37, 2],
                    &[0x22; 16],
                    &[1],
                    &[0x22; 16],
                    &[2],
                ]
                .concat(),
            ),
        ),
        ("checkpoint without a position", "16".into()),
        ("objects with an invalid CID", "0900010300010203".into()),
        ("close reason not UTF-8", "0e0102fffe".into()),
        (
            "sketch of 4 cells (not a multiple of 3)",
            hex::encode(
                [
                    &[0x04][..],
                    &Message::Summary(Summary::EMPTY).encode()[1..],
                    &[4, 0],
                ]
                .concat(),
            ),
        ),
    ]
}

fn file() -> Value {
    let limits = Limits::default();
    json!({
        "description": "CHUM protocol version 1 messages (docs/protocol.md). Each valid case is one frame: the hex bytes and the fields they decode to (64-bit numbers as decimal strings; ids, sums and fingerprints as 16 hex digits; CIDs in their base32 string form). Each invalid case is a frame a receiver with the default limits must refuse.",
        "valid": valid().into_iter().map(|(name, message)| {
            let bytes = message.encode();
            assert_eq!(Message::decode(&bytes, &limits).unwrap(), message, "{name}");
            json!({"name": name, "message": fields(&message), "hex": hex::encode(bytes)})
        }).collect::<Vec<_>>(),
        "invalid": invalid().into_iter().map(|(name, hex)| json!({"name": name, "hex": hex})).collect::<Vec<_>>(),
    })
}

#[test]
fn protocol_vectors_match_the_file() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors/protocol.json");
    let fresh = serde_json::to_string_pretty(&file()).unwrap() + "\n";
    if std::env::var_os("CHUM_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path)
        .expect("test-vectors/protocol.json exists (CHUM_BLESS=1 writes it)");
    assert_eq!(
        stored, fresh,
        "test-vectors/protocol.json differs from what the code encodes"
    );
    // Read back from the file alone.
    let file: Value = serde_json::from_str(&stored).unwrap();
    let limits = Limits::default();
    let valid = file["valid"].as_array().unwrap();
    for case in valid {
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let message =
            Message::decode(&bytes, &limits).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
        assert_eq!(fields(&message), case["message"], "{}", case["name"]);
        assert_eq!(message.encode(), bytes, "{}: re-encoding", case["name"]);
    }
    let tags: std::collections::BTreeSet<&str> = valid
        .iter()
        .map(|c| c["message"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 22, "every message type has a vector: {tags:?}");
    for case in file["invalid"].as_array().unwrap() {
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        assert!(
            Message::decode(&bytes, &limits).is_err(),
            "{} must be refused",
            case["name"]
        );
    }
}
