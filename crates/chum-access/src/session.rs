//! What a driver does per admitted peer: [`admit_peer`] decides on the handshake payload and
//! sets up a [`PeerAccess`], which answers the session's requests — everything for instances
//! of the same person, the [`VisibleSet`] for another person — and stores what the peer sends
//! under [`Coverage`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use chum_object::{Cid, Value};
use chum_store::index::{Acceptance, Verified};
use chum_store::{Scope, Store};
use chum_sync::{Answer, Request};
use futures::lock::Mutex;

use crate::error::{AccessError, Result};
use crate::handshake::Peer;
use crate::identity::Identity;
use crate::keys::{PersonId, person_object};
use crate::visibility::{Coverage, Policy, VisibleSet};

/// Objects from a peer of another person that wait, per session, for a covering grant.
pub const MAX_QUARANTINE: usize = 100_000;
/// Bytes of such objects held per session.
pub const MAX_QUARANTINE_BYTES: usize = 64 << 20;

/// A peer admitted to a session.
#[derive(Debug)]
pub struct Admission {
    /// Who it is.
    pub peer: Peer,
    /// What it may see and send.
    pub access: PeerAccess,
    /// Objects that became shared while admitting it (its person and certificate, kept so
    /// grants to it resolve): tell the other sessions.
    pub stored: Vec<Cid>,
}

/// A peer's visible set, behind a lock so that the sessions of one person's instances on a
/// hub can share it (see [`HubViews`]); a session of any other kind has one of its own.
#[derive(Debug)]
struct View {
    set: VisibleSet,
    /// Keeping the set up to date failed: it may lack something, and is not handed to new
    /// sessions (those sharing it are closed).
    failed: bool,
}

type SharedView = Arc<Mutex<View>>;

/// On a hub: the visible set of each person with sessions here, shared by the sessions of all
/// its instances. What a hub shows a peer depends on the peer's person alone, so the set is
/// computed at the first session, kept up to date once per announcement — not once per
/// session — and handed to every later session of that person while one is open (it goes
/// with the last). One per driver; see [`admit_peer`].
#[derive(Debug, Default)]
pub struct HubViews {
    views: HashMap<Cid, Weak<Mutex<View>>>,
    /// Sets no session uses any more are dropped from `views` when it reaches this size
    /// (then twice the size left): amortized, not a walk at every admission.
    prune_at: usize,
}

impl HubViews {
    /// No sets yet.
    pub fn new() -> HubViews {
        HubViews::default()
    }

    /// How many persons' sets are in use.
    pub fn len(&self) -> usize {
        self.views
            .values()
            .filter(|view| view.strong_count() > 0)
            .count()
    }

    /// Whether no set is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every set: sessions admitted from now on compute their own (the rules changed,
    /// or the sets in use missed an update); those in use keep theirs.
    pub fn clear(&mut self) {
        self.views.clear();
    }

    /// The set of `person` in use and sound, if any.
    fn get(&self, person: &PersonId) -> Option<SharedView> {
        let view = self.views.get(&person.0)?.upgrade()?;
        let sound = view.try_lock().is_some_and(|view| !view.failed);
        sound.then_some(view)
    }

    fn insert(&mut self, person: &PersonId, view: &SharedView) {
        if self.views.len() >= self.prune_at {
            self.views.retain(|_, view| view.strong_count() > 0);
            self.prune_at = (self.views.len() * 2).max(64);
        }
        self.views.insert(person.0.clone(), Arc::downgrade(view));
    }
}

