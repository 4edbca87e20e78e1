//! The [`Instance`]: one instance of a person over one store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

#[cfg(feature = "net")]
use chum_access::Invitation;
use chum_access::{Access, AccessRevocation, Identity, InstanceId, PersonId};
use chum_crdt::collection::entry_clock;
use chum_crdt::{Clock, Collection, Resolver, Timestamp, Version, preset};
use chum_object::recipe::{Recipe, RecipeError, Strategy};
use chum_object::{Cid, Map, Object, Value, dagcbor};
use chum_store::decorators::ClosableStore;
use chum_store::{Query, Scope, Store};
use tokio::sync::{broadcast, oneshot};

use crate::error::{Error, Result};
use crate::events::{Event, Events, Origin};

/// The `$type` of recipe objects.
const RECIPE_TYPE: &str = chum_object::recipe::RECIPE_TYPE;
/// The instance-local key of the last clock reading (so clocks never run backwards across
/// restarts).
const CLOCK_KEY: &[u8] = b"chum/clock";
/// Instance-local marks of recipes this instance trusts (registered here, or received from an
/// instance of the same person): key = prefix ‖ recipe CID bytes. Recipes from anyone else are
/// stored like any object but never change how this instance validates or merges.
pub(crate) const TRUSTED_RECIPE_PREFIX: &[u8] = b"chum/recipe/";

pub(crate) fn trusted_key(cid: &Cid) -> Vec<u8> {
    let mut key = TRUSTED_RECIPE_PREFIX.to_vec();
    key.extend_from_slice(cid.as_bytes());
    key
}

/// The file name of the redb store inside a store directory ([`Builder::path`]).
#[cfg(feature = "native")]
pub const STORE_FILE: &str = "chum.redb";

/// How many "held by a peer" facts are remembered for receipts made after the fact.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
const HELD_MEMORY: usize = 1 << 16;
/// Events buffered per subscriber before it is told it lagged.
pub const DEFAULT_EVENT_CAPACITY: usize = 4_096;

/// How an [`Instance`] is opened. See [`Instance::builder`].
#[must_use]
pub struct Builder {
    store: Option<Arc<dyn Store>>,
    #[cfg(feature = "native")]
    path: Option<std::path::PathBuf>,
    #[cfg(feature = "postgres")]
    postgres: Option<String>,
    identity: Option<Identity>,
    passphrase: Option<String>,
    recipes: Vec<Recipe>,
    upgrades: Vec<(String, u64, Upgrade)>,
    event_capacity: usize,
    #[cfg(feature = "net")]
    join: Option<(Invitation, Option<String>)>,
    /// Only open a store that already holds an identity.
    existing: bool,
    time: Option<TimeSource>,
    coalesce: Option<Duration>,
    /// How the network serves and forwards (hubs).
    #[cfg(feature = "net")]
    hubs: crate::net::Hubs,
}

