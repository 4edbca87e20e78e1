//! The sans-IO session: one CHUM connection between two peers, as a state machine.
//!
//! The driver feeds [`Input`]s to [`Session::handle_input`] with the current time and drains
//! [`Output`]s from [`Session::poll_output`]: frames to transmit, requests for its store, and
//! events for the application. The session does no I/O, reads no clock and never waits; every
//! call does a bounded amount of work (at most one frame or one answer is processed).
//!
//! A session runs the phases (handshake →) hello → reconcile → transfer → live:
//! - with [`Config::security`] set, a Noise XX handshake comes first (see [`crate::noise`]):
//!   the session hands the peer's handshake payload to the driver in a [`Request::Admit`] and
//!   sends nothing but handshake bytes until the driver admits the peer; every later frame
//!   travels encrypted;
//! - both sides send a [`Hello`]; the newest version both speak is used;
//! - the initiator sends its set [`Summary`] at once; equal summaries end reconciliation
//!   (one round trip); otherwise the responder answers with a sketch of its set and the
//!   initiator decodes the difference — asking for larger sketches, and finally the responder's
//!   whole short-id list, when a sketch is too small;
//!   An initiator holding nothing asks for everything right behind its summary (when both
//!   hellos offer [`capability::EARLY_WANT_ALL`]: no sketch round), and one holding next to
//!   nothing beside the peer asks for everything once the first sketch shows the sizes;
//! - each side sends what the other lacks in acknowledged, windowed batches, then `SendDone`.
//!   The sending window starts at [`INITIAL_WINDOW`] batches and grows, within the peer's
//!   window (batches and bytes), while acknowledgements come back without queueing delay: a
//!   long path (a high bandwidth-delay product) is kept full, a short one stays at a few
//!   batches;
//! - afterwards, objects the driver reports as newly stored are pushed at once.
//!
//! **Journal fast path.** A store numbers every object that joins its shared set in its
//! *journal*. When the summaries match, each side tells the other how far its journal goes
//! ([`Message::Checkpoint`]); the other remembers that position ([`Event::Checkpoint`]) and
//! names it in its next hello ([`Journal::holds`], a version vector over journals). When both
//! hellos name a position of the other's journal and the summaries differ, the responder
//! answers [`Message::Resume`] instead of a sketch: each side sends the entries of its journal
//! after the position the other holds, and the initiator then compares summaries again. A
//! difference costs no sketch at all — a few bytes whatever its size. Positions are only a
//! shortcut: the second summary decides, and if it differs (a peer lost objects, a store was
//! copied, objects were deleted) the sketch rounds below run as usual.
//!
//! The difference found through short ids is checked against full-CID fingerprints once the
//! transfer is done; if a short-id collision hid a difference, the initiator falls back to
//! comparing full CIDs, so correctness never rests on short ids being unique.

mod channel;
mod journal;
mod reconcile;
mod transfer;
mod types;

use std::collections::VecDeque;
use std::time::Duration;

use chum_object::Cid;

use crate::ids::{JournalId, Summary};
use crate::noise;
use crate::reconcile::SKETCH_SIZES;
use crate::wire::{
    CloseCode, Hello, Limits, MIN_PROTOCOL_VERSION, Message, PROTOCOL_VERSION, WireError,
    capability,
};

/// Batches a session sends before its first acknowledgement: the window it grows from.
pub const INITIAL_WINDOW: usize = 8;

/// What the sending window remembers of a batch in flight.
#[derive(Debug, Clone, Copy)]
struct SentBatch {
    sent: Duration,
    bytes: u64,
    delivered: u64,
    delivered_time: Duration,
}

use self::channel::Channel;
use self::reconcile::{
    Check, Finding, ListItem, MAX_SKETCH_FOR_PEER, first_sketch_cells, sketch_cap,
};
pub use self::types::{Answer, Config, Event, Input, Journal, Output, Request, RequestId, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Hello,
    Running,
    Closed,
}

/// What an outstanding request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Initiator: the summary sent first.
    Summary,
    /// Initiator: our sketch, to subtract the peer's from.
    OwnSketch,
    /// Responder: a sketch for the peer; `compare` when it answers the first summary.
    SketchForPeer {
        compare: bool,
    },
    /// Initiator: our next short ids (or CIDs) for the list merge.
    OwnList {
        limit: usize,
    },
    /// Responder: a list chunk for the peer.
    ListForPeer {
        limit: usize,
        full: bool,
    },
    /// Our shared objects, all of which the peer lacks (read in bulk).
    Enumerate,
    /// Responder: our summary, to size the first sketch.
    SizeFirstSketch,
    Resolve,
    Shared,
    Load,
    Store {
        seq: u64,
    },
    Admit,
    /// Our journal's entries after the position the peer holds.
    Journal,
}