/// Admits the peer that presented `payload` over a handshake proving `remote_static` (see
/// [`crate::handshake::admit`] for the rule), keeps its public identity, and prepares its
/// access. On a hub, a peer whose person has another session open in `views` shares that
/// session's visible set (nothing is computed); otherwise its set is computed (and, on a hub,
/// entered in `views`).
pub async fn admit_peer(
    store: &dyn Store,
    identity: &Identity,
    policy: &Policy,
    views: &mut HubViews,
    payload: &[u8],
    remote_static: &[u8; 32],
    now_ms: u64,
) -> Result<Admission> {
    let peer = crate::handshake::admit(store, identity, payload, remote_static, now_ms).await?;
    if !peer.same_person && !policy.admits(&peer.person) {
        return Err(AccessError::NotServed(peer.person));
    }
    let access = if peer.same_person {
        PeerAccess::Full
    } else {
        let hub = policy.serves_as_hub();
        let view = match views.get(&peer.person).filter(|_| hub) {
            Some(view) => view,
            None => {
                let set = if hub {
                    VisibleSet::compute_hub(
                        store,
                        policy.clone(),
                        *identity.person_public(),
                        peer.person_key,
                    )
                    .await?
                } else {
                    VisibleSet::compute(
                        store,
                        policy.clone(),
                        *identity.person_public(),
                        peer.person.clone(),
                    )
                    .await?
                };
                let view = Arc::new(Mutex::new(View { set, failed: false }));
                if hub {
                    views.insert(&peer.person, &view);
                }
                view
            }
        };
        let granted = view.lock().await.set.targets().clone();
        PeerAccess::Granted(Box::new(Granted {
            view,
            hub,
            quota: policy.quota().filter(|_| hub),
            coverage: Coverage::new(
                store,
                policy.clone(),
                identity.person(),
                peer.person_key,
                granted,
            )
            .await?,
            quarantine: Vec::new(),
            quarantine_bytes: 0,
            vouched: 0,
            limit: MAX_QUARANTINE,
            my_hub: policy.is_hub(&peer.person),
        }))
    };
    let mut stored = Vec::new();
    if let Some(certificate) = &peer.certificate {
        // An instance of this person: its identity syncs to the other instances. Another
        // person's stays instance-local (a grant to it promotes its Person object), and only
        // when the two persons share something: a stranger connecting with fresh keys leaves
        // nothing behind.
        let scope = match &access {
            PeerAccess::Full => Some(Scope::Shared),
            PeerAccess::Granted(granted) if !granted.is_stranger() => Some(Scope::Local),
            PeerAccess::Granted(_) => None,
        };
        if let Some(scope) = scope {
            let person = person_object(&peer.person_key);
            let objects = [
                (person.cid().clone(), person.into_bytes()),
                (
                    certificate.object().cid().clone(),
                    certificate.object().bytes().to_vec(),
                ),
            ];
            let changed = store.put_scoped(&objects, scope).await?;
            if scope == Scope::Shared {
                stored.extend(
                    objects
                        .into_iter()
                        .zip(changed)
                        .filter(|(_, changed)| *changed)
                        .map(|((cid, _), _)| cid),
                );
            }
        }
    }
    Ok(Admission {
        peer,
        access,
        stored,
    })
}

/// What an admitted peer may see and send.
#[derive(Debug)]
pub enum PeerAccess {
    /// An instance of the same person: every shared object, both ways.
    Full,
    /// A peer of another person: what grants cover, both ways.
    Granted(Box<Granted>),
}

/// The state of a session with a peer of another person.
#[derive(Debug)]
pub struct Granted {
    /// What the peer sees (on a hub, shared by its person's sessions).
    view: SharedView,
    /// Whether this side serves as a hub.
    hub: bool,
    /// On a hub: the objects the peer's person may have it store ([`Policy::quota`]).
    quota: Option<u64>,
    coverage: Coverage,
    /// Objects received but not (yet) covered: held in memory only — never stored, indexed
    /// or announced — and stored (shared) when a grant or a referrer covering them arrives (in
    /// this session, or another way: [`PeerAccess::learn_grants`]); dropped when the session
    /// ends (the peer offers them again later).
    quarantine: Vec<(Cid, Vec<u8>)>,
    quarantine_bytes: usize,
    /// Grants and membership statements of the peer's taken in this session: they count
    /// toward the same limit as held objects, so whether a grant was taken (which depends on
    /// what this side holds) cannot be told from when the limit is reached.
    vouched: usize,
    /// The most objects held or vouched for ([`MAX_QUARANTINE`]).
    limit: usize,
    /// The peer is one of this side's hubs ([`Policy::use_hub`]): what it sends is taken as
    /// from an instance of this person (it delivers this person's data and what others
    /// granted it); what it sees is still only what this side granted it.
    my_hub: bool,
}