/// Turns an object written under an older recipe version into the current shape.
pub type Upgrade = Arc<dyn Fn(Value) -> std::result::Result<Value, String> + Send + Sync>;

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("recipes", &self.recipes.len())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Opens on this store (any [`Store`]: `MemoryStore`, `RedbStore`, …).
    pub fn store(mut self, store: Arc<dyn Store>) -> Builder {
        self.store = Some(store);
        self
    }

    /// Opens an in-memory store (for tests: nothing survives the process).
    pub fn memory(self) -> Builder {
        self.store(Arc::new(chum_store::MemoryStore::new()))
    }

    /// Opens (or creates) the redb store in directory `dir` (file `chum.redb`).
    #[cfg(feature = "native")]
    pub fn path(mut self, dir: impl AsRef<std::path::Path>) -> Builder {
        self.path = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Opens (or creates) the store in PostgreSQL at `url` (`postgres://…`; the optional
    /// parameter `schema` names the schema, default `chum`): see
    /// [`PostgresStore`](chum_store_postgres::PostgresStore). Several processes may open the
    /// same store at once — e.g. hub processes behind one address — and each offers its
    /// peers live what the others stored.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: impl Into<String>) -> Builder {
        self.postgres = Some(url.into());
        self
    }

    /// Uses this identity (saved in the store); without one, the store's saved identity is
    /// loaded, or a new person is created.
    pub fn identity(mut self, identity: Identity) -> Builder {
        self.identity = Some(identity);
        self
    }

    /// Seals the secret keys at rest with this passphrase (and opens them with it).
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> Builder {
        self.passphrase = Some(passphrase.into());
        self
    }

    /// Registers a recipe (the seed's preset recipes are always known).
    pub fn recipe(mut self, recipe: Recipe) -> Builder {
        self.recipes.push(recipe);
        self
    }

    /// Registers the recipe of a typed document (see [`Document`](crate::Document)); the same
    /// as `.recipe(T::recipe())`.
    pub fn document<T: crate::Document>(self) -> Builder {
        self.recipe(T::recipe())
    }

    /// When the store holds no identity yet: joins the person of `invitation` as a new
    /// instance — connects to the address the invitation names, pairs, takes that person's
    /// objects and recipes in one first sync, and saves the new identity (sealed with the
    /// [`passphrase`](Builder::passphrase) when given). A store that already holds an
    /// identity opens as itself and the invitation is not used, so the same code serves the
    /// first start and every later one.
    #[cfg(feature = "net")]
    pub fn join(mut self, invitation: Invitation) -> Builder {
        self.join = Some((invitation, None));
        self
    }

    /// [`Builder::join`], connecting to `address` instead of the address in the invitation.
    #[cfg(feature = "net")]
    pub fn join_at(mut self, invitation: Invitation, address: impl Into<String>) -> Builder {
        self.join = Some((invitation, Some(address.into())));
        self
    }

    /// Registers an upgrade for objects of `type_name` written under recipe version
    /// `from_version`: [`Instance::read`] and [`Instance::state`] pass an object that does not
    /// satisfy the current recipe through the upgrades (oldest first) until it does. Stored
    /// bytes never change (they are content-addressed); upgrades shape what the app reads.
    pub fn upgrade(
        mut self,
        type_name: impl Into<String>,
        from_version: u64,
        upgrade: impl Fn(Value) -> std::result::Result<Value, String> + Send + Sync + 'static,
    ) -> Builder {
        self.upgrades
            .push((type_name.into(), from_version, Arc::new(upgrade)));
        self
    }

    /// Reads the wall-clock time (ms since the Unix epoch) from `source` instead of the system
    /// clock. Needed on wasm32, which has no clock of its own: a browser driver passes
    /// `Date.now()`. (The hybrid logical clock never runs backwards whatever the source says.)
    pub fn time_source(mut self, source: TimeSource) -> Builder {
        self.time = Some(source);
        self
    }

    /// Coalesces this instance's quick successive edits of one object, like a debounce with a
    /// deadline: a version [`Instance::update`] writes is pushed to live peers `window` after
    /// the first edit of the object not pushed yet, and an update within `window` of the
    /// previous one, while that version is still waiting (the object's only head, not pushed,
    /// held by no peer), replaces it with one version carrying both changes (the older one is
    /// deleted from the store). Peers so receive one version per object per window instead of
    /// one per edit, at most one window late; merging stays per field: the replacement has the
    /// same parents, every field of both and a later clock. Every update is durable when it
    /// returns. A receipt of a replaced version follows its replacement
    /// ([`Written::held_by_peer`]); [`Instance::get`] of its CID fails with `NotFound`. Edits
    /// of set fields and tombstones are never coalesced. Off by default (every update is its own
    /// version, pushed at once).
    pub fn coalesce(mut self, window: Duration) -> Builder {
        self.coalesce = Some(window);
        self
    }

    /// Serves as a **hub**: an always-on instance that persons grant access to — it stores
    /// what they share with it (`grant(target, hub's person)`) and forwards it to the persons
    /// they grant it to, answering each peer from what that peer's person may see: what it
    /// shared with the hub itself, and what others granted it (a grant counts for a target
    /// only once its granter sent the hub that target). Typically over a PostgreSQL store
    /// (`Builder::postgres`, feature `postgres`) served by several processes.
    #[cfg(feature = "net")]
    pub fn hub(mut self) -> Builder {
        self.hubs.serve = true;
        self
    }

    /// Serves only instances of `persons` besides this person's own: a peer of any other
    /// person is refused when its handshake shows who it is, before anything of its is stored
    /// (e.g. the persons a hub's operator admits; without it a hub serves anyone who grants it
    /// something). Peers of those persons see and send what grants allow, as always.
    #[cfg(feature = "net")]
    pub fn admit_only(mut self, persons: impl IntoIterator<Item = PersonId>) -> Builder {
        self.hubs.admit = Some(persons.into_iter().collect());
        self
    }

    /// On a hub ([`Builder::hub`]): stores at most `objects` objects sent by one person —
    /// whatever it sends through any of its instances and any process serving the store
    /// counts, grants and identity objects too, once each. Beyond, what the person sends is
    /// refused object by object with a reason (its app hears [`Event::PeerRefused`]); what it
    /// sent before stays.
    #[cfg(feature = "net")]
    pub fn hub_quota(mut self, objects: u64) -> Builder {
        self.hubs.quota = Some(objects);
        self
    }

    /// Uses `hub` (a hub's person) as a hub: instances of it also see this instance's grants,
    /// and their revocations, on what this person granted the hub — so the hub forwards that
    /// data to those grantees. Without it, a hub stores what it is granted but cannot tell
    /// who else may see it.
    #[cfg(feature = "net")]
    pub fn use_hub(mut self, hub: PersonId) -> Builder {
        self.hubs.used.push(hub);
        self
    }

    /// The limits of [`Instance::listen`] and [`Instance::accept`]: sessions at once, and
    /// connections per address (a burst, then a sustained rate). The defaults suit a peer
    /// on the open internet; a hub behind a load balancer (every device from one address)
    /// or serving thousands of devices raises them.
    #[cfg(feature = "native")]
    pub fn listener_limits(mut self, limits: chum_net::listener::ListenerLimits) -> Builder {
        self.hubs.listener = Some(limits);
        self
    }

    /// The limits of sessions not admitted yet (in all and per address) and of sessions with
    /// strangers (see [`chum_net::HostLimits`]).
    #[cfg(feature = "net")]
    pub fn host_limits(mut self, limits: chum_net::HostLimits) -> Builder {
        self.hubs.host = Some(limits);
        self
    }

    /// Events each subscriber may fall behind by before it gets [`Event::Lagged`].
    pub fn event_capacity(mut self, capacity: usize) -> Builder {
        self.event_capacity = capacity.max(16);
        self
    }

    /// Opens the instance of a store that already holds one: [`Error::NotFound`] when the
    /// store (at a [`path`](Builder::path): its directory or file) does not exist or holds no
    /// identity yet; nothing is created. ([`Error::StoreLocked`] when another instance has it
    /// open, as with [`Builder::open`].)
    pub async fn open_existing(mut self) -> Result<Instance> {
        self.existing = true;
        self.open().await
    }

    /// Opens the instance. With the `native` feature this must run inside a tokio runtime
    /// (the instance runs its sessions there).
    pub async fn open(self) -> Result<Instance> {
        #[cfg(not(target_arch = "wasm32"))]
        let time: TimeSource = self
            .time
            .clone()
            .unwrap_or_else(|| Arc::new(system_time_ms));
        #[cfg(target_arch = "wasm32")]
        let time: TimeSource = self.time.clone().ok_or_else(|| {
            Error::Invalid(
                "wasm32 has no clock: give the instance a time source (Builder::time_source), e.g. Date.now()"
                    .into(),
            )
        })?;
        #[cfg(feature = "postgres")]
        let store = match (self.store, &self.postgres) {
            (None, Some(url)) => {
                let options = chum_store_postgres::Options::from_url(url)?;
                if self.existing && !options.exists().await? {
                    return Err(Error::NotFound(format!(
                        "no chum store in schema {} of that database (create one first)",
                        options.schema()
                    )));
                }
                Some(Arc::new(options.open().await?) as Arc<dyn Store>)
            }
            (store, _) => store,
        };
        #[cfg(not(feature = "postgres"))]
        let store = self.store;
        let store: Arc<dyn Store> = match store {
            Some(store) => store,
            #[cfg(feature = "native")]
            None => match &self.path {
                Some(dir) if self.existing && !dir.join(STORE_FILE).exists() => {
                    return Err(Error::NotFound(format!(
                        "no chum store in {} (create one first)",
                        dir.display()
                    )));
                }
                Some(dir) => {
                    let mut builder = std::fs::DirBuilder::new();
                    builder.recursive(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::DirBuilderExt;
                        // Keys may be stored plainly: only the owner may read the store.
                        builder.mode(0o700);
                    }
                    builder.create(dir).map_err(|error| {
                        Error::Storage(chum_store::Error::Backend(format!(
                            "cannot create {}: {error}",
                            dir.display()
                        )))
                    })?;
                    let file = dir.join(STORE_FILE);
                    let store = chum_store_redb::RedbStore::open(&file)?;
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        // Keys may be stored plainly: only the owner may read the file.
                        let _ =
                            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
                    }
                    Arc::new(store)
                }
                None => Arc::new(chum_store::MemoryStore::new()),
            },
            #[cfg(not(feature = "native"))]
            None => Arc::new(chum_store::MemoryStore::new()),
        };
        let passphrase = self.passphrase.as_deref();
        let identity = match self.identity {
            Some(identity) => {
                identity.save(&*store, passphrase).await?;
                identity
            }
            None => match Identity::load(&*store, passphrase).await? {
                Some(identity) => identity,
                None if self.existing => {
                    return Err(Error::NotFound(
                        "this store holds no identity yet (create one first)".into(),
                    ));
                }
                None => {
                    #[cfg(feature = "net")]
                    let joined = match self.join {
                        Some((invitation, address)) => Some(
                            crate::net::join_person(
                                &store,
                                invitation,
                                address.as_deref(),
                                passphrase,
                            )
                            .await?,
                        ),
                        None => None,
                    };
                    #[cfg(not(feature = "net"))]
                    let joined: Option<Identity> = None;
                    match joined {
                        Some(identity) => identity,
                        None => {
                            let identity = Identity::new_person(time())?;
                            identity.save(&*store, passphrase).await?;
                            identity
                        }
                    }
                }
            },
        };
        let instance = Instance::start(
            store,
            identity,
            self.recipes,
            self.event_capacity,
            time,
            self.coalesce,
            #[cfg(feature = "net")]
            self.hubs,
        )
        .await?;
        let mut upgrades = self.upgrades;
        upgrades.sort_by_key(|(_, from, _)| *from);
        if let Ok(mut table) = instance.inner.upgrades.write() {
            for (type_name, _, upgrade) in upgrades {
                table.entry(type_name).or_default().push(upgrade);
            }
        }
        Ok(instance)
    }
}

