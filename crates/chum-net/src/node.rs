//! A [`Node`]: the tokio driver of a [`chum_host::Host`]. The host owns every session and all
//! of their policy; this moves frames between it and the transports, runs its commits on the
//! blocking pool, keeps its timers, and hands its events to the application.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chum_access::{Identity, Invitation};
use chum_host::{Commit, Committed, ConnId, ConnInput, Host, HostOutput, LocalWrite, Now, Opening};
use chum_object::Cid;
use chum_object::sign::SigningKey;
use chum_store::index::Acceptance;
use chum_store::{Scope, Store};
use chum_sync::{CloseCode, Config, Role};
use futures::StreamExt;
use futures::stream::SelectAll;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::rt::{self, BoxFuture, BoxStream, Instant};

use crate::peers::PeerRecord;
use crate::transport::{Connection, FrameWriter};

pub use chum_host::{Facts, HostLimits, NodeEvent, SessionOptions, SessionReport};

/// Events the application may fall behind by before it misses some.
const EVENTS_CAPACITY: usize = 4_096;

/// How long a closed connection is still read (and what arrives dropped): closing a socket
/// with unread bytes makes the kernel reset it, and a reset can destroy the last frames sent
/// before it — the close frame that tells the peer why — before the peer reads them.
const LINGER: Duration = Duration::from_secs(2);

/// A frame as the reader saw it: `Ok(None)` when the transport closed; `Err` when it received
/// something that is not a frame (too large, a text message).
type ReadFrame = std::io::Result<Option<Vec<u8>>>;

/// What the host task hears.
enum Message {
    Open {
        conn: ConnId,
        opening: Opening,
        connection: Connection,
        done: oneshot::Sender<SessionReport>,
    },
    Input(ConnId, ConnInput),
    Committed(ConnId, Committed),
    Local(LocalWrite),
    CloseAll,
    AddRecipes(Vec<chum_object::recipe::Recipe>),
}

/// The host before its task starts, or the way to reach the task.
enum State {
    Setup(Box<Host>),
    Running(mpsc::UnboundedSender<Message>),
}

/// A store and the sessions syncing it.
pub struct Node {
    store: Arc<dyn Store>,
    config: Config,
    identity: Option<Arc<Identity>>,
    state: std::sync::Mutex<State>,
    events: broadcast::Sender<NodeEvent>,
    next_session: AtomicU64,
    /// Sessions whose [`Node::run`] has not returned.
    running: Arc<std::sync::Mutex<HashSet<u64>>>,
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

fn unix_ms() -> u64 {
    rt::unix_ms()
}

/// Objects read per request while offering what other writers of the store added.
const OFFER_CHUNK: usize = 512;

/// Offers to every live session what other writers of the store (other processes over the
/// same database) added to the shared set, as the application's own writes are offered —
/// so a peer of one hub process hears live of what a peer of another wrote. Ends with the
/// host task or the store's stream.
async fn offer_others(
    mut others: futures::stream::BoxStream<'static, Vec<chum_store::Added>>,
    store: Arc<dyn Store>,
    inbox: mpsc::WeakUnboundedSender<Message>,
) {
    while let Some(added) = others.next().await {
        let mut added = added.into_iter();
        loop {
            let chunk: Vec<chum_store::Added> = added.by_ref().take(OFFER_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            // What came without its bytes is read (in one request).
            let unread: Vec<Cid> = chunk
                .iter()
                .filter(|added| added.bytes.is_none())
                .map(|added| added.cid.clone())
                .collect();
            let mut loaded = if unread.is_empty() {
                Vec::new()
            } else {
                match store.get_many(&unread).await {
                    Ok(loaded) => loaded,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read what another writer stored");
                        continue;
                    }
                }
            }
            .into_iter();
            // Deleted since: nothing to offer.
            let objects: Vec<(Cid, Vec<u8>)> = chunk
                .into_iter()
                .filter_map(|added| {
                    let bytes = match added.bytes {
                        Some(bytes) => bytes,
                        None => loaded.next()?.ok()?,
                    };
                    Some((added.cid, bytes))
                })
                .collect();
            let write = LocalWrite::of(&objects, &vec![true; objects.len()]);
            let Some(inbox) = inbox.upgrade() else { return };
            if !write.is_empty() && inbox.send(Message::Local(write)).is_err() {
                return;
            }
        }
    }
}

/// Ends a session whose [`Node::run`] future was dropped before it finished.
struct Abandon {
    conn: ConnId,
    inbox: Option<mpsc::UnboundedSender<Message>>,
    running: Arc<std::sync::Mutex<HashSet<u64>>>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            let _ = inbox.send(Message::Input(self.conn, ConnInput::TransportClosed));
        }
        if let Ok(mut running) = self.running.lock() {
            running.remove(&self.conn);
        }
    }
}

