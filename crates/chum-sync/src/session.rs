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
//! - each side sends what the other lacks in acknowledged, windowed batches, then `SendDone`;
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

use std::collections::VecDeque;
use std::time::Duration;

use chum_object::Cid;

use crate::ids::{JournalId, Summary, short_id};
use crate::noise::{self, MAX_RECORD, MAX_RECORD_PLAINTEXT, Security};
use crate::reconcile::SKETCH_SIZES;
use crate::sketch::{Sketch, SketchError};
use crate::wire::{
    CloseCode, Hello, Limits, MIN_PROTOCOL_VERSION, Message, PROTOCOL_VERSION, WireError,
};

/// Which side of the connection this session is. The initiator (usually the side that
/// connected) drives reconciliation; both sides send and receive objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Drives reconciliation.
    Initiator,
    /// Answers reconciliation.
    Responder,
}

/// How a session behaves; [`Config::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This side's role.
    pub role: Role,
    /// What this side accepts from the peer (announced in the hello).
    pub limits: Limits,
    /// Batches the peer may have in flight towards us before we acknowledge them.
    pub window: u64,
    /// Types this side syncs (announced; informative in protocol version 1).
    pub types: Vec<String>,
    /// Target payload bytes per object batch (kept below the peer's frame limit).
    pub batch_bytes: usize,
    /// Short ids resolved or objects loaded per store request.
    pub request_chunk: usize,
    /// Silence after which a ping is sent.
    pub keepalive: Duration,
    /// Silence after which the session closes with [`CloseCode::Timeout`].
    pub idle_timeout: Duration,
    /// How long the session waits for the peer's part of the work (a reply, an
    /// acknowledgement, the rest of a transfer) while only pings arrive, before it closes
    /// with [`CloseCode::Timeout`]. Stops a peer that keeps the connection alive but never
    /// moves from stalling a sync forever.
    pub progress_timeout: Duration,
    /// The most objects queued for sending; live objects beyond it close the session with
    /// [`CloseCode::LimitExceeded`] (the next session's reconciliation catches up).
    pub max_send_queue: usize,
    /// Encrypt and authenticate the session (Noise XX) with these keys and payload. `None`
    /// sends frames in the clear — for tests and trusted in-process pipes only.
    pub security: Option<Security>,
    /// This side's journal and what it holds of others' journals, announced in the hello (the
    /// journal fast path, see the [module documentation](self)). `None` offers no journal:
    /// summaries and sketches only. An encrypted session takes the journal from the driver's
    /// [`Answer::Admitted`] instead, once it knows the peer.
    pub journal: Option<Journal>,
    /// Quiet time after objects moved in the live phase before the initiator compares
    /// summaries again, so both sides learn new journal positions (only with journals on both
    /// sides; a few bytes each time).
    pub checkpoint_delay: Duration,
}

/// This side's journal id and its version vector over other journals: every journal listed
/// with the position up to which this side holds every object of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// This store's journal.
    pub id: JournalId,
    /// Positions held of other journals (at most [`crate::wire::MAX_HOLDS`]; more are not
    /// sent).
    pub holds: Vec<(JournalId, u64)>,
}

impl Config {
    /// The defaults for `role`.
    pub fn new(role: Role) -> Config {
        Config {
            role,
            limits: Limits::default(),
            window: 8,
            types: Vec::new(),
            batch_bytes: 256 << 10,
            request_chunk: 2_048,
            keepalive: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            progress_timeout: Duration::from_secs(60),
            max_send_queue: 1 << 20,
            security: None,
            journal: None,
            checkpoint_delay: Duration::from_secs(1),
        }
    }
}

/// Identifies a request to the driver; the answer carries it back.
pub type RequestId = u64;