/// Why the session must end: sent to the peer in a close frame.
#[derive(Debug)]
struct Fail(CloseCode, String);

impl From<WireError> for Fail {
    fn from(error: WireError) -> Fail {
        let code = match error {
            WireError::TooLarge(_) => CloseCode::LimitExceeded,
            _ => CloseCode::ProtocolViolation,
        };
        Fail(code, error.to_string())
    }
}

fn violation(what: impl Into<String>) -> Fail {
    Fail(CloseCode::ProtocolViolation, what.into())
}

/// The per-round transfer bookkeeping.
#[derive(Debug, Default)]
struct Round {
    active: bool,
    /// We know everything we owe the peer this round.
    owe_complete: bool,
    send_done_sent: bool,
    peer_send_done: bool,
    /// Responder: the want list is complete.
    wants_done: bool,
    /// The round exchanges journal entries (after [`Message::Resume`]).
    resume: bool,
    /// The initiator started the round to compare again (a checkpoint), not to reconcile.
    confirm: bool,
    /// Our batches numbered below this belong to the round (set when we sent send-done):
    /// the round waits for their acknowledgements only, not for live pushes after them.
    send_bound: u64,
    /// The peer's batches numbered below this belong to the round (set when its send-done
    /// came): the round waits for them to be stored only.
    recv_bound: u64,
    /// Short ids the peer wants, queued this round (bounded by `max_send_queue`).
    wanted: usize,
}

/// One CHUM session. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    config: Config,
    phase: Phase,
    outputs: VecDeque<Output>,
    next_request: RequestId,
    pending: Vec<(RequestId, Pending)>,
    peer_limits: Limits,
    peer_window: usize,
    /// The peer's bound on unacknowledged object bytes (`u64::MAX` when it sent none).
    peer_window_bytes: u64,
    /// Our sending window in batches (within the peer's): it starts at
    /// [`INITIAL_WINDOW`] and follows twice the measured bandwidth-delay product, so a long
    /// path is kept full (see `on_acknowledged`).
    cwnd: usize,
    /// The shortest acknowledgement delay seen: the path's round trip without queueing.
    min_rtt: Option<Duration>,
    /// Object bytes the peer acknowledged so far, and when the latest acknowledgement came.
    delivered: u64,
    delivered_time: Duration,
    /// Batches the peer acknowledged so far.
    acknowledged: u64,
    /// The latest delivery-rate samples (bytes per second), for their maximum.
    rates: VecDeque<f64>,
    /// Each in-flight batch (beside `in_flight`): when it was sent, its object bytes, and
    /// `delivered`/`delivered_time` as they were then.
    in_flight_meta: VecDeque<SentBatch>,
    in_flight_bytes: u64,
    /// The peer's hello offered [`capability::EARLY_WANT_ALL`].
    early_want_all: bool,
    /// The peer's hello offered [`capability::CUMULATIVE_ACK`]: live batches may be
    /// acknowledged several at a time.
    cumulative_ack: bool,
    /// The newest batch stored and not yet acknowledged, and how many such batches.
    ack_owed: Option<u64>,
    acks_owed: usize,
    /// When the latest acknowledgement went out, and when the one owed is due.
    last_ack: Option<Duration>,
    ack_due: Option<Duration>,
    /// Initiator: asked for everything at once; the peer's summary (for the count) is due.
    awaiting_peer_summary: bool,
    /// Responder: the initiator announced an empty set (early want-all): our summary
    /// answers it instead of a sketch, and we send everything.
    early_peer: bool,
    /// Responder: the initiator's early `WantAll` has yet to arrive.
    want_all_due: bool,
    last_heard: Duration,
    last_progress: Duration,
    ping_sent: bool,
    finding: Finding,
    check: Option<Check>,
    full_fallback_used: bool,
    /// Initiator: our summary as sent first.
    initiator_summary: Option<Summary>,
    /// Listing our shared CIDs for a peer that lacks them all: the cursor.
    enumerate: Option<Option<Cid>>,
    /// Responder: the initiator's summary, compared with ours when our first sketch arrives.
    responder_compare: Option<Summary>,
    /// Responder: the most sketch cells the peer may ask for in this round — bounded by what
    /// this side holds (the set it answers from), so a request never amplifies (see
    /// `reconcile::sketch_cap`).
    sketch_cap: usize,
    round: Round,
    synced: bool,
    // Sending.
    to_resolve: VecDeque<u64>,
    /// CIDs the peer fetched, to be checked (held and shared) before loading.
    to_fetch: VecDeque<Cid>,
    to_load: VecDeque<Cid>,
    ready: VecDeque<Vec<(Cid, Vec<u8>)>>,
    next_send_seq: u64,
    in_flight: VecDeque<(u64, Vec<Cid>)>,
    // Receiving.
    next_recv_seq: u64,
    storing: VecDeque<(u64, Vec<Cid>, bool)>,
    /// Object bytes of each batch in `storing` (beside it) and their sum.
    storing_sizes: VecDeque<u64>,
    storing_bytes: u64,
    /// Refusals to send, by batch, before that batch's acknowledgement.
    refusing: VecDeque<(u64, Vec<Cid>, String)>,
    /// The encrypted channel, when [`Config::security`] is set.
    channel: Option<Channel>,
    /// The latest time handed in.
    now: Duration,
    /// The peer's journal, when both sides have one (checkpoints are exchanged).
    peer_journal: Option<JournalId>,
    /// The position of our journal the peer holds, when each side named the other's journal
    /// in its hello (the fast path applies).
    resume_from: Option<u64>,
    /// Journal pages stop carrying checkpoints (an object of a page could not be sent).
    marks_stopped: bool,
    /// Objects were refused in this session, either way: the sets cannot match, so the
    /// initiator stops comparing them again.
    refusals_seen: bool,
    /// Sending our journal's entries: the cursor and the head to stop at.
    journal_cursor: Option<(u64, Option<u64>)>,
    /// Initiator: our journal position as of the summary in flight.
    summary_position: Option<u64>,
    /// Responder: a summary that arrived while our part of a round was finishing or batches
    /// sent before it were still being stored; compared once batches below the number are.
    deferred_summary: Option<(Summary, u64)>,
    /// Initiator: when to compare summaries again after live traffic (checkpoints).
    confirm_due: Option<Duration>,
    /// Objects moved since our last summary was sent.
    moved: bool,
    /// Initiator: the comparison before `Synced` (which teaches both sides journal
    /// positions) was made.
    confirmed_once: bool,
    /// Journal pages queued: once every batch below the first number is sent, a checkpoint
    /// at the second follows them (pages go out in journal order).
    journal_marks: VecDeque<(u64, u64)>,
    /// Checkpoints from the peer, each held until the batches that came before it are
    /// stored: (batches received before it, position).
    peer_checkpoints: VecDeque<(u64, u64)>,
    /// This side refused objects of the peer: it no longer holds all of what the peer sent,
    /// so the peer's checkpoints are not taken.
    refused_some: bool,
}

