//! The CHUM wire format: every message of the protocol, its encoding and its strict decoding.
//! `docs/protocol.md` specifies the same bytes for other implementations.
//!
//! A message is one *frame*: the transport delimits frames (a WebSocket binary message; a
//! 4-byte big-endian length on TCP), and a frame holds exactly one message — a tag byte, then
//! the body. Integers are shortest-form unsigned LEB128 varints unless stated; a short id is 8
//! bytes big-endian. Decoding refuses trailing bytes, truncation, non-shortest varints and any
//! count above the receiver's [`Limits`] before allocating for it.

use chum_object::Cid;

use crate::ids::{JournalId, Summary};
use crate::sketch::{Sketch, SketchError};
use crate::varint::{get_varint, put_varint};

/// The most journal positions a hello may carry (see [`Hello::holds`]).
pub const MAX_HOLDS: usize = 64;

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u64 = 1;
/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u64 = 1;
/// The 4 bytes after a hello's tag: a peer that does not start so is not speaking CHUM.
pub const MAGIC: [u8; 4] = *b"CHUM";

/// What a receiver accepts; every count in a frame is checked against these before anything
/// is allocated for it. Each side announces its own in its hello, and a sender keeps to the
/// peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame, in bytes.
    pub max_frame: usize,
    /// The most short ids in one id list or want message.
    pub max_ids: usize,
    /// The most objects in one batch.
    pub max_batch_objects: usize,
    /// The most cells in one sketch.
    pub max_sketch_cells: usize,
    /// The most synced type names in a hello.
    pub max_types: usize,
    /// The longest close reason text or type name, in bytes.
    pub max_text: usize,
}

/// The most objects in one batch this side takes by default: in a browser, fewer, so that
/// verifying and storing one batch stays well under a frame of the page's main thread.
#[cfg(not(target_arch = "wasm32"))]
const DEFAULT_BATCH_OBJECTS: usize = 4_096;
#[cfg(target_arch = "wasm32")]
const DEFAULT_BATCH_OBJECTS: usize = 512;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: 4 << 20,
            max_ids: 1 << 16,
            max_batch_objects: DEFAULT_BATCH_OBJECTS,
            max_sketch_cells: 1 << 18,
            max_types: 1_024,
            max_text: 1_024,
        }
    }
}

/// Why a session ends; sent in a [`Message::Close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// Done by choice (the application closed the session).
    Normal,
    /// The peer sent something the protocol does not allow at that point, or malformed bytes.
    ProtocolViolation,
    /// No protocol version both sides speak.
    IncompatibleVersion,
    /// The peer exceeded a limit (frame size, counts, window).
    LimitExceeded,
    /// Nothing arrived for too long.
    Timeout,
    /// The peer sent an object that failed verification.
    InvalidObject,
    /// The local store failed; the session cannot continue.
    StoreFailure,
    /// The peer's credentials were refused (certificate, revocation, invitation, policy).
    Unauthorized,
    /// A code this build does not know (from a newer peer).
    Other(u64),
}

impl CloseCode {
    /// The code's number on the wire.
    pub fn code(self) -> u64 {
        match self {
            CloseCode::Normal => 0,
            CloseCode::ProtocolViolation => 1,
            CloseCode::IncompatibleVersion => 2,
            CloseCode::LimitExceeded => 3,
            CloseCode::Timeout => 4,
            CloseCode::InvalidObject => 5,
            CloseCode::StoreFailure => 6,
            CloseCode::Unauthorized => 7,
            CloseCode::Other(code) => code,
        }
    }

    /// The code for a number from the wire.
    pub fn from_code(code: u64) -> CloseCode {
        match code {
            0 => CloseCode::Normal,
            1 => CloseCode::ProtocolViolation,
            2 => CloseCode::IncompatibleVersion,
            3 => CloseCode::LimitExceeded,
            4 => CloseCode::Timeout,
            5 => CloseCode::InvalidObject,
            6 => CloseCode::StoreFailure,
            7 => CloseCode::Unauthorized,
            other => CloseCode::Other(other),
        }
    }
}

