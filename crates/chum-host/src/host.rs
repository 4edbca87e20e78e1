//! The [`Host`]: every session of one node, and the policy around them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chum_access::handshake::Peer;
use chum_access::{
    HubViews, Identity, InstanceId, Invitation, PeerAccess, PersonId, Policy, SignatureCheck,
};
use chum_object::Cid;
use chum_object::sign::SigningKey;
use chum_store::Store;
use chum_store::index::{Acceptance, RecipeCheck, Verified};
use chum_sync::session::Journal;
use chum_sync::wire::MAX_HOLDS;
use chum_sync::{
    Answer, CloseCode, Config, Event, Input, Output, Request, RequestId, Role, Session,
};

use crate::commit::{Commit, Committed, LocalWrite};
use crate::deps::{Dependencies, MAX_WAITING};
use crate::events::{Facts, NodeEvent, SessionOptions, SessionReport};
use crate::journals;
use crate::peers::PeerRecord;

/// A connection's number, chosen by the driver; it is the session's number in every event.
/// Number 0 is the application (see [`NodeEvent`]'s `session`): use 1 and up.
pub type ConnId = u64;

/// The time of an input, passed in by the driver (the host never reads a clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time since any fixed point of the driver's (never going back): session
    /// timers run on it.
    pub elapsed: Duration,
    /// Wall-clock time, ms since the Unix epoch: certificates' validity and peer records.
    pub unix_ms: u64,
}

/// What arrived for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnInput {
    /// A frame from the transport.
    Frame(Vec<u8>),
    /// The transport delivered something that is not a frame (too large, or not binary).
    BadFrame {
        /// Larger than the frame limit.
        too_large: bool,
        /// What was wrong.
        reason: String,
    },
    /// The transport is gone (closed, reset, or a write failed or timed out). Also for a
    /// connection the driver abandons.
    TransportClosed,
    /// End the session with a close frame (code `normal`).
    Close,
}

/// What the host asks of its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostOutput {
    /// Send `frame` on the connection (frames in order, flushed when no more are queued).
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The frame's payload.
        frame: Vec<u8>,
    },
    /// Run `commit` against the store and hand its result to [`Host::committed`]. At most one
    /// commit per session is out at a time; the session goes on meanwhile.
    Commit {
        /// The session whose batches these are.
        conn: ConnId,
        /// The batches.
        commit: Commit,
    },
    /// Something for the application.
    Event(NodeEvent),
    /// The session ended: send what is queued, then close the transport. The host has
    /// forgotten the connection.
    Ended {
        /// The connection.
        conn: ConnId,
        /// How it went.
        report: Box<SessionReport>,
    },
}

/// A session to open ([`Host::open`]).
#[derive(Debug)]
pub struct Opening {
    role: Role,
    remote: String,
    options: SessionOptions,
    join: Option<(Box<Invitation>, Box<SigningKey>)>,
    entropy: [u8; 64],
}

impl Opening {
    /// A session in `role` with the peer at `remote` (shown in events). `entropy`: 64 fresh
    /// random bytes from the driver (the session's Noise keys), e.g. from `getrandom`.
    pub fn new(role: Role, remote: impl Into<String>, entropy: [u8; 64]) -> Opening {
        Opening {
            role,
            remote: remote.into(),
            options: SessionOptions::default(),
            join: None,
            entropy,
        }
    }

    /// Runs with `options`.
    #[must_use]
    pub fn options(mut self, options: SessionOptions) -> Opening {
        self.options = options;
        self
    }

    /// Joins the person of `invitation` as a new instance with `instance_key` (instead of
    /// running as the host's identity); the report's `joined` has the new identity.
    #[must_use]
    pub fn join(mut self, invitation: Invitation, instance_key: SigningKey) -> Opening {
        self.join = Some((Box::new(invitation), Box::new(instance_key)));
        self
    }
}

/// What a host allows peers it does not know yet (sessions it accepted, as responder, over an
/// identity). Instances of its own person and persons it shares with are never refused by
/// these: they are admitted once their handshake shows who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Accepted sessions whose peer is not admitted yet, at once; a connection beyond is refused
    /// at once with a plaintext close saying the server is busy.
    pub max_pending: usize,
    /// Of those, from one remote address.
    pub max_pending_per_address: usize,
    /// How long an accepted session may take to be admitted.
    pub admission_timeout: Duration,
    /// Admitted sessions with strangers (another person, no grant either way) at once; a
    /// stranger beyond is refused as busy.
    pub max_strangers: usize,
    /// How long a stranger's session may stay without objects moving either way.
    pub stranger_idle: Duration,
}

impl Default for HostLimits {
    fn default() -> HostLimits {
        HostLimits {
            max_pending: 256,
            max_pending_per_address: 8,
            admission_timeout: Duration::from_secs(10),
            max_strangers: 64,
            stranger_idle: Duration::from_secs(30),
        }
    }
}

/// The reason a busy host gives.
const BUSY: &str = "the server is busy";

/// How a session authenticates.
enum Mode {
    /// Frames in the clear (a host without an identity).
    Plain,
    /// Noise, as the host's identity.
    Member(Arc<Identity>),
    /// Noise, joining a person with an invitation, as a new instance with this key.
    Join(Box<Invitation>, Box<SigningKey>),
}

/// What a session must know to announce only what is new here, with its facts — kept cheap
/// for the common case (a first sync, where everything is new).
#[derive(Default)]
struct Arrivals {
    /// Sessions of this person (commits grouped here): objects stored that were held already.
    stale: std::collections::HashSet<Cid>,
    /// Sessions of another person (stored through their access): objects that were new.
    fresh: std::collections::HashSet<Cid>,
    /// What verifying new objects learned, while someone listens to the node's events.
    facts: std::collections::HashMap<Cid, Facts>,
}

impl Arrivals {
    /// Whether an object the session reports received is to be announced (newly stored).
    fn is_new(&mut self, foreign: bool, cid: &Cid) -> bool {
        if foreign {
            self.fresh.remove(cid)
        } else {
            !self.stale.remove(cid)
        }
    }

    /// The event announcing `cids`, taking their facts.
    fn received(&mut self, session: u64, cids: Vec<Cid>) -> NodeEvent {
        let facts = if self.facts.is_empty() {
            vec![None; cids.len()]
        } else {
            cids.iter().map(|cid| self.facts.remove(cid)).collect()
        };
        NodeEvent::Received {
            session,
            cids,
            facts,
        }
    }
}

/// One session and what the host keeps beside it.
struct Conn {
    session: Session,
    mode: Mode,
    role: Role,
    remote: String,
    /// The remote address without its port (what per-address limits count).
    address: String,
    opened_at: Duration,
    /// When objects last moved either way (or the session was admitted).
    active_at: Duration,
    options: SessionOptions,
    report: SessionReport,
    /// For a peer of another person: what it sees and may send (`None`: the same person, or
    /// a plain session).
    foreign: Option<PeerAccess>,
    /// The store's own journal, when it keeps one.
    own_journal: Option<chum_sync::ids::JournalId>,
    deps: Dependencies,
    arrivals: Arrivals,
    /// Objects of another person's refused by recipe in this session.
    foreign_refused: usize,
    /// Verified batches waiting to be committed together.
    pending: Commit,
    /// A commit of this session is out with the driver.
    committing: bool,
    transport_ok: bool,
    /// When this session waits for time, as entered in [`Host::timers`].
    timer: Option<Duration>,
    /// How the session closed, told once it has ended (see [`NodeEvent::Closed`]).
    closed: Option<(CloseCode, String)>,
    /// The persons this session is indexed by in [`Host::concern`] (`None`: not indexed,
    /// every announcement visits it).
    concern: Option<Vec<PersonId>>,
    /// Objects that change who may see what (grants, revocations, …) that came in this
    /// session's batches and were not announced yet: they may change what its own peer sees
    /// too.
    policy_in: HashSet<Cid>,
}

