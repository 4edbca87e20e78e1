//! "At risk": this instance's shared objects that no other instance has acknowledged storing
//! yet — what would be lost with this store (a browser may evict a site's storage; a laptop
//! may be lost). Kept in memory as journal positions, from the store's journal at open, and
//! persisted as the position below which everything is held elsewhere.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chum_object::Cid;
use chum_store::Store;

/// The instance-local key of the position up to which every journal entry is held elsewhere
/// (8 bytes, big-endian).
const BASE_KEY: &[u8] = b"chum/at-risk/base";

/// Journal entries read per page.
const PAGE: usize = 4_096;

/// Objects remembered as held before this tracker learned they were written (an
/// acknowledgement can overtake the bookkeeping of the write it acknowledges).
const EARLY: usize = 1 << 16;

#[derive(Debug, Default)]
struct State {
    /// Journal position → object, for objects no other instance is known to hold.
    pending: BTreeMap<u64, Cid>,
    /// Object → its position in `pending`.
    positions: HashMap<Cid, u64>,
    /// The journal head as far as this tracker has read it.
    known_head: u64,
    /// The base last written to the store.
    saved_base: u64,
    /// Sessions with instances of this person → the journal head when they connected.
    sessions: HashMap<u64, u64>,
    /// Every entry up to here is held by an instance of this person (a completed sync).
    synced_upto: u64,
    /// Held objects that were not pending (yet), newest last.
    early: HashSet<Cid>,
    early_order: VecDeque<Cid>,
    /// Journal positions after the saved base, up to the head at open, not read yet (all at
    /// risk): read once a peer is heard from, so that opening a large store never synced —
    /// a CLI command — reads none of it.
    unread: Option<(u64, u64)>,
}

impl State {
    fn remove(&mut self, cid: &Cid) {
        if let Some(position) = self.positions.remove(cid) {
            self.pending.remove(&position);
        } else if self.early.insert(cid.clone()) {
            self.early_order.push_back(cid.clone());
            if self.early_order.len() > EARLY
                && let Some(old) = self.early_order.pop_front()
            {
                self.early.remove(&old);
            }
        }
    }

    /// The position below which nothing is pending.
    fn base(&self) -> u64 {
        if let Some((from, _)) = self.unread {
            return from;
        }
        self.pending
            .keys()
            .next()
            .map_or(self.known_head, |first| first - 1)
    }

    /// How many objects are at risk.
    fn count(&self) -> u64 {
        self.pending.len() as u64 + self.unread.map_or(0, |(from, to)| to - from)
    }
}

/// The at-risk set of one instance.
#[derive(Debug, Default)]
pub(crate) struct AtRisk {
    state: Mutex<State>,
    count: AtomicU64,
}

impl AtRisk {
    /// Opens the set: the journal entries after the saved base are at risk (read later, see
    /// `State::unread`; entries received from peers among them are cleared by the next sync
    /// with an instance of this person).
    pub(crate) async fn load(store: &dyn Store) -> chum_store::Result<AtRisk> {
        let base = store
            .local_get(BASE_KEY)
            .await?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let head = store.journal(0, 0).await?.head;
        let state = State {
            known_head: head.max(base),
            saved_base: base,
            unread: (head > base).then_some((base, head)),
            ..State::default()
        };
        let tracker = AtRisk::default();
        tracker.count.store(state.count(), Ordering::Relaxed);
        *tracker.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        Ok(tracker)
    }

    /// Reads the entries not read since open, once.
    async fn read_unread(&self, store: &dyn Store) {
        let Some((from, to)) = self.state.lock().ok().and_then(|state| state.unread) else {
            return;
        };
        let mut after = from;
        let mut found = Vec::new();
        while after < to {
            let Ok(page) = store.journal(after, PAGE).await else {
                return;
            };
            found.extend(
                page.entries
                    .into_iter()
                    .filter(|(position, _)| *position <= to),
            );
            if page.last <= after {
                break;
            }
            after = page.last;
        }
        self.change(|state| {
            if state.unread != Some((from, to)) {
                return; // cleared meanwhile (a sync covered it)
            }
            state.unread = None;
            for (position, cid) in found {
                if position <= state.synced_upto || state.early.remove(&cid) {
                    continue;
                }
                state.positions.insert(cid.clone(), position);
                state.pending.insert(position, cid);
            }
        });
    }