/// The first message each side sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The oldest protocol version the sender speaks.
    pub min_version: u64,
    /// The newest protocol version the sender speaks.
    pub max_version: u64,
    /// Capability bits (see [`capability`]; unknown bits are ignored).
    pub capabilities: u64,
    /// What the sender accepts.
    pub limits: Limits,
    /// Batches the sender lets the peer have in flight before acknowledgement.
    pub window: u64,
    /// The types the sender syncs (informative in version 1; empty = every shared object).
    pub types: Vec<String>,
    /// The sender's journal, when it offers the journal fast path: the id of the log in which
    /// its store numbers every object that joins its shared set.
    pub journal: Option<JournalId>,
    /// The sender's version vector over journals: for each listed journal, the position up to
    /// which the sender holds every object of it (at most [`MAX_HOLDS`] entries).
    pub holds: Vec<(JournalId, u64)>,
    /// Object bytes (CIDs and object bytes of the batches) the sender lets the peer have in
    /// flight before acknowledgement, beside [`Hello::window`]'s count; `None`: no bound
    /// beyond the count (a peer that does not send the field).
    pub window_bytes: Option<u64>,
}

/// Capability bits of [`Hello::capabilities`].
pub mod capability {
    /// An initiator offering it sends `WantAll` right behind a summary that counts no
    /// objects, without waiting for the sketch; a responder that knows the bit answers such a
    /// summary from such an initiator with its own `Summary` (for the count) instead of a
    /// sketch, and sends everything. (The initiator needs nothing from the responder's hello,
    /// which may not have arrived when it sends its summary.)
    pub const EARLY_WANT_ALL: u64 = 1;
    /// The sender takes an [`Ack`](super::Message::Ack) as acknowledging every batch up to
    /// its number (any batch in flight, not only the oldest), so a peer receiving live
    /// batches may acknowledge several with one message (see
    /// [`Config::ack_delay`](crate::session::Config::ack_delay)).
    pub const CUMULATIVE_ACK: u64 = 2;
}