/// How many dropped objects of another person's a session's end names (the rest are counted).
const MAX_REPORTED: usize = 100;

/// Why another person's object was dropped when its session ended.
const UNCOVERED: &str = "from another person and covered by no grant to this person here (if it is an entry of a granted object, this instance may lack its type's recipe): not stored";

/// Why a stranger's objects are refused.
const STRANGER: &str = "not covered: this node shares nothing with the sender";

/// Whether received bytes are a grant or a group membership statement (decoded, not verified;
/// bytes that do not even contain either type's name are not decoded).
fn grant_like(cid: &Cid, bytes: &[u8]) -> bool {
    let names = [
        chum_access::grant::ACCESS_TYPE.as_bytes(),
        chum_access::grant::GROUP_MEMBERS_TYPE.as_bytes(),
    ];
    if !names
        .iter()
        .any(|name| bytes.windows(name.len()).any(|window| window == *name))
    {
        return false;
    }
    chum_access::Coverage::decode(cid, bytes)
        .as_ref()
        .and_then(chum_object::Value::type_name)
        .is_some_and(|name| {
            name == chum_access::grant::ACCESS_TYPE
                || name == chum_access::grant::GROUP_MEMBERS_TYPE
        })
}

/// Objects another person's instance may have refused one by one (they break this node's
/// recipes) in one session before the session ends as `invalid object`.
const MAX_FOREIGN_REFUSED: usize = 1_000;

/// Every session of one node, and the policy around them. See the crate documentation.
pub struct Host {
    store: Arc<dyn Store>,
    config: Config,
    /// The app's rule (e.g. recipes): an object it refuses is refused alone, and the peer
    /// told (signatures stay a rule for the whole batch).
    soft: Option<Arc<dyn Acceptance>>,
    identity: Option<Arc<Identity>>,
    policy: Policy,
    limits: HostLimits,
    listening: bool,
    ignore_grants: bool,
    conns: BTreeMap<ConnId, Conn>,
    outputs: VecDeque<HostOutput>,
    /// Sessions with output to handle.
    dirty: VecDeque<ConnId>,
    /// Every session's next time (its own timers and the host's deadline for it), earliest
    /// first: kept as sessions change, so that the next one costs no walk over thousands.
    timers: BTreeSet<(Duration, ConnId)>,
    stats: HostStats,
    /// On a hub: the recipes persons sent are known from the store (read when a session
    /// opens, after any announcement the host did not read).
    hub_recipes_loaded: bool,
    /// On a hub: its peers by the persons whose objects can concern them (see
    /// [`PeerAccess::concerning`]), so that an announcement of ordinary objects visits the
    /// few sessions of their senders and of those they grant to, not every session.
    concern: HashMap<Cid, BTreeSet<ConnId>>,
    /// The sessions not in `concern` (every announcement visits them).
    unindexed: BTreeSet<ConnId>,
    /// The sessions that may keep objects waiting for link targets (a superset: pruned as
    /// announcements find them waiting for nothing).
    waiting: BTreeSet<ConnId>,
    /// On a hub: each person's visible set, shared by its sessions.
    hub_views: HubViews,
}