/// What the session asks of its driver's store. The set in question is the store's **shared**
/// set: every object that syncs (instance-local objects are never part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// A sketch of the shared set with this many cells and salt, and the summary of the same
    /// snapshot → [`Answer::Sketch`].
    Sketch {
        /// Cells.
        cells: usize,
        /// Salt.
        salt: u64,
    },
    /// The summary of the shared set → [`Answer::Summary`].
    Summary,
    /// Short ids of the shared set, ascending, strictly greater than `after`, at most `limit`
    /// (a short id shared by several CIDs appears once per CID) → [`Answer::ShortIds`].
    ShortIds {
        /// Exclusive lower bound.
        after: Option<u64>,
        /// At most this many.
        limit: usize,
    },
    /// CIDs of the shared set, ascending by bytes, strictly after `after`, at most `limit`
    /// → [`Answer::Cids`].
    Cids {
        /// Exclusive lower bound.
        after: Option<Cid>,
        /// At most this many.
        limit: usize,
    },
    /// Every stored shared CID having one of these short ids → [`Answer::Resolved`].
    Resolve(Vec<u64>),
    /// Those of these CIDs that are stored and shared (a peer asked for them) →
    /// [`Answer::Resolved`]. Never an instance-local object.
    Shared(Vec<Cid>),
    /// The bytes of these objects → [`Answer::Loaded`] (absent ones omitted).
    Load(Vec<Cid>),
    /// Shared objects with their bytes, ascending by CID, strictly after `after`, at most
    /// `limit` listed → [`Answer::Objects`] (a bulk read, for a peer that lacks everything).
    Objects {
        /// Exclusive lower bound.
        after: Option<Cid>,
        /// At most this many listed.
        limit: usize,
    },
    /// Store these objects (from the peer) durably, verifying each → [`Answer::Stored`], or
    /// [`Answer::Invalid`] naming the first that failed verification.
    Store(Vec<(Cid, Vec<u8>)>),
    /// Entries of this store's journal after position `after`, in journal order, at most
    /// `limit` examined → [`Answer::Journal`]. Only objects still stored and shared are
    /// returned.
    Journal {
        /// Exclusive lower bound.
        after: u64,
        /// At most this many entries examined.
        limit: usize,
    },
    /// Decide whether to talk to this peer → [`Answer::Admitted`] or [`Answer::Refused`].
    /// Asked once, during the handshake of an encrypted session: `payload` is the peer's
    /// handshake payload and `remote_static` the static key the handshake proved it holds.
    /// Every later request of the session is on behalf of the admitted peer.
    Admit {
        /// The peer's handshake payload.
        payload: Vec<u8>,
        /// The peer's static X25519 public key.
        remote_static: [u8; 32],
    },
}

/// The driver's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// For [`Request::Summary`]: the summary, and the store's journal position as of that
    /// snapshot or earlier (`None` without a journal; see [`Message::Checkpoint`]).
    Summary(Summary, Option<u64>),
    /// For [`Request::Sketch`].
    Sketch(Summary, Sketch),
    /// For [`Request::ShortIds`].
    ShortIds(Vec<u64>),
    /// For [`Request::Cids`].
    Cids(Vec<Cid>),
    /// For [`Request::Resolve`].
    Resolved(Vec<Cid>),
    /// For [`Request::Load`].
    Loaded(Vec<(Cid, Vec<u8>)>),
    /// For [`Request::Journal`]: the objects of the entries examined (in journal order; absent,
    /// local or unreadable ones omitted), the position of the last entry examined (`after`
    /// when none) and the journal's newest position.
    Journal {
        /// The objects.
        objects: Vec<(Cid, Vec<u8>)>,
        /// The last position examined: continue after it.
        last: u64,
        /// The newest position of the journal.
        head: u64,
    },
    /// For [`Request::Objects`]: the objects (unreadable ones omitted) and the CID to continue
    /// after, `None` when the shared set is exhausted.
    Objects {
        /// The objects.
        objects: Vec<(Cid, Vec<u8>)>,
        /// Where to continue.
        next: Option<Cid>,
    },
    /// For [`Request::Store`]: all stored durably.
    Stored,
    /// For [`Request::Store`]: all stored durably except these, refused one by one (e.g. they
    /// break a recipe of this side); the peer is told, and the session goes on.
    StoredExcept(Vec<(Cid, String)>),
    /// For [`Request::Store`]: an object failed verification; nothing of the batch was stored.
    Invalid(String),
    /// The store failed; the session closes with [`CloseCode::StoreFailure`].
    Failed(String),
    /// For [`Request::Admit`]: go on; `welcome` is a certificate to hand a peer that joined
    /// with an invitation (sent in a [`Message::Welcome`]); `journal` replaces
    /// [`Config::journal`] for this peer (`None`: no journal fast path with it).
    Admitted {
        /// The joining peer's new certificate.
        welcome: Option<Vec<u8>>,
        /// The journal offered to this peer.
        journal: Option<Journal>,
    },
    /// For [`Request::Admit`]: the peer may not connect; the session closes with
    /// [`CloseCode::Unauthorized`] and this reason.
    Refused(String),
}

