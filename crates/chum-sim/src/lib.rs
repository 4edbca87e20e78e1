//! # chum-sim
//!
//! N peers, each with its own store, syncing over a simulated network on a virtual clock.
//! Everything is driven by one seed: the workload (new messages, concurrent edits of shared
//! versioned objects, instance-local settings), the network (latency, dropped, duplicated
//! and reordered frames, partitions) and peer restarts. A run has a faulty phase and then a
//! healing phase without faults or writes; it passes when every peer holds the same shared
//! objects, resolves every versioned object to the same state, and holds none of another
//! peer's local objects. A run that does not converge within a bound fails (no livelock
//! hides), and the same seed replays it exactly.
//!
//! Every peer runs the same [`chum_host::Host`] the tokio driver runs — admission, grants,
//! dependency waiting, recipes, revocation, journals — with this crate as its driver: it
//! moves frames over the simulated network, runs commits inline, and feeds the virtual clock.
//! Every announcement a host makes is checked against its promise (everything an announced
//! object links to is stored).
//!
//! Sessions close on any frame fault they detect (a batch out of sequence, an unknown
//! acknowledgement) or time out when a fault leaves them waiting; the simulated driver then
//! reconnects after a back-off, and the new session's reconciliation repairs the rest — the
//! same path a real transport takes after a dropped connection.
#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use chum_access::{Identity, Policy, VisibleSet};
use chum_crdt::{Clock, InstanceId, Resolver, State, Version, preset};
use chum_host::{
    ConnId, ConnInput, Host, HostOutput, HostStats, LocalWrite, NodeEvent, Now, Opening,
};
use chum_object::sign::SigningKey;
use chum_object::{Cid, Map, Object, Value, dagjson};
use chum_store::{MemoryStore, Query, Scope, Store};
use chum_sync::{Config, Role};
use futures::executor::block_on;

/// What a simulation does.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Peers.
    pub peers: usize,
    /// Length of the faulty phase with writes, in virtual milliseconds.
    pub work_ms: u64,
    /// The most virtual milliseconds the healing phase may take to converge.
    pub heal_limit_ms: u64,
    /// Writes over the faulty phase, across all peers.
    pub writes: usize,
    /// Probability per frame of being dropped, duplicated, or delayed past later frames.
    pub drop: f64,
    /// See `drop`.
    pub duplicate: f64,
    /// See `drop`.
    pub reorder: f64,
    /// One-way latency range, in virtual milliseconds.
    pub latency_ms: (u64, u64),
    /// Partitions started over the faulty phase.
    pub partitions: usize,
    /// Peer restarts over the faulty phase.
    pub restarts: usize,
    /// Run the access scenario instead of the open one (see [`AccessTest`]).
    pub access: Option<AccessTest>,
}

/// The access scenario: five peers, every session encrypted and authenticated. Peers 0, 1
/// and 4 are instances of person P, peer 2 is person Q, peer 3 person R. P starts with
/// `private` messages and a conversation of `granted` messages that P grants to Q; during the
/// faulty phase P's instances add both kinds, Q and R their own messages, and at a random
/// moment peer 0 revokes peer 4. Batches are small, so another person's messages often arrive
/// before the conversation they link to (they wait for it). The run passes when P's first two
/// instances hold the same set, Q holds everything P's grant covers, no object outside it
/// reached Q or R (checked after every step, so a single leak fails the run), peer 0's
/// session with peer 4 ended the moment it revoked it, and no session of peer 4 with
/// peers 0 or 1 is open at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTest {
    /// P's private messages at the start.
    pub private: usize,
    /// Messages of the conversation granted to Q, at the start.
    pub granted: usize,
    /// Whether sessions enforce grants (`false` shows the leak check failing).
    pub check_grants: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            peers: 4,
            work_ms: 30_000,
            heal_limit_ms: 300_000,
            writes: 300,
            drop: 0.005,
            duplicate: 0.005,
            reorder: 0.005,
            latency_ms: (1, 40),
            partitions: 4,
            restarts: 4,
            access: None,
        }
    }
}

/// What a passing run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimReport {
    /// Shared objects each peer ends with.
    pub objects: usize,
    /// Versioned objects compared.
    pub versioned: usize,
    /// Sessions opened.
    pub sessions: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Frames dropped, duplicated, reordered.
    pub faults: u64,
    /// Virtual milliseconds until convergence.
    pub converged_at_ms: u64,
    /// Access scenario: P's objects outside the grant that reached Q or R (must be 0).
    pub leaked: usize,
    /// Access scenario: objects the grant covers that Q holds (all of them at the end).
    pub granted_received: usize,
    /// Access scenario: P's private messages written (none may leave P).
    pub private: usize,
    /// Journal positions learned (checkpoints), over all sessions.
    pub checkpoints: u64,
    /// Sessions that took the journal fast path (counted by their initiators' reports).
    pub resumes: u64,
    /// Sessions that were encrypted and admitted the peer.
    pub admitted: u64,
    /// Objects announced to an application, each checked to have its link targets stored.
    pub announced: u64,
    /// Received objects that were stored before some of their link targets and waited for
    /// them (dependency waiting), in sessions with the same person and with another.
    pub waited: u64,
    /// Of `waited`: in sessions with another person.
    pub waited_foreign: u64,
    /// Objects written against their recipe (they stay with their writer) …
    pub misfits: u64,
    /// … and the refusals of them by receiving hosts.
    pub refused: u64,
    /// Sessions ended because their peer's instance was revoked.
    pub revoked: u64,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFailure {
    /// The seed that replays it.
    pub seed: u64,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {} failed: {}", self.seed, self.reason)
    }
}