impl Granted {
    /// Whether this is a hub's session with a peer: what it sees is what its person's grants
    /// and those of persons granting it something cover, shared by its person's sessions.
    pub fn is_hub(&self) -> bool {
        self.hub
    }

    /// Whether this session and `other` share one visible set (on a hub, the sessions of one
    /// person's instances do).
    pub fn shares_view(&self, other: &Granted) -> bool {
        Arc::ptr_eq(&self.view, &other.view)
    }

    /// An identity of the visible set, the same for the sessions sharing it (for doing the
    /// work of an announcement once per set).
    pub fn view_id(&self) -> usize {
        Arc::as_ptr(&self.view) as usize
    }

    /// Whether the peer's person is a stranger here: no grant either way (it sees this
    /// person's public identity only, and may write nothing). One of this side's hubs never
    /// is.
    pub fn is_stranger(&self) -> bool {
        !self.my_hub && !self.coverage.related()
    }

    /// Objects received from the peer that no grant covers (yet), held in memory.
    pub fn quarantined(&self) -> impl Iterator<Item = &Cid> {
        self.quarantine.iter().map(|(cid, _)| cid)
    }
}

fn backend(error: AccessError) -> chum_store::Error {
    chum_store::Error::Backend(error.to_string())
}

impl PeerAccess {
    /// Answers a session request. Objects to store are verified (CID, strict encoding,
    /// `hard`: a refusal refuses the whole batch) and checked by `soft` (an object it refuses
    /// is left out alone and listed in [`Answer::StoredExcept`], e.g. one that breaks this
    /// side's recipes); from a peer of another person only covered ones become shared.
    /// Returns the answer and the CIDs that became shared here.
    pub async fn answer(
        &mut self,
        store: &dyn Store,
        request: Request,
        hard: Option<&dyn Acceptance>,
        soft: Option<&dyn Acceptance>,
    ) -> (Answer, Vec<Cid>) {
        let objects = match (&*self, request) {
            (_, Request::Store(objects)) => objects,
            (PeerAccess::Full, request) => return chum_sync::store::answer(store, request).await,
            (PeerAccess::Granted(granted), request) => {
                let view = granted.view.lock().await;
                return (view.set.answer(store, request).await, Vec::new());
            }
        };
        let (batch, refused) = match Verified::check_split(objects, &store.limits(), hard, soft) {
            Ok(checked) => checked,
            Err(error) => return (refusal(error), Vec::new()),
        };
        match self.store_checked(store, batch).await {
            (Answer::Stored, new) if !refused.is_empty() => (Answer::StoredExcept(refused), new),
            outcome => outcome,
        }
    }

    /// Stores a batch the peer sent, already verified (e.g. with [`Verified::check_split`]):
    /// everything from an instance of the same person; from another person, only what its
    /// grants cover (the rest is held in memory, see [`Granted::quarantined`]). Returns the
    /// answer and the CIDs that became shared here.
    pub async fn store_checked(
        &mut self,
        store: &dyn Store,
        batch: Verified,
    ) -> (Answer, Vec<Cid>) {
        match self {
            PeerAccess::Full => {
                let cids: Vec<Cid> = batch.objects().iter().map(|(cid, _)| cid.clone()).collect();
                match store.put_verified(batch, Scope::Shared).await {
                    Ok(changed) => (
                        Answer::Stored,
                        cids.into_iter()
                            .zip(changed)
                            .filter(|(_, changed)| *changed)
                            .map(|(cid, _)| cid)
                            .collect(),
                    ),
                    Err(error) => (refusal(error), Vec::new()),
                }
            }
            PeerAccess::Granted(granted) => match granted.store(store, batch).await {
                Ok(outcome) => outcome,
                Err(error) => (Answer::Failed(error.to_string()), Vec::new()),
            },
        }
    }

    /// Objects were stored here (by the app or another session): those the peer may see.
    pub async fn visible(&mut self, store: &dyn Store, stored: &[Cid]) -> Result<Vec<Cid>> {
        match self {
            PeerAccess::Full => Ok(stored.to_vec()),
            PeerAccess::Granted(granted) => {
                let mut view = granted.view.lock().await;
                let visible = view.set.on_stored(store, stored).await;
                view.failed |= visible.is_err();
                visible
            }
        }
    }

