//! The encrypted record channel: the Noise XX handshake, admission, and sealing and opening
//! records.

use std::time::Duration;

use super::{Fail, Output, Pending, Phase, Request, Role, Session, violation};
use crate::noise::{self, MAX_RECORD, MAX_RECORD_PLAINTEXT};
use crate::wire::{CloseCode, Message};

/// The Noise state of an encrypted session.
#[derive(Debug)]
pub(super) struct Channel {
    pub(super) handshake: Option<Box<snow::HandshakeState>>,
    pub(super) transport: Option<Box<snow::TransportState>>,
    /// This side's handshake payload, until sent.
    pub(super) payload: Vec<u8>,
    /// The driver admitted the peer.
    pub(super) admitted: bool,
    /// Records that arrived while the driver was deciding (bounded).
    pub(super) held: Vec<Vec<u8>>,
    /// Plaintext frames (length-prefixed) not yet sealed into records.
    pub(super) outbox: Vec<u8>,
    /// Decrypted stream bytes not yet parsed into frames: the first `filled` bytes (the rest
    /// is room, kept to avoid zeroing it again for every record).
    pub(super) inbox: Vec<u8>,
    pub(super) filled: usize,
}

impl Channel {
    /// The handshake is complete: switch to transport mode.
    fn start_transport(&mut self) -> Result<(), Fail> {
        let Some(state) = self.handshake.take() else {
            return Err(violation("no handshake in progress"));
        };
        let transport = state.into_transport_mode().map_err(|error| {
            Fail(
                CloseCode::ProtocolViolation,
                format!("handshake failed: {error}"),
            )
        })?;
        self.transport = Some(Box::new(transport));
        Ok(())
    }
}

/// Bytes of records held while the driver decides on admission.
const MAX_HELD_BYTES: usize = 1 << 20;

/// The shortest Noise XX answer a responder can send (its ephemeral key, its encrypted static
/// key with tag, and the payload's tag): anything shorter cannot be one.
const MIN_RESPONDER_MESSAGE: usize = 32 + 48 + 16;

impl Session {
    pub(super) fn write_handshake(&mut self, payload: &[u8]) -> Result<(), Fail> {
        let Some(state) = self.channel.as_mut().and_then(|c| c.handshake.as_mut()) else {
            return Err(violation("no handshake in progress"));
        };
        let mut message = vec![0u8; MAX_RECORD];
        let len = state
            .write_message(payload, &mut message)
            .map_err(|error| {
                Fail(
                    CloseCode::ProtocolViolation,
                    format!("handshake failed: {error}"),
                )
            })?;
        message.truncate(len);
        self.outputs.push_back(Output::Transmit(message));
        Ok(())
    }

