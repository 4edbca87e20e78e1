//! A [`Node`]: one store shared by any number of sessions, each driven by a tokio task, with
//! new objects fanned out to every other session at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chum_access::handshake::Peer;
use chum_access::{Identity, Invitation, PeerAccess, Policy, SignatureCheck};
use chum_object::Cid;
use chum_object::sign::SigningKey;
use chum_store::index::{Acceptance, RecipeCheck, Verified};
use chum_store::{Scope, Store};
use chum_sync::session::Journal;
use chum_sync::wire::MAX_HOLDS;
use chum_sync::{
    Answer, CloseCode, Config, Event, Input, Output, Request, RequestId, Role, Session,
};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::deps::{Dependencies, MAX_WAITING};
use crate::journals;
use crate::peers::PeerRecord;
use crate::transport::Connection;

/// Objects that became shared in the node's store, and who stored them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    /// The session that stored them (0: the application).
    origin: u64,
    cids: Vec<Cid>,
}

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
    /// A session ended.
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
    pub type_name: Option<String>,
    /// For a `Version`: the ID hash of the object it changes.
    pub version_of: Option<Cid>,
}

impl Facts {
    /// Facts of an object: its `$type`, and for a version the ID hash it changes.
    pub fn new(type_name: Option<String>, version_of: Option<Cid>) -> Facts {
        Facts {
            type_name,
            version_of,
        }
    }