/// Something that happened to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// One frame from the transport.
    Frame(Vec<u8>),
    /// The answer to a request.
    Answer(RequestId, Answer),
    /// Objects newly stored locally by anyone but this session (the app, another session):
    /// pushed to the peer at once.
    LocalStored(Vec<Cid>),
    /// Ask the peer for these objects (targets of links of objects it sent that this side
    /// lacks); it sends those it holds. Ignored before the hellos are exchanged.
    Fetch(Vec<Cid>),
    /// Time passed (see [`Session::poll_timeout`]).
    Tick,
    /// The transport closed or failed.
    TransportClosed,
    /// The transport received something that is not a frame: one over the frame limit
    /// (`too_large`: the session closes with `limit exceeded`) or a message of the wrong kind
    /// (`protocol violation`), telling the peer why.
    BadFrame {
        /// Whether the frame was over the limit.
        too_large: bool,
        /// What was wrong.
        reason: String,
    },
    /// The application ends the session.
    Close,
}

/// What the session wants done or reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send this frame.
    Transmit(Vec<u8>),
    /// Do this and answer with [`Input::Answer`].
    Request(RequestId, Request),
    /// Tell the application.
    Event(Event),
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer that admitted this side (as joining with an invitation) issued this
    /// certificate for it.
    Welcomed {
        /// The certificate object's bytes.
        certificate: Vec<u8>,
    },
    /// Hellos exchanged; `version` is the protocol version in use.
    Connected {
        /// The negotiated version.
        version: u64,
        /// The peer's hello.
        peer: Hello,
    },
    /// Reconciliation found the difference.
    Reconciled {
        /// Objects (short ids) we hold and the peer lacks.
        peer_lacks: usize,
        /// Objects (short ids) the peer holds and we lack.
        we_lack: usize,
    },
    /// Objects from the peer, now durably stored here.
    Received(Vec<Cid>),
    /// The peer acknowledged durably storing these objects.
    PeerStored(Vec<Cid>),
    /// The peer refused these objects we sent (it does not hold them), and why.
    PeerRefused {
        /// The objects.
        cids: Vec<Cid>,
        /// The peer's reason.
        reason: String,
    },
    /// These objects were not sent: each is larger than the peer's frame limit.
    TooLarge(Vec<Cid>),
    /// Both directions of the reconciliation's transfer are complete; from now on new objects
    /// are pushed live.
    Synced,
    /// The peer's summary matched ours: this side holds every object of the peer's journal
    /// `journal` up to `position`. Remember it (instance-local) and name it in the next
    /// session's [`Journal::holds`] with this peer.
    Checkpoint {
        /// The peer's journal.
        journal: JournalId,
        /// The position held.
        position: u64,
    },
    /// The session ended; no further output follows.
    Closed {
        /// Why.
        code: CloseCode,
        /// Detail.
        reason: String,
        /// Whether the peer (rather than this side) ended it.
        by_peer: bool,
    },
}

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