    /// One handshake message from the peer (or a record that arrived while the driver decides
    /// whether to admit the peer).
    pub(super) fn on_handshake(&mut self, frame: Vec<u8>) -> Result<(), Fail> {
        let initiator = self.config.role == Role::Initiator;
        let handshaking = self
            .channel
            .as_ref()
            .is_some_and(|channel| channel.transport.is_none() && channel.handshake.is_some());
        if initiator && handshaking && frame.len() < MIN_RESPONDER_MESSAGE {
            // Shorter than any Noise answer: a responder that refuses before the handshake
            // (e.g. busy) says why in a plaintext close.
            if let Ok(Message::Close { code, reason }) =
                Message::decode(&frame, &self.config.limits)
            {
                self.finish(code, reason, true);
                return Ok(());
            }
        }
        let deciding = self.has_pending(Pending::Admit);
        let Some(channel) = self.channel.as_mut() else {
            return Err(violation("no handshake in progress"));
        };
        if channel.transport.is_some() || deciding {
            // The responder has read the last handshake message and awaits the driver; the
            // initiator may already send its first records. Hold them, bounded.
            if !initiator && channel.transport.is_some() {
                let held: usize = channel.held.iter().map(Vec::len).sum();
                if held + frame.len() > MAX_HELD_BYTES {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        "too much data before authentication".into(),
                    ));
                }
                channel.held.push(frame);
                return Ok(());
            }
            return Err(violation("data before the handshake completed"));
        }
        let Some(state) = channel.handshake.as_mut() else {
            return Err(violation("no handshake in progress"));
        };
        if frame.len() > MAX_RECORD {
            return Err(Fail(
                CloseCode::LimitExceeded,
                "handshake message over 65,535 bytes".into(),
            ));
        }
        let mut payload = vec![0u8; MAX_RECORD];
        let len = state.read_message(&frame, &mut payload).map_err(|error| {
            Fail(
                CloseCode::ProtocolViolation,
                format!("handshake failed: {error}"),
            )
        })?;
        payload.truncate(len);
        if payload.len() > noise::MAX_PAYLOAD {
            return Err(Fail(
                CloseCode::LimitExceeded,
                "handshake payload over the limit".into(),
            ));
        }
        if state.is_my_turn() && !initiator && !state.is_handshake_finished() {
            // Responder after → e: ← e, ee, s, es, with our credentials.
            if !payload.is_empty() {
                return Err(violation("the first handshake message carries no payload"));
            }
            let ours = std::mem::take(&mut channel.payload);
            return self.write_handshake(&ours);
        }
        let remote_static: [u8; 32] = state
            .get_remote_static()
            .and_then(|key| key.try_into().ok())
            .ok_or_else(|| violation("the handshake carried no static key"))?;
        if state.is_handshake_finished() {
            // Responder after → s, se: the channel is up; nothing flows until admission.
            channel.start_transport()?;
        }
        self.request(
            Request::Admit {
                payload,
                remote_static,
            },
            Pending::Admit,
        );
        Ok(())
    }

    /// The driver admitted the peer.
    pub(super) fn on_admitted(&mut self, welcome: Option<Vec<u8>>) -> Result<(), Fail> {
        let initiator = self.config.role == Role::Initiator;
        if initiator {
            // → s, se with our credentials, then the channel is up.
            let ours = self
                .channel
                .as_mut()
                .map(|channel| std::mem::take(&mut channel.payload))
                .unwrap_or_default();
            self.write_handshake(&ours)?;
            let Some(channel) = self.channel.as_mut() else {
                return Err(violation("no handshake in progress"));
            };
            channel.start_transport()?;
        }
        let Some(channel) = self.channel.as_mut() else {
            return Err(violation("no handshake in progress"));
        };
        channel.admitted = true;
        let held = std::mem::take(&mut channel.held);
        if let Some(certificate) = welcome {
            self.phase = Phase::Hello;
            self.transmit(&Message::Welcome { certificate });
        }
        self.start();
        for record in held {
            self.on_record(self.last_heard, &record)?;
        }
        Ok(())
    }

    /// One encrypted record: decrypt, then handle every frame it completes.
    pub(super) fn on_record(&mut self, now: Duration, record: &[u8]) -> Result<(), Fail> {
        let max_frame = self.config.limits.max_frame;
        let Some(channel) = self.channel.as_mut() else {
            return Err(violation("no channel"));
        };
        let Some(transport) = channel.transport.as_mut() else {
            return Err(violation("no channel"));
        };
        if record.len() > MAX_RECORD {
            return Err(Fail(
                CloseCode::LimitExceeded,
                "record over 65,535 bytes".into(),
            ));
        }
        let start = channel.filled;
        if channel.inbox.len() < start + record.len() {
            channel.inbox.resize(start + record.len(), 0);
        }
        let len = transport
            .read_message(record, &mut channel.inbox[start..])
            .map_err(|_| {
                Fail(
                    CloseCode::ProtocolViolation,
                    "a record failed to decrypt".into(),
                )
            })?;
        channel.filled = start + len;
        let filled = channel.filled;
        let mut frames = Vec::new();
        let mut at = 0;
        loop {
            let mut rest = &channel.inbox[at..filled];
            let before = rest.len();
            let Ok(frame_len) = crate::varint::get_varint(&mut rest) else {
                // A length still arriving (or broken: at most 10 bytes are waited for).
                if before > 10 {
                    return Err(violation("malformed frame length in the stream"));
                }
                break;
            };
            if frame_len > max_frame as u64 {
                return Err(Fail(
                    CloseCode::LimitExceeded,
                    format!("a frame of {frame_len} bytes, limit {max_frame}"),
                ));
            }
            let head = before - rest.len();
            let frame_len = frame_len as usize;
            if rest.len() < frame_len {
                break;
            }
            frames.push(at + head..at + head + frame_len);
            at += head + frame_len;
        }
        let inbox = std::mem::take(&mut channel.inbox);
        for range in frames {
            if self.phase == Phase::Closed {
                return Ok(());
            }
            self.on_plain_frame(now, &inbox[range])?;
        }
        if let Some(channel) = self.channel.as_mut() {
            channel.inbox = inbox;
            channel.inbox.copy_within(at..filled, 0);
            channel.filled = filled - at;
        }
        Ok(())
    }

    /// Seals the frames written since the last flush into records.
    pub(super) fn flush(&mut self) {
        let Some(channel) = self.channel.as_mut() else {
            return;
        };
        if channel.outbox.is_empty() {
            return;
        }
        let Some(transport) = channel.transport.as_mut() else {
            // Nothing but handshake bytes before the channel is up.
            channel.outbox.clear();
            return;
        };
        for chunk in channel.outbox.chunks(MAX_RECORD_PLAINTEXT) {
            let mut record = vec![0u8; chunk.len() + 16];
            match transport.write_message(chunk, &mut record) {
                Ok(len) => {
                    record.truncate(len);
                    self.outputs.push_back(Output::Transmit(record));
                }
                // Only a nonce overflow (2^64 records) fails.
                Err(_) => break,
            }
        }
        channel.outbox.clear();
    }
}