impl Session {
    /// A new session at time `now`; its hello (and, for the initiator, the first request) is
    /// ready in [`Session::poll_output`] at once.
    pub fn new(config: Config, now: Duration) -> Session {
        let mut session = Session {
            phase: Phase::Hello,
            outputs: VecDeque::new(),
            next_request: 0,
            pending: Vec::new(),
            peer_limits: Limits::default(),
            peer_window: 1,
            peer_window_bytes: u64::MAX,
            cwnd: INITIAL_WINDOW,
            min_rtt: None,
            delivered: 0,
            delivered_time: now,
            acknowledged: 0,
            rates: VecDeque::new(),
            in_flight_meta: VecDeque::new(),
            in_flight_bytes: 0,
            early_want_all: false,
            cumulative_ack: false,
            ack_owed: None,
            acks_owed: 0,
            last_ack: None,
            ack_due: None,
            awaiting_peer_summary: false,
            early_peer: false,
            want_all_due: false,
            last_heard: now,
            last_progress: now,
            ping_sent: false,
            finding: Finding::Idle,
            check: None,
            full_fallback_used: false,
            initiator_summary: None,
            enumerate: None,
            responder_compare: None,
            sketch_cap: SKETCH_SIZES[0],
            round: Round::default(),
            synced: false,
            to_resolve: VecDeque::new(),
            to_fetch: VecDeque::new(),
            to_load: VecDeque::new(),
            ready: VecDeque::new(),
            next_send_seq: 0,
            in_flight: VecDeque::new(),
            next_recv_seq: 0,
            storing: VecDeque::new(),
            storing_sizes: VecDeque::new(),
            storing_bytes: 0,
            refusing: VecDeque::new(),
            channel: None,
            now,
            peer_journal: None,
            resume_from: None,
            marks_stopped: false,
            refusals_seen: false,
            journal_cursor: None,
            summary_position: None,
            deferred_summary: None,
            confirm_due: None,
            moved: false,
            confirmed_once: false,
            journal_marks: VecDeque::new(),
            peer_checkpoints: VecDeque::new(),
            refused_some: false,
            config,
        };
        if let Some(security) = session.config.security.clone() {
            session.phase = Phase::Handshake;
            match noise::handshake(&security, session.config.role == Role::Initiator) {
                Ok(state) => {
                    session.channel = Some(Channel {
                        handshake: Some(Box::new(state)),
                        transport: None,
                        payload: security.payload,
                        admitted: false,
                        held: Vec::new(),
                        outbox: Vec::new(),
                        inbox: Vec::new(),
                        filled: 0,
                    });
                    if session.config.role == Role::Initiator {
                        // → e
                        if let Err(fail) = session.write_handshake(&[]) {
                            session.fail(fail);
                        }
                    }
                }
                Err(error) => session.fail(Fail(
                    CloseCode::ProtocolViolation,
                    format!("cannot start the handshake: {error}"),
                )),
            }
            return session;
        }
        session.start();
        session
    }