/// How the initiator is finding the difference.
#[derive(Debug)]
enum Finding {
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
struct ListMerge {
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
enum ListItem {
    Short(u64),
    Full(Cid),
}

/// What the initiator checks once a round's transfer is done: the peer's set (at its sketch)
/// must equal ours minus what only we held plus what only they held, in full-CID fingerprints.
#[derive(Debug)]
struct Check {
    theirs: Summary,
    expected: Summary,
    /// Short ids we asked for and have not yet seen arrive.
    wanted: std::collections::HashSet<u64>,
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

/// The Noise state of an encrypted session.
#[derive(Debug)]
struct Channel {
    handshake: Option<Box<snow::HandshakeState>>,
    transport: Option<Box<snow::TransportState>>,
    /// This side's handshake payload, until sent.
    payload: Vec<u8>,
    /// The driver admitted the peer.
    admitted: bool,
    /// Records that arrived while the driver was deciding (bounded).
    held: Vec<Vec<u8>>,
    /// Plaintext frames (length-prefixed) not yet sealed into records.
    outbox: Vec<u8>,
    /// Decrypted stream bytes not yet parsed into frames: the first `filled` bytes (the rest
    /// is room, kept to avoid zeroing it again for every record).
    inbox: Vec<u8>,
    filled: usize,
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

/// Bytes a batch frame spends besides the objects: tag, sequence number, count.
const BATCH_OVERHEAD: usize = 1 + 10 + 10;
/// Bytes one object spends in a batch besides its bytes: two length varints and the CID.
const OBJECT_OVERHEAD: usize = 5 + 5 + 64;
/// Sketch retries at one size with fresh salts, when a decode only just failed.
const SALT_RETRIES: u64 = 2;
/// The largest sketch a responder computes for a peer.
const MAX_SKETCH_FOR_PEER: usize = 1 << 22;

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
            last_heard: now,
            last_progress: now,
            ping_sent: false,
            finding: Finding::Idle,
            check: None,
            full_fallback_used: false,
            initiator_summary: None,
            enumerate: None,
            responder_compare: None,
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

    fn on_plain_frame(&mut self, now: Duration, frame: &[u8]) -> Result<(), Fail> {
        // Keepalives show the peer is there, not that it moves.
        if !matches!(frame.first(), Some(0x0c | 0x0d)) {
            self.last_progress = self.last_progress.max(now);
        }
        self.on_frame(frame)
    }

