//! Finding the difference: summaries, sketches, short-id and CID lists, rounds.

use std::collections::VecDeque;

use chum_object::Cid;

use super::{Event, Fail, Pending, Request, Role, Round, Session, violation};
use crate::ids::{Summary, short_id};
use crate::reconcile::SKETCH_SIZES;
use crate::sketch::{Sketch, SketchError};
use crate::wire::{CloseCode, Message};

/// How the initiator is finding the difference.
#[derive(Debug)]
pub(super) enum Finding {
    /// Not reconciling.
    Idle,
    /// Waiting for our summary to send.
    OwnSummary,
    /// Waiting for `InSync` or a sketch of this size (any of [`SKETCH_SIZES`] for the first
    /// answer, which the responder sizes from the two counts) and salt.
    AwaitSketch { cells: Option<usize>, salt: u64 },
    /// The peer's sketch is here; waiting for our own of the same size.
    OwnSketch { theirs: Summary, sketch: Sketch },
    /// Merging the peer's list with ours.
    List(Box<ListMerge>),
}

/// A streaming merge of two ascending lists (ours from the store, theirs from the peer).
#[derive(Debug, Default)]
pub(super) struct ListMerge {
    full: bool,
    ours: VecDeque<ListItem>,
    ours_done: bool,
    ours_requested: bool,
    our_last: Option<ListItem>,
    theirs: VecDeque<ListItem>,
    theirs_done: bool,
    theirs_requested: bool,
    their_last: Option<ListItem>,
    only_theirs: Vec<u64>,
    peer_lacks: usize,
    we_lack: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ListItem {
    Short(u64),
    Full(Cid),
}

/// What the initiator checks once a round's transfer is done: the peer's set (at its sketch)
/// must equal ours minus what only we held plus what only they held, in full-CID fingerprints.
#[derive(Debug)]
pub(super) struct Check {
    pub(super) theirs: Summary,
    pub(super) expected: Summary,
    /// Short ids we asked for and have not yet seen arrive.
    pub(super) wanted: std::collections::HashSet<u64>,
}

/// Sketch retries at one size with fresh salts, when a decode only just failed.
const SALT_RETRIES: u64 = 2;
/// The largest sketch a responder computes for a peer.
pub(super) const MAX_SKETCH_FOR_PEER: usize = 1 << 22;

impl Session {
    pub(super) fn start_round(&mut self) {
        self.round = Round {
            active: true,
            ..Round::default()
        };
    }

    /// Short ids (or CIDs, with `full`) per list chunk for the peer.
    pub(super) fn list_chunk(&self, full: bool) -> usize {
        let per_item = if full { 38 } else { 8 };
        self.peer_limits
            .max_ids
            .min(self.peer_limits.max_frame.saturating_sub(16) / per_item)
            .max(1)
    }