    /// The persons whose objects can concern the peer (see [`VisibleSet::concerning`]);
    /// `None`: any announcement may.
    pub fn concerning(&self) -> Option<Vec<PersonId>> {
        match self {
            PeerAccess::Full => None,
            // Never locked here but by the driver's own awaited calls: a lock held means
            // unknown, and unknown means any.
            PeerAccess::Granted(granted) => granted.view.try_lock()?.set.concerning(),
        }
    }

    /// Whether an announcement can make anything visible to the peer (see
    /// [`VisibleSet::may_concern`]); when not, [`PeerAccess::visible_announced`] would find
    /// nothing.
    pub fn may_concern(&self, announcement: &crate::visibility::Announcement) -> bool {
        match self {
            PeerAccess::Full => true,
            PeerAccess::Granted(granted) => granted
                .view
                .try_lock()
                .is_none_or(|view| view.set.may_concern(announcement)),
        }
    }

    /// On a hub: grants and group statements of the peer's person that reached it another
    /// way (another session, another hub process over the store) cover what the peer sends
    /// from now on, as if they had come in this session. Whether anything more is covered:
    /// then objects held back as uncovered may be stored now ([`Granted::promote`]).
    pub fn learn_grants(&mut self, announcement: &crate::visibility::Announcement) -> bool {
        match self {
            PeerAccess::Full => false,
            PeerAccess::Granted(granted) => granted.coverage.learn_announced(announcement),
        }
    }

    /// [`PeerAccess::visible`] from an [`Announcement`](crate::visibility::Announcement)
    /// prepared once for every session.
    pub async fn visible_announced(
        &mut self,
        store: &dyn Store,
        announcement: &crate::visibility::Announcement,
    ) -> Result<Vec<Cid>> {
        match self {
            PeerAccess::Full => Ok(announcement.cids().to_vec()),
            PeerAccess::Granted(granted) => {
                let mut view = granted.view.lock().await;
                let visible = view.set.on_announced(store, announcement).await;
                view.failed |= visible.is_err();
                visible
            }
        }
    }
}

/// A grant or a group statement: what decides who a grant covers (see
/// [`crate::hub::names_others_own`]).
fn is_group_policy(value: &Value) -> bool {
    matches!(
        value.type_name(),
        Some(crate::grant::ACCESS_TYPE | crate::grant::GROUP_MEMBERS_TYPE)
    )
}

fn refusal(error: chum_store::Error) -> Answer {
    match error {
        chum_store::Error::Invalid { cid, reason } => {
            Answer::Invalid(format!("object {cid}: {reason}"))
        }
        other => Answer::Failed(other.to_string()),
    }
}

/// What [`Granted::take`] decided for a batch the peer sent.
#[derive(Debug)]
pub struct Taken {
    /// The objects its grants cover: to store (shared) now.
    pub batch: Verified,
    /// Instance-local values to write in the same transaction as `batch` (on a hub: who sent
    /// each object), e.g. with [`Store::put_verified_with_local`].
    pub local: Vec<(Vec<u8>, Vec<u8>)>,
    /// Covered objects refused, with why: on a hub, those past the person's quota
    /// ([`Policy::quota_per_person`]). Neither stored nor held: answer them as refused.
    pub refused: Vec<(Cid, String)>,
    /// The objects of `batch` that change who may see what (of
    /// [`crate::grant::POLICY_TYPES`]): they may change what the peer itself sees.
    pub policy: Vec<Cid>,
}

impl Granted {
    /// What a hub notes beside `cids` when the peer sends them: that its person did.
    fn notes(&self, cids: &[Cid]) -> Vec<(Vec<u8>, Vec<u8>)> {
        if self.hub {
            crate::hub::contributions(&self.coverage.peer_person(), cids)
        } else {
            Vec::new()
        }
    }

    /// Stores `objects`; on a hub, records that the peer's person sent the first `recorded`
    /// of them in the same write (never after them: no process of the hub hears of them
    /// without knowing their sender).
    async fn put_recording(
        &self,
        store: &dyn Store,
        objects: &[(Cid, Vec<u8>)],
        recorded: usize,
    ) -> chum_store::Result<Vec<bool>> {
        let cids: Vec<Cid> = objects
            .iter()
            .take(recorded)
            .map(|(cid, _)| cid.clone())
            .collect();
        let noted = self.notes(&cids);
        if noted.is_empty() {
            return store.put_scoped(objects, Scope::Shared).await;
        }
        store.put_with_local(objects, Scope::Shared, &noted).await
    }