/// What a host's policy did, counted since it started (for reports and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HostStats {
    /// Received objects that were stored before some of their link targets, and waited for
    /// them before being announced: from instances of the same person (or plain sessions) …
    pub waited: u64,
    /// … and from another person.
    pub waited_foreign: u64,
    /// Journal positions learned from peers (checkpoints recorded).
    pub checkpoints: u64,
    /// Received objects refused one by one (recipes, or another person's objects past the
    /// bound).
    pub refused: u64,
    /// Sessions ended because their peer's instance was revoked.
    pub revoked: u64,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("config", &self.config)
            .field("sessions", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host over `store` with the default session configuration, no identity (sessions
    /// in the clear) and no acceptance rule beyond CIDs and strict encoding.
    pub fn new(store: Arc<dyn Store>) -> Host {
        Host {
            store,
            config: Config::new(Role::Initiator),
            soft: None,
            identity: None,
            policy: Policy::default(),
            limits: HostLimits::default(),
            listening: true,
            ignore_grants: false,
            conns: BTreeMap::new(),
            outputs: VecDeque::new(),
            dirty: VecDeque::new(),
            timers: BTreeSet::new(),
            stats: HostStats::default(),
            hub_recipes_loaded: false,
            concern: HashMap::new(),
            unindexed: BTreeSet::new(),
            waiting: BTreeSet::new(),
            hub_views: HubViews::new(),
        }
    }

    /// What peers not known yet may hold (see [`HostLimits`]).
    #[must_use]
    pub fn with_limits(mut self, limits: HostLimits) -> Host {
        self.limits = limits;
        self
    }

    /// Uses `config` for every session (its role is set per session).
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Host {
        self.config = config;
        self
    }

    /// Checks every object received from a peer with `acceptance` (beyond its CID and strict
    /// encoding, which are always checked). An object it refuses is refused alone: the rest
    /// of its batch is stored, the peer is told which objects and why, and the session goes
    /// on. Objects of `chum-access`'s signed types must carry a valid signature in any case; a
    /// forged one refuses its whole batch and closes the session with `invalid object`.
    #[must_use]
    pub fn with_acceptance(mut self, acceptance: Arc<dyn Acceptance>) -> Host {
        self.soft = Some(acceptance);
        self
    }

    /// Encrypts and authenticates every session as `identity` (Noise XX). Instances of the
    /// same person see every shared object; instances of another person see what its grants
    /// cover, and only grant-covered objects are taken from them.
    #[must_use]
    pub fn with_identity(mut self, identity: Identity) -> Host {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// Syncs the types of `recipes`: received objects are checked with [`RecipeCheck`] over
    /// them, the hello announces the types that travel, and their collection fields are
    /// followed when deciding what another person may see. `chum-access`'s own types are added.
    #[must_use]
    pub fn with_recipes(mut self, mut recipes: Vec<chum_object::recipe::Recipe>) -> Host {
        recipes.extend(chum_access::recipes());
        self.policy.set_recipes(&recipes);
        self.config.types = recipes
            .iter()
            .filter(|recipe| recipe.strategy != chum_object::recipe::Strategy::InstanceLocal)
            .map(|recipe| recipe.name.clone())
            .collect();
        self.with_acceptance(Arc::new(RecipeCheck::new(recipes)))
    }

    /// Serves as a hub: an instance persons grant access to, which stores and forwards what
    /// they share with it and answers each peer of another person from what that person may
    /// see (its own grants to the hub, and what others granted it; see
    /// `chum_access::VisibleSet::compute_hub`).
    #[must_use]
    pub fn as_hub(mut self) -> Host {
        self.policy.serve_as_hub(true);
        self
    }

    /// Uses the person `hub` as a hub: its instances also see this node's grants (and their
    /// revocations) on what this node's person granted the hub, so they can forward it.
    pub fn use_hub(&mut self, hub: PersonId) {
        self.policy.use_hub(hub);
    }

    /// Serves only instances of `persons` besides its own person's (see
    /// `chum_access::Policy::admit_only`): a peer of any other person is refused at
    /// admission.
    pub fn admit_only(&mut self, persons: impl IntoIterator<Item = PersonId>) {
        self.policy.admit_only(persons);
    }

    /// On a hub: stores at most `objects` objects sent by one person (see
    /// `chum_access::Policy::quota_per_person`); beyond, what it sends is refused with a
    /// reason.
    pub fn quota_per_person(&mut self, objects: u64) {
        self.policy.quota_per_person(objects);
    }

    /// Follows the collection fields of `recipes` too when deciding what another person may
    /// see (sessions admitted from now on).
    pub fn add_recipes<'a>(
        &mut self,
        recipes: impl IntoIterator<Item = &'a chum_object::recipe::Recipe>,
    ) {
        self.policy.extend(recipes);
        // Sets in use were computed under the old rules: sessions admitted from now on
        // compute their own.
        self.hub_views.clear();
    }

    /// Whether anyone listens to the events: when not, the receive path keeps no facts.
    pub fn set_listening(&mut self, listening: bool) {
        self.listening = listening;
    }

    /// The deliberately broken configuration: sessions with another person see and send
    /// everything, as if grants did not exist. Only for showing that a leak check fails.
    #[cfg(feature = "testing")]
    pub fn ignore_grants(&mut self) {
        self.ignore_grants = true;
    }

    /// The host's identity, if it has one.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The session configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the host's policy did so far.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// Whether a session with this number is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Who the peer of session `conn` is, once its handshake admitted it.
    pub fn peer(&self, conn: ConnId) -> Option<&Peer> {
        self.conns.get(&conn)?.report.peer.as_ref()
    }

    /// The open sessions' numbers.
    pub fn sessions(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<HostOutput> {
        self.outputs.pop_front()
    }

    /// When [`Host::timeout`] is due next (in [`Now::elapsed`]'s time), if any session waits
    /// for time.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Enters session `id`'s next time in [`Host::timers`] (after anything it did).
    fn retime(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let at = match (conn.session.poll_timeout(), self.deadline(conn)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.timer != at {
            if let Some(old) = conn.timer.take() {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = at {
                self.timers.insert((at, id));
            }
            conn.timer = at;
        }
    }

    /// When the host itself ends a session it accepted: a peer not admitted in time, a
    /// stranger idle too long.
    fn deadline(&self, conn: &Conn) -> Option<Duration> {
        if conn.role != Role::Responder || !matches!(conn.mode, Mode::Member(_)) {
            return None;
        }
        if conn.session.is_closed() {
            return None;
        }
        match (&conn.report.peer, &conn.foreign) {
            (None, _) => Some(conn.opened_at + self.limits.admission_timeout),
            (Some(_), Some(PeerAccess::Granted(access))) if access.is_stranger() => {
                Some(conn.active_at + self.limits.stranger_idle)
            }
            _ => None,
        }
    }

    /// Whether a session is an accepted one whose peer is not admitted yet.
    fn pending(conn: &Conn) -> bool {
        conn.role == Role::Responder
            && matches!(conn.mode, Mode::Member(_))
            && conn.report.peer.is_none()
            && !conn.session.is_closed()
    }

    /// Opens a session numbered `conn` (unused so far; see [`ConnId`]).
    pub async fn open(&mut self, now: Now, conn: ConnId, opening: Opening) {
        let Opening {
            role,
            remote,
            options,
            join,
            entropy,
        } = opening;
        let mode = match (join, &self.identity) {
            (Some((invitation, key)), _) => Mode::Join(invitation, key),
            (None, Some(identity)) => Mode::Member(Arc::clone(identity)),
            (None, None) => Mode::Plain,
        };
        if self.policy.serves_as_hub() && !self.hub_recipes_loaded {
            // Retried at the next session if the store fails now.
            self.hub_recipes_loaded = self.policy.load_person_recipes(&*self.store).await.is_ok();
        }
        let mut report = SessionReport::new(conn);
        let mut config = self.config.clone();
        config.role = role;
        match security(&mode, &entropy) {
            Ok(security) => config.security = security,
            Err(reason) => {
                report.code = CloseCode::Other(0);
                report.reason = format!("cannot set up encryption: {reason}");
                self.outputs.push_back(HostOutput::Ended {
                    conn,
                    report: Box::new(report),
                });
                return;
            }
        }
        // The journal fast path: a plain session offers every position held (there is no
        // access control to keep); an encrypted one decides at admission, per peer.
        let own_journal = self.store.journal(0, 0).await.ok().map(|page| page.id);
        config.journal = match (&mode, own_journal) {
            (Mode::Plain, Some(id)) => Some(Journal {
                id,
                holds: journals::recent(&*self.store, MAX_HOLDS)
                    .await
                    .unwrap_or_default(),
            }),
            _ => None,
        };
        let address = remote
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| remote.clone(), |socket| socket.ip().to_string());
        if role == Role::Responder && matches!(mode, Mode::Member(_)) {
            let pending: Vec<&Conn> = self.conns.values().filter(|c| Host::pending(c)).collect();
            let from_here = pending.iter().filter(|c| c.address == address).count();
            if pending.len() >= self.limits.max_pending
                || from_here >= self.limits.max_pending_per_address
            {
                // Refused before the handshake: a plaintext close the peer's session reads as
                // the reason (it cannot be a Noise message).
                let reason =
                    format!("{BUSY}: too many connections waiting to be admitted; retry later");
                self.outputs.push_back(HostOutput::Transmit {
                    conn,
                    frame: chum_sync::Message::Close {
                        code: CloseCode::LimitExceeded,
                        reason: reason.clone(),
                    }
                    .encode(),
                });
                report.code = CloseCode::LimitExceeded;
                report.reason = reason;
                self.outputs.push_back(HostOutput::Ended {
                    conn,
                    report: Box::new(report),
                });
                return;
            }
        }
        let session = Session::new(config, now.elapsed);
        self.conns.insert(
            conn,
            Conn {
                session,
                mode,
                role,
                address,
                opened_at: now.elapsed,
                active_at: now.elapsed,
                remote,
                options,
                report,
                foreign: None,
                own_journal,
                deps: Dependencies::new(MAX_WAITING),
                arrivals: Arrivals::default(),
                foreign_refused: 0,
                pending: Commit::new(),
                committing: false,
                transport_ok: true,
                timer: None,
                closed: None,
                concern: None,
                policy_in: HashSet::new(),
            },
        );
        self.unindexed.insert(conn);
        self.dirty.push_back(conn);
        self.drain(now).await;
    }

    /// Something arrived for session `conn` (ignored when it is not open).
    pub async fn handle(&mut self, now: Now, conn: ConnId, input: ConnInput) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let input = match input {
            ConnInput::Frame(frame) => Input::Frame(frame),
            ConnInput::BadFrame { too_large, reason } => Input::BadFrame { too_large, reason },
            ConnInput::TransportClosed => {
                c.transport_ok = false;
                Input::TransportClosed
            }
            ConnInput::Close => Input::Close,
        };
        c.session.handle_input(now.elapsed, input);
        self.dirty.push_back(conn);
        self.drain(now).await;
    }

    /// Ends every session with a close frame.
    pub async fn close_all(&mut self, now: Now) {
        for (id, conn) in &mut self.conns {
            conn.session.handle_input(now.elapsed, Input::Close);
            self.dirty.push_back(*id);
        }
        self.drain(now).await;
    }

    /// Time passed: sessions whose timers are due act on them.
    pub async fn timeout(&mut self, now: Now) {
        // Only the sessions whose next time has come (the index is kept as sessions act).
        let due: Vec<ConnId> = self
            .timers
            .range(..=(now.elapsed, ConnId::MAX))
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            let expired = self
                .conns
                .get(&id)
                .is_some_and(|conn| self.deadline(conn).is_some_and(|at| at <= now.elapsed));
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if expired {
                conn.session.handle_input(now.elapsed, Input::Close);
                self.dirty.push_back(id);
            }
            if conn
                .session
                .poll_timeout()
                .is_some_and(|at| at <= now.elapsed)
            {
                conn.session.handle_input(now.elapsed, Input::Tick);
                self.dirty.push_back(id);
            }
        }
        self.drain(now).await;
        // Entries that came due without their session acting: read their times again.
        let due: Vec<ConnId> = self
            .timers
            .range(..=(now.elapsed, ConnId::MAX))
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            self.retime(id);
        }
    }

    /// The result of a [`HostOutput::Commit`] of session `conn` (also when the session has
    /// ended meanwhile: what was stored is announced to the others).
    pub async fn committed(&mut self, now: Now, conn: ConnId, committed: Committed) {
        self.revoke(now, &committed.revoked);
        let mut new = committed.new;
        let mut wrote = false;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.committing = false;
            if c.foreign.is_some() {
                // Another person's session reports what it received, covered or held: only
                // what became new here is announced.
                c.arrivals.fresh.extend(new.iter().cloned());
                wrote = !new.is_empty() || !committed.stale.is_empty();
            } else {
                c.arrivals.stale.extend(committed.stale);
            }
            c.arrivals.facts.extend(committed.facts);
            if c.session.is_closed() {
                // The session ended while its objects were being stored: it reports nothing
                // received any more, but they are stored — reported here (once what they link
                // to is in), or the application never hears of them.
                release(&mut self.outputs, conn, c, Some(new.clone()), &[]);
            } else {
                for (request_id, answer) in committed.answers {
                    c.session
                        .handle_input(now.elapsed, Input::Answer(request_id, answer));
                }
            }
            self.dirty.push_back(conn);
        }
        if wrote {
            new.extend(self.promote_held(conn).await);
        }
        self.announce(now, conn, new).await;
        self.drain(now).await;
    }

    /// The application stored objects (see [`LocalWrite::of`]): they are offered to every
    /// session whose peer may see them, and revocations among them end the sessions of the
    /// instances they revoke.
    pub async fn local_stored(&mut self, now: Now, write: LocalWrite) {
        self.revoke(now, &write.revoked);
        self.announce(now, 0, write.cids).await;
        self.drain(now).await;
    }

    /// Closes the sessions with instances revoked by their own person.
    fn revoke(&mut self, now: Now, revoked: &[(InstanceId, PersonId)]) {
        if revoked.is_empty() {
            return;
        }
        for (id, conn) in &mut self.conns {
            // A "revocation" signed by anyone but the instance's own person revokes nothing.
            let hit = conn.report.peer.as_ref().is_some_and(|peer| {
                revoked
                    .iter()
                    .any(|(instance, by)| peer.instance == *instance && peer.person == *by)
            });
            if hit {
                self.stats.revoked += 1;
                conn.session.handle_input(now.elapsed, Input::Close);
                self.dirty.push_back(*id);
            }
        }
    }

    /// Objects became shared through session `origin` (0: the application): every other
    /// session releases what waited for them and offers those its peer may see.
    async fn announce(&mut self, now: Now, origin: ConnId, cids: Vec<Cid>) {
        if cids.is_empty() {
            return;
        }
        let Host {
            conns,
            outputs,
            dirty,
            store,
            policy,
            hub_recipes_loaded,
            concern,
            unindexed,
            waiting,
            hub_views,
            ..
        } = self;
        // What every view needs to know of the new objects, read once for all sessions: those
        // of other persons' peers, but the origin's only where its view takes them in (on a
        // hub). A device that heard them from its one peer reads nothing.
        let viewed = conns.iter().any(|(id, conn)| match &conn.foreign {
            None => false,
            Some(PeerAccess::Granted(access)) if *id == origin => {
                access.is_hub()
                    || (!conn.policy_in.is_empty()
                        && cids.iter().any(|cid| conn.policy_in.contains(cid)))
            }
            Some(_) => *id != origin,
        });
        let announcement = if viewed {
            let mut announcement = chum_access::visibility::Announcement::prepare(
                &**store,
                cids.clone(),
                policy.serves_as_hub(),
            )
            .await;
            if let Ok(announcement) = &mut announcement
                && policy.serves_as_hub()
                && policy
                    .learn_announced(&**store, announcement)
                    .await
                    .is_err()
            {
                // Not learnt now: read from the store when the next session opens, which
                // computes its own set (those in use may lack what the recipes cover).
                *hub_recipes_loaded = false;
                hub_views.clear();
            }
            if announcement.is_err() {
                // No set takes these objects in (their sessions close): none is handed on.
                hub_views.clear();
            }
            Some(announcement)
        } else {
            // Not read: a hub learns the persons' recipes among them when a session opens.
            *hub_recipes_loaded = false;
            None
        };
        // Ordinary objects concern only the sessions indexed by their senders (and those not
        // indexed at all).
        let candidates: Option<HashSet<ConnId>> = match &announcement {
            Some(Ok(announcement)) if announcement.is_plain() => Some(
                announcement
                    .senders()
                    .filter_map(|sender| concern.get(&sender.0))
                    .flatten()
                    .copied()
                    .collect(),
            ),
            _ => None,
        };
        // Sessions whose peers' grants these extend.
        let mut covering: Vec<ConnId> = Vec::new();
        // What each visible set gained: the sessions sharing a set (on a hub, one person's)
        // take the answer of the first of them.
        let mut gained: HashMap<usize, std::result::Result<Vec<Cid>, ()>> = HashMap::new();
        // The sessions to visit: for ordinary objects, the candidates, those not indexed and
        // those that may release waiting objects (the others would skip them); else all.
        let visit: Vec<ConnId> = match &candidates {
            Some(candidates) => {
                let mut visit: BTreeSet<ConnId> = candidates.iter().copied().collect();
                visit.extend(unindexed.iter().copied());
                visit.extend(waiting.iter().copied());
                visit.insert(origin);
                visit.into_iter().collect()
            }
            None => conns.keys().copied().collect(),
        };
        for id in &visit {
            let Some(conn) = conns.get_mut(id) else {
                continue;
            };
            let from_here = *id == origin;
            // On a hub, what a peer sent is part of what its person sees: its own view takes
            // it in (nothing is sent back).
            let update_only = from_here
                && matches!(&conn.foreign, Some(PeerAccess::Granted(access)) if access.is_hub());
            // What the peer sent may also change what the peer itself sees (a grant of this
            // person's to the peer's, arriving through it): its view takes them in, and it is
            // offered what became visible besides what it sent.
            let policy_in = from_here && !conn.policy_in.is_empty() && {
                let before = conn.policy_in.len();
                for cid in &cids {
                    conn.policy_in.remove(cid);
                }
                conn.policy_in.len() != before
            };
            if from_here && !update_only && !policy_in {
                continue;
            }
            // Grants of the peer's person that came another way cover what it sends from now
            // on (and what it sent that waits, uncovered, for them).
            if let (Some(access), Some(Ok(announcement))) = (conn.foreign.as_mut(), &announcement)
                && !from_here
                && access.learn_grants(announcement)
            {
                covering.push(*id);
            }
            if !from_here {
                // Targets may also arrive through another session or the app.
                release(outputs, *id, conn, None, &cids);
                if conn.deps.is_empty() {
                    waiting.remove(id);
                }
            }
            if conn.concern.is_some()
                && candidates
                    .as_ref()
                    .is_some_and(|candidates| !candidates.contains(id))
            {
                continue;
            }
            let visible = match (conn.foreign.as_mut(), &announcement) {
                // Most of a hub's peers are concerned by none of it: skipped at once.
                (Some(access), Some(Ok(announcement))) if !access.may_concern(announcement) => {
                    continue;
                }
                // A peer of another person hears of what became visible to it.
                (Some(access), Some(Ok(announcement))) => {
                    let shared = match &*access {
                        PeerAccess::Granted(granted) => Some(granted.view_id()),
                        PeerAccess::Full => None,
                    };
                    let visible = match shared.and_then(|view| gained.get(&view)) {
                        Some(known) => known.clone(),
                        None => {
                            let visible = access
                                .visible_announced(&**store, announcement)
                                .await
                                .map_err(|_| ());
                            if let Some(view) = shared {
                                gained.insert(view, visible.clone());
                            }
                            visible
                        }
                    };
                    // A policy object may have changed whom the peer's set depends on (ordinary
                    // objects never do).
                    if !announcement.is_plain() {
                        index_concern(concern, unindexed, *id, conn);
                    }
                    match visible {
                        Ok(visible) => visible,
                        Err(_) => {
                            conn.session.handle_input(now.elapsed, Input::Close);
                            dirty.push_back(*id);
                            continue;
                        }
                    }
                }
                (Some(_), _) => {
                    conn.session.handle_input(now.elapsed, Input::Close);
                    dirty.push_back(*id);
                    continue;
                }
                (None, _) => cids.clone(),
            };
            // (What the origin is offered leaves out what it sent; on a hub it is offered
            // nothing.)
            let visible = if from_here && !update_only {
                let sent: HashSet<&Cid> = cids.iter().collect();
                visible
                    .into_iter()
                    .filter(|cid| !sent.contains(cid))
                    .collect()
            } else {
                visible
            };
            if !visible.is_empty() && !update_only {
                conn.session
                    .handle_input(now.elapsed, Input::LocalStored(visible));
                dirty.push_back(*id);
            }
        }
        // What those sessions held back, uncovered, and the grants now cover: stored, and
        // announced in turn.
        for id in covering {
            let promoted = self.promote_held(id).await;
            Box::pin(self.announce(now, id, promoted)).await;
        }
    }

    /// Handles the outputs of every session with work, and of every session that work
    /// touches, until none is left.
    async fn drain(&mut self, now: Now) {
        while let Some(id) = self.dirty.pop_front() {
            while let Some(output) = self
                .conns
                .get_mut(&id)
                .and_then(|conn| conn.session.poll_output())
            {
                self.on_output(now, id, output).await;
            }
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if !conn.committing && !conn.pending.is_empty() {
                // One commit at a time per session; batches that arrive meanwhile are
                // committed together next.
                conn.committing = true;
                let commit =
                    std::mem::replace(&mut conn.pending, Commit::new()).with_facts(self.listening);
                self.outputs
                    .push_back(HostOutput::Commit { conn: id, commit });
            }
            // A commit in progress finishes first (its objects are durable either way).
            if conn.session.is_closed() && !conn.committing {
                self.finish(now, id).await;
            } else {
                self.retime(id);
            }
        }
    }

    /// A session ended and its last commit is in: records the peer, reports what never got
    /// its link targets, and tells the driver.
    async fn finish(&mut self, now: Now, id: ConnId) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        unindex_concern(&mut self.concern, id, conn.concern.take());
        self.unindexed.remove(&id);
        self.waiting.remove(&id);
        if let Some(at) = conn.timer.take() {
            self.timers.remove(&(at, id));
        }
        let report = &conn.report;
        let stranger =
            matches!(&conn.foreign, Some(PeerAccess::Granted(access)) if access.is_stranger());
        if let Some(peer) = report.peer.clone().filter(|_| !stranger) {
            let (synced, sent, received) = (report.synced, report.sent, report.received);
            self.remember(now, &peer, |record| {
                if synced {
                    record.last_synced_ms = Some(now.unix_ms);
                }
                record.acknowledged += sent;
                record.received += received;
            })
            .await;
        }
        let incomplete = conn.deps.drain();
        if !incomplete.is_empty() {
            self.outputs
                .push_back(HostOutput::Event(NodeEvent::Incomplete {
                    session: id,
                    cids: incomplete,
                }));
        }
        if let Some((code, reason)) = conn.closed.take() {
            self.outputs.push_back(HostOutput::Event(NodeEvent::Closed {
                session: id,
                code,
                reason,
            }));
        }
        self.outputs.push_back(HostOutput::Ended {
            conn: id,
            report: Box::new(conn.report),
        });
    }

    fn emit(&mut self, event: NodeEvent) {
        self.outputs.push_back(HostOutput::Event(event));
    }

    /// One output of session `id`'s state machine.
    async fn on_output(&mut self, now: Now, id: ConnId, output: Output) {
        let store = Arc::clone(&self.store);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match output {
            Output::Transmit(frame) if conn.transport_ok => {
                conn.report.frames_out += 1;
                conn.report.bytes_out += frame.len() as u64;
                self.outputs
                    .push_back(HostOutput::Transmit { conn: id, frame });
            }
            Output::Request(
                request_id,
                Request::Admit {
                    payload,
                    remote_static,
                },
            ) => {
                self.on_admit(now, id, request_id, &payload, &remote_static)
                    .await
            }
            Output::Request(request_id, Request::Store(objects)) if conn.foreign.is_none() => {
                // Verified here, beside the commit of the previous group.
                let signatures = SignatureCheck::new(None);
                match Verified::check_split(
                    objects,
                    &store.limits(),
                    Some(&signatures),
                    self.soft.as_deref(),
                ) {
                    Ok((batch, refused)) => {
                        self.stats.refused += refused.len() as u64;
                        if !refused.is_empty() {
                            self.outputs
                                .push_back(HostOutput::Event(NodeEvent::Refused {
                                    session: id,
                                    refused: refused.clone(),
                                }));
                        }
                        let links = Links::of(&batch, false);
                        let incomplete = links
                            .wait(&*store, &mut conn.deps, &mut self.stats.waited)
                            .await;
                        if !conn.deps.is_empty() {
                            self.waiting.insert(id);
                        }
                        if !incomplete.is_empty() {
                            self.outputs
                                .push_back(HostOutput::Event(NodeEvent::Incomplete {
                                    session: id,
                                    cids: incomplete,
                                }));
                        }
                        conn.pending.push(request_id, batch, refused);
                    }
                    Err(error) => {
                        conn.session
                            .handle_input(now.elapsed, Input::Answer(request_id, refusal(error)));
                    }
                }
            }
            Output::Request(request_id, Request::Store(objects)) => {
                // Decided here; written beside the host, like this person's batches.
                if let Some(answer) = self.take_foreign(id, request_id, objects).await
                    && let Some(conn) = self.conns.get_mut(&id)
                {
                    conn.session
                        .handle_input(now.elapsed, Input::Answer(request_id, answer));
                }
            }
            Output::Request(request_id, request) => {
                let answer = match conn.foreign.as_mut() {
                    Some(access) => access.answer(&*store, request, None, None).await.0,
                    None => chum_sync::store::answer(&*store, request).await.0,
                };
                conn.session
                    .handle_input(now.elapsed, Input::Answer(request_id, answer));
            }
            Output::Event(Event::Welcomed { certificate }) => {
                if let Mode::Join(invitation, key) = &conn.mode {
                    match chum_access::Certificate::from_bytes(&certificate).and_then(
                        |certificate| {
                            if *certificate.person_key() != invitation.person_key {
                                return Err(chum_access::AccessError::Invitation(
                                    "the certificate is for another person".into(),
                                ));
                            }
                            Identity::joined((**key).clone(), certificate)
                        },
                    ) {
                        Ok(identity) => conn.report.joined = Some(identity),
                        Err(_) => conn.session.handle_input(now.elapsed, Input::Close),
                    }
                }
            }
            Output::Event(Event::Checkpoint { journal, position }) => {
                // Bookkeeping only: a failure costs the next session the fast path.
                self.stats.checkpoints += 1;
                let _ = journals::record(&*store, &journal, position, now.unix_ms).await;
            }
            Output::Event(event) => self.on_event(now, id, event).await,
            _ => {}
        }
    }

    /// Decides on a peer's handshake payload; for a peer of another person, sets up what it
    /// sees and may send.
    async fn on_admit(
        &mut self,
        now: Now,
        id: ConnId,
        request_id: RequestId,
        payload: &[u8],
        remote_static: &[u8; 32],
    ) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let admitted: Result<(Peer, Option<PeerAccess>, Vec<Cid>), String> = match &conn.mode {
            Mode::Plain => Err("this node has no identity".into()),
            Mode::Join(invitation, _) => invitation
                .check_inviter(payload, remote_static)
                .map(|peer| (peer, None, Vec::new()))
                .map_err(|error| error.to_string()),
            Mode::Member(identity) => {
                let identity = Arc::clone(identity);
                chum_access::admit_peer(
                    &*self.store,
                    &identity,
                    &self.policy,
                    &mut self.hub_views,
                    payload,
                    remote_static,
                    now.unix_ms,
                )
                .await
                .map(|admission| {
                    let access = match admission.access {
                        PeerAccess::Full => None,
                        PeerAccess::Granted(_) if self.ignore_grants => None,
                        granted => Some(granted),
                    };
                    (admission.peer, access, admission.stored)
                })
                .map_err(|error| error.to_string())
            }
        };
        let answer = match admitted {
            Ok((_, Some(PeerAccess::Granted(access)), _))
                if access.is_stranger() && self.strangers_full(id) =>
            {
                Answer::Refused(format!(
                    "{BUSY}: too many sessions with peers it shares nothing with; retry later"
                ))
            }
            Ok((peer, view, stored)) => {
                // A stranger leaves no record behind (it would grow with every new key).
                let stranger =
                    matches!(&view, Some(PeerAccess::Granted(access)) if access.is_stranger());
                self.announce(now, id, stored).await;
                let welcome = peer.issued.as_ref().map(|c| c.object().bytes().to_vec());
                // Journals only between instances of one person: positions count every shared
                // object, granted or not.
                let own_journal = self.conns.get(&id).and_then(|conn| conn.own_journal);
                let journal = match (own_journal, &view) {
                    (Some(journal), None) => Some(Journal {
                        id: journal,
                        holds: self.held_of(&peer).await,
                    }),
                    _ => None,
                };
                if !stranger {
                    self.remember(now, &peer, |record| record.last_connected_ms = now.unix_ms)
                        .await;
                }
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.report.peer = Some(peer);
                    conn.foreign = view;
                    conn.active_at = now.elapsed;
                    index_concern(&mut self.concern, &mut self.unindexed, id, conn);
                }
                Answer::Admitted { welcome, journal }
            }
            Err(reason) => Answer::Refused(reason),
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.session
                .handle_input(now.elapsed, Input::Answer(request_id, answer));
        }
    }

    /// Whether the sessions this host accepted from strangers are at their limit (`id`, the
    /// session being admitted, not counted).
    fn strangers_full(&self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get(&id) else {
            return true;
        };
        if conn.role != Role::Responder {
            return false; // this side chose to connect
        }
        let strangers = self
            .conns
            .iter()
            .filter(|(other, c)| {
                **other != id
                    && c.role == Role::Responder
                    && !c.session.is_closed()
                    && matches!(&c.foreign, Some(PeerAccess::Granted(access)) if access.is_stranger())
            })
            .count();
        strangers >= self.limits.max_strangers
    }

    /// Takes what a peer of another person sent: verified, and what its grants cover queued
    /// for the session's next commit (waiting for link targets like any other session's
    /// objects); the rest is held in memory by its access. Returns the answer when there is
    /// nothing to commit (or the batch is refused).
    async fn take_foreign(
        &mut self,
        id: ConnId,
        request_id: chum_sync::RequestId,
        objects: Vec<(Cid, Vec<u8>)>,
    ) -> Option<Answer> {
        let store = Arc::clone(&self.store);
        // Nothing of a stranger's can be taken, unless the batch carries a grant or membership
        // statement of its that makes it related: otherwise its objects are refused as they
        // are, neither hashed nor their signatures checked — a stranger cannot make this node
        // spend a signature check on every object it pushes.
        let stranger = matches!(
            self.conns.get(&id).and_then(|conn| conn.foreign.as_ref()),
            Some(PeerAccess::Granted(access)) if access.is_stranger()
        );
        if stranger && !objects.iter().any(|(cid, bytes)| grant_like(cid, bytes)) {
            let refused: Vec<(Cid, String)> = objects
                .into_iter()
                .map(|(cid, _)| (cid, STRANGER.to_owned()))
                .collect();
            return Some(self.refused_foreign(id, refused, false));
        }
        let signatures = SignatureCheck::new(None);
        let (batch, refused) = match Verified::check_split(
            objects,
            &store.limits(),
            Some(&signatures),
            self.soft.as_deref(),
        ) {
            Ok(checked) => checked,
            Err(error) => return Some(refusal(error)),
        };
        let Some(PeerAccess::Granted(access)) = self
            .conns
            .get_mut(&id)
            .and_then(|conn| conn.foreign.as_mut())
        else {
            return Some(Answer::Failed("the session ended".into()));
        };
        let mut taken = match access.take(&*store, batch).await {
            Ok(taken) => taken,
            Err(answer) => return Some(answer),
        };
        // Past the person's quota on a hub: refused like objects its recipes refuse.
        let mut refused = refused;
        refused.append(&mut taken.refused);
        if !refused.is_empty()
            && let answer @ Answer::Invalid(_) = self.refused_foreign(id, refused.clone(), true)
        {
            return Some(answer);
        }
        if taken.batch.is_empty() {
            return Some(if refused.is_empty() {
                Answer::Stored
            } else {
                Answer::StoredExcept(refused)
            });
        }
        let conn = self.conns.get_mut(&id)?;
        conn.policy_in.extend(taken.policy);
        let incomplete = Links::of(&taken.batch, false)
            .wait(&*store, &mut conn.deps, &mut self.stats.waited_foreign)
            .await;
        if !conn.deps.is_empty() {
            self.waiting.insert(id);
        }
        conn.pending.push(request_id, taken.batch, refused);
        conn.pending.note(taken.local);
        if !incomplete.is_empty() {
            self.emit(NodeEvent::Incomplete {
                session: id,
                cids: incomplete,
            });
        }
        None
    }

    /// After a commit of another person's session `id`: stores the objects it held that the
    /// commit covers now (e.g. a grant that arrived after its objects), and returns them.
    async fn promote_held(&mut self, id: ConnId) -> Vec<Cid> {
        let store = Arc::clone(&self.store);
        let listening = self.listening;
        let Some(conn) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        let Some(PeerAccess::Granted(access)) = conn.foreign.as_mut() else {
            return Vec::new();
        };
        if access.quarantined().next().is_none() {
            return Vec::new();
        }
        let released = match access.promote(&*store).await {
            Ok(released) => released,
            Err(_) => {
                // Held objects stay held (dropped with the session, and offered again later).
                return Vec::new();
            }
        };
        if released.is_empty() {
            return released;
        }
        // Not part of any acknowledgement: announced here once their targets are in.
        let links = Links::load(&*store, &released, listening).await;
        conn.arrivals.facts.extend(links.facts());
        let incomplete = links
            .wait(&*store, &mut conn.deps, &mut self.stats.waited_foreign)
            .await;
        if !conn.deps.is_empty() {
            self.waiting.insert(id);
        }
        release(&mut self.outputs, id, conn, Some(released.clone()), &[]);
        if !incomplete.is_empty() {
            self.emit(NodeEvent::Incomplete {
                session: id,
                cids: incomplete,
            });
        }
        released
    }

    /// The answer refusing `refused` objects of another person's session `id` one by one
    /// (reported to the application when `report`); past [`MAX_FOREIGN_REFUSED`] in a session,
    /// the session ends instead — refusing costs this side work, not the sender.
    fn refused_foreign(&mut self, id: ConnId, refused: Vec<(Cid, String)>, report: bool) -> Answer {
        self.stats.refused += refused.len() as u64;
        let over = self.conns.get_mut(&id).is_none_or(|conn| {
            conn.foreign_refused += refused.len();
            conn.foreign_refused > MAX_FOREIGN_REFUSED
        });
        if report {
            self.emit(NodeEvent::Refused {
                session: id,
                refused: refused.clone(),
            });
        }
        if over {
            Answer::Invalid(format!(
                "more than {MAX_FOREIGN_REFUSED} objects refused in one session"
            ))
        } else {
            Answer::StoredExcept(refused)
        }
    }

    /// An event of session `id`'s state machine.
    async fn on_event(&mut self, now: Now, id: ConnId, mut event: Event) {
        let store = Arc::clone(&self.store);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match &mut event {
            Event::Connected { peer: hello, .. } if hello.journal.is_some() => {
                if let Some(peer) = conn.report.peer.clone() {
                    let journal = hello.journal;
                    remember_in(&*store, now, &peer, |record| record.journal = journal).await;
                }
            }
            Event::Received(cids) => {
                // Only objects newly stored here are announced: not those held already (sent
                // again after a restart, or our own coming back), nor, from another person,
                // those no grant covered (held in memory).
                let foreign = conn.foreign.is_some();
                cids.retain(|cid| conn.arrivals.is_new(foreign, cid));
            }
            Event::Closed { .. } => {
                // Another person's objects that no grant here covered are dropped with the
                // session: say so (e.g. an entry whose type's recipe is unknown here, so no
                // collection field makes it covered). At most MAX_REPORTED named.
                if let Some(PeerAccess::Granted(access)) = conn.foreign.as_ref() {
                    let held: Vec<&Cid> = access.quarantined().collect();
                    let reason = if held.len() > MAX_REPORTED {
                        format!(
                            "{UNCOVERED} ({} more like it not listed)",
                            held.len() - MAX_REPORTED
                        )
                    } else {
                        UNCOVERED.to_owned()
                    };
                    let refused: Vec<(Cid, String)> = held
                        .into_iter()
                        .take(MAX_REPORTED)
                        .map(|cid| (cid.clone(), reason.clone()))
                        .collect();
                    if !refused.is_empty() {
                        self.outputs
                            .push_back(HostOutput::Event(NodeEvent::Refused {
                                session: id,
                                refused,
                            }));
                    }
                }
            }
            _ => {}
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let outputs = &mut self.outputs;
        let mut emit = |event| outputs.push_back(HostOutput::Event(event));
        match event {
            Event::Connected { .. } => emit(NodeEvent::Connected {
                session: id,
                remote: conn.remote.clone(),
                peer: conn.report.peer.clone().map(Box::new),
            }),
            Event::Received(cids) => {
                conn.active_at = now.elapsed;
                conn.report.received += cids.len() as u64;
                release(outputs, id, conn, Some(cids), &[]);
                if conn.report.synced {
                    // Live: ask at once for what live objects link to and we lack.
                    let fetch = conn.deps.take_fetches();
                    conn.session.handle_input(now.elapsed, Input::Fetch(fetch));
                }
            }
            Event::Resumed => conn.report.resumed = true,
            Event::TooLarge(cids) => emit(NodeEvent::NotSent { session: id, cids }),
            Event::PeerRefused { cids, reason } => emit(NodeEvent::PeerRefused {
                session: id,
                cids,
                reason,
            }),
            Event::PeerStored(cids) => {
                conn.active_at = now.elapsed;
                conn.report.sent += cids.len() as u64;
                emit(NodeEvent::PeerStored { session: id, cids });
            }
            Event::Synced => {
                conn.report.synced = true;
                // Whatever the first round's objects link to and did not come with it.
                let fetch = conn.deps.take_fetches();
                conn.session.handle_input(now.elapsed, Input::Fetch(fetch));
                emit(NodeEvent::Synced { session: id });
                if conn.options.close_when_synced {
                    conn.session.handle_input(now.elapsed, Input::Close);
                }
            }
            Event::Closed {
                code,
                reason,
                by_peer,
            } => {
                conn.report.code = code;
                conn.report.reason.clone_from(&reason);
                conn.report.by_peer = by_peer;
                // Told when the session has ended (`finish`): a commit still out may yet
                // report objects received through it, and they come first.
                conn.closed = Some((code, reason));
            }
            _ => {}
        }
    }

    /// Updates (or starts) the record of a peer instance in the local area.
    async fn remember(&self, now: Now, peer: &Peer, update: impl FnOnce(&mut PeerRecord)) {
        remember_in(&*self.store, now, peer, update).await;
    }

    /// The journal position held of `peer`'s journal, as a hello's version vector.
    async fn held_of(&self, peer: &Peer) -> Vec<(chum_sync::ids::JournalId, u64)> {
        let Ok(Some(record)) = PeerRecord::load(&*self.store, &peer.instance).await else {
            return Vec::new();
        };
        let Some(journal) = record.journal else {
            return Vec::new();
        };
        match journals::held(&*self.store, &journal).await {
            Ok(Some(position)) => vec![(journal, position)],
            _ => Vec::new(),
        }
    }
}

