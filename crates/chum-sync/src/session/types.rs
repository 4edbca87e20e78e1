//! The public types of a session: its configuration, the requests it makes of its driver and
//! their answers, its inputs, outputs and events.

use std::time::Duration;

use chum_object::Cid;

use crate::ids::{JournalId, Summary};
use crate::noise::Security;
use crate::sketch::Sketch;
use crate::wire::{CloseCode, Hello, Limits};

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
    /// Object bytes (CIDs and bytes) the peer may have in flight towards us before we
    /// acknowledge them; with `window`, what a peer can make this side buffer.
    pub window_bytes: u64,
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
    /// journal fast path, see the [module documentation](super)). `None` offers no journal:
    /// summaries and sketches only. An encrypted session takes the journal from the driver's
    /// [`Answer::Admitted`] instead, once it knows the peer.
    pub journal: Option<Journal>,
    /// Quiet time after objects moved in the live phase before the initiator compares
    /// summaries again, so both sides learn new journal positions (only with journals on both
    /// sides; a few bytes each time).
    pub checkpoint_delay: Duration,
    /// In the live phase, how long after an acknowledgement the next may wait, so one message
    /// acknowledges the batches that arrive meanwhile (when the peer's hello offers
    /// [`capability::CUMULATIVE_ACK`](crate::wire::capability::CUMULATIVE_ACK)). A batch
    /// arriving after a quiet spell is acknowledged at once; an acknowledgement due rides in
    /// the next frame this side sends anyway; half a window unacknowledged is acknowledged
    /// at once. Reconciliation and transfer rounds acknowledge every batch at once.
    /// `Duration::ZERO` acknowledges every batch at once always.
    pub ack_delay: Duration,
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
            window: 256,
            window_bytes: 32 << 20,
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
            ack_delay: Duration::from_millis(100),
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
    /// snapshot or earlier (`None` without a journal; see
    /// [`Message::Checkpoint`](crate::wire::Message::Checkpoint)).
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
    /// with an invitation (sent in a [`Message::Welcome`](crate::wire::Message::Welcome));
    /// `journal` replaces [`Config::journal`] for this peer (`None`: no journal fast path with
    /// it).
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
    /// Time passed (see [`Session::poll_timeout`](super::Session::poll_timeout)).
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
    /// The first comparison took the journal fast path: both sides exchange what follows the
    /// positions they hold of each other's journal instead of a sketch.
    Resumed,
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