    /// Decides which objects of a verified batch the peer's grants cover, without writing:
    /// those go in [`Taken::batch`] for the caller to store; the rest is held in memory (see
    /// [`Granted::quarantined`]). The batch is answered as stored all the same: an answer that
    /// told covered objects from held ones would let the peer probe what this side holds
    /// (coverage depends on it). `Err` is the answer when the batch cannot be taken: past the
    /// bound of held objects ([`MAX_QUARANTINE`], [`MAX_QUARANTINE_BYTES`]), or the store
    /// failed.
    ///
    /// Once the caller stored `Taken::batch`, held objects may be covered by it: call
    /// [`Granted::promote`].
    pub async fn take(
        &mut self,
        store: &dyn Store,
        batch: Verified,
    ) -> std::result::Result<Taken, Answer> {
        let mut keep = Vec::with_capacity(batch.len());
        let mut vouched = 0;
        let mut recipes = Vec::new();
        let mut policy = Vec::new();
        let mut grant_likes: Vec<(usize, Value)> = Vec::new();
        for (cid, bytes) in batch.objects() {
            let value = Coverage::decode(cid, bytes);
            if self.hub
                && let Some(value) = &value
                && is_group_policy(value)
            {
                grant_likes.push((keep.len(), value.clone()));
            }
            policy.push(
                value
                    .as_ref()
                    .and_then(Value::type_name)
                    .is_some_and(|name| crate::grant::POLICY_TYPES.contains(&name)),
            );
            let ok = self.my_hub
                || self
                    .coverage
                    .check(store, cid, value.as_ref())
                    .await
                    .map_err(|error| Answer::Failed(error.to_string()))?;
            if ok {
                let grant_like = value
                    .as_ref()
                    .and_then(Value::type_name)
                    .is_some_and(|name| {
                        name == crate::grant::ACCESS_TYPE
                            || name == crate::grant::GROUP_MEMBERS_TYPE
                    });
                vouched += usize::from(grant_like);
                if self.hub
                    && value.as_ref().and_then(Value::type_name)
                        == Some(chum_object::recipe::RECIPE_TYPE)
                {
                    recipes.push(cid.clone());
                }
            }
            keep.push(ok);
        }
        let mut refused = Vec::new();
        // On a hub: grants that would show a person what it sent itself are refused.
        let together = crate::hub::GroupPolicy::of(grant_likes.iter().map(|(_, value)| value));
        for (index, value) in &grant_likes {
            if keep[*index]
                && let Some(reason) = self
                    .names_others_own(store, value, &together)
                    .await
                    .map_err(|error| Answer::Failed(error.to_string()))?
            {
                keep[*index] = false;
                refused.push((batch.objects()[*index].0.clone(), reason));
            }
        }
        for ((cid, _), keep) in batch.objects().iter().zip(keep.iter_mut()) {
            if *keep && let Some(reason) = self.past_quota(cid).await {
                *keep = false;
                refused.push((cid.clone(), reason));
            }
        }
        let policy: Vec<Cid> = batch
            .objects()
            .iter()
            .zip(policy.iter().zip(&keep))
            .filter(|(_, (policy, keep))| **policy && **keep)
            .map(|((cid, _), _)| cid.clone())
            .collect();
        let (batch, mut uncovered) = batch.select(&keep);
        if !refused.is_empty() {
            let refused: std::collections::HashSet<&Cid> =
                refused.iter().map(|(cid, _)| cid).collect();
            uncovered.retain(|(cid, _)| !refused.contains(cid));
            recipes.retain(|cid| !refused.contains(cid));
        }
        let incoming: usize = uncovered.iter().map(|(_, bytes)| bytes.len()).sum();
        self.vouched += vouched;
        if self.quarantine.len() + uncovered.len() + self.vouched > self.limit
            || self.quarantine_bytes + incoming > MAX_QUARANTINE_BYTES
        {
            return Err(Answer::Invalid(format!(
                "more than {MAX_QUARANTINE} objects or {MAX_QUARANTINE_BYTES} bytes not covered by any grant"
            )));
        }
        let cids: Vec<Cid> = batch.objects().iter().map(|(cid, _)| cid.clone()).collect();
        self.quarantine_bytes += incoming;
        self.quarantine.extend(uncovered);
        // Who sent what is noted for the objects sent; the hub's own notes of the recipes
        // among them go in the same write (no one sent those).
        let local = self.notes(&cids);
        let batch = match self.recipe_notes(&recipes, batch.limits()) {
            Some(notes) => Verified::concat(vec![batch, notes]),
            None => batch,
        };
        Ok(Taken {
            local,
            batch,
            refused,
            policy,
        })
    }