/// Facts "peer P holds CID" for receipts, and receipts waiting for one.
#[derive(Default)]
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) struct Held {
    /// Set by `close`: no receipt waits any more.
    closed: bool,
    known: HashMap<Cid, InstanceId>,
    order: VecDeque<Cid>,
    waiting: HashMap<Cid, Vec<oneshot::Sender<InstanceId>>>,
    /// Versions replaced by coalescing → their replacement (receipts follow them), oldest
    /// first in `replaced_order`, at most `HELD_MEMORY`.
    replaced: HashMap<Cid, Cid>,
    replaced_order: VecDeque<Cid>,
}

#[cfg_attr(not(feature = "net"), allow(dead_code))]
impl Held {
    /// `old` was replaced by `new` (coalescing): receipts waiting on it wait on `new`.
    pub(crate) fn replace(&mut self, old: &Cid, new: &Cid) {
        if let Some(waiters) = self.waiting.remove(old) {
            self.waiting.entry(new.clone()).or_default().extend(waiters);
        }
        if self.replaced.insert(old.clone(), new.clone()).is_none() {
            self.replaced_order.push_back(old.clone());
            if self.replaced_order.len() > HELD_MEMORY
                && let Some(gone) = self.replaced_order.pop_front()
            {
                self.replaced.remove(&gone);
            }
        }
    }

    /// What `cid` became: itself, or the version that (through coalescing) replaced it.
    fn current(&self, cid: &Cid) -> Cid {
        let mut cid = cid;
        // Chains are short-lived and bounded by the table; a cycle is impossible (a
        // replacement is always a new version) but is cut off anyway.
        for _ in 0..HELD_MEMORY {
            match self.replaced.get(cid) {
                Some(next) => cid = next,
                None => break,
            }
        }
        cid.clone()
    }

    pub(crate) fn record(&mut self, cid: &Cid, peer: InstanceId) {
        if let Some(waiters) = self.waiting.remove(cid) {
            for waiter in waiters {
                let _ = waiter.send(peer);
            }
        }
        if self.known.insert(cid.clone(), peer).is_none() {
            self.order.push_back(cid.clone());
            if self.order.len() > HELD_MEMORY
                && let Some(old) = self.order.pop_front()
            {
                self.known.remove(&old);
            }
        }
    }
}

pub(crate) struct Inner {
    /// The store, behind [`ClosableStore`] so that [`Instance::close`] really closes it
    /// whatever handles (receipts, clones) remain.
    pub(crate) store: Arc<dyn Store>,
    closable: Arc<ClosableStore>,
    pub(crate) identity: Identity,
    /// The recipes this instance validates and merges with (shared with the receive path's
    /// check, so a recipe registered at run time applies to what peers send at once).
    pub(crate) recipes: chum_store::index::RecipeTable,
    clock: Arc<Mutex<Clock>>,
    /// The wall-clock time source.
    time: TimeSource,
    /// See [`Builder::coalesce`].
    coalesce: Option<Duration>,
    /// With coalescing: objects (ID hash) whose latest versions wait to be pushed to peers,
    /// with when the first of them was written (ms) and the one to push.
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    pending_pushes: Mutex<HashMap<Cid, (u64, Cid)>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) held: Mutex<Held>,
    /// Shared objects of this instance no other instance is known to hold.
    pub(crate) at_risk: crate::at_risk::AtRisk,
    upgrades: RwLock<BTreeMap<String, Vec<Upgrade>>>,
    #[cfg(feature = "net")]
    pub(crate) net: crate::net::Net,
}

/// One instance of a person over one store: objects, versions, collections, events, and —
/// with the `native` feature — listening, connecting and pairing. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Instance {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("person", &self.inner.identity.person())
            .field("instance", &self.inner.identity.instance())
            .finish_non_exhaustive()
    }
}

/// The result of a write: the CID, and receipts for what happened to it.
#[derive(Debug)]
#[must_use = "a receipt tells whether the write is durable or held by a peer"]
pub struct Written {
    cid: Cid,
    id: Option<Cid>,
    new: bool,
    /// Not a strong handle: a receipt never keeps the instance (and its store) open.
    instance: Weak<Inner>,
}

impl Written {
    /// The CID of the object (for a versioned type: of the new version).
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// For a versioned type: the ID hash of the object.
    pub fn id(&self) -> Option<&Cid> {
        self.id.as_ref()
    }

    /// Whether the object was new here (storing an object twice is one object).
    pub fn is_new(&self) -> bool {
        self.new
    }

    /// Resolves once the object is committed to the local store. Writes return only after
    /// their commit, so this is ready at once; it exists so code can say what it relies on.
    pub async fn durable(&self) -> Result<()> {
        Ok(())
    }

    /// Resolves with the first peer instance known to have durably stored the object (it
    /// acknowledged storing it, or sent it here). Waits as long as it takes: wrap it in a
    /// timeout where that matters. Fails with [`Error::Closed`] once the instance is closed.
    pub async fn held_by_peer(&self) -> Result<InstanceId> {
        let inner = self.instance.upgrade().ok_or(Error::Closed)?;
        Instance { inner }.held_by_peer(&self.cid).await
    }
}

/// Where an instance reads the wall-clock time (ms since the Unix epoch) for its hybrid
/// logical clock and the `created` time of what it signs. Natively the system clock; in the
/// browser the driver gives one (`Date.now()`), see [`Builder::time_source`].
#[cfg(not(target_arch = "wasm32"))]
pub type TimeSource = Arc<dyn Fn() -> u64 + Send + Sync>;
/// Where an instance reads the wall-clock time (ms since the Unix epoch) for its hybrid
/// logical clock and the `created` time of what it signs. Natively the system clock; in the
/// browser the driver gives one (`Date.now()`), see [`Builder::time_source`].
#[cfg(target_arch = "wasm32")]
pub type TimeSource = Arc<dyn Fn() -> u64>;

/// The system clock, where there is one.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn system_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Page size of store scans.
const PAGE: usize = 4_096;

/// Every CID of a paged store query: `page(after)` gives the next page after a CID.
async fn paged<F, Fut>(mut page: F) -> Result<Vec<Cid>>
where
    F: FnMut(Option<Cid>) -> Fut,
    Fut: std::future::Future<Output = chum_store::Result<Vec<Cid>>>,
{
    let mut all: Vec<Cid> = Vec::new();
    loop {
        let next = page(all.last().cloned()).await?;
        let done = next.len() < PAGE;
        all.extend(next);
        if done {
            return Ok(all);
        }
    }
}

/// Marks every recipe stored in `store` as trusted (for a store that was just filled by the
/// first sync with an instance of its own person).
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub(crate) async fn trust_stored_recipes(store: &dyn Store) -> Result<()> {
    for cid in all_of_type(store, RECIPE_TYPE).await? {
        store.local_put(&trusted_key(&cid), b"").await?;
    }
    Ok(())
}

/// The CIDs of every stored object of a type, in CID order.
async fn all_of_type(store: &dyn Store, type_name: &str) -> Result<Vec<Cid>> {
    paged(|after| async move {
        store
            .query(Query::ByType {
                type_name,
                after: after.as_ref(),
                limit: PAGE,
            })
            .await
    })
    .await
}

fn decode(bytes: &[u8]) -> Result<Value> {
    dagcbor::decode_with_limits(bytes, &chum_store::index::widest_limits())
        .map_err(|error| Error::Decode(error.to_string()))
}