    fn write_handshake(&mut self, payload: &[u8]) -> Result<(), Fail> {
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
    fn on_handshake(&mut self, frame: Vec<u8>) -> Result<(), Fail> {
        let initiator = self.config.role == Role::Initiator;
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
    fn on_admitted(&mut self, welcome: Option<Vec<u8>>) -> Result<(), Fail> {
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
    fn on_record(&mut self, now: Duration, record: &[u8]) -> Result<(), Fail> {
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
    fn flush(&mut self) {
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

    fn transmit(&mut self, message: &Message) {
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

    /// Short ids (or CIDs, with `full`) per list chunk for the peer.
    fn list_chunk(&self, full: bool) -> usize {
        let per_item = if full { 38 } else { 8 };
        self.peer_limits
            .max_ids
            .min(self.peer_limits.max_frame.saturating_sub(16) / per_item)
            .max(1)
    }

    fn start_round(&mut self) {
        self.round = Round {
            active: true,
            ..Round::default()
        };
    }

    fn on_message_as_responder(&mut self, message: Message) -> Result<(), Fail> {
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
                let limit = self.peer_limits.max_sketch_cells.min(MAX_SKETCH_FOR_PEER);
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

    fn on_message_as_initiator(&mut self, message: Message) -> Result<(), Fail> {
        match message {
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

    /// Sends fetch messages for `cids`, within the peer's limits.
    fn fetch(&mut self, cids: Vec<Cid>) {
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

    fn on_transfer_message(&mut self, message: Message) -> Result<(), Fail> {
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
            Message::Ack { seq } => match self.in_flight.front() {
                Some((expected, _)) if *expected == seq => {
                    if let Some((_, cids)) = self.in_flight.pop_front() {
                        self.event(Event::PeerStored(cids));
                    }
                    Ok(())
                }
                _ => Err(violation(format!(
                    "an acknowledgement of batch {seq}, not in flight"
                ))),
            },
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

    fn on_local_stored(&mut self, cids: Vec<Cid>) -> Result<(), Fail> {
        if self.to_load.len() + cids.len() > self.config.max_send_queue {
            return Err(Fail(
                CloseCode::LimitExceeded,
                "too many new objects queued for a slow peer; the next session catches up".into(),
            ));
        }
        self.to_load.extend(cids);
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
                self.finding = Finding::AwaitSketch {
                    cells: None,
                    salt: 0,
                };
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
                        while let Some(position) =
                            self.refusing.iter().position(|(s, _, _)| *s == seq)
                        {
                            if let Some((seq, cids, reason)) = self.refusing.remove(position) {
                                self.transmit(&Message::Refused { seq, cids, reason });
                            }
                        }
                        self.transmit(&Message::Ack { seq });
                        self.event(Event::Received(cids));
                    }
                }
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

    /// Initiator: our sketch of the size the peer sent; subtract and peel.
    fn on_own_sketch(&mut self, mine: Summary, ours: Sketch) -> Result<(), Fail> {
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

    fn on_our_list(&mut self, done: bool, items: Vec<ListItem>) -> Result<(), Fail> {
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

    /// Splits loaded objects into batches within the peer's limits; returns how many were too
    /// large to send at all.
    fn make_batches(&mut self, objects: Vec<(Cid, Vec<u8>)>) -> usize {
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

    /// Moves the transfer along: resolve, load and send within the window; finish rounds.
    fn pump(&mut self) -> Result<(), Fail> {
        if self.phase != Phase::Running {
            return Ok(());
        }
        while self.in_flight.len() < self.peer_window {
            let Some(objects) = self.ready.pop_front() else {
                break;
            };
            let seq = self.next_send_seq;
            self.next_send_seq += 1;
            let cids = objects.iter().map(|(cid, _)| cid.clone()).collect();
            self.transmit(&Message::Objects { seq, objects });
            self.in_flight.push_back((seq, cids));
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
            // The first sketch is sized from both counts: ask for ours first.
            self.request(Request::Summary, Pending::SizeFirstSketch);
        }
        Ok(())
    }

    /// Reports the peer's checkpoints whose preceding batches are all stored.
    fn take_checkpoints(&mut self) {
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
    fn send_checkpoint(&mut self, position: Option<u64>) {
        if let (Some(_), Some(position)) = (self.peer_journal, position) {
            self.transmit(&Message::Checkpoint { position });
        }
    }

    /// Objects moved: once things are quiet again, the initiator compares summaries so both
    /// sides learn new journal positions.
    fn note_traffic(&mut self) {
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
    fn confirm(&mut self) {
        self.confirm_due = None;
        self.start_round();
        self.round.confirm = true;
        self.finding = Finding::OwnSummary;
        self.request(Request::Summary, Pending::Summary);
    }

    /// A round is complete both ways (`confirm`: it began as a comparison after traffic).
    fn finish_round(&mut self, confirm: bool) {
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

/// The first sketch's size, from the two set sizes: at least 1.5 cells per certain difference
/// (the counts differ by at least that many), unless a list would be cheaper anyway.
fn first_sketch_cells(mine: u64, theirs: u64, limit: usize) -> usize {
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