    /// On a hub: why a grant or group statement of the peer's (`value`) is refused — it
    /// would show another person what that person sent the hub itself (see
    /// [`crate::hub::names_others_own`]); `None` when it may be taken.
    async fn names_others_own(
        &self,
        store: &dyn Store,
        value: &Value,
        batch: &crate::hub::GroupPolicy,
    ) -> Result<Option<String>> {
        if !self.hub {
            return Ok(None);
        }
        let granter = self.coverage.peer_person();
        Ok(crate::hub::names_others_own(store, &granter, value, batch)
            .await?
            .map(|owner| format!("grants {} what that person sent this hub itself", owner.0)))
    }

    /// On a hub with a quota: why `cid`, covered, is not taken — it is not visible to the
    /// peer's person yet and no room is left; `None` when it fits (it is then counted).
    async fn past_quota(&self, cid: &Cid) -> Option<String> {
        let quota = self.quota?;
        let mut view = self.view.lock().await;
        (!view.set.contains(cid) && !view.set.reserve(cid, quota))
            .then(|| format!("past the quota of {quota} objects one person may store on this hub"))
    }

    /// On a hub: its notes that the peer's person sent `recipes` (see
    /// [`crate::hub::RECIPE_NOTE_TYPE`]), verified; `None` when there are none.
    fn recipe_notes(&self, recipes: &[Cid], limits: &chum_object::Limits) -> Option<Verified> {
        if recipes.is_empty() {
            return None;
        }
        let person = self.coverage.peer_person();
        let notes: Vec<(Cid, Vec<u8>)> = recipes
            .iter()
            .filter_map(|recipe| crate::hub::recipe_note(&person, recipe))
            .collect();
        Verified::check(notes, limits).ok()
    }

    /// After objects of the peer's were stored: stores the held ones they cover now (a grant,
    /// or a referrer, that arrived later than its objects), repeating until nothing changes.
    /// Returns those that became shared here.
    pub async fn promote(&mut self, store: &dyn Store) -> chum_store::Result<Vec<Cid>> {
        let mut new = Vec::new();
        while !self.quarantine.is_empty() {
            let mut promoted = Vec::new();
            let held = std::mem::take(&mut self.quarantine);
            // Grants and statements held, considered together (as those of one batch are).
            let together = if self.hub {
                let values: Vec<Value> = held
                    .iter()
                    .filter_map(|(cid, bytes)| Coverage::decode(cid, bytes))
                    .filter(is_group_policy)
                    .collect();
                crate::hub::GroupPolicy::of(&values)
            } else {
                crate::hub::GroupPolicy::default()
            };
            for (cid, bytes) in held {
                let value = Coverage::decode(&cid, &bytes);
                let covered = self
                    .coverage
                    .check(store, &cid, value.as_ref())
                    .await
                    .map_err(backend)?;
                if covered
                    && let Some(value) = &value
                    && is_group_policy(value)
                    && self
                        .names_others_own(store, value, &together)
                        .await
                        .map_err(backend)?
                        .is_some()
                {
                    // Refused as it would have been on arrival: dropped, never stored.
                    self.quarantine_bytes -= bytes.len();
                    continue;
                }
                // Past the quota: held (and dropped with the session), as if not covered.
                if covered && self.past_quota(&cid).await.is_none() {
                    self.quarantine_bytes -= bytes.len();
                    promoted.push((cid, bytes));
                } else {
                    self.quarantine.push((cid, bytes));
                }
            }
            if promoted.is_empty() {
                break;
            }
            let recipes: Vec<Cid> = if self.hub {
                promoted
                    .iter()
                    .filter(|(cid, bytes)| {
                        Coverage::decode(cid, bytes)
                            .as_ref()
                            .and_then(Value::type_name)
                            == Some(chum_object::recipe::RECIPE_TYPE)
                    })
                    .map(|(cid, _)| cid.clone())
                    .collect()
            } else {
                Vec::new()
            };
            // The hub's notes of recipes among them go in the same write, so that no process
            // hears of an object before the recipe that covers it.
            let recorded = promoted.len();
            if let Some(notes) = self.recipe_notes(&recipes, &store.limits()) {
                promoted.extend(notes.into_parts().0);
            }
            let changed = self.put_recording(store, &promoted, recorded).await?;
            new.extend(
                promoted
                    .iter()
                    .zip(changed)
                    .filter(|(_, changed)| *changed)
                    .map(|((cid, _), _)| cid.clone()),
            );
        }
        Ok(new)
    }

