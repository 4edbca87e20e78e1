//! Connecting (with reconnect and backoff), pairing and — natively — listening: the network
//! side of an [`Instance`], on chum-net's driver of the peer host (tokio, TCP and WebSocket
//! natively; the browser's event loop and `WebSocket` on wasm32).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chum_access::handshake::Peer;
use chum_access::{Identity, InstanceId, Invitation, PersonId, invite};
#[cfg(feature = "native")]
use chum_net::listener::{ListenerLimits, serve_tcp, serve_ws};
use chum_net::rt;
#[cfg(not(target_arch = "wasm32"))]
use chum_net::transport::tcp;
#[cfg(not(target_arch = "wasm32"))]
use chum_net::ws;
use chum_net::{Connection, Node, NodeEvent, SessionOptions, SessionReport};

use chum_object::Cid;
use chum_object::recipe::Recipe;
use chum_store::Store;
use chum_store::index::{Acceptance, RecipeCheck, RecipeTable};
use chum_sync::Role;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::events::{Event, Origin};
use crate::instance::Instance;

/// The recipe check of received objects, which also moves the instance's clock past the
/// clocks they carry — before they are stored, so an entry written once a peer's entry is
/// here is always ordered after it.
struct ObserveClocks {
    check: RecipeCheck,
    clock: Arc<Mutex<chum_crdt::Clock>>,
    time: crate::instance::TimeSource,
}

impl Acceptance for ObserveClocks {
    fn accept(&self, cid: &Cid, value: &chum_object::Value) -> std::result::Result<(), String> {
        self.check.accept(cid, value)?;
        let mut clocks = vec![chum_crdt::collection::entry_clock(value)];
        if value.type_name() == Some(chum_crdt::version::VERSION_TYPE)
            && let Ok(version) = chum_crdt::Version::from_value(value)
        {
            clocks.push(version.clock);
        }
        if let Ok(mut clock) = self.clock.lock() {
            for remote in clocks {
                if remote != chum_crdt::Timestamp::default() {
                    // One too far ahead is ignored: the clock's drift bound protects it.
                    let _ = clock.observe(remote, (self.time)());
                }
            }
        }
        Ok(())
    }
}

/// The node and the tasks of an instance.
pub(crate) struct Net {
    pub(crate) node: Arc<Node>,
    tasks: Mutex<Vec<rt::TaskHandle>>,
    #[cfg(feature = "native")]
    listeners: Mutex<Vec<tokio::task::AbortHandle>>,
    listening: Mutex<Vec<String>>,
    /// The limits of `listen`.
    #[cfg(feature = "native")]
    listener_limits: ListenerLimits,
    /// The admission rules of [`Instance::accept`].
    #[cfg(feature = "native")]
    admission: chum_net::listener::Admission,
    /// Told once the instance has handled a session's end (and so everything the session
    /// reported before it): [`Instance::sync_once`] returns only then.
    settled: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>,
    /// Set by [`Instance::shutdown`]: the event task is gone, nothing will be settled.
    shut: std::sync::atomic::AtomicBool,
    /// When the at-risk bookkeeping last read the journal for an acknowledgement.
    at_risk_scanned: Mutex<Option<rt::Instant>>,
    /// An acknowledgement came without that read: it is owed (done when events pause, and
    /// at close).
    at_risk_owed: std::sync::atomic::AtomicBool,
}

/// How often acknowledgements make the at-risk bookkeeping read the journal, at most.
const AT_RISK_SCAN_EVERY: Duration = Duration::from_millis(250);

/// How an instance's network serves and forwards: as a hub, through which hubs, and the
/// limits of what it accepts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hubs {
    /// Serves as a hub.
    pub(crate) serve: bool,
    /// Persons used as hubs.
    pub(crate) used: Vec<PersonId>,
    /// Limits of `listen` and `accept` (default: [`ListenerLimits::default`]).
    #[cfg(feature = "native")]
    pub(crate) listener: Option<ListenerLimits>,
    /// Limits of sessions not admitted yet and of strangers' sessions.
    pub(crate) host: Option<chum_net::HostLimits>,
    /// The only other persons served (`None`: anyone).
    pub(crate) admit: Option<Vec<PersonId>>,
    /// On a hub: the objects one person may have it store (`None`: no bound).
    pub(crate) quota: Option<u64>,
}

impl Net {
    pub(crate) fn new(
        store: &Arc<dyn Store>,
        identity: &Identity,
        recipes: &RecipeTable,
        clock: Arc<Mutex<chum_crdt::Clock>>,
        time: crate::instance::TimeSource,
        hubs: Hubs,
    ) -> Net {
        let check = RecipeCheck::shared(Arc::clone(recipes));
        let known: Vec<Recipe> = recipes
            .read()
            .map(|table| table.values().cloned().collect())
            .unwrap_or_default();
        #[cfg(feature = "native")]
        let listener_limits = hubs.listener.unwrap_or_default();
        let mut node = Node::new(Arc::clone(store))
            .with_identity(identity.clone())
            .with_recipes(known)
            .with_acceptance(Arc::new(ObserveClocks { check, clock, time }));
        if hubs.serve {
            node = node.as_hub();
        }
        if let Some(limits) = hubs.host {
            node = node.with_limits(limits);
        }
        if let Some(persons) = hubs.admit {
            node = node.admit_only(persons);
        }
        if let Some(objects) = hubs.quota {
            node = node.quota_per_person(objects);
        }
        for hub in hubs.used {
            node = node.use_hub(hub);
        }
        Net {
            node: Arc::new(node),
            tasks: Mutex::new(Vec::new()),
            #[cfg(feature = "native")]
            listeners: Mutex::new(Vec::new()),
            listening: Mutex::new(Vec::new()),
            #[cfg(feature = "native")]
            admission: chum_net::listener::Admission::new(listener_limits),
            #[cfg(feature = "native")]
            listener_limits,
            settled: Mutex::new(HashMap::new()),
            shut: std::sync::atomic::AtomicBool::new(false),
            at_risk_scanned: Mutex::new(None),
            at_risk_owed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
        #[cfg(feature = "native")]
        if let Ok(listeners) = self.listeners.lock() {
            for listener in listeners.iter() {
                listener.abort();
            }
        }
    }
}

/// A transport address: `ws://host:port`, `wss://…` (connect only) or `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Url {
    Ws(String),
    Tcp(String),
}