impl Instance {
    /// How to open an instance.
    pub fn builder() -> Builder {
        Builder {
            store: None,
            #[cfg(feature = "native")]
            path: None,
            #[cfg(feature = "postgres")]
            postgres: None,
            identity: None,
            passphrase: None,
            recipes: Vec::new(),
            upgrades: Vec::new(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            #[cfg(feature = "net")]
            join: None,
            existing: false,
            time: None,
            coalesce: None,
            #[cfg(feature = "net")]
            hubs: crate::net::Hubs::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        store: Arc<dyn Store>,
        identity: Identity,
        recipes: Vec<Recipe>,
        event_capacity: usize,
        time: TimeSource,
        coalesce: Option<Duration>,
        #[cfg(feature = "net")] hubs: crate::net::Hubs,
    ) -> Result<Instance> {
        let closable = Arc::new(ClosableStore::new(store));
        let store: Arc<dyn Store> = Arc::clone(&closable) as Arc<dyn Store>;
        let mut known: BTreeMap<String, Recipe> = BTreeMap::new();
        for recipe in preset::seed().into_iter().chain(chum_access::recipes()) {
            known.insert(recipe.name.clone(), recipe);
        }
        // Recipes stored earlier (by this app, or received from peers) are known too.
        for cid in all_of_type(&*store, RECIPE_TYPE).await? {
            if store.local_get(&trusted_key(&cid)).await?.is_none() {
                continue;
            }
            if let Ok(bytes) = store.get(&cid).await
                && let Ok(value) = decode(&bytes)
                && let Ok(recipe) = Recipe::from_value(&value)
            {
                let newer = known
                    .get(&recipe.name)
                    .is_none_or(|old| old.version <= recipe.version);
                if newer {
                    known.insert(recipe.name.clone(), recipe);
                }
            }
        }
        let mut to_store = Vec::new();
        for recipe in recipes {
            recipe.check().map_err(Error::from)?;
            let object = Object::from_value(&recipe.to_value())
                .map_err(|error| Error::Invalid(error.to_string()))?;
            to_store.push((object.cid().clone(), object.into_bytes()));
            known.insert(recipe.name.clone(), recipe);
        }
        if !to_store.is_empty() {
            store.put_many(&to_store).await?;
            for (cid, _) in &to_store {
                store.local_put(&trusted_key(cid), b"").await?;
            }
        }
        let last = match store.local_get(CLOCK_KEY).await? {
            Some(bytes) => decode(&bytes)
                .ok()
                .and_then(|value| Timestamp::from_value(&value))
                .unwrap_or_default(),
            None => Timestamp::default(),
        };
        let clock = Arc::new(Mutex::new(Clock::resume(last, 60_000)));
        let recipes: chum_store::index::RecipeTable = Arc::new(RwLock::new(known));
        let at_risk = crate::at_risk::AtRisk::load(&*store).await?;
        #[cfg(feature = "net")]
        let net = crate::net::Net::new(
            &store,
            &identity,
            &recipes,
            Arc::clone(&clock),
            Arc::clone(&time),
            hubs,
        );
        let inner = Arc::new(Inner {
            store,
            closable,
            identity,
            recipes,
            clock,
            time,
            coalesce,
            pending_pushes: Mutex::new(HashMap::new()),
            events: broadcast::channel(event_capacity).0,
            held: Mutex::new(Held::default()),
            at_risk,
            upgrades: RwLock::new(BTreeMap::new()),
            #[cfg(feature = "net")]
            net,
        });
        let instance = Instance { inner };
        #[cfg(feature = "net")]
        instance.start_net();
        Ok(instance)
    }

    /// A handle that does not keep the instance open (for streams that outlive a call).
    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The instance behind `weak`, while it is open.
    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<Instance> {
        let inner = weak.upgrade()?;
        (!inner.closable.is_closed()).then_some(Instance { inner })
    }

    /// The wall-clock time now, from the instance's [`TimeSource`] (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        (self.inner.time)()
    }

    /// This instance's identity (person, instance, certificate).
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The person.
    pub fn person(&self) -> PersonId {
        self.inner.identity.person()
    }

    /// This instance.
    pub fn instance_id(&self) -> InstanceId {
        self.inner.identity.instance()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Events from now on (see [`Events`]).
    pub fn events(&self) -> Events {
        Events::new(self.inner.events.subscribe())
    }

    pub(crate) fn emit(&self, event: Event) {
        let _ = self.inner.events.send(event);
    }

    /// The recipe of a type, if known.
    pub fn recipe(&self, type_name: &str) -> Option<Recipe> {
        self.inner
            .recipes
            .read()
            .ok()
            .and_then(|recipes| recipes.get(type_name).cloned())
    }

    /// Registers (or upgrades to) a recipe at run time; it is stored, so peers learn it.
    pub async fn register(&self, recipe: Recipe) -> Result<Cid> {
        recipe.check().map_err(Error::from)?;
        let object = Object::from_value(&recipe.to_value())
            .map_err(|error| Error::Invalid(error.to_string()))?;
        let cid = object.cid().clone();
        self.write(vec![(cid.clone(), object.into_bytes())], Scope::Shared)
            .await?;
        self.inner.store.local_put(&trusted_key(&cid), b"").await?;
        self.use_recipe(recipe, true);
        Ok(cid)
    }

    /// Validates and merges with `recipe` from now on — also for objects received from peers
    /// and for what another person may see through grants. `replace`: even when an equal or
    /// newer version is known (the app's own choice); otherwise only a newer one is taken.
    pub(crate) fn use_recipe(&self, recipe: Recipe, replace: bool) {
        if let Ok(mut recipes) = self.inner.recipes.write() {
            // From peers only a strictly newer version (two different recipes of one version
            // would otherwise replace each other back and forth).
            let newer = recipes
                .get(&recipe.name)
                .is_none_or(|old| old.version < recipe.version);
            if !(replace || newer) {
                return;
            }
            #[cfg(feature = "net")]
            self.inner.net.node.add_recipes([&recipe]);
            recipes.insert(recipe.name.clone(), recipe);
        }
    }

    /// Stores objects durably (shared ones pushed to live peers) and reports the new ones.
    pub(crate) async fn write(
        &self,
        objects: Vec<(Cid, Vec<u8>)>,
        scope: Scope,
    ) -> Result<Vec<bool>> {
        self.write_pushing(objects, scope, true).await
    }

    /// [`Instance::write`]; with `push` false, shared objects are stored without being pushed
    /// to live sessions (see `schedule_push`).
    async fn write_pushing(
        &self,
        objects: Vec<(Cid, Vec<u8>)>,
        scope: Scope,
        push: bool,
    ) -> Result<Vec<bool>> {
        #[cfg(feature = "net")]
        let changed = if scope == Scope::Shared && push {
            self.inner.net.node.put(&objects).await?
        } else {
            self.inner.store.put_scoped(&objects, scope).await?
        };
        #[cfg(not(feature = "net"))]
        let changed = {
            let _ = push; // nothing to push to
            self.inner.store.put_scoped(&objects, scope).await?
        };
        if scope == Scope::Shared && changed.iter().any(|new| *new) {
            self.inner.at_risk.written(&*self.inner.store).await;
        }
        self.announce_local(&objects, &changed);
        Ok(changed)
    }

    fn announce_local(&self, objects: &[(Cid, Vec<u8>)], changed: &[bool]) {
        for ((cid, bytes), new) in objects.iter().zip(changed) {
            if !new {
                continue;
            }
            let value = decode(bytes).ok();
            let type_name = value.as_ref().and_then(Value::type_name).map(str::to_owned);
            if type_name.as_deref() == Some(chum_crdt::version::VERSION_TYPE)
                && let Some(version) = value.as_ref().and_then(|v| Version::from_value(v).ok())
            {
                self.emit(Event::Changed {
                    id: version.of,
                    version: cid.clone(),
                    origin: Origin::Local,
                });
            }
            self.emit(Event::Stored {
                cid: cid.clone(),
                type_name,
                origin: Origin::Local,
            });
        }
    }

    /// Stores an object. An object of an unversioned type (or without a recipe) is stored
    /// exactly as given — its CID is the hash of its canonical bytes. An object of a versioned
    /// type becomes a new version of its ID (see [`Instance::update`]).
    ///
    /// A `Recipe` object is registered (see [`Instance::register`]): its type is known from
    /// then on, here and on this person's other instances once they sync.
    pub async fn put(&self, value: &Value) -> Result<Written> {
        let type_name = value.type_name().map(str::to_owned);
        if type_name.as_deref() == Some(RECIPE_TYPE) {
            let recipe = Recipe::from_value(value).map_err(Error::from)?;
            if let Some(known) = self.recipe(&recipe.name)
                && known.version > recipe.version
            {
                return Err(Error::Invalid(format!(
                    "{} recipe version {} is known here; version {} would replace it with an older one (use register to do that on purpose)",
                    recipe.name, known.version, recipe.version
                )));
            }
            let cid = self.register(recipe).await?;
            return Ok(Written {
                cid,
                id: None,
                new: true,
                instance: Arc::downgrade(&self.inner),
            });
        }
        let recipe = type_name.as_deref().and_then(|name| self.recipe(name));
        if let Some(recipe) = &recipe {
            if recipe.is_versioned() {
                return self.update(value).await;
            }
            recipe.validate(value).map_err(Error::from)?;
        }
        let object = Object::from_value(value).map_err(|error| Error::Decode(error.to_string()))?;
        let scope = match &recipe {
            Some(recipe) if recipe.strategy == Strategy::InstanceLocal => Scope::Local,
            _ => Scope::Shared,
        };
        let cid = object.cid().clone();
        let changed = self
            .write(vec![(cid.clone(), object.into_bytes())], scope)
            .await?;
        Ok(Written {
            cid,
            id: None,
            new: changed.first().copied().unwrap_or(false),
            instance: Arc::downgrade(&self.inner),
        })
    }

    /// Stores many unversioned objects (each exactly as given) in one commit per scope; a
    /// versioned one among them is refused (use [`Instance::put`] for those).
    pub async fn put_many(&self, values: &[Value]) -> Result<Vec<Written>> {
        let mut shared = Vec::new();
        let mut local = Vec::new();
        for value in values {
            let recipe = value.type_name().and_then(|name| self.recipe(name));
            if let Some(recipe) = &recipe {
                if recipe.is_versioned() {
                    return Err(Error::Invalid(format!(
                        "{} is versioned: store it with put",
                        recipe.name
                    )));
                }
                recipe.validate(value).map_err(Error::from)?;
            }
            let object =
                Object::from_value(value).map_err(|error| Error::Decode(error.to_string()))?;
            let entry = (object.cid().clone(), object.into_bytes());
            match &recipe {
                Some(recipe) if recipe.strategy == Strategy::InstanceLocal => local.push(entry),
                _ => shared.push(entry),
            }
        }
        let mut written = Vec::with_capacity(values.len());
        for (objects, scope) in [(shared, Scope::Shared), (local, Scope::Local)] {
            if objects.is_empty() {
                continue;
            }
            let cids: Vec<Cid> = objects.iter().map(|(cid, _)| cid.clone()).collect();
            let changed = self.write(objects, scope).await?;
            written.extend(cids.into_iter().zip(changed).map(|(cid, new)| Written {
                cid,
                id: None,
                new,
                instance: Arc::downgrade(&self.inner),
            }));
        }
        Ok(written)
    }

    /// Stores an append-only entry (e.g. a Message), adding its `clock` (this instance's
    /// hybrid logical clock) and `author` (this instance) when its recipe has those fields and
    /// they are absent — so collections order it.
    pub async fn create(&self, value: &Value) -> Result<Written> {
        let mut value = value.clone();
        if let Some(recipe) = value.type_name().and_then(|name| self.recipe(name))
            && let Value::Map(map) = &mut value
        {
            if recipe.get_field("clock").is_some() && !map.contains_key("clock") {
                let timestamp = self.tick(None).await?;
                map.insert("clock", timestamp.to_value());
            }
            if recipe.get_field("author").is_some() && !map.contains_key("author") {
                map.insert("author", self.instance_id().0.to_vec());
            }
        }
        self.put(&value).await
    }

    async fn tick(&self, after: Option<Timestamp>) -> Result<Timestamp> {
        let timestamp = {
            let mut clock = self
                .inner
                .clock
                .lock()
                .map_err(|_| Error::Invalid("the clock lock is poisoned".into()))?;
            match after {
                Some(after) => clock.tick_after(after, self.now_ms()),
                None => clock.tick(self.now_ms()),
            }
            .map_err(|error| Error::Invalid(error.to_string()))?
        };
        let bytes = dagcbor::encode(&timestamp.to_value())
            .map_err(|error| Error::Invalid(error.to_string()))?;
        self.inner.store.local_put(CLOCK_KEY, &bytes).await?;
        Ok(timestamp)
    }

    fn versioned_recipe(&self, type_name: Option<&str>) -> Result<Recipe> {
        let name = type_name.ok_or_else(|| Error::Invalid("the object has no `$type`".into()))?;
        let recipe = self
            .recipe(name)
            .ok_or_else(|| Error::UnknownRecipe(name.to_owned()))?;
        if !recipe.is_versioned() {
            return Err(Error::Invalid(format!(
                "{name} is not a versioned type (its recipe has no ID fields)"
            )));
        }
        Ok(recipe)
    }

    /// The ID hash of a versioned object (its `$type` and ID fields).
    pub fn id_of(&self, value: &Value) -> Result<Cid> {
        let recipe = self.versioned_recipe(value.type_name())?;
        recipe.id_hash(value).map_err(Error::from)
    }

    async fn resolver(&self, recipe: &Recipe, id: &Cid) -> Result<Resolver> {
        let mut resolver =
            Resolver::for_recipe(recipe).map_err(|error| Error::Invalid(error.to_string()))?;
        for cid in self.inner.store.query(Query::Versions(id)).await? {
            let value = decode(&self.inner.store.get(&cid).await?)?;
            let version =
                Version::from_value(&value).map_err(|error| Error::Decode(error.to_string()))?;
            resolver
                .add(&cid, &version)
                .map_err(|error| Error::Invalid(error.to_string()))?;
        }
        Ok(resolver)
    }

    async fn latest_clock(&self, heads: &[Cid]) -> Result<Option<Timestamp>> {
        let mut latest = None;
        for head in heads {
            let value = decode(&self.inner.store.get(head).await?)?;
            let version =
                Version::from_value(&value).map_err(|error| Error::Decode(error.to_string()))?;
            latest = latest.max(Some(version.clock));
        }
        Ok(latest)
    }

    async fn write_version(
        &self,
        recipe: &Recipe,
        id_object: Object,
        version: Version,
    ) -> Result<Written> {
        self.write_version_pushing(recipe, id_object, version, true)
            .await
    }

    /// [`Instance::write_version`]; with `push` false the version is not pushed to live
    /// sessions at once (coalescing: `schedule_push` does it).
    async fn write_version_pushing(
        &self,
        recipe: &Recipe,
        id_object: Object,
        version: Version,
        push: bool,
    ) -> Result<Written> {
        let id = id_object.cid().clone();
        let version = version
            .to_object()
            .map_err(|error| Error::Invalid(error.to_string()))?;
        let cid = version.cid().clone();
        let scope = if recipe.strategy == Strategy::InstanceLocal {
            Scope::Local
        } else {
            Scope::Shared
        };
        let changed = self
            .write_pushing(
                vec![
                    (id.clone(), id_object.into_bytes()),
                    (cid.clone(), version.into_bytes()),
                ],
                scope,
                push,
            )
            .await?;
        Ok(Written {
            cid,
            id: Some(id),
            new: changed.get(1).copied().unwrap_or(false),
            instance: Arc::downgrade(&self.inner),
        })
    }

    /// A new version of a versioned object: `value` holds its `$type`, ID fields and the
    /// fields to set. Last-write types take the given fields as the whole new state;
    /// field-merge types change only the given fields (`null` unsets one; a set field given as
    /// a list becomes exactly that set).
    pub async fn update(&self, value: &Value) -> Result<Written> {
        let recipe = self.versioned_recipe(value.type_name())?;
        let id_value = recipe.id_object(value).map_err(Error::from)?;
        let Some(map) = value.as_map() else {
            return Err(Error::Invalid("an object is a map".into()));
        };
        for (key, field_value) in map.iter() {
            if key == "$type" || recipe.get_field(key).is_some_and(|field| field.id) {
                continue;
            }
            // `null` unsets a field (also one this recipe does not know, e.g. written by a
            // newer app); anything else must fit the field's kind.
            if *field_value != Value::Null {
                recipe
                    .validate_field(key, field_value)
                    .map_err(Error::from)?;
            }
        }
        let id_object =
            Object::from_value(&id_value).map_err(|error| Error::Invalid(error.to_string()))?;
        let id = id_object.cid().clone();
        if recipe.strategy != Strategy::InstanceLocal {
            self.check_writable(&id).await?;
        }
        let resolver = self.resolver(&recipe, &id).await?;
        // The state this write leaves must satisfy the recipe (required fields present):
        // for last-write the given fields are the whole state; for field-merge they change
        // the current one (`null` unsets).
        let mut after = id_value.as_map().cloned().unwrap_or_default();
        let current = resolver.state();
        if recipe.strategy != Strategy::LastWrite && current.exists {
            for (key, field_value) in current.fields.iter() {
                after.insert(key, field_value.clone());
            }
        }
        for (key, field_value) in map.iter() {
            if *field_value == Value::Null {
                after.remove(key);
            } else {
                after.insert(key, field_value.clone());
            }
        }
        // Required fields must be present in the state the write leaves. (Only presence:
        // fields this write does not give keep whatever kind they have — written by another
        // app version, or awaiting an upgrade — and must not block it.)
        for field in recipe
            .fields
            .iter()
            .filter(|field| !field.optional && !field.id)
        {
            if !after.contains_key(&field.name) {
                return Err(Error::Recipe(RecipeError::MissingField {
                    recipe: recipe.name.clone(),
                    field: field.name.clone(),
                }));
            }
        }
        let heads: Vec<Cid> = resolver.heads().cloned().collect();
        let mut touches_set = false;
        let mut body = Map::new();
        for (key, field_value) in map.iter() {
            if key == "$type" || recipe.get_field(key).is_some_and(|field| field.id) {
                continue;
            }
            let is_set = recipe
                .get_field(key)
                .is_some_and(|field| matches!(field.kind, chum_object::recipe::Kind::Set(_)));
            match (is_set, field_value) {
                (true, Value::List(target)) if recipe.strategy == Strategy::FieldMerge => {
                    touches_set = true;
                    body.insert(key, resolver.set_update(key, target));
                }
                _ => {
                    body.insert(key, field_value.clone());
                }
            }
        }
        let timestamp = self.tick(self.latest_clock(&heads).await?).await?;
        let (parents, body, replaces) =
            match self.coalescable(&recipe, &id, &heads, touches_set).await? {
                Some((head, previous)) => {
                    // One version for both edits: the previous one's parents, its fields under
                    // this one's (last-write: this body is the whole state already).
                    let body = if recipe.strategy == Strategy::FieldMerge {
                        let mut merged = previous.body;
                        for (key, value) in body.iter() {
                            merged.insert(key, value.clone());
                        }
                        merged
                    } else {
                        body
                    };
                    (previous.parents, body, Some(head))
                }
                None => (heads, body, None),
            };
        let version = Version::new(id.clone(), parents, timestamp, self.instance_id(), body);
        let coalescing =
            self.inner.coalesce.is_some() && recipe.strategy != Strategy::InstanceLocal;
        let written = self
            .write_version_pushing(&recipe, id_object, version, !coalescing)
            .await?;
        if coalescing {
            self.schedule_push(&id, written.cid());
        }
        if let Some(old) = replaces {
            // Written first, deleted after: a crash between leaves two concurrent heads whose
            // merge is this state, never a lost edit.
            self.inner.store.delete(&old).await?;
            self.inner.at_risk.replaced(&*self.inner.store, &old).await;
            if let Ok(mut held) = self.inner.held.lock() {
                held.replace(&old, written.cid());
            }
        }
        Ok(written)
    }

    /// With [`Builder::coalesce`]: pushes the object's latest version to live sessions once
    /// the window has passed since the first edit not pushed yet (later edits within it are
    /// coalesced into that version, so peers get one version per window, at most one window
    /// late). Versions not pushed still sync in the next comparison (they are in the journal).
    fn schedule_push(&self, id: &Cid, version: &Cid) {
        let Some(window) = self.inner.coalesce else {
            return;
        };
        #[cfg(not(feature = "net"))]
        let _ = (id, version, window);
        #[cfg(feature = "net")]
        let first = {
            let Ok(mut pending) = self.inner.pending_pushes.lock() else {
                return;
            };
            match pending.get_mut(id) {
                Some(entry) => {
                    entry.1 = version.clone();
                    false
                }
                None => {
                    pending.insert(id.clone(), (self.now_ms(), version.clone()));
                    true
                }
            }
        };
        #[cfg(feature = "net")]
        if first {
            let inner = Arc::downgrade(&self.inner);
            let id = id.clone();
            drop(chum_net::rt::spawn(async move {
                chum_net::rt::sleep(window).await;
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                let Some((_, version)) = inner
                    .pending_pushes
                    .lock()
                    .ok()
                    .and_then(|mut pending| pending.remove(&id))
                else {
                    return;
                };
                let mut objects = Vec::with_capacity(2);
                for cid in [id, version] {
                    if let Ok(bytes) = inner.store.get(&cid).await {
                        objects.push((cid, bytes));
                    }
                }
                inner.net.node.announce(&objects);
            }));
        }
    }

    /// With [`Builder::coalesce`]: the object's only head and its version, when the next edit
    /// may replace it — this instance wrote it within the window, it is no tombstone, it
    /// touches no set field (nor does the edit), and no peer is known to hold it.
    async fn coalescable(
        &self,
        recipe: &Recipe,
        id: &Cid,
        heads: &[Cid],
        touches_set: bool,
    ) -> Result<Option<(Cid, Version)>> {
        let (Some(window), [head]) = (self.inner.coalesce, heads) else {
            return Ok(None);
        };
        if touches_set || recipe.strategy == Strategy::AppendOnly {
            return Ok(None);
        }
        if self
            .inner
            .held
            .lock()
            .map_or(true, |held| held.known.contains_key(head))
        {
            return Ok(None);
        }
        // With peers possible: only a version not pushed yet (it waits in `pending_pushes`).
        #[cfg(feature = "net")]
        if !self
            .inner
            .pending_pushes
            .lock()
            .is_ok_and(|pending| pending.get(id).is_some_and(|(_, waiting)| waiting == head))
        {
            return Ok(None);
        }
        #[cfg(not(feature = "net"))]
        let _ = id;
        let value = decode(&self.inner.store.get(head).await?)?;
        let previous =
            Version::from_value(&value).map_err(|error| Error::Decode(error.to_string()))?;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let recent = self.now_ms().saturating_sub(previous.clock.wall_ms) <= window_ms;
        let sets = previous.body.iter().any(|(key, _)| {
            recipe
                .get_field(key)
                .is_some_and(|field| matches!(field.kind, chum_object::recipe::Kind::Set(_)))
        });
        let mine = previous.author == self.instance_id();
        Ok((mine && recent && !previous.deleted && !sets).then(|| (head.clone(), previous)))
    }

    /// Deletes a versioned object: a tombstone version (last-write: delete wins over
    /// concurrent edits; field-merge: concurrent edits survive).
    pub async fn delete(&self, id: &Cid) -> Result<Written> {
        let id_value = decode(&self.inner.store.get(id).await?)?;
        let recipe = self.versioned_recipe(id_value.type_name())?;
        let id_object =
            Object::from_value(&id_value).map_err(|error| Error::Decode(error.to_string()))?;
        if id_object.cid() != id {
            return Err(Error::Invalid(format!("{id} is not an ID object")));
        }
        if recipe.strategy != Strategy::InstanceLocal {
            self.check_writable(id).await?;
        }
        let resolver = self.resolver(&recipe, id).await?;
        let heads: Vec<Cid> = resolver.heads().cloned().collect();
        let body = if recipe.strategy == Strategy::FieldMerge {
            resolver.tombstone_body()
        } else {
            Map::new()
        };
        let timestamp = self.tick(self.latest_clock(&heads).await?).await?;
        let version =
            Version::new(id.clone(), heads, timestamp, self.instance_id(), body).tombstone();
        self.write_version(&recipe, id_object, version).await
    }

    /// The object stored under `cid`.
    pub async fn get(&self, cid: &Cid) -> Result<Value> {
        decode(&self.inner.store.get(cid).await?)
    }

    /// The object stored under `cid`, upgraded to its type's current recipe when it was
    /// written under an older one (see [`Builder::upgrade`]).
    pub async fn read(&self, cid: &Cid) -> Result<Value> {
        let value = self.get(cid).await?;
        self.upgraded(value)
    }

    /// Passes `value` through its type's upgrades until it satisfies the current recipe.
    fn upgraded(&self, mut value: Value) -> Result<Value> {
        let Some(type_name) = value.type_name().map(str::to_owned) else {
            return Ok(value);
        };
        let Some(recipe) = self.recipe(&type_name) else {
            return Ok(value);
        };
        let fits = |value: &Value| {
            if recipe.is_versioned() {
                // A merged state: check each field's kind (optional fields may be absent).
                value.as_map().is_some_and(|map| {
                    map.iter().all(|(key, field)| {
                        key == "$type" || recipe.validate_field(key, field).is_ok()
                    })
                })
            } else {
                recipe.validate(value).is_ok()
            }
        };
        if fits(&value) {
            return Ok(value);
        }
        let upgrades = self
            .inner
            .upgrades
            .read()
            .map(|table| table.get(&type_name).cloned().unwrap_or_default())
            .unwrap_or_default();
        for upgrade in &upgrades {
            value = upgrade(value)
                .map_err(|reason| Error::Invalid(format!("upgrading a {type_name}: {reason}")))?;
            if fits(&value) {
                return Ok(value);
            }
        }
        Ok(value)
    }

    /// Whether an object is stored here.
    pub async fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.inner.store.has(cid).await?)
    }