impl Node {
    /// A node over `store` with the default session configuration.
    pub fn new(store: Arc<dyn Store>) -> Node {
        Node {
            store: Arc::clone(&store),
            config: Config::new(Role::Initiator),
            identity: None,
            state: std::sync::Mutex::new(State::Setup(Box::new(Host::new(store)))),
            events: broadcast::channel(EVENTS_CAPACITY).0,
            next_session: AtomicU64::new(1),
            running: Arc::new(std::sync::Mutex::new(HashSet::new())),
        }
    }

    /// Changes the host before it starts (builder methods).
    fn setup(mut self, change: impl FnOnce(Host) -> Host) -> Node {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let State::Setup(host) = state {
            let placeholder = Host::new(Arc::clone(&self.store));
            let old = std::mem::replace(&mut **host, placeholder);
            **host = change(old);
            self.config = host.config().clone();
        }
        self
    }

    /// What peers not known yet may hold: sessions waiting for admission (in all and per
    /// address), how long admission may take, sessions with strangers and their idle time
    /// (see [`chum_host::HostLimits`]; the defaults suit a public listener).
    pub fn with_limits(self, limits: chum_host::HostLimits) -> Node {
        self.setup(|host| host.with_limits(limits))
    }

    /// Serves as a hub (see [`chum_host::Host::as_hub`]): persons grant it access, it stores
    /// and forwards what they share with it, and answers each peer from what that peer's
    /// person may see.
    pub fn as_hub(self) -> Node {
        self.setup(Host::as_hub)
    }

    /// Uses the person `hub` as a hub (see [`chum_host::Host::use_hub`]).
    pub fn use_hub(self, hub: chum_access::PersonId) -> Node {
        self.setup(|mut host| {
            host.use_hub(hub);
            host
        })
    }

    /// Serves only instances of `persons` besides its own person's (see
    /// [`chum_host::Host::admit_only`]).
    pub fn admit_only(self, persons: Vec<chum_access::PersonId>) -> Node {
        self.setup(|mut host| {
            host.admit_only(persons);
            host
        })
    }

    /// On a hub: stores at most `objects` objects sent by one person (see
    /// [`chum_host::Host::quota_per_person`]).
    pub fn quota_per_person(self, objects: u64) -> Node {
        self.setup(|mut host| {
            host.quota_per_person(objects);
            host
        })
    }