fn parse_url(url: &str) -> Result<Url> {
    if let Some(rest) = url.strip_prefix("tcp://") {
        return Ok(Url::Tcp(rest.trim_end_matches('/').to_owned()));
    }
    if url.starts_with("ws://") || url.starts_with("wss://") {
        return Ok(Url::Ws(url.to_owned()));
    }
    Err(Error::Transport(format!(
        "unsupported address {url:?}: use ws://HOST:PORT, wss://HOST:PORT or tcp://HOST:PORT"
    )))
}

/// How long one attempt to reach an address may take (a host that drops packets would
/// otherwise hold a connect for minutes).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

async fn dial(url: &Url) -> Result<Connection> {
    let max_frame = chum_sync::Limits::default().max_frame;
    let connect = async {
        match url {
            #[cfg(not(target_arch = "wasm32"))]
            Url::Tcp(address) => tcp::connect(address, max_frame).await,
            #[cfg(target_arch = "wasm32")]
            Url::Tcp(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a browser has no TCP: use a ws:// or wss:// address",
            )),
            #[cfg(not(target_arch = "wasm32"))]
            Url::Ws(url) => ws::connect(url, max_frame, None).await,
            #[cfg(target_arch = "wasm32")]
            Url::Ws(url) => chum_net::browser::connect(url, max_frame).await,
        }
    };
    let name = match url {
        Url::Tcp(address) => format!("tcp://{address}"),
        Url::Ws(url) => url.clone(),
    };
    match rt::timeout(DIAL_TIMEOUT, connect).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(Error::Transport(format!("cannot reach {name}: {error}"))),
        Err(_) => Err(Error::Transport(format!(
            "cannot reach {name}: no answer within {DIAL_TIMEOUT:?}"
        ))),
    }
}

/// The states of a [`Link`] as they change: a [`Stream`](futures::Stream) of [`LinkState`]
/// that starts with the current state and ends once the link is gone. States in between may
/// be skipped when they change faster than they are read; the latest is never missed.
#[must_use = "a state stream does nothing unless polled"]
pub struct LinkStates {
    now: watch::Receiver<LinkState>,
    stream: futures::stream::BoxStream<'static, LinkState>,
}

impl std::fmt::Debug for LinkStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkStates")
            .field("now", &*self.now.borrow())
            .finish_non_exhaustive()
    }
}

impl LinkStates {
    fn new(receiver: watch::Receiver<LinkState>) -> LinkStates {
        let now = receiver.clone();
        let stream =
            futures::stream::unfold((receiver, true), |(mut receiver, first)| async move {
                if !first {
                    receiver.changed().await.ok()?;
                }
                let state = receiver.borrow_and_update().clone();
                Some((state, (receiver, false)))
            });
        LinkStates {
            now,
            stream: Box::pin(stream),
        }
    }

    /// The state now.
    pub fn current(&self) -> LinkState {
        self.now.borrow().clone()
    }

    /// The next state (the current one on the first call); `None` once the link is gone.
    pub async fn next(&mut self) -> Option<LinkState> {
        futures::StreamExt::next(&mut self.stream).await
    }
}

impl futures::Stream for LinkStates {
    type Item = LinkState;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<LinkState>> {
        self.stream.as_mut().poll_next(cx)
    }
}

/// What an instance remembers of a peer instance (see [`Instance::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer instance.
    pub instance: InstanceId,
    /// Its person.
    pub person: PersonId,
    /// Whether it is an instance of this instance's person.
    pub same_person: bool,
    /// When a session with it was first admitted (ms since the Unix epoch).
    pub first_seen_ms: u64,
    /// When a session with it was last admitted.
    pub last_connected_ms: u64,
    /// When a session with it last synced both ways.
    pub last_synced_ms: Option<u64>,
    /// Objects it acknowledged storing, over all sessions.
    pub acknowledged: u64,
    /// Objects received from it, over all sessions.
    pub received: u64,
}

/// What an invitation allows: see [`Instance::invite_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct InviteOptions {
    ttl: Duration,
    uses: u32,
    address: Option<String>,
}

impl InviteOptions {
    /// One new instance may join within `ttl`, at the first address this instance listens on.
    pub fn new(ttl: Duration) -> InviteOptions {
        InviteOptions {
            ttl,
            uses: 1,
            address: None,
        }
    }

    /// Up to `uses` distinct new instances may join with it (each may retry).
    pub fn uses(mut self, uses: u32) -> InviteOptions {
        self.uses = uses;
        self
    }

    /// The address joining instances connect to (default: the first this instance listens
    /// on; `None` there too means the joining side must be given one).
    pub fn address(mut self, address: impl Into<String>) -> InviteOptions {
        self.address = Some(address.into());
        self
    }
}

/// What one [`Instance::sync_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Whether the first reconciliation completed both ways (always, for an `Ok` report).
    pub synced: bool,
    /// Objects received and newly stored here.
    pub received: u64,
    /// Objects the peer acknowledged storing.
    pub sent: u64,
    /// Bytes written to the peer.
    pub bytes_out: u64,
    /// The peer instance and its person.
    pub peer: Option<(InstanceId, PersonId)>,
}

/// The state of a [`Link`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Connecting (attempt `n`, from 1).
    Connecting {
        /// The attempt.
        attempt: u32,
    },
    /// A session is up with this peer.
    Connected {
        /// The peer instance.
        instance: InstanceId,
        /// Its person.
        person: PersonId,
    },
    /// The last attempt failed or the session ended; the next attempt comes after a backoff.
    Reconnecting {
        /// The attempt that comes next.
        attempt: u32,
        /// Why the last one ended.
        error: String,
    },
    /// Closed by [`Link::close`] (or the instance went away).
    Closed,
}