impl Hello {
    /// The hello of this build: the versions it speaks, no capabilities, and these limits,
    /// window and synced types.
    pub fn new(limits: Limits, window: u64, types: Vec<String>) -> Hello {
        Hello {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            capabilities: 0,
            limits,
            window,
            types,
            journal: None,
            holds: Vec::new(),
            window_bytes: None,
        }
    }
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Versions, capabilities, limits and synced types.
    Hello(Hello),
    /// The initiator's set summary.
    Summary(Summary),
    /// The responder's answer when the summaries are equal: nothing to reconcile.
    InSync,
    /// A sketch of the sender's set, with its summary.
    Sketch {
        /// The sender's set summary.
        summary: Summary,
        /// The sketch.
        sketch: Sketch,
    },
    /// Asks for a sketch of `cells` cells hashed with `salt`.
    SketchRequest {
        /// Cells.
        cells: u64,
        /// Salt.
        salt: u64,
    },
    /// Asks for the next chunk of the peer's short ids, ascending, after `after`.
    ListRequest {
        /// Exclusive lower bound; `None` from the start.
        after: Option<u64>,
    },
    /// A chunk of the sender's short ids, ascending; `last` ends the list.
    IdList {
        /// Whether this is the final chunk.
        last: bool,
        /// Short ids, ascending, after the requested bound.
        ids: Vec<u64>,
    },
    /// Asks for the next chunk of the peer's full CIDs, ascending by bytes, after `after` (the
    /// fallback when short ids collided).
    CidListRequest {
        /// Exclusive lower bound; `None` from the start.
        after: Option<Cid>,
    },
    /// A chunk of the sender's CIDs, ascending; `last` ends the list.
    CidList {
        /// Whether this is the final chunk.
        last: bool,
        /// CIDs, strictly ascending, after the requested bound.
        cids: Vec<Cid>,
    },
    /// The sender holds nothing: send every shared object (instead of a list and a want).
    WantAll,
    /// Send these objects if you hold them (any time after the hellos): the targets of links
    /// the sender received objects with and lacks.
    Fetch {
        /// The CIDs wanted.
        cids: Vec<Cid>,
    },
    /// Objects the sender wants, by short id; `last` ends the want list.
    Want {
        /// Whether this is the final chunk.
        last: bool,
        /// Short ids.
        ids: Vec<u64>,
    },
    /// A batch of objects, numbered by the sender from 0 upwards.
    Objects {
        /// The batch's sequence number.
        seq: u64,
        /// CIDs with their bytes.
        objects: Vec<(Cid, Vec<u8>)>,
    },
    /// The receiver has durably stored every object of batch `seq` (and of all before it).
    Ack {
        /// The batch.
        seq: u64,
    },
    /// The sender has sent every object the reconciliation found the peer lacks.
    SendDone,
    /// The responder's answer to a summary that differs when both sides hold a journal
    /// position of the other's (journal fast path): instead of a sketch, each side now sends
    /// its journal's entries after the position the other holds, then `SendDone`; the
    /// initiator then sends its summary again.
    Resume,
    /// The sender's summary matched the receiver's: the receiver holds every object of the
    /// sender's journal up to `position` (a position the receiver may claim in later hellos).
    Checkpoint {
        /// The sender's journal position as of its summary.
        position: u64,
    },
    /// Sent once, before the hello, by an instance that admitted a peer joining with an
    /// invitation: the certificate it issued for the joining instance.
    Welcome {
        /// The certificate object's bytes.
        certificate: Vec<u8>,
    },
    /// Objects of batch `seq` that the receiver refused (it stored the rest, and acknowledges
    /// the batch after this message): e.g. objects that break its recipes. Not held by it.
    Refused {
        /// The batch.
        seq: u64,
        /// The refused objects.
        cids: Vec<Cid>,
        /// Why.
        reason: String,
    },
    /// Keepalive request.
    Ping,
    /// Keepalive answer.
    Pong,
    /// The sender ends the session.
    Close {
        /// Why.
        code: CloseCode,
        /// Human-readable detail.
        reason: String,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes are not a well-formed message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A count or size exceeds the receiver's limits.
    #[error("frame exceeds a limit: {0}")]
    TooLarge(String),
    /// The message type is unknown to this version.
    #[error("unknown message tag {0:#04x}")]
    UnknownTag(u8),
}

impl From<SketchError> for WireError {
    fn from(error: SketchError) -> WireError {
        match error {
            SketchError::TooLarge { .. } => WireError::TooLarge(error.to_string()),
            other => WireError::Malformed(other.to_string()),
        }
    }
}

mod tag {
    pub const HELLO: u8 = 0x01;
    pub const SUMMARY: u8 = 0x02;
    pub const IN_SYNC: u8 = 0x03;
    pub const SKETCH: u8 = 0x04;
    pub const SKETCH_REQUEST: u8 = 0x05;
    pub const LIST_REQUEST: u8 = 0x06;
    pub const ID_LIST: u8 = 0x07;
    pub const WANT: u8 = 0x08;
    pub const OBJECTS: u8 = 0x09;
    pub const ACK: u8 = 0x0a;
    pub const SEND_DONE: u8 = 0x0b;
    pub const PING: u8 = 0x0c;
    pub const PONG: u8 = 0x0d;
    pub const CLOSE: u8 = 0x0e;
    pub const CID_LIST_REQUEST: u8 = 0x0f;
    pub const CID_LIST: u8 = 0x10;
    pub const WANT_ALL: u8 = 0x11;
    pub const FETCH: u8 = 0x12;
    pub const WELCOME: u8 = 0x13;
    pub const REFUSED: u8 = 0x14;
    pub const RESUME: u8 = 0x15;
    pub const CHECKPOINT: u8 = 0x16;
}

/// Hello field keys (ascending on the wire; unknown keys are skipped).
mod field {
    pub const CAPABILITIES: u64 = 1;
    pub const MAX_FRAME: u64 = 2;
    pub const MAX_IDS: u64 = 3;
    pub const MAX_BATCH_OBJECTS: u64 = 4;
    pub const MAX_SKETCH_CELLS: u64 = 5;
    pub const WINDOW: u64 = 6;
    pub const TYPES: u64 = 7;
    pub const JOURNAL: u64 = 8;
    pub const HOLDS: u64 = 9;
    pub const WINDOW_BYTES: u64 = 10;
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_summary(out: &mut Vec<u8>, summary: &Summary) {
    put_varint(out, summary.count);
    out.extend_from_slice(&summary.sum.to_be_bytes());
    out.extend_from_slice(&summary.fingerprint.to_be_bytes());
}

fn put_ids(out: &mut Vec<u8>, last: bool, ids: &[u64]) {
    out.push(u8::from(last));
    put_varint(out, ids.len() as u64);
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
}

impl Message {
    /// The message's encoding (one frame's payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::Hello(hello) => {
                out.push(tag::HELLO);
                out.extend_from_slice(&MAGIC);
                put_varint(out, hello.min_version);
                put_varint(out, hello.max_version);
                let mut field_value = Vec::new();
                let put_field = |out: &mut Vec<u8>, key: u64, value: &[u8]| {
                    put_varint(out, key);
                    put_bytes(out, value);
                };
                let numbers = [
                    (field::CAPABILITIES, hello.capabilities),
                    (field::MAX_FRAME, hello.limits.max_frame as u64),
                    (field::MAX_IDS, hello.limits.max_ids as u64),
                    (
                        field::MAX_BATCH_OBJECTS,
                        hello.limits.max_batch_objects as u64,
                    ),
                    (
                        field::MAX_SKETCH_CELLS,
                        hello.limits.max_sketch_cells as u64,
                    ),
                    (field::WINDOW, hello.window),
                ];
                for (key, value) in numbers {
                    field_value.clear();
                    put_varint(&mut field_value, value);
                    put_field(out, key, &field_value);
                }
                field_value.clear();
                put_varint(&mut field_value, hello.types.len() as u64);
                for name in &hello.types {
                    put_bytes(&mut field_value, name.as_bytes());
                }
                put_field(out, field::TYPES, &field_value);
                if let Some(journal) = &hello.journal {
                    put_field(out, field::JOURNAL, journal);
                }
                if !hello.holds.is_empty() {
                    field_value.clear();
                    put_varint(&mut field_value, hello.holds.len() as u64);
                    for (journal, position) in &hello.holds {
                        field_value.extend_from_slice(journal);
                        put_varint(&mut field_value, *position);
                    }
                    put_field(out, field::HOLDS, &field_value);
                }
                if let Some(bytes) = hello.window_bytes {
                    field_value.clear();
                    put_varint(&mut field_value, bytes);
                    put_field(out, field::WINDOW_BYTES, &field_value);
                }
            }
            Message::Summary(summary) => {
                out.push(tag::SUMMARY);
                put_summary(out, summary);
            }
            Message::InSync => out.push(tag::IN_SYNC),
            Message::Sketch { summary, sketch } => {
                out.push(tag::SKETCH);
                put_summary(out, summary);
                out.extend_from_slice(&sketch.to_bytes());
            }
            Message::SketchRequest { cells, salt } => {
                out.push(tag::SKETCH_REQUEST);
                put_varint(out, *cells);
                put_varint(out, *salt);
            }
            Message::ListRequest { after } => {
                out.push(tag::LIST_REQUEST);
                if let Some(after) = after {
                    out.extend_from_slice(&after.to_be_bytes());
                }
            }
            Message::CidListRequest { after } => {
                out.push(tag::CID_LIST_REQUEST);
                if let Some(after) = after {
                    out.extend_from_slice(after.as_bytes());
                }
            }
            Message::CidList { last, cids } => {
                out.push(tag::CID_LIST);
                out.push(u8::from(*last));
                put_varint(out, cids.len() as u64);
                for cid in cids {
                    put_bytes(out, cid.as_bytes());
                }
            }
            Message::IdList { last, ids } => {
                out.push(tag::ID_LIST);
                put_ids(out, *last, ids);
            }
            Message::Want { last, ids } => {
                out.push(tag::WANT);
                put_ids(out, *last, ids);
            }
            Message::Objects { seq, objects } => {
                out.push(tag::OBJECTS);
                put_varint(out, *seq);
                put_varint(out, objects.len() as u64);
                for (cid, bytes) in objects {
                    put_bytes(out, cid.as_bytes());
                    put_bytes(out, bytes);
                }
            }
            Message::Ack { seq } => {
                out.push(tag::ACK);
                put_varint(out, *seq);
            }
            Message::SendDone => out.push(tag::SEND_DONE),
            Message::Resume => out.push(tag::RESUME),
            Message::Checkpoint { position } => {
                out.push(tag::CHECKPOINT);
                put_varint(out, *position);
            }
            Message::WantAll => out.push(tag::WANT_ALL),
            Message::Fetch { cids } => {
                out.push(tag::FETCH);
                put_varint(out, cids.len() as u64);
                for cid in cids {
                    put_bytes(out, cid.as_bytes());
                }
            }
            Message::Welcome { certificate } => {
                out.push(tag::WELCOME);
                put_bytes(out, certificate);
            }
            Message::Refused { seq, cids, reason } => {
                out.push(tag::REFUSED);
                put_varint(out, *seq);
                put_varint(out, cids.len() as u64);
                for cid in cids {
                    put_bytes(out, cid.as_bytes());
                }
                put_bytes(out, reason.as_bytes());
            }
            Message::Ping => out.push(tag::PING),
            Message::Pong => out.push(tag::PONG),
            Message::Close { code, reason } => {
                out.push(tag::CLOSE);
                put_varint(out, code.code());
                put_bytes(out, reason.as_bytes());
            }
        }
    }

    /// Appends the message as a frame of an encrypted record stream: its length (varint),
    /// then its encoding — written in place, without an intermediate copy of the objects of a
    /// batch.
    pub fn encode_framed_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::Objects { seq, objects } => {
                let len = 1
                    + varint_len(*seq)
                    + varint_len(objects.len() as u64)
                    + objects
                        .iter()
                        .map(|(cid, bytes)| {
                            let cid = cid.as_bytes().len();
                            varint_len(cid as u64)
                                + cid
                                + varint_len(bytes.len() as u64)
                                + bytes.len()
                        })
                        .sum::<usize>();
                out.reserve(len + 10);
                put_varint(out, len as u64);
                let start = out.len();
                self.encode_into(out);
                debug_assert_eq!(out.len() - start, len);
            }
            other => {
                let frame = other.encode();
                put_varint(out, frame.len() as u64);
                out.extend_from_slice(&frame);
            }
        }
    }

    /// Decodes one frame under `limits`.
    pub fn decode(frame: &[u8], limits: &Limits) -> Result<Message, WireError> {
        if frame.len() > limits.max_frame {
            return Err(WireError::TooLarge(format!(
                "frame of {} bytes, limit {}",
                frame.len(),
                limits.max_frame
            )));
        }
        let Some((&tag, body)) = frame.split_first() else {
            return Err(malformed("empty frame"));
        };
        let mut input = body;
        let message = match tag {
            tag::HELLO => Message::Hello(decode_hello(&mut input, limits)?),
            tag::SUMMARY => Message::Summary(get_summary(&mut input)?),
            tag::IN_SYNC => Message::InSync,
            tag::SKETCH => {
                let summary = get_summary(&mut input)?;
                let sketch = Sketch::from_bytes(input, limits.max_sketch_cells)?;
                input = &[];
                Message::Sketch { summary, sketch }
            }
            tag::SKETCH_REQUEST => Message::SketchRequest {
                cells: varint(&mut input)?,
                salt: varint(&mut input)?,
            },
            tag::LIST_REQUEST => Message::ListRequest {
                after: if input.is_empty() {
                    None
                } else {
                    Some(get_u64(&mut input)?)
                },
            },
            tag::CID_LIST_REQUEST => {
                let after = if input.is_empty() {
                    None
                } else {
                    let cid = Cid::from_bytes(input)
                        .map_err(|error| malformed(&format!("invalid CID: {error}")))?;
                    input = &[];
                    Some(cid)
                };
                Message::CidListRequest { after }
            }
            tag::CID_LIST => Message::CidList {
                last: get_flag(&mut input)?,
                cids: get_cids(&mut input, limits)?,
            },
            tag::ID_LIST => {
                let (last, ids) = get_ids(&mut input, limits)?;
                Message::IdList { last, ids }
            }
            tag::WANT => {
                let (last, ids) = get_ids(&mut input, limits)?;
                Message::Want { last, ids }
            }
            tag::OBJECTS => {
                let seq = varint(&mut input)?;
                let count = varint(&mut input)?;
                if count > limits.max_batch_objects as u64 {
                    return Err(WireError::TooLarge(format!(
                        "batch of {count} objects, limit {}",
                        limits.max_batch_objects
                    )));
                }
                // Each object takes at least 2 bytes (two lengths).
                if count.saturating_mul(2) > input.len() as u64 {
                    return Err(malformed("truncated batch"));
                }
                let mut objects = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let cid = Cid::from_bytes(get_bytes(&mut input)?)
                        .map_err(|error| malformed(&format!("invalid CID: {error}")))?;
                    let bytes = get_bytes(&mut input)?.to_vec();
                    objects.push((cid, bytes));
                }
                Message::Objects { seq, objects }
            }
            tag::ACK => Message::Ack {
                seq: varint(&mut input)?,
            },
            tag::SEND_DONE => Message::SendDone,
            tag::RESUME => Message::Resume,
            tag::CHECKPOINT => Message::Checkpoint {
                position: varint(&mut input)?,
            },
            tag::WANT_ALL => Message::WantAll,
            tag::FETCH => Message::Fetch {
                cids: get_cids(&mut input, limits)?,
            },
            tag::WELCOME => Message::Welcome {
                certificate: get_bytes(&mut input)?.to_vec(),
            },
            tag::REFUSED => Message::Refused {
                seq: varint(&mut input)?,
                cids: get_cids(&mut input, limits)?,
                reason: get_text(&mut input, limits)?,
            },
            tag::PING => Message::Ping,
            tag::PONG => Message::Pong,
            tag::CLOSE => {
                let code = CloseCode::from_code(varint(&mut input)?);
                let reason = get_text(&mut input, limits)?;
                Message::Close { code, reason }
            }
            other => return Err(WireError::UnknownTag(other)),
        };
        if !input.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(message)
    }
}