/// Updates (or starts) the record of a peer instance in the local area. A store failure here
/// only loses bookkeeping, never objects: it is ignored.
async fn remember_in(
    store: &dyn Store,
    now: Now,
    peer: &Peer,
    update: impl FnOnce(&mut PeerRecord),
) {
    let mut record = match PeerRecord::load(store, &peer.instance).await {
        Ok(Some(record)) => record,
        _ => PeerRecord {
            instance: peer.instance,
            person: peer.person.clone(),
            same_person: peer.same_person,
            first_seen_ms: now.unix_ms,
            last_connected_ms: now.unix_ms,
            last_synced_ms: None,
            acknowledged: 0,
            received: 0,
            journal: None,
        },
    };
    update(&mut record);
    let _ = record.save(store).await;
}

/// The encryption keys and payload of one session, from the driver's entropy.
fn security(mode: &Mode, entropy: &[u8; 64]) -> Result<Option<chum_sync::noise::Security>, String> {
    let (static_seed, noise) = entropy.split_at(32);
    let static_seed: [u8; 32] = static_seed.try_into().map_err(|_| "entropy".to_string())?;
    let noise: [u8; 32] = noise.try_into().map_err(|_| "entropy".to_string())?;
    let (static_secret, static_public) = chum_sync::noise::static_keypair(static_seed);
    let payload = match mode {
        Mode::Plain => return Ok(None),
        Mode::Member(identity) => chum_access::handshake::payload(identity, &static_public),
        Mode::Join(invitation, key) => {
            chum_access::handshake::join_payload(key, &invitation.secret, &static_public)
        }
    }
    .map_err(|error| error.to_string())?;
    Ok(Some(chum_sync::noise::Security {
        static_secret,
        payload,
        entropy: noise,
    }))
}