/// A connection to one address that reconnects with backoff until closed. Dropping the handle
/// does not close it; [`Link::close`] does (and really closes the socket).
#[derive(Debug)]
pub struct Link {
    url: String,
    progress: Arc<Progress>,
    state: watch::Receiver<LinkState>,
    stop: Arc<watch::Sender<bool>>,
    /// Told when the link's task has ended.
    ended: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Link {
    /// The address (the first, for a link to several: [`Instance::connect_any`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The state now.
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Every change of state, from the current one on (see [`LinkStates`]).
    pub fn states(&self) -> LinkStates {
        LinkStates::new(self.state.clone())
    }

    /// Waits until a session is up: `Ok` with the peer once connected; an
    /// [`Error::Transport`] naming the address and the reason when the attempt under way (or,
    /// while the link waits to retry, the next one) fails — nothing listening, no answer
    /// within 10 s, the peer refused us; [`Error::Closed`] when the link is closed. A failed
    /// attempt does not stop the link: it keeps reconnecting behind, so calling this again
    /// waits for the next attempt.
    pub async fn established(&self) -> Result<(InstanceId, PersonId)> {
        let mut states = self.state.clone();
        let mut attempting = false;
        loop {
            match states.borrow_and_update().clone() {
                LinkState::Connected { instance, person } => return Ok((instance, person)),
                LinkState::Closed => return Err(Error::Closed),
                LinkState::Connecting { .. } => attempting = true,
                LinkState::Reconnecting { error, .. } if attempting => {
                    return Err(Error::Transport(format!(
                        "no session with {}: {error}",
                        self.url
                    )));
                }
                LinkState::Reconnecting { .. } => {}
            }
            states.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    /// Waits until a session is up, however many attempts that takes ([`Error::Closed`]
    /// when the link is closed first). Unlike [`Link::established`], a failed attempt does
    /// not end the wait.
    pub async fn connected(&self) -> Result<(InstanceId, PersonId)> {
        let mut states = self.state.clone();
        loop {
            match states.borrow_and_update().clone() {
                LinkState::Connected { instance, person } => return Ok((instance, person)),
                LinkState::Closed => return Err(Error::Closed),
                _ => {}
            }
            states.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    /// Resolves once the peer of this link holds everything this instance held when it was
    /// called: the link's session (the current one, or the next if it is reconnecting) has
    /// synced, and every object that joined this store's shared set since the session began,
    /// up to the call, was acknowledged by the peer (or came from it, or it refused it, or it
    /// is too large for the peer to take).
    /// Waits as long as that takes — wrap it in a timeout where that matters. For a link to
    /// an instance of this person (which sees everything); a link to another person's
    /// instance gets [`Error::Denied`] (it sees only what is granted: wait for specific
    /// writes with [`Written::held_by_peer`](crate::Written::held_by_peer)).
    pub async fn synced(&self) -> Result<()> {
        let target = self.progress.store.journal(0, 0).await?.head;
        let mut changes = self.progress.changed.subscribe();
        // While this waits, the link's task moves `base` on every acknowledgement; it starts
        // with what piled up before.
        let _waiting = Waiting::new(&self.progress.waiting);
        self.progress.wanted.notify_one();
        let mut states = self.state.clone();
        loop {
            if matches!(*states.borrow_and_update(), LinkState::Closed) {
                return Err(Error::Closed);
            }
            {
                let progress = self.progress.state.lock().map_err(|_| Error::Closed)?;
                if progress.session.is_some() {
                    if !progress.same_person {
                        return Err(Error::Denied(format!(
                            "the peer of {} is another person's instance: it sees only what is granted",
                            self.url
                        )));
                    }
                    if progress.synced && progress.base >= target {
                        return Ok(());
                    }
                }
            }
            tokio::select! {
                changed = changes.changed() => changed.map_err(|_| Error::Closed)?,
                changed = states.changed() => changed.map_err(|_| Error::Closed)?,
            }
        }
    }

    /// Closes the link: the session ends, the socket closes, no more attempts.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let ended = self.ended.lock().ok().and_then(|mut ended| ended.take());
        if let Some(ended) = ended {
            let _ = ended.await;
        }
    }
}

/// A listening socket serving sessions; [`Listener::close`] stops accepting. Dropping the
/// handle does not: the instance keeps listening until `close`, [`Instance::shutdown`] or
/// [`Instance::close`].
#[cfg(feature = "native")]
#[derive(Debug)]
pub struct Listener {
    url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

#[cfg(feature = "native")]
impl Listener {
    /// The address peers connect to (with the actual port when 0 was asked for).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops accepting connections (sessions already running end on their own).
    pub fn close(&self) {
        self.task.abort();
    }
}

impl Instance {
    pub(crate) fn start_net(&self) {
        let instance = self.clone();
        let weak = Arc::downgrade(&self.inner);
        let mut events = self.inner.net.node.events();
        drop(instance);
        let task = rt::spawn(async move {
            let mut peers: HashMap<u64, Option<Box<Peer>>> = HashMap::new();
            loop {
                // An owed at-risk read is due a fixed time after the last one, however many
                // other events come meanwhile.
                let owed = weak.upgrade().and_then(|inner| {
                    if !inner
                        .net
                        .at_risk_owed
                        .load(std::sync::atomic::Ordering::Relaxed)
                    {
                        return None;
                    }
                    let last = inner.net.at_risk_scanned.lock().ok().and_then(|last| *last);
                    Some(last.map_or(Duration::ZERO, |last| {
                        AT_RISK_SCAN_EVERY.saturating_sub(last.elapsed())
                    }))
                });
                let received = if let Some(wait) = owed {
                    match rt::timeout(wait, events.recv()).await {
                        Ok(received) => received,
                        Err(_) => {
                            // Events paused: the owed read now.
                            let Some(inner) = weak.upgrade() else { return };
                            Instance { inner }.settle_at_risk().await;
                            continue;
                        }
                    }
                } else {
                    events.recv().await
                };
                let event = match received {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let Some(inner) = weak.upgrade() else { return };
                        let _ = inner.events.send(Event::Lagged { missed });
                        continue;
                    }
                    Err(_) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                let instance = Instance { inner };
                instance.on_node_event(event, &mut peers).await;
            }
        });
        if let Ok(mut tasks) = self.inner.net.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Whether the at-risk bookkeeping should read the journal now: at most every
    /// [`AT_RISK_SCAN_EVERY`] on acknowledgements (a hub hears thousands a second; this
    /// instance's own writes are read as they are made).
    fn at_risk_scan_due(&self) -> bool {
        let now = rt::Instant::now();
        let owed = &self.inner.net.at_risk_owed;
        let Ok(mut last) = self.inner.net.at_risk_scanned.lock() else {
            return true;
        };
        if last.is_some_and(|last| now.since(last) < AT_RISK_SCAN_EVERY) {
            owed.store(true, std::sync::atomic::Ordering::Relaxed);
            return false;
        }
        *last = Some(now);
        owed.store(false, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Reads the journal for the at-risk bookkeeping if an acknowledgement left that owed.
    pub(crate) async fn settle_at_risk(&self) {
        if self
            .inner
            .net
            .at_risk_owed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            if let Ok(mut last) = self.inner.net.at_risk_scanned.lock() {
                *last = Some(rt::Instant::now());
            }
            self.inner.at_risk.held(&*self.inner.store, &[], true).await;
        }
    }

    async fn on_node_event(&self, event: NodeEvent, peers: &mut HashMap<u64, Option<Box<Peer>>>) {
        let origin_of = |peer: Option<&Box<Peer>>| match peer {
            Some(peer) => Origin::Peer {
                instance: peer.instance,
                person: peer.person.clone(),
            },
            None => Origin::Unknown,
        };
        match event {
            NodeEvent::Connected {
                session,
                remote,
                peer,
            } => {
                tracing::info!(
                    %remote,
                    person = peer.as_ref().map(|p| p.person.to_string()).unwrap_or_default(),
                    "peer connected"
                );
                self.emit(Event::PeerConnected {
                    instance: peer.as_ref().map(|p| p.instance),
                    person: peer.as_ref().map(|p| p.person.clone()),
                    remote,
                });
                if peer.as_ref().is_some_and(|peer| peer.same_person) {
                    self.inner
                        .at_risk
                        .connected(&*self.inner.store, session)
                        .await;
                }
                peers.insert(session, peer);
            }
            NodeEvent::Received {
                session,
                cids,
                facts,
            } => {
                let peer = peers.get(&session).and_then(Option::as_ref);
                if let Some(peer) = peer
                    && let Ok(mut held) = self.inner.held.lock()
                {
                    for cid in &cids {
                        held.record(cid, peer.instance);
                    }
                }
                let origin = origin_of(peer);
                let same_person = peer.is_some_and(|peer| peer.same_person);
                let facts = facts.into_iter().chain(std::iter::repeat(None));
                let mut received = Vec::with_capacity(cids.len());
                for (cid, facts) in cids.into_iter().zip(facts) {
                    // What verifying the object learned travels with it; only a path that
                    // kept nothing makes this side read and decode it again. (Clocks were
                    // observed while the object was checked, before it was stored.)
                    let facts = match facts {
                        Some(facts) => facts,
                        None => self.facts_of(&cid).await,
                    };
                    if let Some(id) = facts.version_of {
                        self.emit(Event::Changed {
                            id,
                            version: cid.clone(),
                            origin: origin.clone(),
                        });
                    }
                    // Recipes change validation and merging: only those from instances of
                    // this person are adopted.
                    if same_person
                        && facts.type_name.as_deref() == Some(chum_object::recipe::RECIPE_TYPE)
                    {
                        self.adopt_recipe(&cid).await;
                    }
                    self.emit(Event::Stored {
                        cid: cid.clone(),
                        type_name: facts.type_name.map(String::from),
                        origin: origin.clone(),
                    });
                    received.push(cid);
                }
                // After the events: the bookkeeping reads the journal, the app need not wait.
                let scan = self.at_risk_scan_due();
                self.inner
                    .at_risk
                    .held(&*self.inner.store, &received, scan)
                    .await;
            }
            NodeEvent::PeerStored { session, cids } => {
                let peer = peers.get(&session).and_then(Option::as_ref);
                if let Some(peer) = peer
                    && let Ok(mut held) = self.inner.held.lock()
                {
                    for cid in &cids {
                        held.record(cid, peer.instance);
                    }
                }
                let scan = self.at_risk_scan_due();
                self.inner
                    .at_risk
                    .held(&*self.inner.store, &cids, scan)
                    .await;
                self.emit(Event::HeldByPeer {
                    instance: peer.map(|p| p.instance),
                    count: cids.len(),
                });
            }
            NodeEvent::Synced { session } => {
                let peer = peers.get(&session).and_then(Option::as_ref);
                if peer.is_some_and(|peer| peer.same_person) {
                    self.inner.at_risk.synced(&*self.inner.store, session).await;
                }
                self.emit(Event::Synced {
                    instance: peer.map(|p| p.instance),
                });
            }
            NodeEvent::Refused { session, refused } => {
                let peer = peers.get(&session).and_then(Option::as_ref);
                self.emit(Event::Refused {
                    refused,
                    origin: origin_of(peer),
                });
            }
            NodeEvent::PeerRefused {
                session,
                cids,
                reason,
            } => {
                let peer = peers.get(&session).and_then(Option::as_ref);
                self.emit(Event::PeerRefused {
                    instance: peer.map(|p| p.instance),
                    cids,
                    reason,
                });
            }
            NodeEvent::Closed {
                session, reason, ..
            } => {
                let peer = peers.remove(&session).flatten();
                self.inner.at_risk.ended(session);
                tracing::info!(%reason, "peer disconnected");
                self.emit(Event::PeerDisconnected {
                    instance: peer.map(|p| p.instance),
                    reason,
                });
                let settled = self
                    .inner
                    .net
                    .settled
                    .lock()
                    .ok()
                    .and_then(|mut settled| settled.remove(&session));
                if let Some(settled) = settled {
                    let _ = settled.send(());
                }
            }
            _ => {}
        }
    }

    /// What the receive path would have told of a stored object (read and decoded here).
    async fn facts_of(&self, cid: &Cid) -> chum_net::Facts {
        let value = self.get(cid).await.ok();
        let type_name = value
            .as_ref()
            .and_then(chum_object::Value::type_name)
            .map(str::to_owned);
        let version_of = value
            .as_ref()
            .filter(|_| type_name.as_deref() == Some(chum_crdt::version::VERSION_TYPE))
            .and_then(|value| chum_crdt::Version::from_value(value).ok())
            .map(|version| version.of);
        chum_net::Facts::new(type_name, version_of)
    }

    /// Trusts and uses the recipe stored under `cid` (received from this person's instance).
    async fn adopt_recipe(&self, cid: &Cid) {
        let Ok(value) = self.get(cid).await else {
            return;
        };
        if let Ok(recipe) = chum_object::recipe::Recipe::from_value(&value) {
            let _ = self
                .inner
                .store
                .local_put(&crate::instance::trusted_key(cid), b"")
                .await;
            self.use_recipe(recipe, false);
        }
    }

    /// What this instance remembers of the peer instances it has synced with.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        Ok(self
            .inner
            .net
            .node
            .peers()
            .await?
            .into_iter()
            .map(|record| PeerInfo {
                instance: record.instance,
                person: record.person,
                same_person: record.same_person,
                first_seen_ms: record.first_seen_ms,
                last_connected_ms: record.last_connected_ms,
                last_synced_ms: record.last_synced_ms,
                acknowledged: record.acknowledged,
                received: record.received,
            })
            .collect())
    }

    /// Listens on `url` (`ws://HOST:PORT` or `tcp://HOST:PORT`; port 0 picks a free one) and
    /// serves every peer that connects: each session is encrypted, authenticated and synced
    /// live. (Native only: a browser cannot listen.)
    #[cfg(feature = "native")]
    pub async fn listen(&self, url: &str) -> Result<Listener> {
        let parsed = parse_url(url)?;
        let (scheme, address) = match &parsed {
            Url::Tcp(address) => ("tcp", address.clone()),
            Url::Ws(url) if url.starts_with("ws://") => (
                "ws",
                url.trim_start_matches("ws://")
                    .trim_end_matches('/')
                    .to_owned(),
            ),
            Url::Ws(_) => {
                return Err(Error::Transport(
                    "listening on wss:// needs a TLS certificate: put a TLS proxy in front, or use chum_net::listener::serve_ws with ServerTls".into(),
                ));
            }
        };
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|error| Error::Transport(format!("cannot listen on {address}: {error}")))?;
        let local = listener
            .local_addr()
            .map_err(|error| Error::Transport(error.to_string()))?;
        let url = format!("{scheme}://{local}");
        let node = Arc::clone(&self.inner.net.node);
        let task = match scheme {
            "tcp" => tokio::spawn(serve_tcp(node, listener, self.inner.net.listener_limits)),
            _ => tokio::spawn(serve_ws(
                node,
                listener,
                self.inner.net.listener_limits,
                None,
            )),
        };
        if let Ok(mut listening) = self.inner.net.listening.lock() {
            listening.push(url.clone());
        }
        if let Ok(mut tasks) = self.inner.net.listeners.lock() {
            tasks.push(task.abort_handle());
        }
        Ok(Listener { url, task })
    }

    /// Connects to `url` and stays connected: a session syncs both ways and then live; when it
    /// ends, the link reconnects with backoff (0.1 s doubling to 10 s) until [`Link::close`].
    /// Offline works: writes go to the store and sync when the peer is back.
    pub fn connect(&self, url: &str) -> Result<Link> {
        self.connect_any(&[url])
    }

    /// [`Instance::connect`] to several addresses of one peer — e.g. hub processes serving one
    /// database: the link connects to the first, and whenever a session ends or an attempt
    /// fails it tries the next (round the list, with the same backoff), so a process that
    /// goes away is replaced by another without the app noticing more than a reconnect.
    pub fn connect_any(&self, urls: &[&str]) -> Result<Link> {
        let addresses = urls
            .iter()
            .map(|url| parse_url(url))
            .collect::<Result<Vec<_>>>()?;
        let Some(url) = urls.first() else {
            return Err(Error::Invalid("no address to connect to".into()));
        };
        let (state_tx, state) = watch::channel(LinkState::Connecting { attempt: 1 });
        let stop = Arc::new(watch::channel(false).0);
        let mut stopped = stop.subscribe();
        // The task keeps a sender, so dropping the `Link` handle does not close the link.
        let keep = Arc::clone(&stop);
        let node = Arc::clone(&self.inner.net.node);
        let progress = Arc::new(Progress::new(Arc::clone(&self.inner.store)));
        let task_progress = Arc::clone(&progress);
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        let task = rt::spawn(async move {
            let _keep = keep;
            let _ended = ended_tx;
            let mut attempt = 1u32;
            let mut next = 0usize;
            loop {
                if *stopped.borrow() {
                    break;
                }
                let _ = state_tx.send(LinkState::Connecting { attempt });
                let address = &addresses[next % addresses.len()];
                next = next.wrapping_add(1);
                let error =
                    match run_once(&node, address, &state_tx, &mut stopped, &task_progress).await {
                        Ok(None) => break,
                        Ok(Some(report)) => {
                            if report.synced {
                                attempt = 0;
                            }
                            report.reason
                        }
                        Err(error) => error.to_string(),
                    };
                attempt = attempt.saturating_add(1);
                let _ = state_tx.send(LinkState::Reconnecting {
                    attempt,
                    error: error.clone(),
                });
                let backoff = Duration::from_millis(100)
                    .saturating_mul(1u32 << attempt.saturating_sub(1).min(7))
                    .min(Duration::from_secs(10));
                tokio::select! {
                    _ = stopped.changed() => break,
                    () = rt::sleep(backoff) => {}
                }
            }
            let _ = state_tx.send(LinkState::Closed);
        });
        if let Ok(mut tasks) = self.inner.net.tasks.lock() {
            tasks.push(task);
        }
        Ok(Link {
            url: (*url).to_owned(),
            progress,
            state,
            stop,
            ended: Mutex::new(Some(ended)),
        })
    }

    /// Connects to `url` once, syncs, and ends the session once both sides hold the same
    /// visible set and the peer acknowledged what was sent. For scripts (`chum sync`).
    pub async fn sync_once(&self, url: &str, timeout: Duration) -> Result<SyncReport> {
        let parsed = parse_url(url)?;
        let node = Arc::clone(&self.inner.net.node);
        let session = node.reserve_session();
        let (settled_tx, settled) = tokio::sync::oneshot::channel();
        if let Ok(mut waiting) = self.inner.net.settled.lock() {
            waiting.insert(session, settled_tx);
        }
        let run = async {
            let connection = dial(&parsed).await?;
            Ok::<_, Error>(
                node.run_reserved(
                    session,
                    Role::Initiator,
                    connection,
                    SessionOptions {
                        close_when_synced: true,
                    },
                )
                .await,
            )
        };
        let outcome = rt::timeout(timeout, run).await;
        let shut = self
            .inner
            .net
            .shut
            .load(std::sync::atomic::Ordering::SeqCst);
        if let Ok(Ok(_)) = &outcome
            && !shut
        {
            // What the session stored is handled (events, recipes adopted) before returning,
            // so a process may exit right after.
            let _ = rt::timeout(Duration::from_secs(5), settled).await;
        }
        if let Ok(mut waiting) = self.inner.net.settled.lock() {
            waiting.remove(&session);
        }
        let report = outcome
            .map_err(|_| Error::Timeout(format!("no sync with {url} within {timeout:?}")))??;
        if !report.synced {
            return Err(Error::Transport(format!(
                "the session with {url} ended before it synced: {}",
                report.reason
            )));
        }
        Ok(SyncReport {
            synced: report.synced,
            received: report.received,
            sent: report.sent,
            bytes_out: report.bytes_out,
            peer: report.peer.map(|peer| (peer.instance, peer.person)),
        })
    }

    /// Serves one peer on a connection the app accepted itself (its own listener, e.g. a
    /// WebSocket upgrade on the port of its HTTP server; see `chum_net::ws::accept`): the
    /// session runs as the responder — encrypted, authenticated, synced, then live — until it
    /// ends. The same admission rules as [`Instance::listen`]'s apply, shared by every
    /// connection given here: a per-address rate limit (by the address in
    /// `connection.remote`) and a cap on sessions at once; a refused peer gets a close frame
    /// saying why. The app's listener still bounds its own transport handshakes. (Native
    /// only.)
    #[cfg(feature = "native")]
    pub async fn accept(&self, connection: Connection) {
        let address = connection
            .remote
            .parse::<std::net::SocketAddr>()
            .map(|address| address.ip())
            .or_else(|_| connection.remote.parse::<std::net::IpAddr>())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let node = Arc::clone(&self.inner.net.node);
        self.inner
            .net
            .admission
            .serve(&node, connection, address)
            .await;
    }

    /// The addresses this instance listens on.
    pub fn listening(&self) -> Vec<String> {
        self.inner
            .net
            .listening
            .lock()
            .map(|listening| listening.clone())
            .unwrap_or_default()
    }

    /// An invitation for a new instance of this person, valid for `ttl`, naming the first
    /// address this instance listens on (the joining side connects there). Needs the person
    /// key.
    pub async fn invite(&self, ttl: Duration) -> Result<Invitation> {
        self.invite_with(InviteOptions::new(ttl)).await
    }

    /// An invitation as `options` say (uses, address, lifetime). Needs the person key.
    pub async fn invite_with(&self, options: InviteOptions) -> Result<Invitation> {
        let address = options
            .address
            .or_else(|| self.listening().into_iter().next());
        Ok(invite::create_with_uses(
            &*self.inner.store,
            &self.inner.identity,
            address,
            self.now_ms(),
            u64::try_from(options.ttl.as_millis()).unwrap_or(u64::MAX),
            options.uses,
        )
        .await?)
    }

    /// Joins the person of `invitation` as a new instance over `store`: connects to the
    /// invitation's address (or `address`, when given), pairs, syncs once, saves the new
    /// identity (sealed with `passphrase` when given), and opens the instance. Fails with
    /// [`Error::Denied`] when the store already holds an identity. (The same as
    /// `Instance::builder().store(store).join(invitation).open()`, which instead opens such a
    /// store as itself.)
    pub async fn join(
        store: Arc<dyn Store>,
        invitation: Invitation,
        address: Option<&str>,
        passphrase: Option<&str>,
    ) -> Result<Instance> {
        if Identity::load(&*store, passphrase).await?.is_some() {
            return Err(Error::Denied(
                "this store already holds an identity; join with a new store".into(),
            ));
        }
        let mut builder = Instance::builder().store(store);
        builder = match address {
            Some(address) => builder.join_at(invitation, address),
            None => builder.join(invitation),
        };
        if let Some(passphrase) = passphrase {
            builder = builder.passphrase(passphrase);
        }
        builder.open().await
    }

    /// Stops listening and ends every session of this instance with a close frame (links
    /// made with [`Instance::connect`] reconnect until their own [`Link::close`]).
    pub fn shutdown(&self) {
        self.inner
            .net
            .shut
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(tasks) = self.inner.net.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
        #[cfg(feature = "native")]
        if let Ok(listeners) = self.inner.net.listeners.lock() {
            for listener in listeners.iter() {
                listener.abort();
            }
        }
        self.inner.net.node.close_all();
    }

    /// Waits (at most 5 s) until every session task has let go of the node.
    pub(crate) async fn stop_sessions(&self) {
        self.shutdown();
        let deadline = rt::Instant::now().add(Duration::from_secs(5));
        while Arc::strong_count(&self.inner.net.node) > 1 && rt::Instant::now() < deadline {
            self.inner.net.node.close_all();
            rt::sleep(Duration::from_millis(10)).await;
        }
        self.settle_at_risk().await;
    }
}

/// Pairs a new instance over `store` with the person of `invitation` (see
/// [`crate::Builder::join`]): one session with the inviting instance, which syncs that
/// person's objects here; the new identity is saved, and the recipes that came with the first
/// sync — from an instance of this very person — are trusted like the app's own.
pub(crate) async fn join_person(
    store: &Arc<dyn Store>,
    invitation: Invitation,
    address: Option<&str>,
    passphrase: Option<&str>,
) -> Result<Identity> {
    let url = address
        .map(str::to_owned)
        .or_else(|| invitation.address.clone())
        .ok_or_else(|| Error::Invitation("the invitation names no address; give one".into()))?;
    let connection = dial(&parse_url(&url)?).await?;
    let node = Node::new(Arc::clone(store)).with_recipes(
        chum_crdt::preset::seed()
            .into_iter()
            .chain(chum_access::recipes())
            .collect(),
    );
    let key = chum_access::keys::generate_key()?;
    let report = node
        .join(
            invitation,
            key,
            connection,
            SessionOptions {
                close_when_synced: true,
            },
        )
        .await;
    let identity = report.joined.ok_or_else(|| {
        if report.code == chum_sync::CloseCode::Unauthorized {
            Error::Invitation(report.reason.clone())
        } else {
            Error::Transport(format!("pairing with {url} failed: {}", report.reason))
        }
    })?;
    identity.save(&**store, passphrase).await?;
    crate::instance::trust_stored_recipes(&**store).await?;
    // Everything here came from the inviting instance, which holds it.
    crate::at_risk::AtRisk::all_held(&**store).await?;
    Ok(identity)
}

/// One attempt: dial, run a session until it ends, reporting when it is up. `Ok(None)` when
/// the link was closed meanwhile (the session was ended with a close frame).
/// What a link knows of its current session, for [`Link::synced`].
struct Progress {
    store: Arc<dyn Store>,
    state: Mutex<SessionProgress>,
    /// Bumped on every change of `state` that `synced()` may wait for.
    changed: watch::Sender<u64>,
    /// Calls of [`Link::synced`] waiting now. Without any, what the peer holds is only
    /// collected (`held`), and `base` moves when enough has piled up: a link that receives
    /// a stream of live objects reads no journal for each.
    waiting: std::sync::atomic::AtomicUsize,
    /// Told when a call of [`Link::synced`] starts waiting: `base` is due.
    wanted: tokio::sync::Notify,
}

/// Objects the peer is known to hold, collected without a waiter, beyond which `base` moves
/// anyway (reading the journal a page at a time).
const HELD_PILE: usize = 1_024;

#[derive(Default)]
struct SessionProgress {
    /// The session, once its hellos are exchanged.
    session: Option<u64>,
    same_person: bool,
    synced: bool,
    /// Every object at or below this position of this store's journal is held by the peer
    /// (once `synced`).
    base: u64,
    /// Objects beyond `base` the peer holds: acknowledged, sent by it, or refused by it.
    held: std::collections::HashSet<Cid>,
    /// Journal entries after `base` read but not (yet) known held, oldest first: the first
    /// is what holds `base` back.
    unheld: std::collections::VecDeque<(u64, Cid)>,
    /// The journal is read up to here (where it is more than `base`).
    read: u64,
}

impl SessionProgress {
    /// Moves `base` past the entries read that the peer holds.
    fn settle(&mut self) {
        while let Some((position, cid)) = self.unheld.front() {
            if !self.held.remove(cid) {
                // Every entry before the first one not held is held.
                self.base = self.base.max(position.saturating_sub(1));
                return;
            }
            self.base = self.base.max(*position);
            self.unheld.pop_front();
        }
        self.base = self.base.max(self.read);
    }
}

impl Progress {
    fn new(store: Arc<dyn Store>) -> Progress {
        Progress {
            store,
            state: Mutex::new(SessionProgress::default()),
            changed: watch::channel(0).0,
            waiting: std::sync::atomic::AtomicUsize::new(0),
            wanted: tokio::sync::Notify::new(),
        }
    }

    /// The peer holds `cids`: `base` moves now if someone waits for it or much has piled up.
    async fn peer_holds(&self, cids: Vec<Cid>) {
        let mut due = self.waiting.load(std::sync::atomic::Ordering::Acquire) > 0;
        if let Ok(mut state) = self.state.lock() {
            state.held.extend(cids);
            due |= state.held.len() >= HELD_PILE;
        }
        if due {
            self.advance().await;
        }
    }

    fn update(&self, change: impl FnOnce(&mut SessionProgress)) {
        if let Ok(mut state) = self.state.lock() {
            change(&mut state);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Moves `base` past the journal entries the peer holds. Each entry is read once: those
    /// read and not yet held wait in memory for their acknowledgement, and the first of them,
    /// while it holds `base` back, is looked up again in case it left the shared set (a
    /// deleted or coalesced version no peer will ever hold).
    async fn advance(&self) {
        enum Step {
            Done,
            /// Whether the first entry not held is still shared.
            Check(Option<u64>, Cid),
            /// Read the journal from here.
            Read(Option<u64>, u64),
        }
        // The journal was read to its head: reading again finds nothing new.
        let mut exhausted = false;
        loop {
            let mut step = Step::Done;
            // Through `update`: whoever waits in `synced()` hears what `settle` moved.
            self.update(|state| {
                state.settle();
                step = match state.unheld.front() {
                    // Something new is held behind it: it may be gone.
                    Some((_, cid)) if !state.held.is_empty() => {
                        Step::Check(state.session, cid.clone())
                    }
                    Some(_) => Step::Done,
                    None if state.held.is_empty() => Step::Done,
                    None => Step::Read(state.session, state.read.max(state.base)),
                };
            });
            match step {
                Step::Done | Step::Read(..) if exhausted => return,
                Step::Done => return,
                Step::Check(session, cid) => {
                    match self.store.shared_among(std::slice::from_ref(&cid)).await {
                        Ok(shared) if shared.is_empty() => {}
                        // Still shared: its acknowledgement is due.
                        _ => return,
                    }
                    let mut gone = false;
                    self.update(|state| {
                        if state.session == session
                            && state.unheld.front().is_some_and(|(_, first)| *first == cid)
                        {
                            state.unheld.pop_front();
                            gone = true;
                        }
                    });
                    if !gone {
                        return;
                    }
                }
                Step::Read(session, from) => {
                    let Ok(page) = self.store.journal(from, 256).await else {
                        return;
                    };
                    exhausted = page.last >= page.head;
                    let mut moved_on = false;
                    self.update(|state| {
                        if state.session != session || state.read.max(state.base) != from {
                            moved_on = true; // a new session started meanwhile
                            return;
                        }
                        state.unheld.extend(page.entries);
                        state.read = page.last.max(from);
                    });
                    if moved_on {
                        return;
                    }
                }
            }
        }
    }
}

/// Counts a waiter while it lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").finish_non_exhaustive()
    }
}

async fn run_once(
    node: &Arc<Node>,
    url: &Url,
    state: &watch::Sender<LinkState>,
    stopped: &mut watch::Receiver<bool>,
    progress: &Progress,
) -> Result<Option<SessionReport>> {
    let connection = tokio::select! {
        connection = dial(url) => connection?,
        _ = stopped.changed() => return Ok(None),
    };
    let id = node.reserve_session();
    let mut events = node.events();
    // Read before the session takes its first summary: everything up to here is in it.
    let head = progress
        .store
        .journal(0, 0)
        .await
        .map_or(0, |page| page.head);
    let run = node.run_reserved(id, Role::Initiator, connection, SessionOptions::default());
    tokio::pin!(run);
    loop {
        tokio::select! {
            report = &mut run => {
                progress.update(|progress| *progress = SessionProgress::default());
                return Ok(Some(report));
            }
            event = events.recv() => match event {
                Ok(NodeEvent::Connected { session, peer: Some(peer), .. }) if session == id => {
                    progress.update(|progress| {
                        *progress = SessionProgress {
                            session: Some(id),
                            same_person: peer.same_person,
                            base: head,
                            ..SessionProgress::default()
                        };
                    });
                    let _ = state.send(LinkState::Connected {
                        instance: peer.instance,
                        person: peer.person.clone(),
                    });
                }
                Ok(NodeEvent::Synced { session }) if session == id => {
                    progress.update(|progress| progress.synced = true);
                    progress.advance().await;
                }
                Ok(
                    NodeEvent::PeerStored { session, cids }
                    | NodeEvent::Received { session, cids, .. }
                    | NodeEvent::PeerRefused { session, cids, .. }
                    | NodeEvent::NotSent { session, cids },
                ) if session == id => progress.peer_holds(cids).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // This link lost track of what its peer holds: a new session relearns it.
                    node.close_session(id);
                }
                _ => {}
            },
            () = progress.wanted.notified() => progress.advance().await,
            _ = stopped.changed() => {
                // A close frame, then the socket closes; a peer that does not answer is cut off.
                node.close_session(id);
                let _ = rt::timeout(Duration::from_secs(3), &mut run).await;
                progress.update(|progress| *progress = SessionProgress::default());
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{Progress, SessionProgress};
    use chum_object::Cid;
    use std::sync::Arc;

    /// A shared object of the store, stored: its CID.
    async fn stored(store: &dyn chum_store::Store, text: &str) -> Cid {
        let value =
            chum_object::dagjson::from_str(&format!(r#"{{"$type":"Message","text":"{text}"}}"#))
                .unwrap();
        let object = chum_object::Object::from_value(&value).unwrap();
        store.put(object.cid(), object.bytes()).await.unwrap();
        object.cid().clone()
    }

    /// An entry read and then deleted (a version coalesced away before it was pushed) never
    /// holds `base` back: no peer will hold it.
    #[tokio::test]
    async fn an_entry_that_left_the_shared_set_holds_nothing_back() {
        let store: Arc<dyn chum_store::Store> = Arc::new(chum_store::MemoryStore::new());
        let first = stored(&*store, "replaced").await;
        let second = stored(&*store, "kept").await;
        let progress = Progress::new(Arc::clone(&store));
        *progress.state.lock().unwrap() = SessionProgress {
            session: Some(1),
            synced: true,
            ..SessionProgress::default()
        };
        let mut changes = progress.changed.subscribe();
        progress.update(|state| {
            state.held.insert(second.clone());
        });
        progress.advance().await;
        let base = |progress: &Progress| progress.state.lock().unwrap().base;
        assert_eq!(base(&progress), 0, "the first entry is shared and not held");
        store.delete(&first).await.unwrap();
        changes.borrow_and_update();
        progress.advance().await;
        assert_eq!(
            base(&progress),
            2,
            "past the deleted entry and the held one"
        );
        assert!(changes.has_changed().unwrap(), "synced() hears it");
    }

    /// Without a waiter, acknowledgements pile up and `base` stays (no journal read for
    /// each); a waiter makes it move at once, and so does a large pile.
    #[tokio::test]
    async fn base_moves_for_a_waiter_or_a_pile() {
        let store: Arc<dyn chum_store::Store> = Arc::new(chum_store::MemoryStore::new());
        let first = stored(&*store, "one").await;
        let progress = Progress::new(Arc::clone(&store));
        *progress.state.lock().unwrap() = SessionProgress {
            session: Some(1),
            synced: true,
            ..SessionProgress::default()
        };
        let base = |progress: &Progress| progress.state.lock().unwrap().base;
        progress.peer_holds(vec![first]).await;
        assert_eq!(base(&progress), 0, "nobody waits: only collected");
        {
            let _waiting = super::Waiting::new(&progress.waiting);
            let second = stored(&*store, "two").await;
            progress.peer_holds(vec![second]).await;
            assert_eq!(base(&progress), 2, "a waiter: both entries are past");
        }
        assert_eq!(
            progress.waiting.load(std::sync::atomic::Ordering::Acquire),
            0
        );
        let mut pile = Vec::new();
        for n in 0..super::HELD_PILE {
            pile.push(stored(&*store, &format!("pile {n}")).await);
        }
        let last = pile.pop().unwrap();
        progress.peer_holds(pile).await;
        assert_eq!(base(&progress), 2, "one short of the pile");
        progress.peer_holds(vec![last]).await;
        assert_eq!(
            base(&progress),
            2 + super::HELD_PILE as u64,
            "the pile moves it"
        );
    }

    fn cid(n: u8) -> Cid {
        Cid::hash(chum_object::Codec::Raw, &[n])
    }

    /// `base` moves past the entries read as their acknowledgements come, in any order, and
    /// no further than the first entry not held.
    #[test]
    fn base_follows_the_first_entry_not_held() {
        let mut progress = SessionProgress {
            base: 0,
            read: 6,
            unheld: [(1, cid(1)), (2, cid(2)), (4, cid(4))].into(),
            ..SessionProgress::default()
        };
        progress.held.insert(cid(2));
        progress.settle();
        assert_eq!(progress.base, 0, "entry 1 is not held");
        progress.held.insert(cid(1));
        progress.settle();
        assert_eq!(
            progress.base, 3,
            "1 and 2 are held, 3 is no shared entry, 4 is not held"
        );
        assert!(progress.held.is_empty());
        progress.held.insert(cid(4));
        progress.settle();
        assert_eq!(progress.base, 6, "everything read is held");
        assert!(progress.unheld.is_empty());
    }
}