    /// Marks everything in `store`'s journal as held elsewhere (a store just filled by the
    /// first sync with another instance of its person).
    pub(crate) async fn all_held(store: &dyn Store) -> chum_store::Result<()> {
        let head = store.journal(0, 0).await?.head;
        store.local_put(BASE_KEY, &head.to_be_bytes()).await
    }

    /// How many objects are at risk.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn change(&self, change: impl FnOnce(&mut State)) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut state);
        self.count.store(state.count(), Ordering::Relaxed);
        let base = state.base();
        // Saved when it moved far enough or the set emptied: a base saved late only makes a
        // restarted instance count more, until its next sync.
        if base != state.saved_base && (base >= state.saved_base + 256 || state.pending.is_empty())
        {
            state.saved_base = base;
            Some(base)
        } else {
            None
        }
    }

    async fn save(&self, store: &dyn Store, base: Option<u64>) {
        if let Some(base) = base {
            let _ = store.local_put(BASE_KEY, &base.to_be_bytes()).await;
        }
    }

    /// Reads the journal past what this tracker has seen: every new entry not known to be
    /// held elsewhere is at risk (the journal is the truth; acknowledgements and received
    /// objects only take entries out).
    async fn scan(&self, store: &dyn Store) {
        let mut from = self.state.lock().map_or(0, |state| state.known_head);
        let mut found = Vec::new();
        while let Ok(page) = store.journal(from, PAGE).await {
            found.extend(page.entries);
            from = page.last;
            if page.last >= page.head {
                break;
            }
        }
        let base = self.change(|state| {
            for (position, cid) in found {
                if position <= state.known_head {
                    continue; // a concurrent scan took it
                }
                if position <= state.synced_upto || state.early.remove(&cid) {
                    continue; // held already
                }
                state.positions.insert(cid.clone(), position);
                state.pending.insert(position, cid);
            }
            state.known_head = state.known_head.max(from);
        });
        self.save(store, base).await;
    }

    /// This instance stored new shared objects.
    pub(crate) async fn written(&self, store: &dyn Store) {
        self.scan(store).await;
    }

    /// `cid` was replaced in the store (a coalesced version): no longer at risk, and not
    /// held anywhere either.
    pub(crate) async fn replaced(&self, store: &dyn Store, cid: &Cid) {
        let base = self.change(|state| {
            if let Some(position) = state.positions.remove(cid) {
                state.pending.remove(&position);
            }
        });
        self.save(store, base).await;
    }

    /// Another instance holds `cids` (it acknowledged them, or sent them). `scan`: read the
    /// journal past what this tracker has seen, too (entries other writers of the store
    /// added); without it, entries held before they are read are remembered as held.
    pub(crate) async fn held(&self, store: &dyn Store, cids: &[Cid], scan: bool) {
        self.read_unread(store).await;
        let base = self.change(|state| {
            for cid in cids {
                state.remove(cid);
            }
        });
        self.save(store, base).await;
        if scan {
            self.scan(store).await;
        }
    }

    /// A session with an instance of this person is up: remember the journal head, which
    /// that instance holds in full once the session has synced.
    pub(crate) async fn connected(&self, store: &dyn Store, session: u64) {
        let head = store.journal(0, 0).await.map_or(0, |page| page.head);
        if let Ok(mut state) = self.state.lock() {
            state.sessions.insert(session, head);
        }
    }

    /// A session with an instance of this person synced: everything up to its head at
    /// connection is held there.
    pub(crate) async fn synced(&self, store: &dyn Store, session: u64) {
        let base = self.change(|state| {
            let Some(head) = state.sessions.get(&session).copied() else {
                return;
            };
            state.synced_upto = state.synced_upto.max(head);
            if let Some((from, to)) = state.unread {
                state.unread = if to <= head {
                    None
                } else {
                    Some((from.max(head), to))
                };
            }
            let held: Vec<u64> = state.pending.range(..=head).map(|(p, _)| *p).collect();
            for position in held {
                if let Some(cid) = state.pending.remove(&position) {
                    state.positions.remove(&cid);
                }
            }
        });
        self.save(store, base).await;
    }

    /// A session ended.
    pub(crate) fn ended(&self, session: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.sessions.remove(&session);
        }
    }
}
