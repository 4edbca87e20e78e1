//! The journal fast path: checkpoints, and comparing summaries again after live traffic.

use super::{Event, Finding, Pending, Request, Role, Session};
use crate::wire::Message;

impl Session {
    /// Reports the peer's checkpoints whose preceding batches are all stored.
    pub(super) fn take_checkpoints(&mut self) {
        let stored_below = self
            .storing
            .front()
            .map_or(self.next_recv_seq, |(seq, _, _)| *seq);
        let mut reached = None;
        while let Some(&(bound, position)) = self.peer_checkpoints.front()
            && bound <= stored_below
        {
            self.peer_checkpoints.pop_front();
            reached = Some(position);
        }
        if let (Some(position), Some(journal), false) =
            (reached, self.peer_journal, self.refused_some)
        {
            self.event(Event::Checkpoint { journal, position });
        }
    }

    /// Tells the peer it holds our journal up to `position` (our summary matched its own).
    pub(super) fn send_checkpoint(&mut self, position: Option<u64>) {
        if let (Some(_), Some(position)) = (self.peer_journal, position) {
            self.transmit(&Message::Checkpoint { position });
        }
    }

    /// Objects moved: once things are quiet again, the initiator compares summaries so both
    /// sides learn new journal positions.
    pub(super) fn note_traffic(&mut self) {
        self.moved = true;
        if self.peer_journal.is_some()
            && self.config.role == Role::Initiator
            && self.synced
            && !self.round.active
            && !self.refusals_seen
        {
            self.confirm_due = Some(self.now + self.config.checkpoint_delay);
        }
    }

    /// Initiator: compares summaries again (a checkpoint when they match; an ordinary
    /// reconciliation round when they do not).
    pub(super) fn confirm(&mut self) {
        self.confirm_due = None;
        self.start_round();
        self.round.confirm = true;
        self.finding = Finding::OwnSummary;
        self.request(Request::Summary, Pending::Summary);
    }
}