    /// Sends the hello (and, for the initiator, asks for the summary): the session proper.
    fn start(&mut self) {
        self.phase = Phase::Hello;
        let session = self;
        let mut hello = Hello::new(
            session.config.limits,
            session.config.window,
            session.config.types.clone(),
        );
        hello.capabilities = capability::EARLY_WANT_ALL | capability::CUMULATIVE_ACK;
        hello.window_bytes = Some(session.config.window_bytes);
        if let Some(journal) = &mut session.config.journal {
            // One position per journal (a later entry wins), never our own, within the limit.
            let mut holds: Vec<(JournalId, u64)> = Vec::new();
            for &(id, position) in &journal.holds {
                match holds.iter_mut().find(|(seen, _)| *seen == id) {
                    Some(entry) => entry.1 = position,
                    None if id != journal.id => holds.push((id, position)),
                    None => {}
                }
            }
            holds.truncate(crate::wire::MAX_HOLDS);
            journal.holds.clone_from(&holds);
            hello.journal = Some(journal.id);
            hello.holds = holds;
        }
        session.transmit(&Message::Hello(hello));
        if session.config.role == Role::Initiator {
            // The summary goes out right behind the hello, so peers already in sync finish in
            // one round trip.
            session.round = Round {
                active: true,
                ..Round::default()
            };
            session.finding = Finding::OwnSummary;
            session.request(Request::Summary, Pending::Summary);
        }
        session.flush();
    }

    /// The role this session plays.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the first reconciliation and its transfer are complete both ways.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Object batches this side may have unacknowledged now: its sending window, which
    /// starts at [`INITIAL_WINDOW`] and grows towards the path's bandwidth-delay product,
    /// within the peer's window.
    pub fn send_window(&self) -> usize {
        self.cwnd.min(self.peer_window).max(1)
    }