fn refusal(error: chum_store::Error) -> Answer {
    match error {
        chum_store::Error::Invalid { .. } => Answer::Invalid(error.to_string()),
        other => Answer::Failed(other.to_string()),
    }
}

/// Indexes session `id` by the persons whose objects can concern it now (see
/// [`Host::concern`]), in place of those it was indexed by.
fn index_concern(
    concern: &mut HashMap<Cid, BTreeSet<ConnId>>,
    unindexed: &mut BTreeSet<ConnId>,
    id: ConnId,
    conn: &mut Conn,
) {
    let persons = conn.foreign.as_ref().and_then(PeerAccess::concerning);
    if persons == conn.concern {
        return;
    }
    unindex_concern(concern, id, conn.concern.take());
    for person in persons.iter().flatten() {
        concern.entry(person.0.clone()).or_default().insert(id);
    }
    if persons.is_some() {
        unindexed.remove(&id);
    } else {
        unindexed.insert(id);
    }
    conn.concern = persons;
}

/// Removes session `id` from [`Host::concern`] under `persons`.
fn unindex_concern(
    concern: &mut HashMap<Cid, BTreeSet<ConnId>>,
    id: ConnId,
    persons: Option<Vec<PersonId>>,
) {
    for person in persons.into_iter().flatten() {
        if let Some(ids) = concern.get_mut(&person.0) {
            ids.remove(&id);
            if ids.is_empty() {
                concern.remove(&person.0);
            }
        }
    }
}