    pub(super) fn on_message_as_responder(&mut self, message: Message) -> Result<(), Fail> {
        match message {
            Message::Summary(theirs) => {
                if self.deferred_summary.is_some()
                    || (self.round.active
                        && !(self.round.send_done_sent && self.round.peer_send_done))
                {
                    return Err(violation("a summary while a reconciliation is running"));
                }
                // Compared once every batch the initiator sent before it is stored here (and
                // our part of the last round is done): at once, usually.
                self.deferred_summary = Some((theirs, self.next_recv_seq));
                // An empty initiator's want-all follows at once (early want-all).
                self.early_peer = self.early_want_all && theirs.count == 0;
                self.want_all_due = self.early_peer;
                Ok(())
            }
            Message::WantAll if self.want_all_due => {
                // Announced by the empty summary: the round already sends everything.
                self.want_all_due = false;
                Ok(())
            }
            Message::WantAll => {
                self.expect_reconciling("want-all")?;
                self.round.wants_done = true;
                self.enumerate = Some(None);
                Ok(())
            }
            Message::SketchRequest { cells, salt } => {
                self.expect_reconciling("sketch request")?;
                self.one_request_at_a_time("sketch request")?;
                // Never more than this side's own ids would cost as a list (a sketch costs
                // about 14 bytes a cell, an id 8): an initiator asks for a larger sketch only
                // while it is cheaper than listing this side's set, so a larger request is
                // an attempt to make this side compute and send much more than it holds.
                let limit = self
                    .peer_limits
                    .max_sketch_cells
                    .min(MAX_SKETCH_FOR_PEER)
                    .min(self.sketch_cap);
                if cells == 0 || cells > limit as u64 {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        format!("a sketch of {cells} cells was requested; the limit is {limit}"),
                    ));
                }
                self.request(
                    Request::Sketch {
                        cells: cells as usize,
                        salt,
                    },
                    Pending::SketchForPeer { compare: false },
                );
                Ok(())
            }
            Message::ListRequest { after } => {
                if !self.round.active {
                    self.start_round();
                }
                self.expect_reconciling("list request")?;
                self.one_request_at_a_time("list request")?;
                let limit = self.list_chunk(false);
                self.request(
                    Request::ShortIds { after, limit },
                    Pending::ListForPeer { limit, full: false },
                );
                Ok(())
            }
            Message::CidListRequest { after } => {
                if !self.round.active {
                    self.start_round();
                }
                self.expect_reconciling("CID list request")?;
                self.one_request_at_a_time("CID list request")?;
                let limit = self.list_chunk(true);
                self.request(
                    Request::Cids { after, limit },
                    Pending::ListForPeer { limit, full: true },
                );
                Ok(())
            }
            Message::Want { last, ids } => {
                self.expect_reconciling("want")?;
                self.round.wanted += ids.len();
                if self.round.wanted > self.config.max_send_queue {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        format!(
                            "more than {} objects wanted in one round; reconnect to continue",
                            self.config.max_send_queue
                        ),
                    ));
                }
                self.to_resolve.extend(ids);
                if last {
                    self.round.wants_done = true;
                    self.round.owe_complete = true;
                }
                Ok(())
            }
            other => self.on_transfer_message(other),
        }
    }

    /// A peer asks for one sketch or list at a time: each costs this side a pass over its set.
    fn one_request_at_a_time(&self, what: &str) -> Result<(), Fail> {
        let busy = self.pending.iter().any(|(_, pending)| {
            matches!(
                pending,
                Pending::SketchForPeer { .. } | Pending::ListForPeer { .. }
            )
        });
        if busy {
            return Err(violation(format!(
                "a {what} before the previous one was answered"
            )));
        }
        Ok(())
    }

    fn expect_reconciling(&self, what: &str) -> Result<(), Fail> {
        if !self.round.active || self.round.wants_done {
            return Err(violation(format!("a {what} outside reconciliation")));
        }
        Ok(())
    }

    pub(super) fn on_message_as_initiator(&mut self, message: Message) -> Result<(), Fail> {
        match message {
            Message::Summary(theirs)
            | Message::Sketch {
                summary: theirs, ..
            } if self.awaiting_peer_summary => {
                // The answer to our early want-all: how much is coming.
                self.awaiting_peer_summary = false;
                self.event(Event::Reconciled {
                    peer_lacks: 0,
                    we_lack: usize::try_from(theirs.count).unwrap_or(usize::MAX),
                });
                Ok(())
            }
            Message::InSync if self.awaiting_peer_summary => {
                // Both sides empty, from a peer that does not know early want-all: the round
                // is over.
                self.awaiting_peer_summary = false;
                self.round.send_done_sent = true;
                self.round.peer_send_done = true;
                self.event(Event::Reconciled {
                    peer_lacks: 0,
                    we_lack: 0,
                });
                Ok(())
            }
            Message::InSync => {
                if !matches!(self.finding, Finding::AwaitSketch { .. }) {
                    return Err(violation("an unexpected in-sync"));
                }
                self.finding = Finding::Idle;
                self.resume_from = None;
                self.round.owe_complete = true;
                self.round.send_done_sent = true;
                self.round.peer_send_done = true;
                let position = self.summary_position.take();
                self.send_checkpoint(position);
                self.event(Event::Reconciled {
                    peer_lacks: 0,
                    we_lack: 0,
                });
                Ok(())
            }
            Message::Resume => {
                let first_answer = matches!(self.finding, Finding::AwaitSketch { cells: None, .. });
                let Some(from) = self.resume_from.take().filter(|_| first_answer) else {
                    return Err(violation("an unexpected resume"));
                };
                self.finding = Finding::Idle;
                self.summary_position = None;
                self.round.resume = true;
                self.journal_cursor = Some((from, None));
                self.event(Event::Resumed);
                Ok(())
            }
            Message::Sketch { summary, sketch } => {
                let Finding::AwaitSketch { cells, salt } = self.finding else {
                    return Err(violation("an unexpected sketch"));
                };
                // Only the first comparison of a session may take the journal fast path.
                self.resume_from = None;
                let rounded = |cells: usize| cells.div_ceil(3) * 3;
                let size_ok = match cells {
                    Some(cells) => sketch.len() == rounded(cells),
                    None => SKETCH_SIZES
                        .iter()
                        .any(|&size| rounded(size) == sketch.len()),
                };
                if !size_ok || sketch.salt() != salt {
                    return Err(violation("a sketch of another size or salt than asked for"));
                }
                let mine = self.initiator_summary.unwrap_or(Summary::EMPTY);
                if cells.is_none() && summary.count == 0 {
                    // The peer holds nothing: it lacks everything we hold.
                    self.finding = Finding::Idle;
                    self.enumerate = Some(None);
                    self.send_wants(&[], true);
                    self.event(Event::Reconciled {
                        peer_lacks: usize::try_from(mine.count).unwrap_or(usize::MAX),
                        we_lack: 0,
                    });
                    return Ok(());
                }
                if cells.is_none() && mine.count == 0 {
                    // We hold nothing: ask for everything, no list needed.
                    self.finding = Finding::Idle;
                    self.round.owe_complete = true;
                    self.transmit(&Message::WantAll);
                    self.event(Event::Reconciled {
                        peer_lacks: 0,
                        we_lack: usize::try_from(summary.count).unwrap_or(usize::MAX),
                    });
                    return Ok(());
                }
                if cells.is_none() && few_beside(mine.count, summary.count) {
                    // We hold next to nothing (a new instance's own identity objects, say): a
                    // sketch cannot find a difference this large and a list would cost 8 bytes
                    // per object the peer holds. Ask for everything and send all we hold; at
                    // most 1/64 of the transfer is objects the other side already had.
                    self.finding = Finding::Idle;
                    self.round.owe_complete = true;
                    self.transmit(&Message::WantAll);
                    self.enumerate = Some(None);
                    self.event(Event::Reconciled {
                        peer_lacks: usize::try_from(mine.count).unwrap_or(usize::MAX),
                        we_lack: usize::try_from(summary.count.saturating_sub(mine.count))
                            .unwrap_or(usize::MAX),
                    });
                    return Ok(());
                }
                let cells = sketch.len();
                self.finding = Finding::OwnSketch {
                    theirs: summary,
                    sketch,
                };
                self.request(Request::Sketch { cells, salt }, Pending::OwnSketch);
                Ok(())
            }
            Message::IdList { last, ids } => {
                let items = ids.into_iter().map(ListItem::Short).collect();
                self.on_their_list(false, last, items)
            }
            Message::CidList { last, cids } => {
                let items = cids.into_iter().map(ListItem::Full).collect();
                self.on_their_list(true, last, items)
            }
            other => self.on_transfer_message(other),
        }
    }

    /// Initiator: our sketch of the size the peer sent; subtract and peel.
    pub(super) fn on_own_sketch(&mut self, mine: Summary, ours: Sketch) -> Result<(), Fail> {
        let Finding::OwnSketch { theirs, sketch } =
            std::mem::replace(&mut self.finding, Finding::Idle)
        else {
            return Err(violation("internal: a sketch answer without a sketch"));
        };
        let cells = sketch.len();
        let salt = sketch.salt();
        let decoded = if mine == theirs {
            Ok(Default::default())
        } else {
            ours.subtract(&sketch).and_then(Sketch::decode)
        };
        match decoded {
            Ok(difference) => {
                self.check = Some(Check {
                    theirs,
                    expected: mine,
                    wanted: difference.only_theirs.iter().copied().collect(),
                });
                self.event(Event::Reconciled {
                    peer_lacks: difference.only_mine.len(),
                    we_lack: difference.only_theirs.len(),
                });
                self.send_wants(&difference.only_theirs, true);
                self.to_resolve.extend(difference.only_mine);
                self.round.owe_complete = true;
                Ok(())
            }
            Err(SketchError::Undecodable { undecoded })
                if undecoded * 50 <= cells && salt < SALT_RETRIES =>
            {
                // A few cells stuck is an unlucky stopping set, not an overload: fresh hashing
                // at the same size almost surely decodes.
                self.ask_sketch(cells, salt + 1);
                Ok(())
            }
            Err(_) => {
                let next = SKETCH_SIZES.iter().copied().find(|size| *size > cells);
                let limit = self
                    .config
                    .limits
                    .max_sketch_cells
                    .min(self.peer_limits.max_sketch_cells);
                match next {
                    // A sketch costs about 14 bytes a cell, the list 8 bytes an id.
                    Some(next) if next <= limit && (next as u64) * 14 < theirs.count * 8 => {
                        self.ask_sketch(next, 0);
                    }
                    _ => self.start_list(false),
                }
                Ok(())
            }
        }
    }

    fn ask_sketch(&mut self, cells: usize, salt: u64) {
        self.transmit(&Message::SketchRequest {
            cells: cells as u64,
            salt,
        });
        self.finding = Finding::AwaitSketch {
            cells: Some(cells),
            salt,
        };
    }

    fn send_wants(&mut self, ids: &[u64], last: bool) {
        let chunk = self
            .peer_limits
            .max_ids
            .min(self.peer_limits.max_frame / 8 - 8);
        let mut chunks = ids.chunks(chunk.max(1)).peekable();
        if chunks.peek().is_none() && last {
            self.transmit(&Message::Want {
                last: true,
                ids: Vec::new(),
            });
        }
        while let Some(part) = chunks.next() {
            self.transmit(&Message::Want {
                last: last && chunks.peek().is_none(),
                ids: part.to_vec(),
            });
        }
    }

    fn start_list(&mut self, full: bool) {
        self.finding = Finding::List(Box::new(ListMerge {
            full,
            ours_requested: true,
            theirs_requested: true,
            ..ListMerge::default()
        }));
        let limit = self.config.request_chunk.max(1);
        if full {
            self.transmit(&Message::CidListRequest { after: None });
            self.request(
                Request::Cids { after: None, limit },
                Pending::OwnList { limit },
            );
        } else {
            self.transmit(&Message::ListRequest { after: None });
            self.request(
                Request::ShortIds { after: None, limit },
                Pending::OwnList { limit },
            );
        }
    }

    fn on_their_list(&mut self, full: bool, last: bool, items: Vec<ListItem>) -> Result<(), Fail> {
        let Finding::List(merge) = &mut self.finding else {
            return Err(violation("an unexpected list"));
        };
        if merge.full != full || !merge.theirs_requested {
            return Err(violation("an unexpected list"));
        }
        // Ascending (short ids may repeat when several CIDs share one; CIDs may not).
        let mut previous = merge.their_last.clone();
        for item in &items {
            let ordered = match (&previous, item) {
                (None, _) => true,
                (Some(ListItem::Short(a)), ListItem::Short(b)) => a <= b,
                (Some(a), b) => a < b,
            };
            if !ordered {
                return Err(violation("a list that is not ascending"));
            }
            previous = Some(item.clone());
        }
        merge.theirs_requested = false;
        merge.their_last = previous;
        merge.theirs.extend(items);
        merge.theirs_done = last;
        if !last {
            merge.theirs_requested = true;
            let message = match &merge.their_last {
                Some(ListItem::Full(cid)) => Message::CidListRequest {
                    after: Some(cid.clone()),
                },
                Some(ListItem::Short(id)) => Message::ListRequest { after: Some(*id) },
                None if full => Message::CidListRequest { after: None },
                None => Message::ListRequest { after: None },
            };
            self.transmit(&message);
        }
        self.merge_lists()
    }

    pub(super) fn on_our_list(&mut self, done: bool, items: Vec<ListItem>) -> Result<(), Fail> {
        let Finding::List(merge) = &mut self.finding else {
            return Err(Fail(
                CloseCode::StoreFailure,
                "internal: a list answer outside a list merge".into(),
            ));
        };
        merge.ours_requested = false;
        if let Some(last) = items.last() {
            merge.our_last = Some(last.clone());
        }
        merge.ours.extend(items);
        merge.ours_done = done;
        self.merge_lists()
    }

    /// Advances the merge as far as both lists allow; sends wants and queues what the peer
    /// lacks as it goes.
    fn merge_lists(&mut self) -> Result<(), Fail> {
        let Finding::List(merge) = &mut self.finding else {
            return Ok(());
        };
        let mut only_mine_short = Vec::new();
        let mut only_mine_full = Vec::new();
        loop {
            let step = match (merge.ours.front(), merge.theirs.front()) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) if merge.theirs_done => std::cmp::Ordering::Less,
                (None, Some(_)) if merge.ours_done => std::cmp::Ordering::Greater,
                _ => break,
            };
            match step {
                std::cmp::Ordering::Equal => {
                    merge.ours.pop_front();
                    merge.theirs.pop_front();
                }
                std::cmp::Ordering::Less => match merge.ours.pop_front() {
                    Some(ListItem::Short(id)) => only_mine_short.push(id),
                    Some(ListItem::Full(cid)) => only_mine_full.push(cid),
                    None => {}
                },
                std::cmp::Ordering::Greater => match merge.theirs.pop_front() {
                    Some(ListItem::Short(id)) => merge.only_theirs.push(id),
                    Some(ListItem::Full(cid)) => merge.only_theirs.push(short_id(&cid)),
                    None => {}
                },
            }
        }
        merge.peer_lacks += only_mine_short.len() + only_mine_full.len();
        let finished = merge.ours.is_empty()
            && merge.theirs.is_empty()
            && merge.ours_done
            && merge.theirs_done;
        let need_ours = merge.ours.is_empty() && !merge.ours_done && !merge.ours_requested;
        if need_ours {
            merge.ours_requested = true;
        }
        let full = merge.full;
        let after = merge.our_last.clone();
        let chunk = self
            .peer_limits
            .max_ids
            .min(self.peer_limits.max_frame / 8 - 8);
        let wants = if finished || merge.only_theirs.len() >= chunk {
            std::mem::take(&mut merge.only_theirs)
        } else {
            Vec::new()
        };
        merge.we_lack += wants.len();
        let counts = (merge.peer_lacks, merge.we_lack);
        self.to_resolve.extend(only_mine_short);
        self.to_load.extend(only_mine_full);
        if !wants.is_empty() || finished {
            self.send_wants(&wants, finished);
        }
        if need_ours {
            let limit = self.config.request_chunk.max(1);
            let request = match (full, after) {
                (true, Some(ListItem::Full(cid))) => Request::Cids {
                    after: Some(cid),
                    limit,
                },
                (true, _) => Request::Cids { after: None, limit },
                (false, Some(ListItem::Short(id))) => Request::ShortIds {
                    after: Some(id),
                    limit,
                },
                (false, _) => Request::ShortIds { after: None, limit },
            };
            self.request(request, Pending::OwnList { limit });
        }
        if finished {
            self.finding = Finding::Idle;
            self.round.owe_complete = true;
            self.event(Event::Reconciled {
                peer_lacks: counts.0,
                we_lack: counts.1,
            });
        }
        Ok(())
    }

    /// A round is complete both ways (`confirm`: it began as a comparison after traffic).
    pub(super) fn finish_round(&mut self, confirm: bool) {
        if let Some(check) = self.check.take()
            && check.expected != check.theirs
            && !self.full_fallback_used
        {
            // The short ids hid a difference (a collision): compare full CIDs once.
            self.full_fallback_used = true;
            self.start_round();
            self.start_list(true);
            return;
        }
        let journals = self.moved
            && self.peer_journal.is_some()
            && self.config.role == Role::Initiator
            && !self.refusals_seen;
        if !self.synced {
            if journals && !self.confirmed_once {
                // Objects moved: compare once more before reporting `Synced`, so both sides
                // learn journal positions even when the session ends right after.
                self.confirmed_once = true;
                self.confirm();
                return;
            }
            self.synced = true;
            self.event(Event::Synced);
        }
        // After live traffic, compare again once it settles; not after a comparison that
        // itself found a difference (new traffic schedules the next one), so a difference
        // that never goes away costs no endless rounds.
        if journals && !confirm {
            self.confirm_due = Some(self.now + self.config.checkpoint_delay);
        }
    }
}