impl std::error::Error for SimFailure {}

/// xorshift64*: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `[low, high]`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
}

struct Peer {
    store: Arc<MemoryStore>,
    /// The peer's host: every session of it, and their policy.
    host: Host,
    identity: Option<Identity>,
    instance: InstanceId,
    clock: Clock,
    down_until: u64,
    local_objects: Vec<Cid>,
    written: u64,
    /// What earlier hosts of this peer did (before restarts).
    past: HostStats,
}

struct Conn {
    /// The initiator and the responder.
    peers: [usize; 2],
    /// Last delivery time per direction (towards side 0, side 1): frames stay in order.
    last_at: [u64; 2],
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Frame {
    at: u64,
    order: u64,
    conn: u64,
    to: usize,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Write(usize),
    Partition {
        group: u64,
        until: u64,
    },
    Restart {
        peer: usize,
        until: u64,
    },
    /// Peer 0 revokes peer 4 (the access scenario).
    Revoke,
}

enum Link {
    Up,
    Down { retry_at: u64 },
}

/// The simulated world.
struct World {
    config: SimConfig,
    seed: u64,
    rng: Rng,
    now: u64,
    peers: Vec<Peer>,
    conns: BTreeMap<u64, Conn>,
    links: BTreeMap<(usize, usize), Link>,
    frames: BTreeSet<Frame>,
    actions: BTreeSet<(u64, u64, Action)>,
    partitions: Vec<(u64, u64)>,
    next_conn: u64,
    next_order: u64,
    report: SimReport,
    contacts: Vec<(Value, Cid)>,
    policy: Policy,
    /// Access scenario: P's private objects, and the conversation granted to Q.
    private: Vec<Cid>,
    conversation: Option<Cid>,
    /// Objects written against their recipe, which only their writer may hold.
    misfits: BTreeSet<Cid>,
    /// Sessions each side of which a peer initiated (for counting fast paths once).
    initiated: BTreeSet<(usize, ConnId)>,
    revoked: bool,
}

/// The virtual clock's epoch in wall-clock ms (for certificates and clocks).
const EPOCH_MS: u64 = 1_700_000_000_000;

fn session_config(access: bool) -> Config {
    let mut config = Config::new(Role::Initiator);
    config.keepalive = Duration::from_millis(1_000);
    config.idle_timeout = Duration::from_millis(4_000);
    config.progress_timeout = Duration::from_millis(3_000);
    if access {
        // Small batches: entries often arrive in a batch before the object they link to.
        config.batch_bytes = 1_024;
    }
    config
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A peer's host over its store, with the seed's recipes (and so their acceptance).
fn host_of(store: &Arc<MemoryStore>, identity: Option<&Identity>, config: &SimConfig) -> Host {
    let store: Arc<dyn Store> = store.clone();
    let mut host = Host::new(store)
        .with_config(session_config(config.access.is_some()))
        .with_recipes(preset::seed());
    if let Some(identity) = identity {
        host = host.with_identity(identity.clone());
    }
    if config.access.is_some_and(|test| !test.check_grants) {
        // The deliberately broken configuration: grants ignored.
        host.ignore_grants();
    }
    host
}

impl World {
    fn new(seed: u64, config: SimConfig) -> World {
        let mut rng = Rng::new(seed);
        let key = |rng: &mut Rng| {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            SigningKey::from_bytes(&bytes)
        };
        let identities: Vec<Option<Identity>> = if config.access.is_some() {
            let p = Identity::from_keys(key(&mut rng), key(&mut rng), EPOCH_MS).ok();
            let second = key(&mut rng);
            let p2 = p.as_ref().and_then(|p| {
                let certificate = p
                    .certify(InstanceId(second.verifying_key().to_bytes()), EPOCH_MS)
                    .ok()?;
                Identity::joined(second, certificate).ok()
            });
            let q = Identity::from_keys(key(&mut rng), key(&mut rng), EPOCH_MS).ok();
            let r = Identity::from_keys(key(&mut rng), key(&mut rng), EPOCH_MS).ok();
            let third = key(&mut rng);
            let p3 = p.as_ref().and_then(|p| {
                let certificate = p
                    .certify(InstanceId(third.verifying_key().to_bytes()), EPOCH_MS)
                    .ok()?;
                Identity::joined(third, certificate).ok()
            });
            vec![p, p2, q, r, p3]
        } else {
            vec![None; config.peers]
        };
        let peers = (0..config.peers)
            .map(|i| {
                let store = Arc::new(MemoryStore::new());
                let identity = identities.get(i).cloned().flatten();
                Peer {
                    host: host_of(&store, identity.as_ref(), &config),
                    store,
                    identity,
                    instance: InstanceId([i as u8 + 1; 32]),
                    clock: Clock::new(),
                    down_until: 0,
                    local_objects: Vec::new(),
                    written: 0,
                    past: HostStats::default(),
                }
            })
            .collect();
        let contact = preset::contact();
        let contacts = (0..4)
            .filter_map(|k| {
                let value =
                    dagjson::from_str(&format!(r#"{{"$type":"Contact","email":"c{k}@sim"}}"#))
                        .ok()?;
                let id = contact.id_hash(&value).ok()?;
                Some((value, id))
            })
            .collect();
        let mut actions = BTreeSet::new();
        let mut order = 0u64;
        let mut schedule = |at: u64, action: Action, actions: &mut BTreeSet<_>| {
            order += 1;
            actions.insert((at, order, action));
        };
        for _ in 0..config.writes {
            let at = rng.range(0, config.work_ms);
            let peer = rng.range(0, config.peers as u64 - 1) as usize;
            schedule(at, Action::Write(peer), &mut actions);
        }
        for _ in 0..config.partitions {
            let at = rng.range(0, config.work_ms);
            let group = rng.range(1, (1u64 << config.peers) - 2);
            let until = at + rng.range(500, 4_000);
            schedule(at, Action::Partition { group, until }, &mut actions);
        }
        for _ in 0..config.restarts {
            let at = rng.range(0, config.work_ms);
            let peer = rng.range(0, config.peers as u64 - 1) as usize;
            let until = at + rng.range(100, 2_000);
            schedule(at, Action::Restart { peer, until }, &mut actions);
        }
        if config.access.is_some() {
            let at = rng.range(config.work_ms / 4, config.work_ms * 3 / 4);
            schedule(at, Action::Revoke, &mut actions);
        }
        let mut links = BTreeMap::new();
        for a in 0..config.peers {
            for b in a + 1..config.peers {
                links.insert((a, b), Link::Down { retry_at: 0 });
            }
        }
        World {
            config,
            seed,
            rng,
            now: 0,
            peers,
            conns: BTreeMap::new(),
            links,
            frames: BTreeSet::new(),
            actions,
            partitions: Vec::new(),
            next_conn: 1,
            next_order: 0,
            report: SimReport::default(),
            contacts,
            policy: Policy::new(
                &preset::seed()
                    .into_iter()
                    .chain(chum_access::recipes())
                    .collect::<Vec<_>>(),
            ),
            private: Vec::new(),
            conversation: None,
            misfits: BTreeSet::new(),
            initiated: BTreeSet::new(),
            revoked: false,
        }
    }

    /// The access scenario's starting state: identities saved, P's private messages, the
    /// conversation and P's grant of it to Q.
    fn seed_access(&mut self, test: AccessTest) -> Result<(), SimFailure> {
        for peer in &self.peers {
            if let Some(identity) = &peer.identity {
                block_on(identity.save(&*peer.store, None))
                    .map_err(|e| self.fail(e.to_string()))?;
            }
        }
        let conversation = preset::conversation()
            .id_object(
                &dagjson::from_str(r#"{"$type":"Conversation","id":"granted"}"#)
                    .map_err(|e| self.fail(e.to_string()))?,
            )
            .map_err(|e| self.fail(e.to_string()))?;
        let conversation =
            Object::from_value(&conversation).map_err(|e| self.fail(e.to_string()))?;
        let chat = conversation.cid().clone();
        self.conversation = Some(chat.clone());
        let mut objects = vec![(chat.clone(), conversation.bytes().to_vec())];
        for i in 0..test.private {
            let object = object_of(&format!(r#"{{"$type":"Message","text":"private {i}"}}"#))
                .map_err(|e| self.fail(e))?;
            self.private.push(object.0.clone());
            objects.push(object);
        }
        for i in 0..test.granted {
            objects.push(
                object_of(&format!(
                    r#"{{"$type":"Message","text":"chat {i}","conversation":{{"/":"{chat}"}}}}"#
                ))
                .map_err(|e| self.fail(e))?,
            );
        }
        let (Some(p), Some(q)) = (&self.peers[0].identity, &self.peers[2].identity) else {
            return Err(self.fail("the access scenario needs identities"));
        };
        let person_key = p.person_key().map_err(|e| self.fail(e.to_string()))?;
        let grant = chum_access::Access::issue(person_key, chat, q.person().0, EPOCH_MS)
            .map_err(|e| self.fail(e.to_string()))?;
        objects.push((grant.object.cid().clone(), grant.object.bytes().to_vec()));
        block_on(self.peers[0].store.put_scoped(&objects, Scope::Shared))
            .map_err(|e| self.fail(e.to_string()))?;
        Ok(())
    }

    /// Fresh entropy for one side of a new session (from the seed).
    fn entropy(&mut self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next().to_le_bytes());
        }
        bytes
    }

    fn clock(&self) -> Now {
        Now {
            elapsed: Duration::from_millis(self.now),
            unix_ms: EPOCH_MS + self.now,
        }
    }

    fn fail(&self, reason: impl Into<String>) -> SimFailure {
        SimFailure {
            seed: self.seed,
            reason: format!("at {} ms: {}", self.now, reason.into()),
        }
    }

    fn healing(&self) -> bool {
        self.now >= self.config.work_ms
    }

    fn separated(&self, a: usize, b: usize) -> bool {
        self.partitions
            .iter()
            .any(|&(group, until)| self.now < until && ((group >> a) & 1) != ((group >> b) & 1))
    }

    fn is_up(&self, peer: usize) -> bool {
        self.now >= self.peers[peer].down_until
    }

    /// Tears a connection down (like a reset): its frames are gone, and both hosts hear that
    /// the transport closed (unless a host is `gone` itself, e.g. restarting).
    fn tear_down(&mut self, id: u64, gone: Option<usize>) -> Result<(), SimFailure> {
        let Some(conn) = self.conns.remove(&id) else {
            return Ok(());
        };
        let retry_at = self.now + self.rng.range(50, 500);
        let [a, b] = conn.peers;
        self.links
            .insert((a.min(b), a.max(b)), Link::Down { retry_at });
        self.frames.retain(|frame| frame.conn != id);
        let now = self.clock();
        let mut work = Vec::new();
        for peer in conn.peers {
            if Some(peer) != gone {
                block_on(
                    self.peers[peer]
                        .host
                        .handle(now, id, ConnInput::TransportClosed),
                );
                work.push(peer);
            }
        }
        self.pump(work)
    }

    fn connect(&mut self, a: usize, b: usize) -> Result<(), SimFailure> {
        let id = self.next_conn;
        self.next_conn += 1;
        self.report.sessions += 1;
        let now = self.clock();
        self.conns.insert(
            id,
            Conn {
                peers: [a, b],
                last_at: [self.now, self.now],
            },
        );
        self.links.insert((a, b), Link::Up);
        self.initiated.insert((a, id));
        let (initiator, responder) = (self.entropy(), self.entropy());
        block_on(self.peers[a].host.open(
            now,
            id,
            Opening::new(Role::Initiator, format!("peer {b}"), initiator),
        ));
        block_on(self.peers[b].host.open(
            now,
            id,
            Opening::new(Role::Responder, format!("peer {a}"), responder),
        ));
        self.pump(vec![a, b])
    }

    /// Carries out what the given peers' hosts ask for, and what that causes.
    fn pump(&mut self, mut work: Vec<usize>) -> Result<(), SimFailure> {
        while let Some(peer) = work.pop() {
            while let Some(output) = self.peers[peer].host.poll_output() {
                match output {
                    HostOutput::Transmit { conn, frame } => {
                        if let Some(c) = self.conns.get(&conn) {
                            let to = usize::from(c.peers[0] == peer);
                            self.transmit(conn, to, frame);
                        }
                    }
                    HostOutput::Commit { conn, commit } => {
                        let store = Arc::clone(&self.peers[peer].store);
                        let committed = block_on(commit.run(&*store));
                        let now = self.clock();
                        block_on(self.peers[peer].host.committed(now, conn, committed));
                    }
                    HostOutput::Event(event) => self.observe(peer, event)?,
                    HostOutput::Ended { conn, report } => {
                        if self.initiated.remove(&(peer, conn)) && report.resumed {
                            self.report.resumes += 1;
                        }
                        if report.peer.is_some() {
                            self.report.admitted += 1;
                        }
                        // The other side hears the transport close.
                        if let Some(c) = self.conns.remove(&conn) {
                            let [a, b] = c.peers;
                            let retry_at = self.now + self.rng.range(50, 500);
                            self.links
                                .insert((a.min(b), a.max(b)), Link::Down { retry_at });
                            self.frames.retain(|frame| frame.conn != conn);
                            let other = if a == peer { b } else { a };
                            let now = self.clock();
                            block_on(self.peers[other].host.handle(
                                now,
                                conn,
                                ConnInput::TransportClosed,
                            ));
                            work.push(other);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Checks what a host tells its application: everything an announced object links to is
    /// stored at that moment.
    fn observe(&mut self, peer: usize, event: NodeEvent) -> Result<(), SimFailure> {
        if let NodeEvent::Received { cids, .. } = event {
            let store = &self.peers[peer].store;
            let limits = chum_store::index::widest_limits();
            for cid in &cids {
                let bytes = block_on(store.get(cid))
                    .map_err(|e| self.fail(format!("peer {peer} announced {cid}: {e}")))?;
                let entries = chum_store::index::verify_and_index(cid, &bytes, &limits)
                    .map_err(|e| self.fail(e.to_string()))?;
                for target in &entries.links {
                    if !block_on(store.has(target)).unwrap_or(false) {
                        let kind = |cid: &Cid| {
                            self.peers
                                .iter()
                                .find_map(|peer| block_on(peer.store.get(cid)).ok())
                                .and_then(|bytes| chum_object::dagcbor::decode(&bytes).ok())
                                .map_or_else(
                                    || "?".to_string(),
                                    |value| format!("{value:?}").chars().take(300).collect(),
                                )
                        };
                        return Err(self.fail(format!(
                            "peer {peer} announced {cid} ({}) before its link target {target} ({})",
                            kind(cid),
                            kind(target)
                        )));
                    }
                }
            }
            self.report.announced += cids.len() as u64;
        }
        Ok(())
    }

    fn transmit(&mut self, id: u64, to: usize, bytes: Vec<u8>) {
        let faulty = !self.healing();
        if faulty && self.rng.chance(self.config.drop) {
            self.report.faults += 1;
            return;
        }
        let (low, high) = self.config.latency_ms;
        let latency = self.rng.range(low, high);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut at = (self.now + latency).max(conn.last_at[to]);
        if faulty && self.rng.chance(self.config.reorder) {
            // Held back past frames sent after it.
            self.report.faults += 1;
            at += self.rng.range(50, 300);
        } else {
            conn.last_at[to] = at;
        }
        let copies = if faulty && self.rng.chance(self.config.duplicate) {
            self.report.faults += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.next_order += 1;
            self.frames.insert(Frame {
                at,
                order: self.next_order,
                conn: id,
                to,
                bytes: bytes.clone(),
            });
        }
    }

    fn write(&mut self, peer: usize) -> Result<(), SimFailure> {
        if !self.is_up(peer) {
            return Ok(());
        }
        let now = self.now;
        let roll = self.rng.next() % 100;
        let store = Arc::clone(&self.peers[peer].store);
        let n = self.peers[peer].written;
        self.peers[peer].written += 1;
        let (objects, scope) = if let Some(chat) = self.conversation.clone() {
            // The access scenario: P's instances write private and conversation messages,
            // Q and R their own.
            let json = if self.is_p(peer) && roll < 50 {
                format!(
                    r#"{{"$type":"Message","text":"chat {n} from peer {peer}","conversation":{{"/":"{chat}"}}}}"#
                )
            } else {
                format!(r#"{{"$type":"Message","text":"note {n} from peer {peer}"}}"#)
            };
            let object = object_of(&json).map_err(|e| self.fail(e))?;
            if self.is_p(peer) && roll >= 50 {
                self.private.push(object.0.clone());
            }
            (vec![object], Scope::Shared)
        } else if roll < 2 {
            // Against the recipe (`text` must be text): every other host refuses it.
            let json = format!(r#"{{"$type":"Message","text":{}}}"#, n * 100 + peer as u64);
            let object = object_of(&json).map_err(|e| self.fail(e))?;
            self.misfits.insert(object.0.clone());
            self.report.misfits += 1;
            (vec![object], Scope::Shared)
        } else if roll < 45 {
            let json = format!(r#"{{"$type":"Message","text":"message {n} from peer {peer}"}}"#);
            (
                vec![object_of(&json).map_err(|e| self.fail(e))?],
                Scope::Shared,
            )
        } else if roll < 50 {
            // A burst: an import, a batch from an app.
            let count = self.rng.range(20, 400);
            let mut objects = Vec::new();
            for i in 0..count {
                let json =
                    format!(r#"{{"$type":"Message","text":"burst {n}.{i} from peer {peer}"}}"#);
                objects.push(object_of(&json).map_err(|e| self.fail(e))?);
            }
            (objects, Scope::Shared)
        } else if roll < 53 {
            // A blob chunk: a raw block.
            let len = self.rng.range(1, 4_000) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
            let cid = Cid::hash(chum_object::Codec::Raw, &bytes);
            (vec![(cid, bytes)], Scope::Shared)
        } else if roll < 85 {
            let k = (self.rng.next() % self.contacts.len() as u64) as usize;
            let (id_value, id) = self.contacts[k].clone();
            let heads =
                block_on(store.query(Query::Heads(&id))).map_err(|e| self.fail(e.to_string()))?;
            let mut latest = None;
            for head in &heads {
                let bytes = block_on(store.get(head)).map_err(|e| self.fail(e.to_string()))?;
                let value =
                    chum_object::dagcbor::decode(&bytes).map_err(|e| self.fail(e.to_string()))?;
                let version = Version::from_value(&value).map_err(|e| self.fail(e.to_string()))?;
                latest = latest.max(Some(version.clock));
            }
            let instance = self.peers[peer].instance;
            let clock = &mut self.peers[peer].clock;
            let timestamp = match latest {
                Some(after) => clock.tick_after(after, now),
                None => clock.tick(now),
            }
            .map_err(|e| self.fail(e.to_string()))?;
            let mut body = Map::new();
            let field = if self.rng.next().is_multiple_of(2) {
                "name"
            } else {
                "phone"
            };
            body.insert(field, format!("{field} {n} by {peer}"));
            let mut version = Version::new(id, heads, timestamp, instance, body);
            if self.rng.next().is_multiple_of(20) {
                version = version.tombstone();
            }
            let version = version.to_object().map_err(|e| self.fail(e.to_string()))?;
            let id_object = Object::from_value(&id_value).map_err(|e| self.fail(e.to_string()))?;
            (
                vec![
                    (id_object.cid().clone(), id_object.bytes().to_vec()),
                    (version.cid().clone(), version.bytes().to_vec()),
                ],
                Scope::Shared,
            )
        } else {
            let json =
                format!(r#"{{"$type":"Settings","key":"theme","value":{n},"instance":{peer}}}"#);
            let object = object_of(&json).map_err(|e| self.fail(e))?;
            self.peers[peer].local_objects.push(object.0.clone());
            (vec![object], Scope::Local)
        };
        let changed =
            block_on(store.put_scoped(&objects, scope)).map_err(|e| self.fail(e.to_string()))?;
        if scope == Scope::Shared {
            let now = self.clock();
            block_on(
                self.peers[peer]
                    .host
                    .local_stored(now, LocalWrite::of(&objects, &changed)),
            );
            self.pump(vec![peer])?;
        }
        Ok(())
    }

    /// Whether `peer` is an instance of P (the access scenario).
    fn is_p(&self, peer: usize) -> bool {
        self.conversation.is_some() && matches!(peer, 0 | 1 | 4)
    }

    /// Peer 0 revokes peer 4: its session with peer 4 must end at once.
    fn revoke(&mut self) -> Result<(), SimFailure> {
        let (Some(p), Some(p3)) = (&self.peers[0].identity, &self.peers[4].identity) else {
            return Err(self.fail("the access scenario needs identities"));
        };
        let revocation = p
            .revoke(p3.instance(), EPOCH_MS + self.now)
            .map_err(|e| self.fail(e.to_string()))?;
        let object = revocation.object();
        let objects = vec![(object.cid().clone(), object.bytes().to_vec())];
        let changed = block_on(self.peers[0].store.put_scoped(&objects, Scope::Shared))
            .map_err(|e| self.fail(e.to_string()))?;
        let now = self.clock();
        block_on(
            self.peers[0]
                .host
                .local_stored(now, LocalWrite::of(&objects, &changed)),
        );
        self.pump(vec![0])?;
        self.revoked = true;
        // A session still in its handshake is refused at admission instead.
        if let Some(id) = self.session_between(0, 4)
            && self.peers[0].host.peer(id).is_some()
        {
            return Err(self.fail(format!(
                "session {id} with the revoked instance is still open"
            )));
        }
        Ok(())
    }

    /// An open session between two peers, if any.
    fn session_between(&self, a: usize, b: usize) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, conn)| conn.peers.contains(&a) && conn.peers.contains(&b))
            .map(|(id, _)| *id)
    }

    fn act(&mut self, action: Action) -> Result<(), SimFailure> {
        match action {
            Action::Write(peer) => self.write(peer),
            Action::Partition { group, until } => {
                self.partitions.push((group, until));
                let cut: Vec<u64> = self
                    .conns
                    .iter()
                    .filter(|(_, conn)| self.separated(conn.peers[0], conn.peers[1]))
                    .map(|(id, _)| *id)
                    .collect();
                for id in cut {
                    self.tear_down(id, None)?;
                }
                Ok(())
            }
            Action::Restart { peer, until } => {
                self.peers[peer].down_until = until;
                let gone: Vec<u64> = self
                    .conns
                    .iter()
                    .filter(|(_, conn)| conn.peers.contains(&peer))
                    .map(|(id, _)| *id)
                    .collect();
                for id in gone {
                    self.tear_down(id, Some(peer))?;
                }
                // A restart: a new host over the same store (journal positions and peer
                // records persist in it).
                let fresh = host_of(
                    &self.peers[peer].store,
                    self.peers[peer].identity.as_ref(),
                    &self.config,
                );
                let old = std::mem::replace(&mut self.peers[peer].host, fresh);
                add_stats(&mut self.peers[peer].past, old.stats());
                self.initiated.retain(|(p, _)| *p != peer);
                Ok(())
            }
            Action::Revoke => self.revoke(),
        }
    }

    /// The next moment anything happens.
    fn next_event(&self) -> Option<u64> {
        let frame = self.frames.first().map(|frame| frame.at);
        let action = self.actions.first().map(|(at, _, _)| *at);
        let timeout = self
            .peers
            .iter()
            .filter_map(|peer| peer.host.poll_timeout().map(ms))
            .min();
        let retry = self
            .links
            .iter()
            .filter_map(|(&(a, b), link)| match link {
                Link::Down { retry_at } => {
                    let mut at = (*retry_at)
                        .max(self.peers[a].down_until)
                        .max(self.peers[b].down_until);
                    for &(group, until) in &self.partitions {
                        if ((group >> a) & 1) != ((group >> b) & 1) && until > self.now {
                            at = at.max(until);
                        }
                    }
                    Some(at)
                }
                Link::Up => None,
            })
            .min();
        [frame, action, timeout, retry].into_iter().flatten().min()
    }

    fn step(&mut self) -> Result<bool, SimFailure> {
        let Some(at) = self.next_event() else {
            return Ok(false);
        };
        self.now = self.now.max(at);
        while let Some(&(at, order, action)) = self.actions.first() {
            if at > self.now {
                break;
            }
            self.actions.remove(&(at, order, action));
            self.act(action)?;
        }
        let due: Vec<(usize, usize)> = self
            .links
            .iter()
            .filter(|(_, link)| matches!(link, Link::Down { retry_at } if *retry_at <= self.now))
            .map(|(pair, _)| *pair)
            .collect();
        for (a, b) in due {
            if self.is_up(a) && self.is_up(b) && !self.separated(a, b) {
                self.connect(a, b)?;
            }
        }
        while let Some(frame) = self.frames.first().cloned() {
            if frame.at > self.now {
                break;
            }
            self.frames.remove(&frame);
            if let Some(conn) = self.conns.get(&frame.conn) {
                self.report.frames += 1;
                let peer = conn.peers[frame.to];
                let now = self.clock();
                block_on(self.peers[peer].host.handle(
                    now,
                    frame.conn,
                    ConnInput::Frame(frame.bytes),
                ));
                self.pump(vec![peer])?;
            }
        }
        for peer in 0..self.peers.len() {
            if self.peers[peer]
                .host
                .poll_timeout()
                .is_some_and(|at| ms(at) <= self.now)
            {
                let now = self.clock();
                block_on(self.peers[peer].host.timeout(now));
                self.pump(vec![peer])?;
            }
        }
        Ok(true)
    }

    /// Whether every peer holds the same shared set and resolves every versioned object
    /// alike, and no peer holds another's local objects. `Err` explains the first difference
    /// (only meaningful once the run should have converged).
    fn converged(&self) -> Result<(usize, usize), String> {
        if self.conversation.is_some() {
            return self.access_converged();
        }
        let mut reference: Option<Vec<Cid>> = None;
        for (i, peer) in self.peers.iter().enumerate() {
            let mut shared = block_on(
                peer.store
                    .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX),
            )
            .map_err(|e| e.to_string())?;
            // An object against its recipe stays with its writer alone.
            shared.retain(|cid| !self.misfits.contains(cid));
            match &reference {
                None => reference = Some(shared),
                Some(first) if *first != shared => {
                    return Err(format!(
                        "peer {i} holds {} shared objects, peer 0 holds {}",
                        shared.len(),
                        first.len()
                    ));
                }
                Some(_) => {}
            }
            for (j, other) in self.peers.iter().enumerate() {
                if i == j {
                    continue;
                }
                for cid in &other.local_objects {
                    let shared_too = reference.as_ref().is_some_and(|r| r.contains(cid));
                    if !shared_too && block_on(peer.store.has(cid)).unwrap_or(false) {
                        return Err(format!("peer {i} holds a local object of peer {j}"));
                    }
                }
            }
        }
        for cid in &self.misfits {
            let holders = self
                .peers
                .iter()
                .filter(|peer| block_on(peer.store.has(cid)).unwrap_or(false))
                .count();
            if holders > 1 {
                return Err(format!(
                    "{holders} peers hold {cid}, which breaks its recipe"
                ));
            }
        }
        let mut versioned = 0;
        for (_, id) in &self.contacts {
            let mut states: Vec<(State, Vec<Cid>)> = Vec::new();
            for peer in &self.peers {
                states.push(resolve(&peer.store, id)?);
            }
            if states.windows(2).any(|pair| pair[0] != pair[1]) {
                return Err(format!("the peers resolve {id} differently"));
            }
            if !states[0].1.is_empty() {
                versioned += 1;
            }
        }
        Ok((reference.map_or(0, |r| r.len()), versioned))
    }
}

/// `total` plus `more`.
fn add_stats(total: &mut HostStats, more: HostStats) {
    total.waited += more.waited;
    total.waited_foreign += more.waited_foreign;
    total.refused += more.refused;
    total.revoked += more.revoked;
    total.checkpoints += more.checkpoints;
}

impl World {
    /// The report, with what every host's policy did.
    fn finish(mut self) -> SimReport {
        let mut total = HostStats::default();
        for peer in &self.peers {
            add_stats(&mut total, peer.past);
            add_stats(&mut total, peer.host.stats());
        }
        self.report.waited = total.waited + total.waited_foreign;
        self.report.waited_foreign = total.waited_foreign;
        self.report.refused = total.refused;
        self.report.revoked = total.revoked;
        self.report.checkpoints = total.checkpoints;
        self.report
    }

    fn shared_of(&self, peer: usize) -> Result<Vec<Cid>, String> {
        block_on(
            self.peers[peer]
                .store
                .sync_list((Bound::Unbounded, Bound::Unbounded), usize::MAX),
        )
        .map_err(|e| e.to_string())
    }

    /// P's objects outside the grant that Q or R hold (in any scope).
    fn leaks(&self) -> Result<usize, String> {
        let mut leaked = 0;
        for outsider in [2, 3] {
            for cid in &self.private {
                if block_on(self.peers[outsider].store.has(cid)).map_err(|e| e.to_string())? {
                    leaked += 1;
                }
            }
        }
        // R has no grant: nothing of the conversation either.
        if let Some(chat) = &self.conversation {
            let entries = block_on(self.peers[0].store.query(Query::LinksTo {
                target: chat,
                after: None,
                limit: usize::MAX,
            }))
            .map_err(|e| e.to_string())?;
            for cid in entries.iter().chain([chat]) {
                if block_on(self.peers[3].store.has(cid)).map_err(|e| e.to_string())? {
                    leaked += 1;
                }
            }
        }
        Ok(leaked)
    }

    fn access_converged(&self) -> Result<(usize, usize), String> {
        let p0 = self.shared_of(0)?;
        if p0 != self.shared_of(1)? {
            return Err("P's instances hold different sets".into());
        }
        if !self.revoked {
            return Err("peer 4 is not revoked yet".into());
        }
        for p in [0, 1] {
            if let Some(id) = self.session_between(p, 4) {
                return Err(format!(
                    "peer {p} still has session {id} with the revoked peer 4"
                ));
            }
        }
        let (Some(p), Some(q)) = (&self.peers[0].identity, &self.peers[2].identity) else {
            return Err("no identities".into());
        };
        let visible = block_on(VisibleSet::compute(
            &*self.peers[0].store,
            self.policy.clone(),
            *p.person_public(),
            q.person(),
        ))
        .map_err(|e| e.to_string())?;
        let q_has: BTreeSet<Cid> = self.shared_of(2)?.into_iter().collect();
        let missing = visible.cids().filter(|cid| !q_has.contains(*cid)).count();
        if missing > 0 {
            return Err(format!(
                "Q lacks {missing} of {} granted objects",
                visible.len()
            ));
        }
        Ok((p0.len(), visible.len()))
    }
}

fn object_of(json: &str) -> Result<(Cid, Vec<u8>), String> {
    let value = dagjson::from_str(json).map_err(|e| e.to_string())?;
    let object = Object::from_value(&value).map_err(|e| e.to_string())?;
    Ok((object.cid().clone(), object.bytes().to_vec()))
}

/// The resolved state and heads of a contact in `store`.
fn resolve(store: &MemoryStore, id: &Cid) -> Result<(State, Vec<Cid>), String> {
    let mut resolver = Resolver::for_recipe(&preset::contact()).map_err(|e| e.to_string())?;
    for cid in block_on(store.query(Query::Versions(id))).map_err(|e| e.to_string())? {
        let bytes = block_on(store.get(&cid)).map_err(|e| e.to_string())?;
        let value = chum_object::dagcbor::decode(&bytes).map_err(|e| e.to_string())?;
        let version = Version::from_value(&value).map_err(|e| e.to_string())?;
        resolver.add(&cid, &version).map_err(|e| e.to_string())?;
    }
    Ok((resolver.state(), resolver.heads().cloned().collect()))
}

/// Runs one simulation.
pub fn run(seed: u64, config: &SimConfig) -> Result<SimReport, SimFailure> {
    if config.peers < 2 || config.peers > 16 {
        return Err(SimFailure {
            seed,
            reason: "between 2 and 16 peers".into(),
        });
    }
    if config.access.is_some() && config.peers != 5 {
        return Err(SimFailure {
            seed,
            reason: "the access scenario has 5 peers".into(),
        });
    }
    let mut world = World::new(seed, config.clone());
    if let Some(test) = config.access {
        world.seed_access(test)?;
    }
    let limit = config.work_ms + config.heal_limit_ms;
    let mut last_check = 0u64;
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > 20_000_000 {
            return Err(world.fail("twenty million steps without converging: livelock"));
        }
        let active = world.step()?;
        if config.access.is_some() && steps.is_multiple_of(64) {
            let leaked = world.leaks().map_err(|e| world.fail(e))?;
            if leaked > 0 {
                return Err(
                    world.fail(format!("{leaked} objects outside P's grant reached Q or R"))
                );
            }
        }
        if world.now > limit {
            let why = world.converged().err().unwrap_or_default();
            return Err(world.fail(format!(
                "not converged {} ms into healing: {why}",
                config.heal_limit_ms
            )));
        }
        let quiet = world.frames.is_empty();
        if world.healing() && world.actions.is_empty() && (quiet || world.now >= last_check + 500) {
            last_check = world.now;
            if let Ok((objects, versioned)) = world.converged() {
                if config.access.is_some() {
                    let leaked = world.leaks().map_err(|e| world.fail(e))?;
                    if leaked > 0 {
                        return Err(world
                            .fail(format!("{leaked} objects outside P's grant reached Q or R")));
                    }
                    world.report.granted_received = versioned;
                    world.report.private = world.private.len();
                    world.report.objects = objects;
                    world.report.converged_at_ms = world.now;
                    return Ok(world.finish());
                }
                world.report.objects = objects;
                world.report.versioned = versioned;
                world.report.converged_at_ms = world.now;
                return Ok(world.finish());
            }
        }
        if !active {
            let why = world.converged().err().unwrap_or_default();
            return Err(world.fail(format!("nothing left to happen, not converged: {why}")));
        }
    }
}