/// Objects are stored — `cids` through session `id`, or `others` through another session or
/// the app: announces the waiting objects they complete, and those of `cids` not waiting for
/// a target themselves.
fn release(
    outputs: &mut VecDeque<HostOutput>,
    id: ConnId,
    conn: &mut Conn,
    cids: Option<Vec<Cid>>,
    others: &[Cid],
) {
    let deps = &mut conn.deps;
    if deps.is_empty() {
        // Nothing waits: everything of ours is announced as it is.
        if let Some(cids) = cids.filter(|cids| !cids.is_empty()) {
            outputs.push_back(HostOutput::Event(conn.arrivals.received(id, cids)));
        }
        return;
    }
    let arrived = cids.as_deref().unwrap_or(others);
    let mut completed: Vec<Cid> = Vec::new();
    for cid in arrived {
        completed.extend(deps.arrived(cid));
    }
    let own = cids
        .unwrap_or_default()
        .into_iter()
        .filter(|cid| !deps.is_waiting(cid));
    let ready: Vec<Cid> = own.chain(completed).collect();
    if !ready.is_empty() {
        outputs.push_back(HostOutput::Event(conn.arrivals.received(id, ready)));
    }
}

/// The links (and, when asked, the facts) of a verified batch's objects, kept apart from the
/// batch so they outlive its commit.
struct Links {
    objects: Vec<(Cid, Vec<Cid>, Option<Facts>)>,
}