    /// The next output, if any. Drain after every [`Session::handle_input`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the driver should call `handle_input(now, Input::Tick)` next at the latest.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.phase == Phase::Closed {
            return None;
        }
        let mut next = self.last_heard + self.config.idle_timeout;
        if !self.ping_sent {
            next = next.min(self.last_heard + self.config.keepalive);
        }
        if self.awaiting_peer() {
            next = next.min(self.last_progress + self.config.progress_timeout);
        }
        if let Some(due) = self.confirm_due {
            next = next.min(due);
        }
        if let Some(due) = self.ack_due {
            next = next.min(due);
        }
        Some(next)
    }

    /// Processes one input at time `now` (monotonic, any origin).
    pub fn handle_input(&mut self, now: Duration, input: Input) {
        if self.phase == Phase::Closed {
            return;
        }
        self.now = self.now.max(now);
        let result = match input {
            Input::Frame(frame) => {
                self.last_heard = self.last_heard.max(now);
                self.ping_sent = false;
                match &self.channel {
                    None => self.on_plain_frame(now, &frame),
                    Some(channel) if channel.transport.is_some() && channel.admitted => {
                        self.on_record(now, &frame)
                    }
                    Some(_) => self.on_handshake(frame),
                }
            }
            Input::Answer(id, answer) => self.on_answer(id, answer),
            Input::LocalStored(cids) => self.on_local_stored(cids),
            Input::Fetch(cids) => {
                self.fetch(cids);
                Ok(())
            }
            Input::Tick => self.on_tick(now),
            Input::TransportClosed => {
                self.finish(CloseCode::Normal, "the transport closed".into(), true);
                Ok(())
            }
            Input::Close => Err(Fail(CloseCode::Normal, "closed by the application".into())),
            Input::BadFrame { too_large, reason } => {
                let code = if too_large {
                    CloseCode::LimitExceeded
                } else {
                    CloseCode::ProtocolViolation
                };
                Err(Fail(code, reason))
            }
        };
        let result = result.and_then(|()| self.pump());
        if let Err(fail) = result {
            self.fail(fail);
        }
        self.flush();
    }

    /// Ends the session with a close frame (sent when the channel allows it).
    fn fail(&mut self, Fail(code, reason): Fail) {
        if self.phase == Phase::Closed {
            return;
        }
        self.transmit(&Message::Close {
            code,
            reason: reason.clone(),
        });
        self.flush();
        self.finish(code, reason, false);
    }

    fn finish(&mut self, code: CloseCode, reason: String, by_peer: bool) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.event(Event::Closed {
            code,
            reason,
            by_peer,
        });
    }

    /// Sends `message`; an acknowledgement owed goes out first, in the same record.
    fn transmit(&mut self, message: &Message) {
        if !matches!(message, Message::Ack { .. }) {
            self.send_owed_ack();
        }
        self.encode(message);
    }

    fn encode(&mut self, message: &Message) {
        match self.channel.as_mut() {
            None => self.outputs.push_back(Output::Transmit(message.encode())),
            Some(channel) => {
                // Before admission only a close may go out (once the channel is up): it tells
                // a refused peer why, and carries nothing else.
                if channel.admitted
                    || (channel.transport.is_some() && matches!(message, Message::Close { .. }))
                {
                    message.encode_framed_into(&mut channel.outbox);
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn request(&mut self, request: Request, pending: Pending) {
        let id = self.next_request;
        self.next_request += 1;
        self.pending.push((id, pending));
        self.outputs.push_back(Output::Request(id, request));
    }

    fn has_pending(&self, wanted: Pending) -> bool {
        self.pending.iter().any(|(_, pending)| *pending == wanted)
    }

    /// Whether the peer owes us something: a reply in reconciliation, acknowledgements, or
    /// the rest of its transfer.
    fn awaiting_peer(&self) -> bool {
        (self.round.active && !(self.round.send_done_sent && self.round.peer_send_done))
            || !self.in_flight.is_empty()
    }

    fn on_tick(&mut self, now: Duration) -> Result<(), Fail> {
        if self.awaiting_peer() && now >= self.last_progress + self.config.progress_timeout {
            return Err(Fail(
                CloseCode::Timeout,
                format!(
                    "the peer made no progress for {} ms",
                    (now - self.last_progress).as_millis()
                ),
            ));
        }
        if now >= self.last_heard + self.config.idle_timeout {
            return Err(Fail(
                CloseCode::Timeout,
                format!(
                    "nothing heard from the peer for {} ms",
                    (now - self.last_heard).as_millis()
                ),
            ));
        }
        if !self.ping_sent && now >= self.last_heard + self.config.keepalive {
            self.ping_sent = true;
            self.transmit(&Message::Ping);
        }
        if self.ack_due.is_some_and(|due| now >= due) {
            self.send_owed_ack();
        }
        if let Some(due) = self.confirm_due
            && now >= due
        {
            let quiet = !self.round.active
                && self.in_flight.is_empty()
                && self.storing.is_empty()
                && self.ready.is_empty()
                && self.to_load.is_empty()
                && self.pending.is_empty();
            if quiet {
                self.confirm();
            } else {
                self.confirm_due = Some(now + self.config.checkpoint_delay);
            }
        }
        Ok(())
    }

    fn on_plain_frame(&mut self, now: Duration, frame: &[u8]) -> Result<(), Fail> {
        // Keepalives show the peer is there, not that it moves.
        if !matches!(frame.first(), Some(0x0c | 0x0d)) {
            self.last_progress = self.last_progress.max(now);
        }
        self.on_frame(frame)
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Fail> {
        let message = Message::decode(frame, &self.config.limits)?;
        match (self.phase, message) {
            (_, Message::Close { code, reason }) => {
                self.finish(code, reason, true);
                Ok(())
            }
            (Phase::Hello, Message::Hello(hello)) => self.on_hello(hello),
            (Phase::Hello, Message::Welcome { certificate })
                if self.channel.is_some() && self.config.role == Role::Initiator =>
            {
                self.event(Event::Welcomed { certificate });
                Ok(())
            }
            (Phase::Hello, other) => {
                Err(violation(format!("expected a hello, got {}", name(&other))))
            }
            (_, Message::Hello(_)) => Err(violation("a second hello")),
            (_, Message::Ping) => {
                self.transmit(&Message::Pong);
                Ok(())
            }
            (_, Message::Pong) => Ok(()),
            (_, Message::Checkpoint { position }) => {
                if self.peer_journal.is_none() {
                    return Err(violation("a checkpoint without journals on both sides"));
                }
                if self.peer_checkpoints.len() >= self.config.window as usize * 4 + 16 {
                    return Err(Fail(
                        CloseCode::LimitExceeded,
                        "too many checkpoints ahead of the batches they follow".into(),
                    ));
                }
                // Taken once every batch that came before it is stored (a later one waiting on
                // the same batches replaces it, so the queue stays within the window).
                match self.peer_checkpoints.back_mut() {
                    Some((bound, held)) if *bound == self.next_recv_seq => *held = position,
                    _ => self
                        .peer_checkpoints
                        .push_back((self.next_recv_seq, position)),
                }
                self.take_checkpoints();
                Ok(())
            }
            (_, message) => match self.config.role {
                Role::Initiator => self.on_message_as_initiator(message),
                Role::Responder => self.on_message_as_responder(message),
            },
        }
    }

    fn on_hello(&mut self, hello: Hello) -> Result<(), Fail> {
        let version = PROTOCOL_VERSION.min(hello.max_version);
        if version < MIN_PROTOCOL_VERSION.max(hello.min_version) {
            return Err(Fail(
                CloseCode::IncompatibleVersion,
                format!(
                    "the peer speaks protocol versions {}..={}, this side {}..={}",
                    hello.min_version, hello.max_version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
                ),
            ));
        }
        if hello.limits.max_frame < 1_024
            || hello.limits.max_batch_objects == 0
            || hello.limits.max_ids < 64
            || hello.limits.max_sketch_cells < SKETCH_SIZES[0]
            || hello.window == 0
        {
            return Err(Fail(
                CloseCode::LimitExceeded,
                "the peer's limits are too small to make progress".into(),
            ));
        }
        self.peer_limits = hello.limits;
        self.peer_window = usize::try_from(hello.window.min(1_024)).unwrap_or(1_024);
        self.peer_window_bytes = hello.window_bytes.unwrap_or(u64::MAX);
        self.early_want_all = hello.capabilities & capability::EARLY_WANT_ALL != 0;
        self.cumulative_ack = hello.capabilities & capability::CUMULATIVE_ACK != 0;
        if let (Some(ours), Some(theirs)) = (&self.config.journal, hello.journal)
            // The same id: a copy of this store (or of its origin). Positions cannot tell the
            // two apart, so no journal fast path with it.
            && theirs != ours.id
        {
            self.peer_journal = Some(theirs);
            let they_hold = hello
                .holds
                .iter()
                .find(|(journal, _)| *journal == ours.id)
                .map(|(_, position)| *position);
            let we_hold = ours.holds.iter().any(|(journal, _)| *journal == theirs);
            if we_hold {
                self.resume_from = they_hold;
            }
        }
        self.phase = Phase::Running;
        self.event(Event::Connected {
            version,
            peer: hello,
        });
        Ok(())
    }

    fn on_answer(&mut self, id: RequestId, answer: Answer) -> Result<(), Fail> {
        let Some(index) = self.pending.iter().position(|(request, _)| *request == id) else {
            return Err(Fail(
                CloseCode::StoreFailure,
                format!("the driver answered request {id}, which is not outstanding"),
            ));
        };
        let (_, pending) = self.pending.remove(index);
        match (pending, answer) {
            (_, Answer::Failed(reason)) => Err(Fail(CloseCode::StoreFailure, reason)),
            (Pending::Admit, Answer::Admitted { welcome, journal }) => {
                self.config.journal = journal;
                self.on_admitted(welcome)
            }
            (Pending::Admit, Answer::Refused(reason)) => Err(Fail(CloseCode::Unauthorized, reason)),
            (Pending::Summary, Answer::Summary(summary, position)) => {
                self.moved = false;
                self.transmit(&Message::Summary(summary));
                self.initiator_summary = Some(summary);
                self.summary_position = position;
                if summary.count == 0 {
                    // We hold nothing: everything is wanted, no sketch round. Our hello
                    // offered early want-all, so a peer that knows it answers with its summary
                    // (one that does not, with a sketch or an in-sync: taken alike).
                    self.transmit(&Message::WantAll);
                    self.finding = Finding::Idle;
                    self.resume_from = None;
                    self.round.owe_complete = true;
                    self.awaiting_peer_summary = true;
                    return Ok(());
                }
                self.finding = Finding::AwaitSketch {
                    cells: None,
                    salt: 0,
                };
                Ok(())
            }
            (Pending::SizeFirstSketch, Answer::Summary(mine, _)) if self.early_peer => {
                // The initiator holds nothing and asked for everything: our count answers it.
                self.early_peer = false;
                self.responder_compare = None;
                self.resume_from = None;
                self.transmit(&Message::Summary(mine));
                Ok(())
            }
            (Pending::SizeFirstSketch, Answer::Summary(mine, position)) => {
                let theirs = self.responder_compare.unwrap_or(Summary::EMPTY);
                // Only the first comparison of a session may take the journal fast path.
                let resume = self.resume_from.take();
                if theirs == mine {
                    // In sync: no sketch needed at all.
                    self.responder_compare = None;
                    // The checkpoint first: an initiator may end the session at the in-sync.
                    self.send_checkpoint(position);
                    self.transmit(&Message::InSync);
                    self.round.wants_done = true;
                    self.round.owe_complete = true;
                    self.round.send_done_sent = true;
                    self.round.peer_send_done = true;
                    return Ok(());
                }
                if let Some(from) = resume {
                    // Both sides hold a position of the other's journal: exchange what
                    // follows it instead of a sketch; the initiator compares again after.
                    self.responder_compare = None;
                    self.transmit(&Message::Resume);
                    self.event(Event::Resumed);
                    self.round.resume = true;
                    self.round.wants_done = true;
                    self.journal_cursor = Some((from, None));
                    return Ok(());
                }
                let cells = first_sketch_cells(
                    mine.count,
                    theirs.count,
                    self.peer_limits.max_sketch_cells.min(MAX_SKETCH_FOR_PEER),
                );
                self.sketch_cap = sketch_cap(mine.count).max(cells);
                self.request(
                    Request::Sketch { cells, salt: 0 },
                    Pending::SketchForPeer { compare: true },
                );
                Ok(())
            }
            (
                Pending::Journal,
                Answer::Journal {
                    objects,
                    last,
                    head,
                },
            ) => {
                let Some((after, until)) = self.journal_cursor else {
                    return Err(Fail(
                        CloseCode::StoreFailure,
                        "internal: a journal answer without a cursor".into(),
                    ));
                };
                let until = until.unwrap_or(head);
                if last <= after || last >= until {
                    self.journal_cursor = None;
                    self.round.owe_complete = true;
                } else {
                    self.journal_cursor = Some((last, Some(until)));
                }
                if self.make_batches(objects) > 0 {
                    // An object of the page cannot be sent to this peer: from here on the
                    // peer would not hold everything a checkpoint claims.
                    self.marks_stopped = true;
                    self.journal_marks.clear();
                }
                if last > after && !self.marks_stopped {
                    // Batches are numbered in queue order: this page's are all below this.
                    let bound = self.next_send_seq + self.ready.len() as u64;
                    self.journal_marks.push_back((bound, last));
                }
                Ok(())
            }
            (Pending::Enumerate, Answer::Objects { objects, next }) => {
                match next {
                    None => {
                        self.enumerate = None;
                        self.round.owe_complete = true;
                    }
                    Some(next) => self.enumerate = Some(Some(next)),
                }
                self.make_batches(objects);
                Ok(())
            }
            (Pending::SketchForPeer { compare }, Answer::Sketch(summary, sketch)) => {
                if compare && self.responder_compare.take() == Some(summary) {
                    self.transmit(&Message::InSync);
                    self.round.wants_done = true;
                    self.round.owe_complete = true;
                    self.round.send_done_sent = true;
                    self.round.peer_send_done = true;
                } else {
                    self.transmit(&Message::Sketch { summary, sketch });
                }
                Ok(())
            }
            (Pending::OwnSketch, Answer::Sketch(mine, sketch)) => self.on_own_sketch(mine, sketch),
            (Pending::ListForPeer { limit, full: false }, Answer::ShortIds(ids)) => {
                let last = ids.len() < limit;
                self.transmit(&Message::IdList { last, ids });
                Ok(())
            }
            (Pending::ListForPeer { limit, full: true }, Answer::Cids(cids)) => {
                let last = cids.len() < limit;
                self.transmit(&Message::CidList { last, cids });
                Ok(())
            }
            (Pending::OwnList { limit }, Answer::ShortIds(ids)) => {
                let done = ids.len() < limit;
                self.on_our_list(done, ids.into_iter().map(ListItem::Short).collect())
            }
            (Pending::OwnList { limit }, Answer::Cids(cids)) => {
                let done = cids.len() < limit;
                self.on_our_list(done, cids.into_iter().map(ListItem::Full).collect())
            }
            (Pending::Shared, Answer::Resolved(cids)) => {
                self.to_load.extend(cids);
                Ok(())
            }
            (Pending::Resolve, Answer::Resolved(cids)) => {
                if let Some(check) = &mut self.check {
                    cids.iter().for_each(|cid| check.expected.remove(cid));
                }
                self.to_load.extend(cids);
                Ok(())
            }
            (Pending::Load, Answer::Loaded(objects)) => {
                self.make_batches(objects);
                Ok(())
            }
            (Pending::Store { seq }, answer @ (Answer::Stored | Answer::StoredExcept(_))) => {
                let refused = match answer {
                    Answer::StoredExcept(refused) => refused,
                    _ => Vec::new(),
                };
                if let Some(entry) = self.storing.iter_mut().find(|(s, _, _)| *s == seq) {
                    entry.2 = true;
                    if !refused.is_empty() {
                        self.refused_some = true;
                        self.refusals_seen = true;
                        entry.1.retain(|cid| !refused.iter().any(|(r, _)| r == cid));
                        let reason = refused
                            .first()
                            .map(|(_, reason)| {
                                reason.chars().take(self.peer_limits.max_text).collect()
                            })
                            .unwrap_or_default();
                        let cids = refused.into_iter().map(|(cid, _)| cid).collect();
                        self.refusing.push_back((seq, cids, reason));
                    }
                }
                while self.storing.front().is_some_and(|(_, _, done)| *done) {
                    if let Some((seq, cids, _)) = self.storing.pop_front() {
                        let size = self.storing_sizes.pop_front().unwrap_or(0);
                        self.storing_bytes = self.storing_bytes.saturating_sub(size);
                        while let Some(position) =
                            self.refusing.iter().position(|(s, _, _)| *s == seq)
                        {
                            if let Some((seq, cids, reason)) = self.refusing.remove(position) {
                                self.transmit(&Message::Refused { seq, cids, reason });
                            }
                        }
                        self.ack_owed = Some(seq);
                        self.acks_owed += 1;
                        self.event(Event::Received(cids));
                    }
                }
                self.settle_acks();
                self.take_checkpoints();
                Ok(())
            }
            (Pending::Store { .. }, Answer::Invalid(reason)) => {
                Err(Fail(CloseCode::InvalidObject, reason))
            }
            (pending, answer) => Err(Fail(
                CloseCode::StoreFailure,
                format!(
                    "the driver answered {pending:?} with {}",
                    answer_name(&answer)
                ),
            )),
        }
    }
}

fn name(message: &Message) -> &'static str {
    match message {
        Message::Hello(_) => "hello",
        Message::Summary(_) => "summary",
        Message::InSync => "in-sync",
        Message::Sketch { .. } => "sketch",
        Message::SketchRequest { .. } => "sketch request",
        Message::ListRequest { .. } => "list request",
        Message::IdList { .. } => "id list",
        Message::CidListRequest { .. } => "CID list request",
        Message::CidList { .. } => "CID list",
        Message::Want { .. } => "want",
        Message::Objects { .. } => "objects",
        Message::Ack { .. } => "ack",
        Message::SendDone => "send-done",
        Message::Resume => "resume",
        Message::Checkpoint { .. } => "checkpoint",
        Message::WantAll => "want-all",
        Message::Fetch { .. } => "fetch",
        Message::Welcome { .. } => "welcome",
        Message::Refused { .. } => "refused",
        Message::Ping => "ping",
        Message::Pong => "pong",
        Message::Close { .. } => "close",
    }
}

fn answer_name(answer: &Answer) -> &'static str {
    match answer {
        Answer::Summary(..) => "a summary",
        Answer::Sketch(..) => "a sketch",
        Answer::ShortIds(_) => "short ids",
        Answer::Cids(_) => "CIDs",
        Answer::Resolved(_) => "resolved CIDs",
        Answer::Loaded(_) => "loaded objects",
        Answer::Objects { .. } => "objects",
        Answer::Journal { .. } => "journal entries",
        Answer::Stored => "stored",
        Answer::StoredExcept(_) => "stored except",
        Answer::Invalid(_) => "invalid",
        Answer::Failed(_) => "failed",
        Answer::Admitted { .. } => "admitted",
        Answer::Refused(_) => "refused",
    }
}