/// The most sketch cells a responder holding `own` objects (in the set it answers this peer
/// from) computes for a peer: the smallest size, or what a legitimate initiator would ask for
/// before listing instead (`next * 14 < own * 8`, see `on_own_sketch`), with room for the set
/// to have grown by half since. A sketch reply is so at most about 12 bytes per object held
/// (and 36 cells at least), however large the peer claims its own set is.
pub(super) fn sketch_cap(own: u64) -> usize {
    let cells = own.saturating_mul(8).saturating_mul(3) / 2 / 14;
    usize::try_from(cells)
        .unwrap_or(usize::MAX)
        .max(SKETCH_SIZES[0])
}

/// Whether a set of `mine` objects is so small beside the peer's `theirs` that asking for
/// everything (and sending all of ours) beats finding the exact difference: ours are at most
/// 1/64 of theirs. Used only when the first sketch, sized for the counts alone, arrived.
pub(super) fn few_beside(mine: u64, theirs: u64) -> bool {
    mine > 0 && mine.saturating_mul(64) <= theirs
}

/// The first sketch's size, from the two set sizes: at least 1.5 cells per certain difference
/// (the counts differ by at least that many), unless a list would be cheaper anyway.
pub(super) fn first_sketch_cells(mine: u64, theirs: u64, limit: usize) -> usize {
    let needed = mine.abs_diff(theirs).saturating_mul(3) / 2;
    let larger = mine.max(theirs);
    SKETCH_SIZES
        .iter()
        .copied()
        .filter(|&cells| cells <= limit)
        .find(|&cells| cells as u64 >= needed)
        .filter(|&cells| mine > 0 && theirs > 0 && (cells as u64) * 14 <= larger * 8)
        .unwrap_or(SKETCH_SIZES[0])
}