impl Links {
    /// Of every object of `batch`, with their facts when `facts`.
    fn of(batch: &Verified, facts: bool) -> Links {
        let any_links = batch
            .entries()
            .iter()
            .any(|entries| !entries.links.is_empty());
        if !any_links && !facts {
            return Links {
                objects: Vec::new(),
            };
        }
        Links {
            objects: batch
                .objects()
                .iter()
                .zip(batch.entries())
                .map(|((cid, _), entries)| {
                    (
                        cid.clone(),
                        entries.links.clone(),
                        facts.then(|| Facts::of(entries)),
                    )
                })
                .collect(),
        }
    }

    /// Of the stored objects `cids` (read back and indexed: for the rare objects that were
    /// verified in an earlier batch and stored only now).
    async fn load(store: &dyn Store, cids: &[Cid], facts: bool) -> Links {
        let limits = store.limits();
        let loaded = store.get_many(cids).await.unwrap_or_default();
        Links {
            objects: cids
                .iter()
                .zip(loaded)
                .filter_map(|(cid, bytes)| {
                    let entries =
                        chum_store::index::verify_and_index(cid, &bytes.ok()?, &limits).ok()?;
                    let facts = facts.then(|| Facts::of(&entries));
                    Some((cid.clone(), entries.links, facts))
                })
                .collect(),
        }
    }