    /// The current merged state of a versioned object: its `$type`, ID fields and current
    /// fields, or `None` when it has no versions or is deleted.
    ///
    /// `None` also when the ID object is not stored here (yet): a state is read locally and
    /// never waits for a peer.
    pub async fn state(&self, id: &Cid) -> Result<Option<Value>> {
        let id_value = match self.inner.store.get(id).await {
            Ok(bytes) => decode(&bytes)?,
            Err(chum_store::Error::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let recipe = self.versioned_recipe(id_value.type_name())?;
        let resolver = self.resolver(&recipe, id).await?;
        let state = resolver.state();
        if !state.exists {
            return Ok(None);
        }
        let mut map = id_value.as_map().cloned().unwrap_or_default();
        for (key, value) in state.fields.iter() {
            map.insert(key, value.clone());
        }
        self.upgraded(Value::Map(map)).map(Some)
    }

    /// At most `limit` CIDs of stored objects of a type, in CID order, after `after`. (For a
    /// versioned type these are its ID hashes.)
    pub async fn of_type_page(
        &self,
        type_name: &str,
        after: Option<&Cid>,
        limit: usize,
    ) -> Result<Vec<Cid>> {
        Ok(self
            .inner
            .store
            .query(Query::ByType {
                type_name,
                after,
                limit,
            })
            .await?)
    }

    /// The values of concurrent edits of a versioned object that lost the merge.
    pub async fn conflicts(&self, id: &Cid) -> Result<Vec<chum_crdt::Conflict>> {
        let id_value = match self.inner.store.get(id).await {
            Ok(bytes) => decode(&bytes)?,
            Err(chum_store::Error::NotFound(_)) => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let recipe = self.versioned_recipe(id_value.type_name())?;
        Ok(self.resolver(&recipe, id).await?.conflicts())
    }

    /// The CIDs of every stored object of a type, in CID order (every one: for a type that
    /// may hold many, page with [`Instance::of_type_page`] or use a typed
    /// [`Instance::query`]).
    pub async fn of_type(&self, type_name: &str) -> Result<Vec<Cid>> {
        all_of_type(&*self.inner.store, type_name).await
    }

    /// Every CID stored here (shared and local), in CID order.
    pub async fn list(&self) -> Result<Vec<Cid>> {
        paged(|after| {
            let store = Arc::clone(&self.inner.store);
            async move {
                let start = after
                    .as_ref()
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                store.list((start, std::ops::Bound::Unbounded), PAGE).await
            }
        })
        .await
    }

    /// The entries of `target`'s collection — objects whose recipe marks a link field as a
    /// collection and that link to `target` through it (e.g. the Messages of a Conversation,
    /// by its ID hash) — in collection order: clock, then CID.
    pub async fn entries(&self, target: &Cid) -> Result<Vec<Cid>> {
        let mut collection = Collection::new();
        let mut after: Option<Cid> = None;
        loop {
            let page = self
                .inner
                .store
                .query(Query::LinksTo {
                    target,
                    after: after.as_ref(),
                    limit: 4_096,
                })
                .await?;
            for cid in &page {
                let value = decode(&self.inner.store.get(cid).await?)?;
                let Some(recipe) = value.type_name().and_then(|name| self.recipe(name)) else {
                    continue;
                };
                if chum_crdt::collection::collection_targets(&recipe, &value).any(|t| t == target) {
                    collection.insert(entry_clock(&value), cid.clone());
                }
            }
            match page.last() {
                Some(last) if page.len() == 4_096 => after = Some(last.clone()),
                _ => break,
            }
        }
        Ok(collection.iter().map(|(_, cid)| cid.clone()).collect())
    }

    /// Grants `person` access to `target` (an object or an ID hash; see `docs/security.md`
    /// for what that covers). Needs the person key. Returns the grant.
    pub async fn grant(&self, target: &Cid, person: &PersonId) -> Result<Written> {
        // The grantee's Person object, when known here (e.g. kept instance-local since its
        // instance connected), becomes shared with the grant that links to it.
        if let Ok(bytes) = self.inner.store.get(&person.0).await {
            self.write(vec![(person.0.clone(), bytes)], Scope::Shared)
                .await?;
        }
        let grant = Access::issue(
            self.inner.identity.person_key()?,
            target.clone(),
            person.0.clone(),
            self.now_ms(),
        )?;
        self.put_object(grant.object).await
    }

    /// Withdraws a grant: nothing more is delivered under it.
    pub async fn revoke_grant(&self, grant: &Cid) -> Result<Written> {
        let value = self.get(grant).await?;
        if value.type_name() != Some(chum_access::grant::ACCESS_TYPE) {
            return Err(Error::Invalid(format!("{grant} is not a grant")));
        }
        let revocation = AccessRevocation::issue(
            self.inner.identity.person_key()?,
            grant.clone(),
            self.now_ms(),
        )?;
        self.put_object(revocation.object).await
    }

    /// Revokes another instance of this person (needs the person key): peers refuse it from
    /// the moment the revocation reaches them.
    pub async fn revoke_instance(&self, instance: InstanceId) -> Result<Written> {
        let revocation = self.inner.identity.revoke(instance, self.now_ms())?;
        self.put_object(revocation.object().clone()).await
    }

    async fn put_object(&self, object: Object) -> Result<Written> {
        let cid = object.cid().clone();
        let changed = self
            .write(vec![(cid.clone(), object.into_bytes())], Scope::Shared)
            .await?;
        Ok(Written {
            cid,
            id: None,
            new: changed.first().copied().unwrap_or(false),
            instance: Arc::downgrade(&self.inner),
        })
    }

    /// Closes the instance: every session ends with a close frame (see
    /// [`Instance::shutdown`]), receipts still waiting resolve with [`Error::Closed`], and the
    /// store is closed — whatever handles remain (clones of this `Instance`, receipts, typed
    /// handles), which from now on fail with [`Error::Closed`]. Once this returns, the same
    /// store can be opened again (it waits at most 5 s for calls in flight to finish).
    pub async fn close(self) {
        #[cfg(feature = "net")]
        self.stop_sessions().await;
        if let Ok(mut held) = self.inner.held.lock() {
            held.closed = true;
            held.waiting.clear();
        }
        self.inner.closable.close();
        self.emit(Event::Closed);
        #[cfg(feature = "net")]
        {
            use chum_net::rt;
            let deadline = rt::Instant::now().add(std::time::Duration::from_secs(5));
            while !self.inner.closable.released() && rt::Instant::now() < deadline {
                rt::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }

    /// How many of this instance's shared objects no other instance is known to hold yet:
    /// written here and not yet acknowledged by a peer (nor covered by a completed sync with
    /// an instance of this person). What would be lost with this store — a browser may evict
    /// a site's storage — so an app can warn before a tab closes. Objects received from peers
    /// are never at risk. After a restart, objects received but not yet confirmed by a sync
    /// count until the next sync with an instance of this person.
    pub fn at_risk(&self) -> u64 {
        self.inner.at_risk.count()
    }

    /// Whether [`Instance::close`] was called (on this or another handle).
    pub fn is_closed(&self) -> bool {
        self.inner.closable.is_closed()
    }

    /// Whether a write to the versioned object `id` can reach everyone who shares it. `true`
    /// for this person's own data; for data another person granted to this one, only when
    /// this person granted it back to them (read-write sharing is a grant each way: the owner
    /// takes versions of a granted object only from a person it granted it to *and* who
    /// granted it back). A write that may not is refused locally with [`Error::Denied`]
    /// instead of diverging silently.
    pub async fn may_write(&self, id: &Cid) -> Result<bool> {
        Ok(self.read_only_for(id).await?.is_none())
    }

    /// The person whose grant makes `id` read-only here, if any.
    async fn read_only_for(&self, id: &Cid) -> Result<Option<PersonId>> {
        let me = self.person();
        // The grants of `id` held here: (grant, granter, grantee).
        let mut grants: Vec<(Cid, Access)> = Vec::new();
        for cid in self.of_type(chum_access::grant::ACCESS_TYPE).await? {
            let value = self.get(&cid).await?;
            if let Ok(object) = Object::from_value(&value)
                && let Ok(access) = Access::from_value(object, &value)
                && access.target == *id
            {
                grants.push((cid, access));
            }
        }
        if grants.iter().all(|(_, access)| access.grantee != me.0) {
            return Ok(None); // nobody granted it to this person: its own data
        }
        let mut revoked = std::collections::HashSet::new();
        for cid in self
            .of_type(chum_access::grant::ACCESS_REVOCATION_TYPE)
            .await?
        {
            let value = self.get(&cid).await?;
            if let Ok(object) = Object::from_value(&value)
                && let Ok(revocation) = AccessRevocation::from_value(object, &value)
            {
                revoked.insert((revocation.access, revocation.granter_key));
            }
        }
        let live = grants
            .iter()
            .filter(|(cid, access)| !revoked.contains(&(cid.clone(), access.granter_key)));
        let mut owners = Vec::new();
        let mut granted_back = std::collections::HashSet::new();
        for (_, access) in live {
            if access.granter() == me {
                granted_back.insert(access.grantee.clone());
            } else if access.grantee == me.0 {
                owners.push(access.granter());
            }
        }
        let Some(owner) = owners
            .into_iter()
            .find(|owner| !granted_back.contains(&owner.0))
        else {
            return Ok(None);
        };
        // Data this person writes is its own: an object with no versions yet (about to be
        // created here), or one an instance of this person has written, stays writable
        // whoever granted it too (a grant of something already one's own, or a revoked share
        // of one's own data, must not lock its owner out).
        let versions = self.inner.store.query(Query::Versions(id)).await?;
        if versions.is_empty() {
            return Ok(None);
        }
        let mine = self.own_instances().await?;
        for cid in versions {
            let version = Version::from_value(&self.get(&cid).await?)
                .map_err(|error| Error::Decode(error.to_string()))?;
            if mine.contains(&version.author) {
                return Ok(None);
            }
        }
        Ok(Some(owner))
    }

    /// This instance and every instance of its person with a certificate stored here.
    async fn own_instances(&self) -> Result<std::collections::HashSet<InstanceId>> {
        let me = self.person();
        let mut instances = std::collections::HashSet::from([self.instance_id()]);
        for cid in self.of_type(chum_access::keys::CERTIFICATE_TYPE).await? {
            if let Ok(bytes) = self.inner.store.get(&cid).await
                && let Ok(certificate) = chum_access::Certificate::from_bytes(&bytes)
                && certificate.person() == me
            {
                instances.insert(certificate.instance());
            }
        }
        Ok(instances)
    }

    /// Refuses a write to `id` when [`Instance::may_write`] says it would not travel.
    async fn check_writable(&self, id: &Cid) -> Result<()> {
        match self.read_only_for(id).await? {
            None => Ok(()),
            Some(owner) => Err(Error::Denied(format!(
                "{id} is shared with this person read-only by {owner}: a write would never reach them (grant it back to them to share it read-write)"
            ))),
        }
    }

    /// Resolves with the first peer instance known to hold `cid` durably.
    pub async fn held_by_peer(&self, cid: &Cid) -> Result<InstanceId> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let receiver = {
            let mut held = self
                .inner
                .held
                .lock()
                .map_err(|_| Error::Invalid("the receipt table is poisoned".into()))?;
            let cid = held.current(cid);
            if let Some(peer) = held.known.get(&cid) {
                return Ok(*peer);
            }
            if held.closed {
                return Err(Error::Closed);
            }
            let (sender, receiver) = oneshot::channel();
            held.waiting.entry(cid).or_default().push(sender);
            receiver
        };
        receiver.await.map_err(|_| Error::Closed)
    }
}