    /// Uses `config` for every session (its role is set per session).
    pub fn with_config(self, config: Config) -> Node {
        self.setup(|host| host.with_config(config))
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
    pub fn with_acceptance(self, acceptance: Arc<dyn Acceptance>) -> Node {
        self.setup(|host| host.with_acceptance(acceptance))
    }

    /// Encrypts and authenticates every session as `identity` (Noise XX; see
    /// `chum_access::handshake`). Instances of the same person see every shared object;
    /// instances of another person see what its grants cover, and only grant-covered objects
    /// are taken from them. Without an identity, sessions run in the clear.
    pub fn with_identity(mut self, identity: Identity) -> Node {
        self.identity = Some(Arc::new(identity.clone()));
        self.setup(|host| host.with_identity(identity))
    }

    /// The node's identity, if it has one.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Syncs the types of `recipes` with their strategies: received objects are checked with
    /// [`chum_store::index::RecipeCheck`] over them, and the hello announces the types that
    /// travel (every recipe that is not instance-local). `chum_crdt::preset::seed()` is the
    /// seed's configuration. `chum-access`'s own types (grants, certificates, …) are added.
    pub fn with_recipes(self, recipes: Vec<chum_object::recipe::Recipe>) -> Node {
        self.setup(|host| host.with_recipes(recipes))
    }

    /// Follows the collection fields of `recipes` too when deciding what another person may
    /// see (for recipes an app registers while the node runs; sessions admitted from now on
    /// use them).
    pub fn add_recipes<'a>(
        &self,
        recipes: impl IntoIterator<Item = &'a chum_object::recipe::Recipe>,
    ) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *state {
            State::Setup(host) => host.add_recipes(recipes),
            State::Running(inbox) => {
                let _ = inbox.send(Message::AddRecipes(recipes.into_iter().cloned().collect()));
            }
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The session configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The host task's inbox, starting the task on first use (on the current tokio runtime).
    fn inbox(&self) -> mpsc::UnboundedSender<Message> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *state {
            State::Running(inbox) => inbox.clone(),
            State::Setup(host) => {
                let host = std::mem::replace(&mut **host, Host::new(Arc::clone(&self.store)));
                let (inbox, messages) = mpsc::unbounded_channel();
                let driver = Driver {
                    host: Box::new(host),
                    store: Arc::clone(&self.store),
                    events: self.events.clone(),
                    inbox: inbox.downgrade(),
                    write_timeout: self.config.idle_timeout,
                    start: Instant::now(),
                    conns: HashMap::new(),
                    frames: SelectAll::new(),
                    writing: futures::stream::FuturesUnordered::new(),
                    to_write: Vec::new(),
                    committed_here: Vec::new(),
                };
                drop(rt::spawn(driver.run(messages)));
                if let Some(others) = self.store.watch_others() {
                    drop(rt::spawn(offer_others(
                        others,
                        Arc::clone(&self.store),
                        inbox.downgrade(),
                    )));
                }
                *state = State::Running(inbox.clone());
                inbox
            }
        }
    }

    /// Stores shared objects and pushes the new ones to every live session at once.
    pub async fn put(&self, objects: &[(Cid, Vec<u8>)]) -> chum_store::Result<Vec<bool>> {
        let changed = self.store.put_scoped(objects, Scope::Shared).await?;
        let write = LocalWrite::of(objects, &changed);
        if !write.is_empty() {
            let _ = self.inbox().send(Message::Local(write));
        }
        Ok(changed)
    }

    /// Pushes objects already stored (shared) to every live session as if just written:
    /// for a writer that stores first and decides later what leaves (e.g. coalesced edits).
    /// Objects no longer stored are skipped by the sessions.
    pub fn announce(&self, objects: &[(Cid, Vec<u8>)]) {
        let write = LocalWrite::of(objects, &vec![true; objects.len()]);
        if !write.is_empty() {
            let _ = self.inbox().send(Message::Local(write));
        }
    }