/// Bytes of `n` as a varint.
fn varint_len(n: u64) -> usize {
    (64 - n.max(1).leading_zeros() as usize).div_ceil(7)
}

fn malformed(what: &str) -> WireError {
    WireError::Malformed(what.to_string())
}

fn varint(input: &mut &[u8]) -> Result<u64, WireError> {
    get_varint(input).map_err(WireError::from)
}

fn get_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = varint(input)?;
    if len > input.len() as u64 {
        return Err(malformed("length beyond the end of the frame"));
    }
    let (head, rest) = input.split_at(len as usize);
    *input = rest;
    Ok(head)
}

fn get_text(input: &mut &[u8], limits: &Limits) -> Result<String, WireError> {
    let bytes = get_bytes(input)?;
    if bytes.len() > limits.max_text {
        return Err(WireError::TooLarge(format!(
            "text of {} bytes, limit {}",
            bytes.len(),
            limits.max_text
        )));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("text is not UTF-8"))
}

fn get_u64(input: &mut &[u8]) -> Result<u64, WireError> {
    if input.len() < 8 {
        return Err(malformed("truncated"));
    }
    let (head, rest) = input.split_at(8);
    *input = rest;
    let mut array = [0u8; 8];
    array.copy_from_slice(head);
    Ok(u64::from_be_bytes(array))
}