    fn of(entries: &chum_store::index::IndexEntries) -> Facts {
        Facts {
            type_name: entries.type_name.clone(),
            version_of: entries.version.as_ref().map(|version| version.of.clone()),
        }
    }
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

/// How a session authenticates.
enum Mode {
    /// Frames in the clear (a node without an identity).
    Plain,
    /// Noise, as this node's identity.
    Member(Arc<Identity>),
    /// Noise, joining a person with an invitation, as a new instance with this key.
    Join(Box<Invitation>, Box<SigningKey>),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// How one session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// End the session (normally) once the first reconciliation completed both ways, instead
    /// of staying live.
    pub close_when_synced: bool,
}

/// A store and the sessions syncing it.
pub struct Node {
    store: Arc<dyn Store>,
    config: Config,
    /// The app's rule (e.g. recipes): an object it refuses from an instance of this person is
    /// refused alone, and the peer told (signatures stay a rule for the whole batch).
    soft: Option<Arc<dyn Acceptance>>,
    identity: Option<Arc<Identity>>,
    policy: std::sync::RwLock<Policy>,
    stored: broadcast::Sender<Arc<Stored>>,
    /// Instances revoked by objects stored here, with the person that signed each revocation:
    /// a live session with the instance ends when that person is the instance's own.
    revoked: broadcast::Sender<(chum_access::InstanceId, chum_access::PersonId)>,
    events: broadcast::Sender<NodeEvent>,
    next_session: AtomicU64,
    /// Running sessions, for [`Node::close_session`].
    controls: std::sync::Mutex<std::collections::HashMap<u64, mpsc::UnboundedSender<()>>>,
}

/// Aborts a task when dropped (a session's reader, when the session future is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes a session's control entry when it ends (however it ends).
struct Unregister<'a> {
    node: &'a Node,
    session: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if let Ok(mut controls) = self.node.controls.lock() {
            controls.remove(&self.session);
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .field(
                "sessions_started",
                &self.next_session.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// Store requests waiting to be committed together: request ids and their verified objects.
type StoreGroup = Vec<(RequestId, Verified, Vec<(Cid, String)>)>;

/// What committing a group of store requests did.
struct StoreOutcome {
    /// The answer to each request.
    answers: Vec<(RequestId, Answer)>,
    /// Objects that became shared.
    new: Vec<Cid>,
    /// Objects that were held already.
    stale: Vec<Cid>,
    /// The facts of the new objects (when asked for).
    facts: Vec<(Cid, Facts)>,
    /// Instances revoked by revocations among them, with who signed each.
    revoked: Vec<(chum_access::InstanceId, chum_access::PersonId)>,
}

/// The instances revoked by revocation objects among `objects` (`types`: their `$type`s when
/// known; otherwise a cheap scan for the type name comes first).
fn revocations<'a>(
    objects: impl IntoIterator<Item = (&'a [u8], Option<&'a str>)>,
) -> Vec<(chum_access::InstanceId, chum_access::PersonId)> {
    const NAME: &[u8] = chum_access::keys::REVOCATION_TYPE.as_bytes();
    let mut revoked = Vec::new();
    for (bytes, type_name) in objects {
        let maybe = match type_name {
            Some(name) => name == chum_access::keys::REVOCATION_TYPE,
            None => bytes.windows(NAME.len()).any(|window| window == NAME),
        };
        if !maybe {
            continue;
        }
        if let Ok((object, value)) =
            chum_object::Object::from_bytes(bytes.to_vec(), &chum_object::Limits::default())
            && let Ok(revocation) = chum_access::Revocation::from_value(object, &value)
        {
            revoked.push((revocation.instance(), revocation.person()));
        }
    }
    revoked
}

/// Stores the verified objects of several store requests in one transaction and answers each;
/// with `want_facts`, keeps what verification learned of the new objects.
async fn store_together(store: &dyn Store, group: StoreGroup, want_facts: bool) -> StoreOutcome {
    let mut ids = Vec::with_capacity(group.len());
    let mut batches = Vec::with_capacity(group.len());
    for (request_id, batch, refused) in group {
        ids.push((request_id, refused));
        batches.push(batch);
    }
    let batch = Verified::concat(batches);
    let revoked = revocations(batch.objects().iter().zip(batch.entries()).map(
        |((_, bytes), entries)| {
            (
                bytes.as_slice(),
                Some(entries.type_name.as_deref().unwrap_or("")),
            )
        },
    ));
    let cids: Vec<Cid> = batch.objects().iter().map(|(cid, _)| cid.clone()).collect();
    let mut facts: Vec<Facts> = if want_facts {
        batch.entries().iter().map(Facts::of).collect()
    } else {
        Vec::new()
    };
    match store.put_verified(batch, Scope::Shared).await {
        Ok(changed) => {
            let mut outcome = StoreOutcome {
                answers: ids
                    .into_iter()
                    .map(|(id, refused)| {
                        if refused.is_empty() {
                            (id, Answer::Stored)
                        } else {
                            (id, Answer::StoredExcept(refused))
                        }
                    })
                    .collect(),
                new: Vec::with_capacity(cids.len()),
                stale: Vec::new(),
                facts: Vec::new(),
                revoked,
            };
            let mut facts = facts.drain(..);
            for (cid, changed) in cids.into_iter().zip(changed) {
                let fact = facts.next();
                if changed {
                    if let Some(fact) = fact {
                        outcome.facts.push((cid.clone(), fact));
                    }
                    outcome.new.push(cid);
                } else {
                    outcome.stale.push(cid);
                }
            }
            outcome
        }
        Err(error) => {
            let answer = match &error {
                chum_store::Error::Invalid { .. } => Answer::Invalid(error.to_string()),
                _ => Answer::Failed(error.to_string()),
            };
            StoreOutcome {
                answers: ids
                    .into_iter()
                    .map(|(id, _)| (id, answer.clone()))
                    .collect(),
                new: Vec::new(),
                stale: Vec::new(),
                facts: Vec::new(),
                revoked: Vec::new(),
            }
        }
    }
}

/// How many dropped objects of another person's a session's end names (the rest are counted).
const MAX_REPORTED: usize = 100;

/// Why another person's object was dropped when its session ended.
const UNCOVERED: &str = "from another person and covered by no grant to this person here (if it is an entry of a granted object, this instance may lack its type's recipe): not stored";

/// Objects another person's instance may have refused one by one (they break this node's
/// recipes) in one session before the session ends as `invalid object`.
const MAX_FOREIGN_REFUSED: usize = 1_000;

/// Notifications a slow session may fall behind by before it is closed (it catches up by
/// reconciling when it reconnects).
const FANOUT_CAPACITY: usize = 4_096;

impl Node {
    /// A node over `store` with the default session configuration.
    pub fn new(store: Arc<dyn Store>) -> Node {
        Node {
            store,
            config: Config::new(Role::Initiator),
            soft: None,
            identity: None,
            policy: std::sync::RwLock::new(Policy::default()),
            stored: broadcast::channel(FANOUT_CAPACITY).0,
            revoked: broadcast::channel(64).0,
            events: broadcast::channel(FANOUT_CAPACITY).0,
            next_session: AtomicU64::new(1),
            controls: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Uses `config` for every session (its role is set per session).
    pub fn with_config(mut self, config: Config) -> Node {
        self.config = config;
        self
    }

    /// Checks every object received from a peer with `acceptance` (beyond its CID and strict
    /// encoding, which are always checked). E.g. `RecipeCheck::new(chum_crdt::preset::seed())`:
    /// objects must satisfy their type's recipe, versions must be well-formed, and
    /// instance-local types are refused. An object it refuses is refused alone: the rest of its
    /// batch is stored, the peer is told which objects and why (`refused`), and the session
    /// goes on — so peers running different app versions keep syncing what they both accept.
    ///
    /// Objects of `chum-access`'s signed types (grants, certificates, revocations) must
    /// carry a valid signature in any case; a forged one refuses its whole batch and closes
    /// the session with `invalid object`.
    pub fn with_acceptance(mut self, acceptance: Arc<dyn Acceptance>) -> Node {
        self.soft = Some(acceptance);
        self
    }

    /// Encrypts and authenticates every session as `identity` (Noise XX; see
    /// `chum_access::handshake`). Instances of the same person see every shared object;
    /// instances of another person see what its grants cover, and only grant-covered objects
    /// are taken from them. Without an identity, sessions run in the clear.
    pub fn with_identity(mut self, identity: Identity) -> Node {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// The node's identity, if it has one.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Syncs the types of `recipes` with their strategies: received objects are checked with
    /// [`RecipeCheck`] over them, and the hello announces the types that travel (every recipe
    /// that is not instance-local). `chum_crdt::preset::seed()` is the seed's configuration.
    /// `chum-access`'s own types (grants, certificates, …) are added to `recipes`.
    pub fn with_recipes(mut self, mut recipes: Vec<chum_object::recipe::Recipe>) -> Node {
        recipes.extend(chum_access::recipes());
        self.policy = std::sync::RwLock::new(Policy::new(&recipes));
        self.config.types = recipes
            .iter()
            .filter(|recipe| recipe.strategy != chum_object::recipe::Strategy::InstanceLocal)
            .map(|recipe| recipe.name.clone())
            .collect();
        self.with_acceptance(Arc::new(RecipeCheck::new(recipes)))
    }

    /// Follows the collection fields of `recipes` too when deciding what another person may
    /// see (for recipes an app registers while the node runs; sessions admitted from now on
    /// use them).
    pub fn add_recipes<'a>(
        &self,
        recipes: impl IntoIterator<Item = &'a chum_object::recipe::Recipe>,
    ) {
        let mut policy = self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        policy.extend(recipes);
    }

    fn policy(&self) -> Policy {
        self.policy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The session configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stores shared objects and pushes the new ones to every live session at once.
    pub async fn put(&self, objects: &[(Cid, Vec<u8>)]) -> chum_store::Result<Vec<bool>> {
        let changed = self.store.put_scoped(objects, Scope::Shared).await?;
        let cids: Vec<Cid> = objects
            .iter()
            .zip(&changed)
            .filter(|(_, changed)| **changed)
            .map(|((cid, _), _)| cid.clone())
            .collect();
        if !cids.is_empty() {
            let _ = self.stored.send(Arc::new(Stored { origin: 0, cids }));
        }
        // Only new dag-cbor objects can be revocations not yet acted on.
        let candidates = objects
            .iter()
            .zip(&changed)
            .filter(|((cid, _), changed)| **changed && cid.is_blake3(chum_object::Codec::DagCbor))
            .map(|((_, bytes), _)| (bytes.as_slice(), None));
        for instance in revocations(candidates) {
            let _ = self.revoked.send(instance);
        }
        Ok(changed)
    }

    /// Events of every session of this node.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// Runs one session over `connection` until it ends: encrypted and authenticated when
    /// the node has an identity.
    pub async fn run(
        &self,
        role: Role,
        connection: Connection,
        options: SessionOptions,
    ) -> SessionReport {
        let id = self.reserve_session();
        self.run_reserved(id, role, connection, options).await
    }

    /// Ends a running session with a close frame (code `normal`); false when no session with
    /// this number is running.
    pub fn close_session(&self, session: u64) -> bool {
        self.controls
            .lock()
            .ok()
            .and_then(|controls| {
                controls
                    .get(&session)
                    .map(|control| control.send(()).is_ok())
            })
            .unwrap_or(false)
    }

    /// Ends every running session with a close frame.
    pub fn close_all(&self) {
        if let Ok(controls) = self.controls.lock() {
            for control in controls.values() {
                let _ = control.send(());
            }
        }
    }

    /// A session number for [`Node::run_reserved`], known before the session starts (so a
    /// caller can follow that session's events).
    pub fn reserve_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// [`Node::run`] as the session numbered `id` (from [`Node::reserve_session`]).
    pub async fn run_reserved(
        &self,
        id: u64,
        role: Role,
        connection: Connection,
        options: SessionOptions,
    ) -> SessionReport {
        let mode = match &self.identity {
            Some(identity) => Mode::Member(Arc::clone(identity)),
            None => Mode::Plain,
        };
        self.run_mode(id, role, connection, options, mode).await
    }

    /// Joins the person of `invitation` over `connection` (to the inviting instance) as a new
    /// instance with `instance_key`, then syncs as that person's instance. The new identity is
    /// in the report's `joined` (save it, e.g. with [`Identity::save`]); `None` when the
    /// inviter refused (the report says why).
    pub async fn join(
        &self,
        invitation: Invitation,
        instance_key: SigningKey,
        connection: Connection,
        options: SessionOptions,
    ) -> SessionReport {
        let mode = Mode::Join(Box::new(invitation), Box::new(instance_key));
        let id = self.reserve_session();
        self.run_mode(id, Role::Initiator, connection, options, mode)
            .await
    }

    /// The encryption keys and payload of one session.
    fn security(&self, mode: &Mode) -> Result<Option<chum_sync::noise::Security>, String> {
        let random = || chum_access::keys::random_bytes::<32>().map_err(|e| e.to_string());
        let (static_secret, static_public) = chum_sync::noise::static_keypair(random()?);
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
            entropy: random()?,
        }))
    }

    /// Decides on a peer's handshake payload; for a peer of another person, sets up what it
    /// sees and may send (`None`: an instance of the same person, which has full access).
    async fn admit(
        &self,
        id: u64,
        mode: &Mode,
        payload: &[u8],
        remote_static: &[u8; 32],
    ) -> Result<(Peer, Option<PeerAccess>), String> {
        match mode {
            Mode::Plain => Err("this node has no identity".into()),
            Mode::Join(invitation, _) => invitation
                .check_inviter(payload, remote_static)
                .map(|peer| (peer, None))
                .map_err(|error| error.to_string()),
            Mode::Member(identity) => {
                let admission = chum_access::admit_peer(
                    &*self.store,
                    identity,
                    &self.policy(),
                    payload,
                    remote_static,
                    now_ms(),
                )
                .await
                .map_err(|error| error.to_string())?;
                self.announce(id, admission.stored);
                let access = match admission.access {
                    PeerAccess::Full => None,
                    granted => Some(granted),
                };
                Ok((admission.peer, access))
            }
        }
    }

    async fn run_mode(
        &self,
        id: u64,
        role: Role,
        connection: Connection,
        options: SessionOptions,
        mode: Mode,
    ) -> SessionReport {
        let Connection {
            mut reader,
            mut writer,
            remote,
        } = connection;
        // The reader runs on its own task so that reading is never cancelled half-way.
        // Frames; `Ok(None)` when the transport closed; `Err` when it received something that
        // is not a frame (too large, a text message), which the peer hears about in a close.
        let (frames_tx, mut frames) = mpsc::channel::<std::io::Result<Option<Vec<u8>>>>(32);
        let reader_task = AbortOnDrop(tokio::spawn(async move {
            loop {
                let frame = reader.read_frame().await;
                let end = !matches!(frame, Ok(Some(_)));
                if frames_tx.send(frame).await.is_err() || end {
                    break;
                }
            }
        }));
        // `close_session(id)` ends this session with a close frame.
        let (control_tx, mut control) = mpsc::unbounded_channel::<()>();
        if let Ok(mut controls) = self.controls.lock() {
            controls.insert(id, control_tx);
        }
        let _unregister = Unregister {
            node: self,
            session: id,
        };
        let mut fanout = self.stored.subscribe();
        let mut revoked = self.revoked.subscribe();
        let start = Instant::now();
        let now = || start.elapsed();
        let mut config = self.config.clone();
        config.role = role;
        let write_timeout = config.idle_timeout;
        let security = self.security(&mode);
        if let Ok(security) = &security {
            config.security.clone_from(security);
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
        let mut session = Session::new(config, now());
        // For a peer of another person: what it sees and may send.
        let mut foreign: Option<PeerAccess> = None;
        let mut report = SessionReport {
            session: id,
            synced: false,
            code: CloseCode::Normal,
            reason: String::new(),
            by_peer: false,
            received: 0,
            sent: 0,
            frames_out: 0,
            bytes_out: 0,
            peer: None,
            joined: None,
        };
        if let Err(reason) = security {
            reader_task.0.abort();
            report.code = CloseCode::Other(0);
            report.reason = format!("cannot set up encryption: {reason}");
            return report;
        }
        let mut transport_ok = true;
        let mut deps = Dependencies::new(MAX_WAITING);
        // Objects this session stored that were new here, until the session reports them
        // received (then only these are announced).
        let mut arrivals = Arrivals::default();
        // Objects of another person's refused by recipe in this session.
        let mut foreign_refused = 0usize;
        // Store requests wait here briefly, so that batches already received are committed
        // together (one durable commit for several batches when the store is the bottleneck).
        let mut stores: StoreGroup = Vec::new();
        // The commit running beside the session: the first request of its group, and the task.
        let mut committing: Option<(RequestId, tokio::task::JoinHandle<StoreOutcome>)> = None;
        loop {
            while let Some(output) = session.poll_output() {
                match output {
                    Output::Request(
                        request_id,
                        Request::Admit {
                            payload,
                            remote_static,
                        },
                    ) => {
                        let answer = match self.admit(id, &mode, &payload, &remote_static).await {
                            Ok((peer, view)) => {
                                let welcome =
                                    peer.issued.as_ref().map(|c| c.object().bytes().to_vec());
                                // Journals only between instances of one person: positions
                                // count every shared object, granted or not.
                                let journal = match (own_journal, &view) {
                                    (Some(id), None) => Some(Journal {
                                        id,
                                        holds: self.held_of(&peer).await,
                                    }),
                                    _ => None,
                                };
                                self.remember(&peer, |record| record.last_connected_ms = now_ms())
                                    .await;
                                report.peer = Some(peer);
                                foreign = view;
                                Answer::Admitted { welcome, journal }
                            }
                            Err(reason) => Answer::Refused(reason),
                        };
                        session.handle_input(now(), Input::Answer(request_id, answer));
                    }
                    Output::Event(Event::Welcomed { certificate }) => {
                        if let Mode::Join(invitation, key) = &mode {
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
                                Ok(identity) => report.joined = Some(identity),
                                Err(_) => session.handle_input(now(), Input::Close),
                            }
                        }
                    }
                    Output::Request(request_id, Request::Store(objects)) if foreign.is_none() => {
                        // Verified here, beside the commit of the previous group.
                        let signatures = SignatureCheck::new(None);
                        match Verified::check_split(
                            objects,
                            &self.store.limits(),
                            Some(&signatures),
                            self.soft.as_deref(),
                        ) {
                            Ok((batch, refused)) => {
                                if !refused.is_empty() {
                                    self.emit(NodeEvent::Refused {
                                        session: id,
                                        refused: refused.clone(),
                                    });
                                }
                                let incomplete = self.await_links(&batch, &mut deps).await;
                                if !incomplete.is_empty() {
                                    self.emit(NodeEvent::Incomplete {
                                        session: id,
                                        cids: incomplete,
                                    });
                                }
                                stores.push((request_id, batch, refused));
                            }
                            Err(error) => {
                                let answer = match error {
                                    chum_store::Error::Invalid { .. } => {
                                        Answer::Invalid(error.to_string())
                                    }
                                    other => Answer::Failed(other.to_string()),
                                };
                                session.handle_input(now(), Input::Answer(request_id, answer));
                            }
                        }
                    }
                    Output::Transmit(frame) if transport_ok => {
                        report.frames_out += 1;
                        report.bytes_out += frame.len() as u64;
                        // A peer that stops reading must not freeze the session.
                        let written =
                            tokio::time::timeout(write_timeout, writer.write_frame(frame)).await;
                        if !matches!(written, Ok(Ok(()))) {
                            transport_ok = false;
                            session.handle_input(now(), Input::TransportClosed);
                        }
                    }
                    Output::Request(request_id, request) => {
                        let answer = match foreign.as_mut() {
                            Some(access) => {
                                let signatures = SignatureCheck::new(None);
                                let (answer, new) = access
                                    .answer(
                                        &*self.store,
                                        request,
                                        Some(&signatures),
                                        self.soft.as_deref(),
                                    )
                                    .await;
                                let answer = match answer {
                                    Answer::StoredExcept(refused) => {
                                        foreign_refused += refused.len();
                                        self.emit(NodeEvent::Refused {
                                            session: id,
                                            refused: refused.clone(),
                                        });
                                        // Refusing costs this side work, not the sender: past
                                        // a bound, another person's session ends.
                                        if foreign_refused > MAX_FOREIGN_REFUSED {
                                            Answer::Invalid(format!(
                                                "more than {MAX_FOREIGN_REFUSED} objects refused in one session"
                                            ))
                                        } else {
                                            Answer::StoredExcept(refused)
                                        }
                                    }
                                    answer => answer,
                                };
                                arrivals.fresh.extend(new.iter().cloned());
                                self.announce(id, new);
                                answer
                            }
                            None => {
                                let (answer, new) =
                                    chum_sync::store::answer(&*self.store, request).await;
                                self.announce(id, new);
                                answer
                            }
                        };
                        session.handle_input(now(), Input::Answer(request_id, answer));
                    }
                    Output::Event(Event::Checkpoint { journal, position }) => {
                        // Bookkeeping only: a failure costs the next session the fast path.
                        let _ = journals::record(&*self.store, &journal, position, now_ms()).await;
                    }
                    Output::Event(Event::Connected {
                        version,
                        peer: hello,
                    }) if hello.journal.is_some() => {
                        if let Some(peer) = &report.peer {
                            self.remember(peer, |record| record.journal = hello.journal)
                                .await;
                        }
                        self.on_event(
                            id,
                            &remote,
                            Event::Connected {
                                version,
                                peer: hello,
                            },
                            &mut report,
                            options,
                            &mut session,
                            &mut deps,
                            &mut arrivals,
                            now(),
                        );
                    }
                    Output::Event(mut event) => {
                        // Only objects newly stored here are announced: not those held
                        // already (sent again after a restart, or our own coming back), nor,
                        // from another person, those no grant covered (held in memory).
                        if let Event::Received(cids) = &mut event {
                            let foreign = foreign.is_some();
                            cids.retain(|cid| arrivals.is_new(foreign, cid));
                        }
                        // Another person's objects that no grant here covered are dropped
                        // with the session: say so (e.g. an entry whose type's recipe is
                        // unknown here, so no collection field makes it covered).
                        if matches!(event, Event::Closed { .. })
                            && let Some(PeerAccess::Granted(access)) = foreign.as_ref()
                        {
                            // At most MAX_REPORTED named; the count of the rest in the reason.
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
                                self.emit(NodeEvent::Refused {
                                    session: id,
                                    refused,
                                });
                            }
                        }
                        self.on_event(
                            id,
                            &remote,
                            event,
                            &mut report,
                            options,
                            &mut session,
                            &mut deps,
                            &mut arrivals,
                            now(),
                        );
                    }
                    _ => {}
                }
            }
            if committing.is_none() && !stores.is_empty() {
                // One commit at a time runs beside the session; batches that arrive meanwhile
                // are committed together next.
                let store = Arc::clone(&self.store);
                let group = std::mem::take(&mut stores);
                let first = group[0].0;
                // Facts only help someone who listens.
                let want_facts = self.events.receiver_count() > 0;
                committing = Some((
                    first,
                    tokio::task::spawn_blocking(move || {
                        futures::executor::block_on(store_together(&*store, group, want_facts))
                    }),
                ));
            }
            if transport_ok
                && !matches!(
                    tokio::time::timeout(write_timeout, writer.flush()).await,
                    Ok(Ok(()))
                )
            {
                transport_ok = false;
                session.handle_input(now(), Input::TransportClosed);
                continue;
            }
            if session.is_closed() {
                if let Some((_, commit)) = committing.take() {
                    // Let a commit in progress finish (its objects are durable either way).
                    let _ = commit.await;
                }
                break;
            }
            let deadline = session.poll_timeout().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |at| start + at,
            );
            tokio::select! {
                outcome = async {
                    match committing.as_mut() {
                        Some((_, commit)) => commit.await,
                        None => std::future::pending().await,
                    }
                } => {
                    let first = committing.take().map_or(0, |(first, _)| first);
                    match outcome {
                        Ok(outcome) => {
                            for instance in outcome.revoked {
                                let _ = self.revoked.send(instance);
                            }
                            arrivals.stale.extend(outcome.stale);
                            arrivals.facts.extend(outcome.facts);
                            self.announce(id, outcome.new);
                            for (request_id, answer) in outcome.answers {
                                session.handle_input(now(), Input::Answer(request_id, answer));
                            }
                        }
                        Err(error) => session.handle_input(
                            now(),
                            Input::Answer(
                                first,
                                Answer::Failed(format!("the store task failed: {error}")),
                            ),
                        ),
                    }
                }
                frame = frames.recv() => match frame {
                    Some(Ok(Some(frame))) => session.handle_input(now(), Input::Frame(frame)),
                    Some(Err(error)) if error.kind() == std::io::ErrorKind::InvalidData => {
                        let too_large = crate::transport::is_too_large(&error);
                        let reason = error.to_string();
                        session.handle_input(now(), Input::BadFrame { too_large, reason });
                    }
                    _ => session.handle_input(now(), Input::TransportClosed),
                },
                Ok((instance, by)) = revoked.recv() => {
                    // The peer's instance was revoked while connected — by its own person (a
                    // "revocation" signed by anyone else revokes nothing): end the session.
                    if report
                        .peer
                        .as_ref()
                        .is_some_and(|peer| peer.instance == instance && peer.person == by)
                    {
                        session.handle_input(now(), Input::Close);
                    }
                }
                stored = fanout.recv() => match stored {
                    Ok(stored) if stored.origin != id => {
                        // Targets may also arrive through another session or the app.
                        self.release(id, None, &stored.cids, &mut deps, &mut arrivals);
                        match foreign.as_mut() {
                            // A peer of another person hears of what became visible to it.
                            Some(access) => {
                                match access.visible(&*self.store, &stored.cids).await {
                                    Ok(visible) if !visible.is_empty() => session
                                        .handle_input(now(), Input::LocalStored(visible)),
                                    Ok(_) => {}
                                    Err(_) => session.handle_input(now(), Input::Close),
                                }
                            }
                            None => session
                                .handle_input(now(), Input::LocalStored(stored.cids.clone())),
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // New objects were missed: end the session; the next one reconciles.
                        session.handle_input(now(), Input::Close);
                    }
                    Err(broadcast::error::RecvError::Closed) => {}
                },
                Some(()) = control.recv() => session.handle_input(now(), Input::Close),
                () = tokio::time::sleep_until(deadline) => session.handle_input(now(), Input::Tick),
            }
        }
        if transport_ok {
            let _ = tokio::time::timeout(Duration::from_secs(5), writer.close()).await;
        }
        reader_task.0.abort();
        if let Some(peer) = report.peer.clone() {
            let (synced, sent, received) = (report.synced, report.sent, report.received);
            self.remember(&peer, |record| {
                if synced {
                    record.last_synced_ms = Some(now_ms());
                }
                record.acknowledged += sent;
                record.received += received;
            })
            .await;
        }
        let incomplete = deps.drain();
        if !incomplete.is_empty() {
            self.emit(NodeEvent::Incomplete {
                session: id,
                cids: incomplete,
            });
        }
        report
    }

    /// Records which link targets of a verified batch are missing (neither in the batch, nor
    /// stored, nor in an earlier batch of this session); returns the objects that cannot wait
    /// (the limit is reached).
    async fn await_links(&self, batch: &Verified, deps: &mut Dependencies) -> Vec<Cid> {
        if batch
            .entries()
            .iter()
            .all(|entries| entries.links.is_empty())
        {
            return Vec::new(); // nothing here links anywhere: nothing can wait
        }
        for (cid, _) in batch.objects() {
            deps.note_present(cid);
        }
        let mut incomplete = Vec::new();
        for ((cid, _), entries) in batch.objects().iter().zip(batch.entries()) {
            let mut missing = Vec::new();
            for target in &entries.links {
                if deps.known_present(target) {
                    continue;
                }
                if self.store.has(target).await.unwrap_or(false) {
                    deps.note_present(target);
                } else {
                    missing.push(target.clone());
                }
            }
            if !deps.wait(cid, missing) {
                incomplete.push(cid.clone());
            }
        }
        incomplete
    }

    /// Objects are stored — `cids` through this session, or `others` through another session
    /// or the app: announces the waiting objects they complete, and those of `cids` not
    /// waiting for a target themselves.
    fn release(
        &self,
        id: u64,
        cids: Option<Vec<Cid>>,
        others: &[Cid],
        deps: &mut Dependencies,
        arrivals: &mut Arrivals,
    ) {
        if deps.is_empty() {
            // Nothing waits: everything of ours is announced as it is.
            if let Some(cids) = cids.filter(|cids| !cids.is_empty()) {
                self.emit(arrivals.received(id, cids));
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
            self.emit(arrivals.received(id, ready));
        }
    }

    /// Updates (or starts) the record of a peer instance in the local area. A store failure
    /// here only loses bookkeeping, never objects: it is ignored.
    async fn remember(&self, peer: &Peer, update: impl FnOnce(&mut PeerRecord)) {
        let now = now_ms();
        let mut record = match PeerRecord::load(&*self.store, &peer.instance).await {
            Ok(Some(record)) => record,
            _ => PeerRecord {
                instance: peer.instance,
                person: peer.person.clone(),
                same_person: peer.same_person,
                first_seen_ms: now,
                last_connected_ms: now,
                last_synced_ms: None,
                acknowledged: 0,
                received: 0,
                journal: None,
            },
        };
        update(&mut record);
        let _ = record.save(&*self.store).await;
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

    /// What this node remembers of the peer instances it has synced with.
    pub async fn peers(&self) -> chum_store::Result<Vec<PeerRecord>> {
        PeerRecord::all(&*self.store).await
    }

    /// Tells the other sessions about objects that became shared through session `id`.
    fn announce(&self, id: u64, cids: Vec<Cid>) {
        if !cids.is_empty() {
            let _ = self.stored.send(Arc::new(Stored { origin: id, cids }));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_event(
        &self,
        id: u64,
        remote: &str,
        event: Event,
        report: &mut SessionReport,
        options: SessionOptions,
        session: &mut Session,
        deps: &mut Dependencies,
        arrivals: &mut Arrivals,
        now: Duration,
    ) {
        match event {
            Event::Connected { .. } => self.emit(NodeEvent::Connected {
                session: id,
                remote: remote.to_string(),
                peer: report.peer.clone().map(Box::new),
            }),
            Event::Received(cids) => {
                report.received += cids.len() as u64;
                self.release(id, Some(cids), &[], deps, arrivals);
                if report.synced {
                    // Live: ask at once for what live objects link to and we lack.
                    session.handle_input(now, Input::Fetch(deps.take_fetches()));
                }
            }
            Event::TooLarge(cids) => self.emit(NodeEvent::NotSent { session: id, cids }),
            Event::PeerRefused { cids, reason } => self.emit(NodeEvent::PeerRefused {
                session: id,
                cids,
                reason,
            }),
            Event::PeerStored(cids) => {
                report.sent += cids.len() as u64;
                self.emit(NodeEvent::PeerStored { session: id, cids });
            }
            Event::Synced => {
                report.synced = true;
                // Whatever the first round's objects link to and did not come with it.
                session.handle_input(now, Input::Fetch(deps.take_fetches()));
                self.emit(NodeEvent::Synced { session: id });
                if options.close_when_synced {
                    session.handle_input(now, Input::Close);
                }
            }
            Event::Closed {
                code,
                reason,
                by_peer,
            } => {
                report.code = code;
                report.reason.clone_from(&reason);
                report.by_peer = by_peer;
                self.emit(NodeEvent::Closed {
                    session: id,
                    code,
                    reason,
                });
            }
            _ => {}
        }
    }
}