    /// Events of every session of this node.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
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
        let running = self
            .running
            .lock()
            .map(|running| running.contains(&session))
            .unwrap_or(false);
        running
            && self
                .inbox()
                .send(Message::Input(session, ConnInput::Close))
                .is_ok()
    }

    /// Ends every running session with a close frame.
    pub fn close_all(&self) {
        if matches!(
            *self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            State::Running(_)
        ) {
            let _ = self.inbox().send(Message::CloseAll);
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
        self.run_opening(id, role, connection, options, None).await
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
        let id = self.reserve_session();
        self.run_opening(
            id,
            Role::Initiator,
            connection,
            options,
            Some((invitation, instance_key)),
        )
        .await
    }

    async fn run_opening(
        &self,
        id: u64,
        role: Role,
        connection: Connection,
        options: SessionOptions,
        join: Option<(Invitation, SigningKey)>,
    ) -> SessionReport {
        let mut report = SessionReport::new(id);
        report.code = CloseCode::Other(0);
        let entropy = match chum_access::keys::random_bytes::<64>() {
            Ok(entropy) => entropy,
            Err(error) => {
                report.reason = format!("cannot set up encryption: {error}");
                return report;
            }
        };
        let mut opening = Opening::new(role, connection.remote.clone(), entropy).options(options);
        if let Some((invitation, key)) = join {
            opening = opening.join(invitation, key);
        }
        if let Ok(mut running) = self.running.lock() {
            running.insert(id);
        }
        let inbox = self.inbox();
        let mut abandon = Abandon {
            conn: id,
            inbox: Some(inbox.clone()),
            running: Arc::clone(&self.running),
        };
        let (done, ended) = oneshot::channel();
        let _ = inbox.send(Message::Open {
            conn: id,
            opening,
            connection,
            done,
        });
        match ended.await {
            Ok(ended) => {
                abandon.inbox = None;
                ended
            }
            Err(_) => {
                report.reason = "the node stopped".into();
                report
            }
        }
    }

    /// What this node remembers of the peer instances it has synced with.
    pub async fn peers(&self) -> chum_store::Result<Vec<PeerRecord>> {
        PeerRecord::all(&*self.store).await
    }
}

/// One connection's I/O, as the host task keeps it.
struct ConnIo {
    /// The writer, while no write is in progress.
    writer: Option<Box<dyn FrameWriter>>,
    /// Frames waiting for the writer.
    queue: Vec<Vec<u8>>,
    /// The session ended: close once the queue is written.
    closing: bool,
    /// A write failed: nothing more is written.
    broken: bool,
    /// Ends the connection's reading (see [`LINGER`]).
    reader: futures::future::AbortHandle,
    done: Option<oneshot::Sender<SessionReport>>,
}

/// A write in progress: the connection, its writer back (`None` once closed), and whether
/// every frame went out.
type Writing = BoxFuture<'static, (ConnId, Option<Box<dyn FrameWriter>>, bool)>;

/// The host task.
struct Driver {
    host: Box<Host>,
    store: Arc<dyn Store>,
    events: broadcast::Sender<NodeEvent>,
    /// For tasks that report back (writers, commits): weak, so the task ends with the node.
    inbox: mpsc::WeakUnboundedSender<Message>,
    write_timeout: Duration,
    start: Instant,
    conns: HashMap<ConnId, ConnIo>,
    frames: SelectAll<BoxStream<'static, (ConnId, ReadFrame)>>,
    /// Writes in progress (on this task: frames are written where they were made).
    writing: futures::stream::FuturesUnordered<Writing>,
    /// Connections with frames queued since the last dispatch.
    to_write: Vec<ConnId>,
    /// Commits that finished as they started (see [`Driver::commit`]), for the host.
    committed_here: Vec<(ConnId, Committed)>,
}

impl Driver {
    fn now(&self) -> Now {
        Now {
            elapsed: self.start.elapsed(),
            unix_ms: unix_ms(),
        }
    }