/// A 16-byte journal id; `whole`: the id must be all that is left.
fn get_journal_id(input: &mut &[u8], whole: bool) -> Result<JournalId, WireError> {
    let Some((id, rest)) = input.split_first_chunk::<16>() else {
        return Err(malformed("truncated journal id"));
    };
    if whole && !rest.is_empty() {
        return Err(malformed("trailing bytes in a hello field"));
    }
    *input = rest;
    Ok(*id)
}

fn get_summary(input: &mut &[u8]) -> Result<Summary, WireError> {
    Ok(Summary {
        count: varint(input)?,
        sum: get_u64(input)?,
        fingerprint: get_u64(input)?,
    })
}

/// A varint count, then that many CIDs as bytes.
fn get_cids(input: &mut &[u8], limits: &Limits) -> Result<Vec<Cid>, WireError> {
    let count = varint(input)?;
    if count > limits.max_ids as u64 {
        return Err(WireError::TooLarge(format!(
            "{count} CIDs, limit {}",
            limits.max_ids
        )));
    }
    if count.saturating_mul(2) > input.len() as u64 {
        return Err(malformed("truncated CID list"));
    }
    let mut cids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        cids.push(
            Cid::from_bytes(get_bytes(input)?)
                .map_err(|error| malformed(&format!("invalid CID: {error}")))?,
        );
    }
    Ok(cids)
}