    /// [`Granted::take`], the write, and [`Granted::promote`] in one.
    async fn store(
        &mut self,
        store: &dyn Store,
        batch: Verified,
    ) -> chum_store::Result<(Answer, Vec<Cid>)> {
        let mut taken = match self.take(store, batch).await {
            Ok(taken) => taken,
            Err(answer) => return Ok((answer, Vec::new())),
        };
        let answer = match std::mem::take(&mut taken.refused) {
            refused if refused.is_empty() => Answer::Stored,
            refused => Answer::StoredExcept(refused),
        };
        let mut new = Vec::new();
        if taken.batch.is_empty() {
            return Ok((answer, new));
        }
        let cids: Vec<Cid> = taken
            .batch
            .objects()
            .iter()
            .map(|(cid, _)| cid.clone())
            .collect();
        let changed = store
            .put_verified_with_local(taken.batch, Scope::Shared, &taken.local)
            .await?;
        new.extend(
            cids.into_iter()
                .zip(changed)
                .filter(|(_, changed)| *changed)
                .map(|(cid, _)| cid),
        );
        new.extend(self.promote(store).await?);
        Ok((answer, new))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::grant::Access;
    use chum_object::Object;
    use chum_store::MemoryStore;
    use futures::executor::block_on;

    /// On a hub, the sessions of one person's instances share one visible set (computed once);
    /// another person's session has its own; a set goes with its last session.
    #[test]
    fn a_hub_shares_a_persons_set_among_its_sessions() {
        let store = MemoryStore::new();
        let hub = Identity::new_person(1_000).unwrap();
        block_on(hub.save(&store, None)).unwrap();
        let mut policy = Policy::default();
        policy.serve_as_hub(true);
        let key = |seed: u8| ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let bob_key = key(1);
        let device = |instance: u8| {
            let bob = Identity::from_keys(bob_key.clone(), key(instance), 1_000).unwrap();
            let noise = [instance; 32];
            (crate::handshake::payload(&bob, &noise).unwrap(), noise)
        };
        let carol = Identity::from_keys(key(9), key(10), 1_000).unwrap();
        let mut views = HubViews::new();
        let admit = |views: &mut HubViews, (payload, noise): (Vec<u8>, [u8; 32])| {
            let admission = block_on(admit_peer(
                &store, &hub, &policy, views, &payload, &noise, 2_000,
            ))
            .unwrap();
            match admission.access {
                PeerAccess::Granted(granted) => granted,
                PeerAccess::Full => panic!("another person"),
            }
        };
        let bob_laptop = admit(&mut views, device(2));
        let bob_phone = admit(&mut views, device(3));
        let carol_noise = [10; 32];
        let carol_session = admit(
            &mut views,
            (
                crate::handshake::payload(&carol, &carol_noise).unwrap(),
                carol_noise,
            ),
        );
        assert!(bob_laptop.is_hub());
        assert!(bob_laptop.shares_view(&bob_phone));
        assert_eq!(bob_laptop.view_id(), bob_phone.view_id());
        assert!(!bob_laptop.shares_view(&carol_session));
        assert_eq!(views.len(), 2);

        drop(carol_session);
        assert_eq!(views.len(), 1);
        drop(bob_laptop);
        assert_eq!(views.len(), 1, "the phone's session still uses it");
        // After the rules change (or a missed update), a new session computes its own set,
        // which the next ones share.
        views.clear();
        let bob_tablet = admit(&mut views, device(5));
        assert!(!bob_tablet.shares_view(&bob_phone));
        let bob_watch = admit(&mut views, device(6));
        assert!(bob_watch.shares_view(&bob_tablet));
        drop((bob_phone, bob_tablet, bob_watch));
        assert!(views.is_empty());
        // Not a hub: every session computes its own.
        let mut plain = HubViews::new();
        let (payload, noise) = device(4);
        let mut admit_plain = || {
            block_on(admit_peer(
                &store,
                &hub,
                &Policy::default(),
                &mut plain,
                &payload,
                &noise,
                2_000,
            ))
            .unwrap()
            .access
        };
        match (admit_plain(), admit_plain()) {
            (PeerAccess::Granted(first), PeerAccess::Granted(second)) => {
                assert!(!first.is_hub());
                assert!(!first.shares_view(&second));
            }
            _ => panic!("another person"),
        }
        assert!(plain.is_empty());
    }

    /// What a stranger sees while sending grants to Alice that name `targets`, in batches of
    /// five: the answer to each batch.
    fn answers_to_grants_naming(targets: &[Cid], held: bool) -> Vec<String> {
        let store = MemoryStore::new();
        let alice = Identity::new_person(1_000).unwrap();
        block_on(alice.save(&store, None)).unwrap();
        if held {
            let objects: Vec<(Cid, Vec<u8>)> = (0..targets.len())
                .map(|i| {
                    let object = probe(i);
                    (object.cid().clone(), object.bytes().to_vec())
                })
                .collect();
            block_on(store.put_scoped(&objects, Scope::Shared)).unwrap();
        }
        let mallory = Identity::new_person(1_000).unwrap();
        let static_public = [7u8; 32];
        let payload = crate::handshake::payload(&mallory, &static_public).unwrap();
        let admission = block_on(admit_peer(
            &store,
            &alice,
            &Policy::default(),
            &mut HubViews::new(),
            &payload,
            &static_public,
            2_000,
        ))
        .unwrap();
        let PeerAccess::Granted(mut granted) = admission.access else {
            panic!("a stranger");
        };
        granted.limit = 20;
        let mut access = PeerAccess::Granted(granted);
        let grants: Vec<(Cid, Vec<u8>)> = targets
            .iter()
            .map(|target| {
                let grant = Access::issue(
                    mallory.person_key().unwrap(),
                    target.clone(),
                    alice.person().0,
                    3_000,
                )
                .unwrap();
                (grant.object.cid().clone(), grant.object.bytes().to_vec())
            })
            .collect();
        grants
            .chunks(5)
            .map(|chunk| {
                let batch = Verified::check(chunk.to_vec(), &store.limits()).unwrap();
                let (answer, _) = block_on(access.store_checked(&store, batch));
                match answer {
                    Answer::Stored => "stored".to_owned(),
                    Answer::Invalid(_) => "invalid".to_owned(),
                    other => format!("{other:?}"),
                }
            })
            .collect()
    }

    fn probe(i: usize) -> Object {
        let value =
            chum_object::dagjson::from_str(&format!(r#"{{"$type":"Message","text":"probe {i}"}}"#))
                .unwrap();
        Object::from_value(&value).unwrap()
    }

    /// Finding 6: grants naming objects Alice holds are not taken (the peer would write into
    /// her data), others are — but the stranger cannot tell which from the answers: the limit
    /// is reached after the same batch either way.
    #[test]
    fn a_stranger_cannot_tell_from_the_answers_what_is_held() {
        let targets: Vec<Cid> = (0..40).map(|i| probe(i).cid().clone()).collect();
        let held = answers_to_grants_naming(&targets, true);
        let not_held = answers_to_grants_naming(&targets, false);
        assert_eq!(held, not_held);
        assert!(held.contains(&"invalid".to_owned()), "{held:?}");
    }
}