    /// The facts kept.
    fn facts(&self) -> impl Iterator<Item = (Cid, Facts)> + '_ {
        self.objects
            .iter()
            .filter_map(|(cid, _, facts)| Some((cid.clone(), facts.clone()?)))
    }

    /// Records which link targets are missing (neither among these objects, nor stored, nor
    /// in an earlier batch of this session); returns the objects that cannot wait (the limit
    /// is reached).
    async fn wait(&self, store: &dyn Store, deps: &mut Dependencies, waited: &mut u64) -> Vec<Cid> {
        if self.objects.iter().all(|(_, links, _)| links.is_empty()) {
            return Vec::new(); // nothing here links anywhere: nothing can wait
        }
        for (cid, _, _) in &self.objects {
            deps.note_present(cid);
        }
        let mut incomplete = Vec::new();
        for (cid, links, _) in &self.objects {
            let mut missing = Vec::new();
            for target in links {
                if deps.known_present(target) {
                    continue;
                }
                if store.has(target).await.unwrap_or(false) {
                    deps.note_present(target);
                } else {
                    missing.push(target.clone());
                }
            }
            let waits = !missing.is_empty();
            if !deps.wait(cid, missing) {
                incomplete.push(cid.clone());
            } else if waits {
                *waited += 1;
            }
        }
        incomplete
    }
}
