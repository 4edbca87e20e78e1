//! What a host reports: events of its sessions, and how each session ended.

use chum_access::Identity;
use chum_access::handshake::Peer;
use chum_object::Cid;
use chum_sync::CloseCode;

/// What a node reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session's hellos were exchanged.
    Connected {
        /// The session.
        session: u64,
        /// The remote end.
        remote: String,
        /// Who the peer is (encrypted sessions).
        peer: Option<Box<Peer>>,
    },
    /// Objects from a peer, newly stored here (objects already held are not announced again),
    /// with every object they link to stored too (an object that arrives before its link
    /// targets is announced when the last arrives).
    Received {
        /// The session they came through.
        session: u64,
        /// Their CIDs.
        cids: Vec<Cid>,
        /// What verifying each learned of it (same order as `cids`; `None` where the path
        /// that stored it kept nothing), so a handler need not read or decode it again.
        facts: Vec<Option<Facts>>,
    },
    /// A peer acknowledged durably storing these objects.
    PeerStored {
        /// The session.
        session: u64,
        /// Their CIDs.
        cids: Vec<Cid>,
    },
    /// The peer refused these objects (e.g. they break its recipes); it does not hold them.
    PeerRefused {
        /// The session.
        session: u64,
        /// Their CIDs.
        cids: Vec<Cid>,
        /// The peer's reason.
        reason: String,
    },
    /// Objects from the peer that this node refused one by one (e.g. they break its recipes):
    /// they are not stored, the peer was told, the session goes on.
    Refused {
        /// The session.
        session: u64,
        /// Each refused object with the reason.
        refused: Vec<(Cid, String)>,
    },
    /// Objects the peer cannot take: each is larger than its frame limit.
    NotSent {
        /// The session.
        session: u64,
        /// Their CIDs.
        cids: Vec<Cid>,
    },
    /// A session's first reconciliation is complete both ways.
    Synced {
        /// The session.
        session: u64,
    },
    /// Objects from a peer, durably stored here, whose link targets never arrived: the peer
    /// did not have them, or too many objects were waiting.
    Incomplete {
        /// The session.
        session: u64,
        /// Their CIDs.
        cids: Vec<Cid>,
    },
    /// A session ended: the last event of its (after whatever its last commit stored).
    Closed {
        /// The session.
        session: u64,
        /// Why.
        code: CloseCode,
        /// Detail.
        reason: String,
    },
}

/// What the receive path learned of an object while verifying it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Facts {
    /// Its `$type`, when it has one.
    pub type_name: Option<chum_object::Text>,
    /// For a `Version`: the ID hash of the object it changes.
    pub version_of: Option<Cid>,
}

impl Facts {
    /// Facts of an object: its `$type`, and for a version the ID hash it changes.
    pub fn new(type_name: Option<String>, version_of: Option<Cid>) -> Facts {
        Facts {
            type_name: type_name.map(chum_object::Text::from),
            version_of,
        }
    }

    pub(crate) fn of(entries: &chum_store::index::IndexEntries) -> Facts {
        Facts {
            type_name: entries.type_name.clone(),
            version_of: entries.version.as_ref().map(|version| version.of.clone()),
        }
    }
}

/// How a session ended, and what it moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// The session's number in this node.
    pub session: u64,
    /// Whether its first reconciliation completed both ways.
    pub synced: bool,
    /// Why it ended.
    pub code: CloseCode,
    /// Detail.
    pub reason: String,
    /// Whether the peer ended it.
    pub by_peer: bool,
    /// Whether its first comparison took the journal fast path (see `chum_sync::Event::Resumed`).
    pub resumed: bool,
    /// Objects received and stored.
    pub received: u64,
    /// Objects the peer acknowledged.
    pub sent: u64,
    /// Frames and bytes written.
    pub frames_out: u64,
    /// Bytes written (frame payloads).
    pub bytes_out: u64,
    /// Who the peer is (encrypted sessions, once the handshake admitted it).
    pub peer: Option<Peer>,
    /// For a session that joined a person with an invitation: the new identity (save it).
    pub joined: Option<Identity>,
}

impl SessionReport {
    /// The report of session `session` before anything happened (ended normally, nothing
    /// moved, no peer).
    pub fn new(session: u64) -> SessionReport {
        SessionReport {
            session,
            synced: false,
            code: CloseCode::Normal,
            reason: String::new(),
            by_peer: false,
            resumed: false,
            received: 0,
            sent: 0,
            frames_out: 0,
            bytes_out: 0,
            peer: None,
            joined: None,
        }
    }
}

/// How one session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// End the session (normally) once the first reconciliation completed both ways, instead
    /// of staying live.
    pub close_when_synced: bool,
}
