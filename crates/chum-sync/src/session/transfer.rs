//! Sending and receiving object batches: fetches, acknowledgements, refusals, the send window
//! and live pushes.

use chum_object::Cid;

use super::{
    Event, Fail, INITIAL_WINDOW, Pending, Phase, Request, Role, Round, SentBatch, Session, name,
    violation,
};
use crate::ids::short_id;
use crate::wire::{CloseCode, Message};

/// Bytes a batch frame spends besides the objects: tag, sequence number, count.
const BATCH_OVERHEAD: usize = 1 + 10 + 10;
/// Bytes one object spends in a batch besides its bytes: two length varints and the CID.
const OBJECT_OVERHEAD: usize = 5 + 5 + 64;

impl Session {
    /// Sends fetch messages for `cids`, within the peer's limits.
    pub(super) fn fetch(&mut self, cids: Vec<Cid>) {
        if self.phase != Phase::Running || cids.is_empty() {
            return;
        }
        let per_frame = self.list_chunk(true);
        for chunk in cids.chunks(per_frame) {
            self.transmit(&Message::Fetch {
                cids: chunk.to_vec(),
            });
        }
    }

    pub(super) fn on_transfer_message(&mut self, message: Message) -> Result<(), Fail> {
        match message {
            // Objects the peer lacks for links: those we hold and share are sent like new ones.
            Message::Fetch { cids } => {
                if self.to_fetch.len() + cids.len() > self.config.max_send_queue {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        "too many objects fetched at once".into(),
                    ));
                }
                self.to_fetch.extend(cids);
                Ok(())
            }
            Message::Objects { seq, objects } => {
                if seq != self.next_recv_seq {
                    return Err(violation(format!(
                        "batch {seq} where batch {} was due",
                        self.next_recv_seq
                    )));
                }
                if self.storing.len() >= self.config.window as usize {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        format!(
                            "more than {} unacknowledged batches in flight",
                            self.config.window
                        ),
                    ));
                }
                let size = batch_bytes(&objects);
                // One batch is always allowed (it is within the frame limit); beyond, the
                // bytes bound what a peer makes this side hold.
                if !self.storing.is_empty()
                    && self.storing_bytes.saturating_add(size) > self.config.window_bytes
                {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        format!(
                            "more than {} unacknowledged bytes in flight",
                            self.config.window_bytes
                        ),
                    ));
                }
                self.storing_bytes += size;
                self.storing_sizes.push_back(size);
                self.next_recv_seq += 1;
                self.note_traffic();
                let cids: Vec<Cid> = objects.iter().map(|(cid, _)| cid.clone()).collect();
                if let Some(check) = &mut self.check {
                    for cid in &cids {
                        if check.wanted.remove(&short_id(cid)) {
                            check.expected.insert(cid);
                        }
                    }
                }
                self.storing.push_back((seq, cids, false));
                self.request(Request::Store(objects), Pending::Store { seq });
                Ok(())
            }
            Message::Refused { seq, cids, reason } => {
                let Some((_, batch)) = self.in_flight.iter_mut().find(|(s, _)| *s == seq) else {
                    return Err(violation(format!(
                        "a refusal in batch {seq}, not in flight"
                    )));
                };
                batch.retain(|cid| !cids.contains(cid));
                self.refusals_seen = true;
                self.event(Event::PeerRefused { cids, reason });
                Ok(())
            }
            // Acknowledges every batch up to `seq` (we offer `CUMULATIVE_ACK`; a peer without
            // it acknowledges the oldest batch each time).
            Message::Ack { seq } => {
                if !self.in_flight.iter().any(|(s, _)| *s == seq) {
                    return Err(violation(format!(
                        "an acknowledgement of batch {seq}, not in flight"
                    )));
                }
                let mut stored = Vec::new();
                while let Some((s, _)) = self.in_flight.front()
                    && *s <= seq
                {
                    if let Some((_, cids)) = self.in_flight.pop_front() {
                        if let Some(batch) = self.in_flight_meta.pop_front() {
                            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(batch.bytes);
                            self.on_acknowledged(batch);
                        }
                        if stored.is_empty() {
                            stored = cids;
                        } else {
                            stored.extend(cids);
                        }
                    }
                }
                self.event(Event::PeerStored(stored));
                Ok(())
            }
            Message::SendDone => {
                if !self.round.active || self.round.peer_send_done {
                    return Err(violation("an unexpected send-done"));
                }
                self.round.peer_send_done = true;
                self.round.recv_bound = self.next_recv_seq;
                Ok(())
            }
            other => Err(violation(format!(
                "a {} is not expected by the {}",
                name(&other),
                match self.config.role {
                    Role::Initiator => "initiator",
                    Role::Responder => "responder",
                }
            ))),
        }
    }

    pub(super) fn on_local_stored(&mut self, cids: Vec<Cid>) -> Result<(), Fail> {
        if self.to_load.len() + cids.len() > self.config.max_send_queue {
            return Err(Fail(
                CloseCode::LimitExceeded,
                "too many new objects queued for a slow peer; the next session catches up".into(),
            ));
        }
        self.to_load.extend(cids);
        Ok(())
    }

    /// Splits loaded objects into batches within the peer's limits; returns how many were too
    /// large to send at all.
    pub(super) fn make_batches(&mut self, objects: Vec<(Cid, Vec<u8>)>) -> usize {
        let max_bytes = self
            .config
            .batch_bytes
            .min(self.peer_limits.max_frame.saturating_sub(BATCH_OVERHEAD));
        let max_objects = self.peer_limits.max_batch_objects;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut too_large = Vec::new();
        for (cid, data) in objects {
            let size = data.len() + OBJECT_OVERHEAD;
            if size > self.peer_limits.max_frame.saturating_sub(BATCH_OVERHEAD) {
                too_large.push(cid); // larger than the peer accepts at all: it cannot have it
                continue;
            }
            if !batch.is_empty() && (bytes + size > max_bytes || batch.len() >= max_objects) {
                self.ready.push_back(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push((cid, data));
        }
        if !batch.is_empty() {
            self.ready.push_back(batch);
        }
        let skipped = too_large.len();
        if skipped > 0 {
            self.event(Event::TooLarge(too_large));
        }
        skipped
    }

    /// Batches were stored: acknowledges them now, or (live, with a peer that takes
    /// cumulative acknowledgements) within [`Config::ack_delay`](super::Config::ack_delay)
    /// of the previous acknowledgement, so one message covers the batches arriving
    /// meanwhile. The first batch after a quiet spell, any batch in a reconciliation or
    /// transfer round, and half the smallest sending window owed are acknowledged at once: a
    /// sender never waits on the delay for window.
    pub(super) fn settle_acks(&mut self) {
        if self.ack_owed.is_none() {
            return;
        }
        let delay = self.config.ack_delay;
        let live = self.cumulative_ack
            && !delay.is_zero()
            && self.synced
            && !self.round.active
            && self.phase == Phase::Running;
        let due = self.last_ack.map(|last| last + delay);
        match due {
            Some(due) if live && self.acks_owed < INITIAL_WINDOW / 2 && self.now < due => {
                self.ack_due = Some(due);
            }
            _ => self.send_owed_ack(),
        }
    }

    /// Sends the acknowledgement owed, if any.
    pub(super) fn send_owed_ack(&mut self) {
        if let Some(seq) = self.ack_owed.take() {
            self.acks_owed = 0;
            self.ack_due = None;
            self.last_ack = Some(self.now);
            self.encode(&Message::Ack { seq });
        }
    }

    /// A batch was acknowledged. The window follows the path as a BBR-style sender does:
    /// each acknowledgement gives a delivery-rate sample (bytes acknowledged since the batch
    /// left, over the time since) and a round-trip sample; the window is twice the best
    /// recent rate times the shortest round trip — the bandwidth-delay product with room to
    /// grow — in batches, never below [`INITIAL_WINDOW`] nor above the peer's window. While
    /// the window itself limits the rate it doubles every round trip; once the path (link
    /// or the peer's store) is the limit, it settles. On a short path it stays small.
    fn on_acknowledged(&mut self, batch: SentBatch) {
        const SAMPLES: usize = 32;
        self.delivered += batch.bytes;
        self.acknowledged += 1;
        self.delivered_time = self.now;
        let rtt = self.now.saturating_sub(batch.sent);
        let min_rtt = self.min_rtt.map_or(rtt, |min| min.min(rtt));
        self.min_rtt = Some(min_rtt);
        let interval = self.now.saturating_sub(batch.delivered_time);
        if interval.is_zero() || min_rtt.is_zero() {
            return;
        }
        let rate = (self.delivered - batch.delivered) as f64 / interval.as_secs_f64();
        if self.rates.len() == SAMPLES {
            self.rates.pop_front();
        }
        self.rates.push_back(rate);
        let best = self.rates.iter().copied().fold(0.0, f64::max);
        // Batches vary in size (a page of objects splits unevenly): count in the average.
        let per_batch = (self.delivered as f64 / self.acknowledged.max(1) as f64).max(1.0);
        let target = (2.0 * best * min_rtt.as_secs_f64() / per_batch).ceil();
        self.cwnd = (target.min(self.peer_window as f64) as usize).max(INITIAL_WINDOW);
    }

    /// Moves the transfer along: resolve, load and send within the window; finish rounds.
    pub(super) fn pump(&mut self) -> Result<(), Fail> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        while self.in_flight.len() < self.send_window() {
            let Some(objects) = self.ready.front() else {
                break;
            };
            let size = batch_bytes(objects);
            if !self.in_flight.is_empty()
                && self.in_flight_bytes.saturating_add(size) > self.peer_window_bytes
            {
                break;
            }
            let Some(objects) = self.ready.pop_front() else {
                break;
            };
            let seq = self.next_send_seq;
            self.next_send_seq += 1;
            let cids = objects.iter().map(|(cid, _)| cid.clone()).collect();
            self.transmit(&Message::Objects { seq, objects });
            if self.in_flight.is_empty() {
                // Nothing in flight: rate samples start from now, not from an idle past.
                self.delivered_time = self.now;
            }
            self.in_flight.push_back((seq, cids));
            self.in_flight_meta.push_back(SentBatch {
                sent: self.now,
                bytes: size,
                delivered: self.delivered,
                delivered_time: self.delivered_time,
            });
            self.in_flight_bytes += size;
            self.note_traffic();
        }
        if let Some((after, until)) = self.journal_cursor
            && self.ready.is_empty()
            && !self.has_pending(Pending::Journal)
        {
            // Entries after the head seen first are pushed live anyway: never read past it.
            let limit = self
                .config
                .request_chunk
                .max(1)
                .min(self.peer_limits.max_batch_objects.saturating_mul(4))
                .min(until.map_or(usize::MAX, |until| {
                    usize::try_from(until.saturating_sub(after)).unwrap_or(usize::MAX)
                }));
            self.request(Request::Journal { after, limit }, Pending::Journal);
        }
        // Journal pages sent: right behind them, tell the peer how far it will hold our
        // journal once it stored them, so a session cut short resumes where it stopped.
        let mut reached = None;
        while let Some(&(bound, position)) = self.journal_marks.front()
            && bound <= self.next_send_seq
        {
            self.journal_marks.pop_front();
            reached = Some(position);
        }
        if let Some(position) = reached {
            self.send_checkpoint(Some(position));
        }
        let chunk = self.config.request_chunk.max(1);
        if let Some(after) = &self.enumerate
            && self.ready.is_empty()
            && !self.has_pending(Pending::Enumerate)
        {
            let after = after.clone();
            let limit = chunk.min(self.peer_limits.max_batch_objects.saturating_mul(4));
            self.request(Request::Objects { after, limit }, Pending::Enumerate);
        }
        if !self.to_fetch.is_empty()
            && self.to_load.len() < chunk
            && !self.has_pending(Pending::Shared)
        {
            let take = self.to_fetch.len().min(chunk);
            let cids = self.to_fetch.drain(..take).collect();
            self.request(Request::Shared(cids), Pending::Shared);
        }
        if !self.to_resolve.is_empty()
            && self.to_load.len() < chunk
            && !self.has_pending(Pending::Resolve)
        {
            let take = self.to_resolve.len().min(chunk);
            let ids = self.to_resolve.drain(..take).collect();
            self.request(Request::Resolve(ids), Pending::Resolve);
        }
        if !self.to_load.is_empty() && self.ready.is_empty() && !self.has_pending(Pending::Load) {
            let take = self
                .to_load
                .len()
                .min(chunk)
                .min(self.peer_limits.max_batch_objects.saturating_mul(4));
            let cids = self.to_load.drain(..take).collect();
            self.request(Request::Load(cids), Pending::Load);
        }
        let round = &self.round;
        if round.active
            && round.owe_complete
            && !round.send_done_sent
            && self.to_resolve.is_empty()
            && self.to_load.is_empty()
            && self.ready.is_empty()
            && self.enumerate.is_none()
            && self.journal_cursor.is_none()
            && !self.has_pending(Pending::Resolve)
            && !self.has_pending(Pending::Load)
            && !self.has_pending(Pending::Journal)
        {
            self.round.send_done_sent = true;
            self.round.send_bound = self.next_send_seq + self.ready.len() as u64;
            self.transmit(&Message::SendDone);
        }
        let round = &self.round;
        let acked_below = self
            .in_flight
            .front()
            .map_or(self.next_send_seq, |(seq, _)| *seq);
        let stored_below = self
            .storing
            .front()
            .map_or(self.next_recv_seq, |(seq, _, _)| *seq);
        // The initiator of a journal round need not wait for its own batches' acknowledgements:
        // the responder compares only after storing them (they precede the summary).
        let acknowledged = acked_below >= round.send_bound
            || (round.resume && self.config.role == Role::Initiator);
        if round.active
            && round.send_done_sent
            && round.peer_send_done
            && acknowledged
            && stored_below >= round.recv_bound
        {
            let (resume, confirm) = (round.resume, round.confirm);
            self.round = Round::default();
            if resume {
                if self.config.role == Role::Initiator {
                    self.confirm();
                }
            } else {
                self.finish_round(confirm);
            }
        }
        if let Some((theirs, bound)) = self.deferred_summary
            && !self.round.active
            && stored_below >= bound
            && self.phase == Phase::Running
        {
            self.deferred_summary = None;
            self.start_round();
            self.responder_compare = Some(theirs);
            if self.early_peer {
                // An empty initiator: it wants everything (its want-all is on the way).
                self.round.wants_done = true;
                self.enumerate = Some(None);
            }
            // The first sketch is sized from both counts: ask for ours first.
            self.request(Request::Summary, Pending::SizeFirstSketch);
        }
        Ok(())
    }
}

/// A batch's size for the windows: its CIDs' and objects' bytes (both sides count alike).
pub(super) fn batch_bytes(objects: &[(Cid, Vec<u8>)]) -> u64 {
    objects
        .iter()
        .map(|(cid, bytes)| (cid.as_bytes().len() + bytes.len()) as u64)
        .sum()
}