fn get_flag(input: &mut &[u8]) -> Result<bool, WireError> {
    match input.split_first() {
        Some((0, rest)) => {
            *input = rest;
            Ok(false)
        }
        Some((1, rest)) => {
            *input = rest;
            Ok(true)
        }
        Some(_) => Err(malformed("flag is neither 0 nor 1")),
        None => Err(malformed("truncated")),
    }
}

fn get_ids(input: &mut &[u8], limits: &Limits) -> Result<(bool, Vec<u64>), WireError> {
    let last = get_flag(input)?;
    let count = varint(input)?;
    if count > limits.max_ids as u64 {
        return Err(WireError::TooLarge(format!(
            "{count} ids, limit {}",
            limits.max_ids
        )));
    }
    if count.saturating_mul(8) != input.len() as u64 {
        return Err(malformed("id count does not match the frame length"));
    }
    let mut ids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        ids.push(get_u64(input)?);
    }
    Ok((last, ids))
}

fn decode_hello(input: &mut &[u8], limits: &Limits) -> Result<Hello, WireError> {
    if input.get(..4) != Some(&MAGIC[..]) {
        return Err(malformed("not a CHUM hello (magic bytes missing)"));
    }
    *input = &input[4..];
    let min_version = varint(input)?;
    let max_version = varint(input)?;
    if min_version > max_version {
        return Err(malformed("hello's oldest version is newer than its newest"));
    }
    // Absent fields take the protocol's defaults.
    let defaults = Limits::default();
    let mut hello = Hello {
        min_version,
        max_version,
        capabilities: 0,
        limits: defaults,
        window: 8,
        types: Vec::new(),
        journal: None,
        holds: Vec::new(),
        window_bytes: None,
    };
    let mut previous_key = 0u64;
    while !input.is_empty() {
        let key = varint(input)?;
        if key <= previous_key {
            return Err(malformed("hello fields out of order or repeated"));
        }
        previous_key = key;
        let mut value = get_bytes(input)?;
        let number = |value: &mut &[u8]| -> Result<u64, WireError> {
            let number = varint(value)?;
            if !value.is_empty() {
                return Err(malformed("trailing bytes in a hello field"));
            }
            Ok(number)
        };
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        match key {
            field::CAPABILITIES => hello.capabilities = number(&mut value)?,
            field::MAX_FRAME => hello.limits.max_frame = size(number(&mut value)?),
            field::MAX_IDS => hello.limits.max_ids = size(number(&mut value)?),
            field::MAX_BATCH_OBJECTS => hello.limits.max_batch_objects = size(number(&mut value)?),
            field::MAX_SKETCH_CELLS => hello.limits.max_sketch_cells = size(number(&mut value)?),
            field::WINDOW => hello.window = number(&mut value)?,
            field::TYPES => {
                let count = varint(&mut value)?;
                if count > limits.max_types as u64 {
                    return Err(WireError::TooLarge(format!(
                        "{count} types, limit {}",
                        limits.max_types
                    )));
                }
                for _ in 0..count {
                    hello.types.push(get_text(&mut value, limits)?);
                }
                if !value.is_empty() {
                    return Err(malformed("trailing bytes in a hello field"));
                }
            }
            field::JOURNAL => hello.journal = Some(get_journal_id(&mut value, true)?),
            field::HOLDS => {
                let count = varint(&mut value)?;
                if count > MAX_HOLDS as u64 {
                    return Err(WireError::TooLarge(format!(
                        "{count} journal positions, limit {MAX_HOLDS}"
                    )));
                }
                for _ in 0..count {
                    let journal = get_journal_id(&mut value, false)?;
                    let position = varint(&mut value)?;
                    if hello.holds.iter().any(|(seen, _)| *seen == journal) {
                        return Err(malformed("a journal listed twice in a hello"));
                    }
                    hello.holds.push((journal, position));
                }
                if !value.is_empty() {
                    return Err(malformed("trailing bytes in a hello field"));
                }
            }
            field::WINDOW_BYTES => hello.window_bytes = Some(number(&mut value)?),
            _ => {} // a newer peer's field: skipped
        }
    }
    Ok(hello)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chum_object::Codec;

    use super::*;

    fn all_messages() -> Vec<Message> {
        let mut sketch = Sketch::with_salt(6, 7);
        sketch.insert(42);
        vec![
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                capabilities: 0,
                limits: Limits::default(),
                window: 8,
                types: vec!["Message".into(), "Conversation".into()],
                journal: Some([7; 16]),
                holds: vec![([1; 16], 0), ([2; 16], 300)],
                window_bytes: Some(32 << 20),
            }),
            Message::Summary(Summary {
                count: 3,
                sum: 5,
                fingerprint: 9,
            }),
            Message::InSync,
            Message::Sketch {
                summary: Summary::EMPTY,
                sketch,
            },
            Message::SketchRequest {
                cells: 288,
                salt: 1,
            },
            Message::ListRequest { after: None },
            Message::ListRequest { after: Some(9) },
            Message::CidListRequest { after: None },
            Message::CidListRequest {
                after: Some(Cid::hash(Codec::DagCbor, b"y")),
            },
            Message::CidList {
                last: false,
                cids: vec![Cid::hash(Codec::Raw, b"x"), Cid::hash(Codec::Raw, b"z")],
            },
            Message::IdList {
                last: true,
                ids: vec![1, 2, u64::MAX],
            },
            Message::Want {
                last: false,
                ids: vec![7],
            },
            Message::Objects {
                seq: 300,
                objects: vec![(Cid::hash(Codec::Raw, b"x"), b"x".to_vec())],
            },
            Message::Ack { seq: 300 },
            Message::SendDone,
            Message::Resume,
            Message::Checkpoint { position: 1 << 33 },
            Message::WantAll,
            Message::Fetch {
                cids: vec![Cid::hash(Codec::Raw, b"x")],
            },
            Message::Welcome {
                certificate: vec![0xa0],
            },
            Message::Refused {
                seq: 4,
                cids: vec![Cid::hash(Codec::Raw, b"x")],
                reason: "breaks its recipe".into(),
            },
            Message::Ping,
            Message::Pong,
            Message::Close {
                code: CloseCode::LimitExceeded,
                reason: "window exceeded".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in all_messages() {
            let bytes = message.encode();
            assert_eq!(
                Message::decode(&bytes, &Limits::default()).unwrap(),
                message
            );
            let mut framed = vec![7];
            message.encode_framed_into(&mut framed);
            let mut expected = vec![7];
            put_varint(&mut expected, bytes.len() as u64);
            expected.extend_from_slice(&bytes);
            assert_eq!(framed, expected, "framed in place");
        }
        for n in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, n);
            assert_eq!(varint_len(n), bytes.len(), "{n}");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        for message in all_messages() {
            let bytes = message.encode();
            for cut in 0..bytes.len() {
                // Some prefixes are other valid messages (a hello without its later fields, a
                // list request without its bound), never the same one.
                if let Ok(decoded) = Message::decode(&bytes[..cut], &Limits::default()) {
                    assert_ne!(decoded, message, "cut {cut}");
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            if !matches!(message, Message::Hello(_)) {
                assert!(Message::decode(&longer, &Limits::default()).is_err());
            }
        }
    }

    #[test]
    fn counts_beyond_the_limits_are_refused_before_allocating() {
        let limits = Limits {
            max_ids: 2,
            ..Limits::default()
        };
        let want = Message::Want {
            last: true,
            ids: vec![1, 2, 3],
        };
        assert!(matches!(
            Message::decode(&want.encode(), &limits),
            Err(WireError::TooLarge(_))
        ));
        // A batch claiming 2^40 objects in a 10-byte frame.
        let mut frame = vec![tag::OBJECTS, 0];
        put_varint(&mut frame, 1 << 40);
        assert!(Message::decode(&frame, &Limits::default()).is_err());
    }

    #[test]
    fn a_newer_peers_unknown_hello_fields_are_skipped() {
        let mut bytes = all_messages()[0].encode();
        put_varint(&mut bytes, 99);
        put_bytes(&mut bytes, b"future");
        assert!(matches!(
            Message::decode(&bytes, &Limits::default()).unwrap(),
            Message::Hello(_)
        ));
    }
}