    async fn run(mut self, mut messages: mpsc::UnboundedReceiver<Message>) {
        let mut stopping = false;
        loop {
            self.dispatch();
            if !self.committed_here.is_empty() {
                let now = self.now();
                for (conn, committed) in std::mem::take(&mut self.committed_here) {
                    self.host.committed(now, conn, committed).await;
                }
                continue;
            }
            if stopping && self.conns.is_empty() {
                break;
            }
            let deadline = self.host.poll_timeout().map_or_else(
                || Instant::now().add(Duration::from_secs(3600)),
                |at| self.start.add(at),
            );
            self.host.set_listening(self.events.receiver_count() > 0);
            tokio::select! {
                message = messages.recv(), if !stopping => match message {
                    Some(message) => self.on_message(message).await,
                    None => {
                        // The node is gone: end every session.
                        stopping = true;
                        let now = self.now();
                        self.host.close_all(now).await;
                    }
                },
                Some((conn, frame)) = self.frames.next(), if !self.frames.is_empty() => {
                    if self.conns.get(&conn).is_none_or(|io| io.closing) {
                        continue; // the session ended: read only so the socket closes cleanly
                    }
                    let input = match frame {
                        Ok(Some(frame)) => ConnInput::Frame(frame),
                        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                            ConnInput::BadFrame {
                                too_large: crate::transport::is_too_large(&error),
                                reason: error.to_string(),
                            }
                        }
                        _ => ConnInput::TransportClosed,
                    };
                    let now = self.now();
                    self.host.handle(now, conn, input).await;
                }
                Some((conn, writer, ok)) = self.writing.next(), if !self.writing.is_empty() => {
                    self.written(conn, writer, ok).await;
                }
                () = rt::sleep_until(deadline) => {
                    let now = self.now();
                    self.host.timeout(now).await;
                }
            }
        }
        // The connections closed last are still read for a while (see `LINGER`): closing a
        // socket with unread bytes would reset it, and the reset can destroy the close frame.
        let mut frames = std::mem::take(&mut self.frames);
        if !frames.is_empty() {
            drop(rt::spawn(async move {
                let _ = rt::timeout(LINGER, async { while frames.next().await.is_some() {} }).await;
            }));
        }
    }

    async fn on_message(&mut self, message: Message) {
        let now = self.now();
        match message {
            Message::Open {
                conn,
                opening,
                connection,
                done,
            } => {
                let Connection { reader, writer, .. } = connection;
                // Read on this task, as a stream among the connections' streams: a read in
                // progress stays in its stream between polls (never cancelled half-way), and a
                // frame reaches the host without waking another task. It ends after the
                // transport's end, or when aborted (`ConnIo::reader`).
                let frames = futures::stream::unfold(Some(reader), |reader| async move {
                    let mut reader = reader?;
                    let frame = reader.read_frame().await;
                    let end = !matches!(frame, Ok(Some(_)));
                    Some((frame, (!end).then_some(reader)))
                });
                let (reader, registration) = futures::future::AbortHandle::new_pair();
                let frames = futures::stream::Abortable::new(frames, registration)
                    .map(move |frame| (conn, frame));
                self.frames.push(Box::pin(frames));
                self.conns.insert(
                    conn,
                    ConnIo {
                        writer: Some(writer),
                        queue: Vec::new(),
                        closing: false,
                        broken: false,
                        reader,
                        done: Some(done),
                    },
                );
                self.host.open(now, conn, opening).await;
            }
            Message::Input(conn, input) => self.host.handle(now, conn, input).await,
            Message::Committed(conn, committed) => {
                self.host.committed(now, conn, committed).await;
            }
            Message::Local(write) => self.host.local_stored(now, write).await,
            Message::CloseAll => self.host.close_all(now).await,
            Message::AddRecipes(recipes) => self.host.add_recipes(&recipes),
        }
    }

    /// Carries out what the host asked for.
    fn dispatch(&mut self) {
        while let Some(output) = self.host.poll_output() {
            match output {
                HostOutput::Transmit { conn, frame } => {
                    if let Some(io) = self.conns.get_mut(&conn)
                        && !io.broken
                    {
                        if io.queue.is_empty() {
                            self.to_write.push(conn);
                        }
                        io.queue.push(frame);
                    }
                }
                HostOutput::Commit { conn, commit } => self.commit(conn, commit),
                HostOutput::Event(event) => {
                    let _ = self.events.send(event);
                }
                HostOutput::Ended { conn, report } => {
                    if let Some(io) = self.conns.get_mut(&conn) {
                        io.closing = true;
                        if let Some(done) = io.done.take() {
                            let _ = done.send(*report);
                        }
                        self.to_write.push(conn);
                    }
                }
                _ => {}
            }
        }
        for conn in std::mem::take(&mut self.to_write) {
            self.write(conn);
        }
    }

    /// Starts writing a connection's queued frames (and closing it, once ended), unless a
    /// write is in progress.
    fn write(&mut self, conn: ConnId) {
        let Some(io) = self.conns.get_mut(&conn) else {
            return;
        };
        if io.broken && io.closing {
            self.remove(conn);
            return;
        }
        let Some(mut writer) = io.writer.take() else {
            return; // in progress: the rest follows when it returns
        };
        let frames = std::mem::take(&mut io.queue);
        let close = io.closing;
        let timeout = self.write_timeout;
        self.writing.push(Box::pin(async move {
            // A peer that stops reading must not hold frames forever.
            let mut ok = true;
            for frame in frames {
                if !matches!(
                    rt::timeout(timeout, writer.write_frame(frame)).await,
                    Ok(Ok(()))
                ) {
                    ok = false;
                    break;
                }
            }
            ok = ok && matches!(rt::timeout(timeout, writer.flush()).await, Ok(Ok(())));
            if close {
                let _ = rt::timeout(Duration::from_secs(5), writer.close()).await;
                return (conn, None, ok);
            }
            (conn, Some(writer), ok)
        }));
    }

    /// Forgets a closed connection; its reader goes on for [`LINGER`] (or until the peer
    /// closes too), its frames dropped.
    fn remove(&mut self, conn: ConnId) {
        if let Some(io) = self.conns.remove(&conn) {
            let reader = io.reader;
            drop(rt::spawn(async move {
                rt::sleep(LINGER).await;
                reader.abort();
            }));
        }
    }

    /// A write returned.
    async fn written(&mut self, conn: ConnId, writer: Option<Box<dyn FrameWriter>>, ok: bool) {
        let Some(io) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(writer) = writer else {
            self.remove(conn); // written, flushed and closed
            return;
        };
        io.writer = Some(writer);
        if !ok {
            io.broken = true;
            io.queue.clear();
            if io.closing {
                self.remove(conn);
            } else {
                let now = self.now();
                self.host
                    .handle(now, conn, ConnInput::TransportClosed)
                    .await;
            }
            return;
        }
        if !io.queue.is_empty() || io.closing {
            self.write(conn);
        }
    }

    /// Runs a commit beside the sessions — on the blocking pool, or for a store that never
    /// blocks, here first: a commit that finishes at once (an in-memory store's) is handed
    /// to the host without a task or a message; one that waits goes on as a task of its own
    /// — its result goes straight to the host task.
    fn commit(&mut self, conn: ConnId, commit: Commit) {
        let store = Arc::clone(&self.store);
        let requests = commit.requests();
        let run = move || {
            rt::boxed(async move {
                let run = std::panic::AssertUnwindSafe(commit.run(&*store));
                futures::FutureExt::catch_unwind(run)
                    .await
                    .unwrap_or_else(|_| {
                        Committed::failed(&requests, "the store task failed: it panicked")
                    })
            })
        };
        let inbox = self.inbox.clone();
        let report = move |committed: Committed| {
            if let Some(inbox) = inbox.upgrade() {
                let _ = inbox.send(Message::Committed(conn, committed));
            }
        };
        if !self.store.never_blocks() {
            rt::spawn_blocking(move || {
                let run = run();
                rt::boxed(async move { report(run.await) })
            });
            return;
        }
        // Polled once with a waker that does nothing: a commit still waiting is polled again
        // at once by its task, which registers that task's waker.
        let mut run = run();
        let mut context = std::task::Context::from_waker(futures::task::noop_waker_ref());
        match run.as_mut().poll(&mut context) {
            std::task::Poll::Ready(committed) => self.committed_here.push((conn, committed)),
            std::task::Poll::Pending => drop(rt::spawn(async move { report(run.await) })),
        }
    }
}
