//! What a peer of another person may see, and what this side accepts from one.
//!
//! **Sending** ([`VisibleSet`]): instances of the same person see every shared object; a peer
//! of another person sees, for each grant its person holds from this side's person (directly
//! or through a group, and not revoked):
//! - the grant itself and everything it links to, transitively (the target, the grantee, …);
//! - the versions of a granted ID hash, with what they link to;
//! - the entries of the target's collections — objects that link to the target through a
//!   field their recipe marks as a collection (e.g. Messages whose `conversation` is a granted
//!   Conversation) — with what they link to;
//! - and the public identity of this side's person: its `Person`, instance certificates and
//!   revocations (so peers learn of revocations).
//!
//! Instance-local objects are never in the set. A session with such a peer reconciles against
//! this set only, so no CID, size or count of anything outside it reaches the peer.
//!
//! **Receiving** ([`Coverage`]): from a peer of another person this side takes objects covered
//! by a grant from that person to this side's person — one held already, or one that arrives
//! in the same session — by the same rule, plus that person's public identity objects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use chum_crdt::version::VERSION_TYPE;
use chum_object::recipe::Recipe;
use chum_object::{Cid, Codec, Limits, Object, Value};
use chum_store::{Query, Store};
use chum_sync::sketch::Sketch;
use chum_sync::{Answer, Request, Summary, short_id};

use crate::error::Result;
use crate::grant::{
    ACCESS_REVOCATION_TYPE, ACCESS_TYPE, Access, AccessRevocation, GROUP_MEMBERS_TYPE, GROUP_TYPE,
    GroupMembers, POLICY_TYPES, group_owner,
};
use crate::keys::{
    CERTIFICATE_TYPE, Certificate, PERSON_TYPE, PersonId, REVOCATION_TYPE, Revocation,
    person_object,
};

/// What decides visibility beyond grants: which fields make an object an entry of a
/// collection, by type (from the recipes); the persons this side uses as hubs; and whether
/// this side serves as a hub.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    collections: HashMap<String, Vec<String>>,
    /// The CIDs of this side's own recipes (those it was given: registered by its app or
    /// adopted from its own instances): sent to its hubs, which decide with them what of this
    /// person's data a grant covers.
    own_recipes: BTreeSet<Cid>,
    /// On a hub: the recipes each person sent it, applied to that person's objects only.
    persons: PersonRecipes,
    /// The persons whose instances this side serves besides its own (`None`: anyone).
    admitted: Option<std::sync::Arc<BTreeSet<Cid>>>,
    /// Persons this side forwards through (its hubs): a peer of one of them also sees this
    /// side's grants, revocations and group statements on what this side granted it, so it
    /// can forward the granted data to the grantees.
    hubs: BTreeSet<Cid>,
    /// Whether this side is a hub: it stores and forwards what several persons share with it
    /// and answers each peer from what that peer's person may see (see [`VisibleSet`]).
    serving_hub: bool,
    /// On a hub: how many objects one person may have it store (`None`: no bound).
    quota: Option<u64>,
}

impl Policy {
    /// The collection fields of `recipes`.
    pub fn new<'a>(recipes: impl IntoIterator<Item = &'a Recipe>) -> Policy {
        let mut policy = Policy::default();
        policy.extend(recipes);
        policy
    }

    /// Uses the person `hub` as a hub (see the field docs): its instances also see this side's
    /// grants on what this side granted it.
    pub fn use_hub(&mut self, hub: PersonId) {
        self.hubs.insert(hub.0);
    }

    /// Whether `person` is one of this side's hubs.
    pub fn is_hub(&self, person: &PersonId) -> bool {
        self.hubs.contains(&person.0)
    }

    /// Serves only instances of `persons` besides this side's own: a peer of any other
    /// person is refused at admission ([`crate::AccessError::NotServed`]), before anything of
    /// its is stored or computed — an operator's list of whom a hub serves.
    pub fn admit_only(&mut self, persons: impl IntoIterator<Item = PersonId>) {
        self.admitted = Some(std::sync::Arc::new(
            persons.into_iter().map(|person| person.0).collect(),
        ));
    }

    /// Whether a peer of `person` (another person) is served (see [`Policy::admit_only`]).
    pub fn admits(&self, person: &PersonId) -> bool {
        self.admitted
            .as_ref()
            .is_none_or(|admitted| admitted.contains(&person.0))
    }

    /// Serves as a hub (or stops): peers of other persons are answered from what their
    /// person shared with the hub and what others granted their person.
    pub fn serve_as_hub(&mut self, serving: bool) {
        self.serving_hub = serving;
    }

    /// Whether this side serves as a hub.
    pub fn serves_as_hub(&self) -> bool {
        self.serving_hub
    }

    /// On a hub: stores at most `objects` objects sent by one person — counted over that
    /// person's instances and every process serving the store, from who sent what (see
    /// `hub`); beyond it, what the person sends is refused, object by object, with a reason
    /// (objects it already holds do not count again).
    pub fn quota_per_person(&mut self, objects: u64) {
        self.quota = Some(objects);
    }

    /// The bound of [`Policy::quota_per_person`], if any.
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// The collection fields of `recipes` in place of the ones held (hubs and serving kept).
    pub fn set_recipes<'a>(&mut self, recipes: impl IntoIterator<Item = &'a Recipe>) {
        self.collections.clear();
        self.extend(recipes);
    }

    /// Takes the collection fields of `recipes` too (a recipe replaces an earlier one of its
    /// name).
    pub fn extend<'a>(&mut self, recipes: impl IntoIterator<Item = &'a Recipe>) {
        for recipe in recipes {
            if let Ok(object) = Object::from_value(&recipe.to_value()) {
                self.own_recipes.insert(object.cid().clone());
            }
            let fields = collection_fields(recipe);
            if fields.is_empty() {
                self.collections.remove(&recipe.name);
            } else {
                self.collections.insert(recipe.name.clone(), fields);
            }
        }
    }

    /// The collections `value` is an entry of (the targets of its collection fields).
    pub fn collection_links(&self, value: &Value) -> Vec<Cid> {
        self.collection_links_of(None, value)
    }

    /// [`Policy::collection_links`] for an object of the person `owner` (its sender, on a
    /// hub): by this side's recipes, and by the recipes that person sent this hub — never by
    /// anyone else's.
    pub fn collection_links_of(&self, owner: Option<&PersonId>, value: &Value) -> Vec<Cid> {
        let (Some(map), Some(name)) = (value.as_map(), value.type_name()) else {
            return Vec::new();
        };
        let mut fields: Vec<String> = self.collections.get(name).cloned().unwrap_or_default();
        if let Some(owner) = owner {
            for field in self.persons.fields(owner, name) {
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
        }
        fields
            .iter()
            .filter_map(|field| map.get(field).and_then(Value::as_link).cloned())
            .collect()
    }

    /// The CIDs of this side's own recipes (see [`Policy::extend`]).
    pub fn own_recipes(&self) -> &BTreeSet<Cid> {
        &self.own_recipes
    }

    /// On a hub: `person` sent the recipe `value` (a `Recipe` object): its collection fields
    /// apply to that person's objects from now on (a newer version of a type replaces an
    /// older; at most [`MAX_PERSON_RECIPES`] types per person). Shared by every clone of this
    /// policy. Returns whether `value` is a recipe.
    pub fn learn_recipe(&self, person: &PersonId, cid: &Cid, value: &Value) -> bool {
        match Recipe::from_value(value) {
            Ok(recipe) => {
                self.persons.learn(person, cid, &recipe);
                true
            }
            Err(_) => false,
        }
    }

    /// [`Policy::learn_recipe`], returning whether it changed the collection fields known
    /// for that person (not whether it was a recipe).
    fn learn_recipe_changed(&self, person: &PersonId, cid: &Cid, value: &Value) -> bool {
        Recipe::from_value(value).is_ok_and(|recipe| self.persons.learn(person, cid, &recipe))
    }

    /// On a hub: learns the recipes persons sent from announced objects — recipes, with their
    /// senders, and the hub's notes of recipes taken (see [`crate::hub::RECIPE_NOTE_TYPE`]),
    /// whose recipe is read from `store` unless announced too. A person with a new recipe
    /// has the sets it grants into computed again (the announcement says so): objects of its
    /// announced earlier — through another session, or another process — may be entries now.
    pub async fn learn_announced(
        &self,
        store: &dyn Store,
        announcement: &mut Announcement,
    ) -> Result<()> {
        let mut changed: Vec<PersonId> = Vec::new();
        for (cid, value) in &announcement.values {
            if value.type_name() == Some(RECIPE_TYPE) {
                for sender in announcement.senders.get(cid).into_iter().flatten() {
                    if self.learn_recipe_changed(sender, cid, value) {
                        changed.push(sender.clone());
                    }
                }
            } else if let Some((person, recipe)) = crate::hub::read_recipe_note(value)
                // Only the hub's own notes: a note some peer sent (a forgery naming another
                // person) is never taken, and would have a sender here.
                && announcement.senders.get(cid).is_none_or(Vec::is_empty)
            {
                // A note is announced once (when first written): the person's sets are
                // computed again even if this process learnt the recipe as it was taken.
                let learnt = match announcement.values.get(&recipe) {
                    Some(value) => self.learn_recipe(&person, &recipe, value),
                    None => match load(store, &recipe).await? {
                        Some((_, value)) => self.learn_recipe(&person, &recipe, &value),
                        None => false,
                    },
                };
                if learnt {
                    changed.push(person);
                }
            }
        }
        if !changed.is_empty() {
            changed.sort();
            changed.dedup();
            announcement.affects.push(Affects::Granters(changed));
        }
        Ok(())
    }

    /// On a hub: learns every stored recipe for each person that sent it (at start; later
    /// ones are learnt as they arrive).
    pub async fn load_person_recipes(&self, store: &dyn Store) -> Result<()> {
        let mut after: Option<Cid> = None;
        loop {
            let page = store
                .query(Query::ByType {
                    type_name: RECIPE_TYPE,
                    after: after.as_ref(),
                    limit: PAGE,
                })
                .await?;
            for cid in &page {
                let Some((_, value)) = load(store, cid).await? else {
                    continue;
                };
                for sender in crate::hub::senders(store, cid).await? {
                    self.learn_recipe(&sender, cid, &value);
                }
            }
            if page.len() < PAGE {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }
}

/// The `$type` of recipe objects.
const RECIPE_TYPE: &str = chum_object::recipe::RECIPE_TYPE;

/// The names of a recipe's collection fields.
fn collection_fields(recipe: &Recipe) -> Vec<String> {
    recipe
        .fields
        .iter()
        .filter(|field| field.collection)
        .map(|field| field.name.clone())
        .collect()
}

/// Types whose recipes one person may have a hub apply to its objects.
pub const MAX_PERSON_RECIPES: usize = 1_024;

/// Per person, per type: the collection fields of the newest recipe that person sent (with
/// its version and CID, the larger pair winning, so every hub process picks the same one).
type PersonTable = HashMap<Cid, HashMap<String, (u64, Cid, Vec<String>)>>;

/// The recipes persons sent a hub, shared by every clone of its [`Policy`].
#[derive(Debug, Clone, Default)]
struct PersonRecipes(std::sync::Arc<std::sync::RwLock<PersonTable>>);

impl PersonRecipes {
    fn fields(&self, person: &PersonId, type_name: &str) -> Vec<String> {
        let table = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        table
            .get(&person.0)
            .and_then(|types| types.get(type_name))
            .map(|(_, _, fields)| fields.clone())
            .unwrap_or_default()
    }

    /// Returns whether it changed what the person's recipes say.
    fn learn(&self, person: &PersonId, cid: &Cid, recipe: &Recipe) -> bool {
        let fields = collection_fields(recipe);
        let mut table = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let types = table.entry(person.0.clone()).or_default();
        let full = types.len() >= MAX_PERSON_RECIPES;
        match types.get_mut(&recipe.name) {
            Some(known) if (recipe.version, cid) > (known.0, &known.1) => {
                let changed = known.2 != fields;
                *known = (recipe.version, cid.clone(), fields);
                changed
            }
            Some(_) => false,
            None if !full => {
                let changed = !fields.is_empty();
                types.insert(recipe.name.clone(), (recipe.version, cid.clone(), fields));
                changed
            }
            None => false,
        }
    }
}

const PAGE: usize = 1_024;

/// Every object that links to `target` (a paged index scan).
pub(crate) async fn links_to(store: &dyn Store, target: &Cid) -> Result<Vec<Cid>> {
    Ok(chum_store::links_to_after(store, target, Vec::new()).await?)
}

/// The stored objects of `$type` `type_name` that link to `target`, decoded: an indexed lookup
/// whose cost grows with what links to `target` (e.g. one person's own certificates,
/// revocations and grants), never with what else the store holds.
pub(crate) async fn linking(
    store: &dyn Store,
    target: &Cid,
    type_name: &str,
) -> Result<Vec<(Cid, Object, Value)>> {
    let mut out = Vec::new();
    for cid in links_to(store, target).await? {
        if let Some((object, value)) = load(store, &cid).await?
            && value.type_name() == Some(type_name)
        {
            out.push((cid, object, value));
        }
    }
    Ok(out)
}

/// The decoded object stored under `cid`, if it is stored and a DAG-CBOR object.
pub(crate) async fn load(store: &dyn Store, cid: &Cid) -> Result<Option<(Object, Value)>> {
    if cid.codec() != Codec::DagCbor.code() {
        return Ok(None);
    }
    decode_loaded(cid, store.get(cid).await)
}

/// What [`load`] makes of a read of `cid`.
fn decode_loaded(cid: &Cid, read: chum_store::Result<Vec<u8>>) -> Result<Option<(Object, Value)>> {
    if cid.codec() != Codec::DagCbor.code() {
        return Ok(None);
    }
    match read {
        Ok(bytes) => Ok(Object::from_bytes(bytes, &chum_store::index::widest_limits()).ok()),
        Err(chum_store::Error::NotFound(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The `personKey` field of a signed object (its signature is checked separately).
pub(crate) fn signer_key(value: &Value) -> Option<[u8; 32]> {
    match value.as_map()?.get("personKey")? {
        Value::Bytes(bytes) => bytes.as_slice().try_into().ok(),
        _ => None,
    }
}

/// Whether an object is covered by granted `targets` directly: it is one, a version of one, or
/// an entry of one's collection.
pub(crate) fn by_target(
    policy: &Policy,
    owner: Option<&PersonId>,
    targets: &BTreeSet<Cid>,
    cid: &Cid,
    value: &Value,
) -> bool {
    let version_of_target = value.type_name() == Some(VERSION_TYPE)
        && value
            .as_map()
            .and_then(|map| map.get("of"))
            .and_then(Value::as_link)
            .is_some_and(|of| targets.contains(of));
    version_of_target
        || targets.contains(cid)
        || policy
            .collection_links_of(owner, value)
            .iter()
            .any(|target| targets.contains(target))
}

/// Whether `cid` is stored and shared.
async fn is_shared(store: &dyn Store, cid: &Cid) -> Result<bool> {
    Ok(!store
        .sync_list((Bound::Included(cid), Bound::Included(cid)), 1)
        .await?
        .is_empty())
}

fn links(value: &Value) -> Vec<Cid> {
    let mut out = Vec::new();
    value.for_each_link(&mut |cid| out.push(cid.clone()));
    out
}

/// The grants this side's person (`owner`) has given `peer`, directly or through its groups,
/// and not revoked; with the objects that make them so (group identities and statements).
pub(crate) async fn grants_for(
    store: &dyn Store,
    owner: &[u8; 32],
    peer: &PersonId,
) -> Result<(Vec<Access>, Vec<Cid>)> {
    let owner_id = PersonId::of_key(owner);
    // Grants to the peer and the owner's statements naming it both link to the peer's Person.
    let mut candidates: Vec<Access> = Vec::new();
    for (_, object, value) in linking(store, &peer.0, ACCESS_TYPE).await? {
        if let Ok(access) = Access::from_value(object, &value)
            && access.granter_key == *owner
            && access.grantee == peer.0
        {
            candidates.push(access);
        }
    }
    // Groups of the owner's whose latest statement (by the owner) names the peer.
    let mut supporting = Vec::new();
    let mut named: BTreeSet<Cid> = BTreeSet::new();
    for (_, object, value) in linking(store, &peer.0, GROUP_MEMBERS_TYPE).await? {
        if let Ok(statement) = GroupMembers::from_value(object, &value)
            && statement.signer_key == *owner
        {
            named.insert(statement.group);
        }
    }
    for group in named {
        let Some((_, group_value)) = load(store, &group).await? else {
            continue;
        };
        if group_owner(&group_value).ok().as_ref() != Some(&owner_id) {
            continue;
        }
        let mut latest: Option<(u64, Cid, GroupMembers)> = None;
        let mut group_grants = Vec::new();
        for (cid, object, value) in linking(store, &group, GROUP_MEMBERS_TYPE).await? {
            if let Ok(statement) = GroupMembers::from_value(object, &value)
                && statement.signer_key == *owner
                && statement.group == group
                && latest
                    .as_ref()
                    .is_none_or(|(created, at, _)| (*created, at) < (statement.created_ms, &cid))
            {
                latest = Some((statement.created_ms, cid, statement));
            }
        }
        let Some((_, statement_cid, statement)) = latest else {
            continue;
        };
        if !statement.members.contains(peer) {
            continue;
        }
        for (_, object, value) in linking(store, &group, ACCESS_TYPE).await? {
            if let Ok(access) = Access::from_value(object, &value)
                && access.granter_key == *owner
                && access.grantee == group
            {
                group_grants.push(access);
            }
        }
        if !group_grants.is_empty() {
            supporting.push(group.clone());
            supporting.push(statement_cid);
            candidates.extend(group_grants);
        }
    }
    // Not revoked by the owner (a revocation links to the grant it revokes).
    let mut grants = Vec::new();
    for access in candidates {
        let mut revoked = false;
        for (_, object, value) in
            linking(store, access.object.cid(), ACCESS_REVOCATION_TYPE).await?
        {
            if let Ok(revocation) = AccessRevocation::from_value(object, &value)
                && revocation.granter_key == *owner
                && revocation.access == *access.object.cid()
            {
                revoked = true;
                break;
            }
        }
        if !revoked {
            grants.push(access);
        }
    }
    Ok((grants, supporting))
}

/// What a node learnt once about objects that just became shared, for every session's
/// [`VisibleSet::on_announced`]: each object decoded, what links to each, and whether any is a
/// grant-like object (the sets are recomputed) or the target of a held grant.
#[derive(Debug, Clone, Default)]
pub struct Announcement {
    cids: Vec<Cid>,
    set: HashSet<Cid>,
    pub(crate) values: HashMap<Cid, Value>,
    pub(crate) referrers: HashMap<Cid, Vec<Cid>>,
    policy: bool,
    /// On a hub: who sent each object (see [`crate::hub::record_contributions`]).
    pub(crate) senders: HashMap<Cid, Vec<PersonId>>,
    /// On a hub: whose sets the policy objects among these change.
    pub(crate) affects: Vec<Affects>,
    /// On a hub: everyone who sent any of these.
    pub(crate) all_senders: BTreeSet<PersonId>,
    /// Whether a certificate or a revocation is among these (a granter's public identity).
    pub(crate) identity: bool,
}

/// Whose set a policy object changes, on a hub.
#[derive(Debug, Clone)]
pub(crate) enum Affects {
    /// The peers of these persons (a grant or a revocation of a grant to them).
    Persons(Vec<Cid>),
    /// A group statement: the members it names, and whoever the signer granted (members it
    /// no longer names).
    Group {
        signer: [u8; 32],
        members: Vec<PersonId>,
    },
    /// Everyone (a grant to a group, a revocation of one).
    All,
    /// The peers granted anything by these persons (their recipes changed).
    Granters(Vec<PersonId>),
}

impl Announcement {
    /// Whether no policy object (grant, revocation, group statement, a person's recipe) and
    /// no public identity is among these: then only the peers of their senders and of the
    /// persons granting those something can be concerned (see [`VisibleSet::concerning`]).
    pub fn is_plain(&self) -> bool {
        self.affects.is_empty() && !self.identity
    }

    /// On a hub: everyone who sent any of these.
    pub fn senders(&self) -> impl Iterator<Item = &PersonId> {
        self.all_senders.iter()
    }

    /// Reads and decodes `cids` (raw blocks are not decoded) and looks up what links to each;
    /// on a hub (`hub`), also who sent each. One [`Store::lookup_many`] per chunk of objects.
    pub async fn prepare(store: &dyn Store, cids: Vec<Cid>, hub: bool) -> Result<Announcement> {
        const CHUNK: usize = 256;
        let mut announcement = Announcement::default();
        for chunk in cids.chunks(CHUNK) {
            let prefixes: Vec<Option<Vec<u8>>> = chunk
                .iter()
                .map(|cid| hub.then(|| crate::hub::senders_prefix(cid)))
                .collect();
            let asks: Vec<chum_store::LookupAsk<'_>> = chunk
                .iter()
                .zip(&prefixes)
                .map(|(cid, prefix)| chum_store::LookupAsk {
                    cid,
                    // Raw blocks are not decoded.
                    bytes: cid.codec() == Codec::DagCbor.code(),
                    local_prefix: prefix.as_deref(),
                })
                .collect();
            let found = store.lookup_many(&asks).await?;
            for ((cid, prefix), found) in chunk.iter().zip(&prefixes).zip(found) {
                if let Some(read) = found.bytes
                    && let Some((_, value)) = decode_loaded(cid, read)?
                {
                    if value
                        .type_name()
                        .is_some_and(|name| POLICY_TYPES.contains(&name))
                    {
                        announcement.policy = true;
                    }
                    if matches!(
                        value.type_name(),
                        Some(crate::keys::CERTIFICATE_TYPE | crate::keys::REVOCATION_TYPE)
                    ) {
                        announcement.identity = true;
                    }
                    announcement.values.insert(cid.clone(), value);
                }
                if !found.linked_by.is_empty() {
                    announcement.referrers.insert(cid.clone(), found.linked_by);
                }
                if let Some(prefix) = prefix {
                    let senders = crate::hub::senders_in(prefix, &found.local_keys);
                    announcement.all_senders.extend(senders.iter().cloned());
                    announcement.senders.insert(cid.clone(), senders);
                    if let Some(value) = announcement.values.get(cid)
                        && let Some(affects) = affects(store, cid, value).await?
                    {
                        announcement.affects.push(affects);
                    }
                }
            }
        }
        announcement.set = cids.iter().cloned().collect();
        announcement.cids = cids;
        Ok(announcement)
    }

    /// The objects announced.
    pub fn cids(&self) -> &[Cid] {
        &self.cids
    }

    /// Whether `cid` is announced.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.set.contains(cid)
    }
}

/// The certificates and revocations `owner` signed (they link to its Person: an indexed
/// lookup, so what other persons sent costs nothing here).
pub(crate) async fn public_identity(store: &dyn Store, owner: &[u8; 32]) -> Result<Vec<Cid>> {
    let owner_person = PersonId::of_key(owner).0;
    let mut out = Vec::new();
    for type_name in [CERTIFICATE_TYPE, REVOCATION_TYPE] {
        for (cid, object, value) in linking(store, &owner_person, type_name).await? {
            let valid = match type_name {
                CERTIFICATE_TYPE => Certificate::from_value(object, &value).is_ok(),
                _ => Revocation::from_value(object, &value).is_ok(),
            };
            if valid && signer_key(&value) == Some(*owner) {
                out.push(cid);
            }
        }
    }
    Ok(out)
}

/// Whose set a grant to `grantee` concerns: its person, or everyone for a group.
async fn grantee_affects(store: &dyn Store, grantee: &Cid) -> Result<Affects> {
    Ok(match load(store, grantee).await? {
        Some((_, value)) if value.type_name() == Some(GROUP_TYPE) => Affects::All,
        _ => Affects::Persons(vec![grantee.clone()]),
    })
}

/// Whose set the policy object `value` changes on a hub (`None`: not a policy object, or one
/// that changes nobody's set).
async fn affects(store: &dyn Store, cid: &Cid, value: &Value) -> Result<Option<Affects>> {
    let Ok(object) = Object::from_value(value) else {
        return Ok(None);
    };
    if object.cid() != cid {
        return Ok(None);
    }
    Ok(match value.type_name() {
        Some(ACCESS_TYPE) => match Access::from_value(object, value) {
            Ok(access) => Some(grantee_affects(store, &access.grantee).await?),
            Err(_) => None,
        },
        Some(ACCESS_REVOCATION_TYPE) => match AccessRevocation::from_value(object, value) {
            Ok(revocation) => match load(store, &revocation.access).await? {
                Some((grant, grant_value)) => match Access::from_value(grant, &grant_value) {
                    Ok(access) => Some(grantee_affects(store, &access.grantee).await?),
                    Err(_) => None,
                },
                None => None,
            },
            Err(_) => None,
        },
        Some(GROUP_MEMBERS_TYPE) => match GroupMembers::from_value(object, value) {
            Ok(statement) => Some(Affects::Group {
                signer: statement.signer_key,
                members: statement.members.into_iter().collect(),
            }),
            Err(_) => None,
        },
        _ => None,
    })
}

/// `owner`'s grants on `target` to anyone, their revocations, and the group statements and
/// groups they rely on: what a hub needs to forward `target` to the grantees.
async fn forwarding(store: &dyn Store, owner: &[u8; 32], target: &Cid) -> Result<Vec<Cid>> {
    let mut out = Vec::new();
    for (cid, object, value) in linking(store, target, ACCESS_TYPE).await? {
        let Ok(access) = Access::from_value(object, &value) else {
            continue;
        };
        if access.granter_key != *owner || access.target != *target {
            continue;
        }
        out.push(cid.clone());
        for (revocation, object, value) in linking(store, &cid, ACCESS_REVOCATION_TYPE).await? {
            if AccessRevocation::from_value(object, &value)
                .is_ok_and(|r| r.granter_key == *owner && r.access == cid)
            {
                out.push(revocation);
            }
        }
        // A grant to a group: the group and the owner's statements of its members.
        if let Some((_, group_value)) = load(store, &access.grantee).await?
            && group_value.type_name() == Some(GROUP_TYPE)
            && group_owner(&group_value).ok() == Some(PersonId::of_key(owner))
        {
            out.push(access.grantee.clone());
            for (statement, object, value) in
                linking(store, &access.grantee, GROUP_MEMBERS_TYPE).await?
            {
                if GroupMembers::from_value(object, &value).is_ok_and(|s| s.signer_key == *owner) {
                    out.push(statement);
                }
            }
        }
    }
    Ok(out)
}

/// The set of shared objects a peer of another person may see (see the module docs), kept up
/// to date as objects are stored, and able to answer a session's requests.
///
/// **On a hub** ([`VisibleSet::compute_hub`]) the set is what the peer's person may see of
/// what many persons sent the hub: every object an instance of that person sent, and, for
/// each other person with grants to it, what that person sent which those grants cover (by
/// the same rules as between persons: targets, their versions and collection entries, and
/// what those link to — through objects that person sent). Who sent what is recorded when it
/// arrives ([`crate::hub::record_contributions`]), so an object reaches a peer only through
/// its own sender's grants: a grant naming data its granter never sent (a computed ID, a CID
/// learnt elsewhere) uncovers nothing.
#[derive(Debug, Clone)]
pub struct VisibleSet {
    owner: [u8; 32],
    peer: PersonId,
    /// On a hub: what the peer's person and those who granted it something sent the hub.
    hub: Option<Box<crate::hub::HubState>>,
    policy: Policy,
    cids: BTreeSet<Cid>,
    by_short: BTreeMap<u64, Vec<Cid>>,
    summary: Summary,
    targets: BTreeSet<Cid>,
}

impl VisibleSet {
    /// Computes what `peer` may see of the store of an instance of `owner` (a person key).
    pub async fn compute(
        store: &dyn Store,
        policy: Policy,
        owner: [u8; 32],
        peer: PersonId,
    ) -> Result<VisibleSet> {
        let mut set = VisibleSet {
            owner,
            peer,
            hub: None,
            policy,
            cids: BTreeSet::new(),
            by_short: BTreeMap::new(),
            summary: Summary::EMPTY,
            targets: BTreeSet::new(),
        };
        set.rebuild(store).await?;
        Ok(set)
    }

    /// Computes what a peer of the person `peer_key` may see of the store of a hub whose
    /// person is `hub` (see the type docs).
    pub async fn compute_hub(
        store: &dyn Store,
        policy: Policy,
        hub: [u8; 32],
        peer_key: [u8; 32],
    ) -> Result<VisibleSet> {
        let mut set = VisibleSet {
            owner: hub,
            peer: PersonId::of_key(&peer_key),
            hub: Some(Box::new(crate::hub::HubState::new(peer_key))),
            policy,
            cids: BTreeSet::new(),
            by_short: BTreeMap::new(),
            summary: Summary::EMPTY,
            targets: BTreeSet::new(),
        };
        set.rebuild(store).await?;
        Ok(set)
    }

    async fn rebuild(&mut self, store: &dyn Store) -> Result<Vec<Cid>> {
        if self.hub.is_some() {
            let found = crate::hub::rebuild(self, store).await?;
            return self.replace_with(store, found).await;
        }
        let mut found = BTreeSet::new();
        let mut roots: Vec<Cid> = Vec::new();
        let mut targets = BTreeSet::new();
        let (owner, grantee) = (self.owner, self.peer.clone());
        // This side's public identity.
        found.insert(person_object(&owner).cid().clone());
        found.extend(public_identity(store, &owner).await?);
        let (grants, supporting) = grants_for(store, &owner, &grantee).await?;
        roots.extend(supporting);
        for grant in &grants {
            roots.push(grant.object.cid().clone());
            targets.insert(grant.target.clone());
        }
        // A hub forwards: this side's own grants (and their revocations) on what it granted
        // the peer's person, for a peer that is one of this side's hubs.
        if self.policy.is_hub(&grantee) {
            for grant in &grants {
                roots.extend(forwarding(store, &owner, &grant.target).await?);
            }
            // And this side's recipes, so the hub knows which fields of its objects make them
            // entries of what it granted (a hub applies them to this person's objects only).
            if !grants.is_empty() {
                roots.extend(self.policy.own_recipes().iter().cloned());
            }
        }
        for target in &targets {
            roots.extend(self.expansions(store, target, None).await?);
        }
        self.closure(store, roots, &mut found, &|_| true).await?;
        self.targets = targets;
        self.replace_with(store, found).await
    }

    /// Makes the set `found` (only what is stored and shared of it); returns what was added.
    pub(crate) async fn replace_with(
        &mut self,
        store: &dyn Store,
        found: BTreeSet<Cid>,
    ) -> Result<Vec<Cid>> {
        let candidates: Vec<Cid> = found.into_iter().collect();
        let mut shared = BTreeSet::new();
        for chunk in candidates.chunks(PAGE) {
            shared.extend(chum_store::sync::shared_among(store, chunk.to_vec()).await?);
        }
        let added: Vec<Cid> = shared.difference(&self.cids).cloned().collect();
        self.cids = shared;
        self.reindex();
        Ok(added)
    }

    /// Adds `cids` (shared) to the set.
    pub(crate) fn add(&mut self, cids: &[Cid]) {
        for cid in cids {
            if self.cids.insert(cid.clone()) {
                self.by_short
                    .entry(short_id(cid))
                    .or_default()
                    .push(cid.clone());
                self.summary.insert(cid);
            }
        }
    }

    /// A granted target's versions and collection entries.
    /// `owner`: on a hub, the granter (its recipes count too).
    pub(crate) async fn expansions(
        &self,
        store: &dyn Store,
        target: &Cid,
        owner: Option<&PersonId>,
    ) -> Result<Vec<Cid>> {
        let mut out = store.query(Query::Versions(target)).await?;
        let referrers: Vec<Cid> = links_to(store, target)
            .await?
            .into_iter()
            .filter(|cid| cid.codec() == Codec::DagCbor.code())
            .collect();
        for chunk in referrers.chunks(PAGE) {
            let loaded = store.get_many(chunk).await?;
            for (cid, bytes) in chunk.iter().zip(loaded) {
                if let Ok(bytes) = bytes
                    && let Ok((_, value)) =
                        Object::from_bytes(bytes, &chum_store::index::widest_limits())
                    && self
                        .policy
                        .collection_links_of(owner, &value)
                        .contains(target)
                {
                    out.push(cid.clone());
                }
            }
        }
        Ok(out)
    }

    /// Adds `roots` and everything they link to, transitively, to `found` — through shared
    /// objects only (an instance-local object is neither visible nor followed).
    pub(crate) async fn closure(
        &self,
        store: &dyn Store,
        roots: Vec<Cid>,
        found: &mut BTreeSet<Cid>,
        within: &(dyn Fn(&Cid) -> bool + Sync),
    ) -> Result<()> {
        // Breadth first, a layer at a time: which of a layer are shared, and their bytes,
        // are two reads for up to a page of objects (not two per object).
        let mut frontier = roots;
        let mut seen = HashSet::new();
        while !frontier.is_empty() {
            let layer: Vec<Cid> = std::mem::take(&mut frontier)
                .into_iter()
                .filter(|cid| seen.insert(cid.clone()) && within(cid))
                .collect();
            for chunk in layer.chunks(PAGE) {
                let shared = store.shared_among(chunk).await?;
                let structured: Vec<Cid> = shared
                    .iter()
                    .filter(|cid| cid.codec() == Codec::DagCbor.code())
                    .cloned()
                    .collect();
                let loaded = store.get_many(&structured).await?;
                found.extend(shared);
                for bytes in loaded.into_iter().flatten() {
                    if let Ok((_, value)) =
                        Object::from_bytes(bytes, &chum_store::index::widest_limits())
                    {
                        frontier.extend(links(&value).into_iter().filter(|c| !seen.contains(c)));
                    }
                }
            }
        }
        Ok(())
    }

    fn reindex(&mut self) {
        self.by_short.clear();
        for cid in &self.cids {
            self.by_short
                .entry(short_id(cid))
                .or_default()
                .push(cid.clone());
        }
        self.summary = Summary::of(self.cids.iter());
    }

    /// Whether this is a hub's view ([`VisibleSet::compute_hub`]).
    pub fn is_hub(&self) -> bool {
        self.hub.is_some()
    }

    /// Whether `cid` is visible.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.cids.contains(cid)
    }

    /// How many objects are visible.
    pub fn len(&self) -> usize {
        self.cids.len()
    }

    /// Whether nothing is visible.
    pub fn is_empty(&self) -> bool {
        self.cids.is_empty()
    }

    /// The visible CIDs.
    pub fn cids(&self) -> impl Iterator<Item = &Cid> {
        self.cids.iter()
    }

    /// The rules it follows.
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The peer's person.
    pub(crate) fn peer(&self) -> &PersonId {
        &self.peer
    }

    /// The hub's state of the set (on a hub).
    pub(crate) fn hub_state(&mut self) -> Option<&mut crate::hub::HubState> {
        self.hub.as_deref_mut()
    }

    /// On a hub: counts `cid` (not visible yet) as sent by the peer's person, unless that
    /// would pass `quota`; whether it fits. A reserved object is counted once, however often
    /// it is offered, and not again when it is announced.
    pub(crate) fn reserve(&mut self, cid: &Cid, quota: u64) -> bool {
        self.hub
            .as_deref_mut()
            .is_none_or(|state| state.reserve(cid, quota))
    }

    /// The rules and the hub's state of the set, the state to change (on a hub).
    pub(crate) fn hub_parts(&mut self) -> Option<(&Policy, &mut crate::hub::HubState)> {
        Some((&self.policy, self.hub.as_deref_mut()?))
    }

    /// The hub's state of the set, to read (on a hub).
    pub(crate) fn hub_state_ref(&self) -> Option<&crate::hub::HubState> {
        self.hub.as_deref()
    }

    /// On a hub: the persons whose objects can concern this peer — its own person and every
    /// person granting it something here. An announcement with no policy object and no
    /// public identity in it ([`Announcement::is_plain`]) concerns the peer only when one of
    /// these sent some of it, so a node with thousands of sessions can index them by these
    /// persons and visit only the few an announcement names. `None` (not a hub's view): any
    /// announcement may concern the peer. Changes only when the set is computed again (a
    /// policy object concerning the peer arrived): read it again after
    /// [`VisibleSet::on_announced`].
    pub fn concerning(&self) -> Option<Vec<PersonId>> {
        let state = self.hub_state_ref()?;
        Some(
            std::iter::once(self.peer.clone())
                .chain(state.granter_persons())
                .collect(),
        )
    }

    /// Whether `announcement` can change this set at all (`false` only when it certainly
    /// cannot: on a hub, nothing in it concerns this peer). Cheap and synchronous, for
    /// skipping [`VisibleSet::on_announced`] for most of a hub's peers.
    pub fn may_concern(&self, announcement: &Announcement) -> bool {
        crate::hub::may_concern(self, announcement)
    }

    /// Sets the targets (the union of the grants that make up the set).
    pub(crate) fn set_targets(&mut self, targets: BTreeSet<Cid>) {
        self.targets = targets;
    }

    /// The targets of this side's grants to the peer.
    pub fn targets(&self) -> &BTreeSet<Cid> {
        &self.targets
    }

    /// Objects were stored (`new`): returns those that became visible — new objects covered
    /// by the grants (versions, entries, link targets of visible objects), or, when a grant,
    /// revocation, group statement or certificate arrived, whatever the recomputed set adds.
    /// (Objects a revocation hides stop being offered; they are not announced.)
    pub async fn on_stored(&mut self, store: &dyn Store, new: &[Cid]) -> Result<Vec<Cid>> {
        let announcement = Announcement::prepare(store, new.to_vec(), self.is_hub()).await?;
        self.on_announced(store, &announcement).await
    }

    /// [`VisibleSet::on_stored`] with what was learnt of the new objects once for every
    /// session (a node with many sessions reads and decodes each new object once, and looks
    /// up what links to it once, instead of once per session).
    pub async fn on_announced(
        &mut self,
        store: &dyn Store,
        announcement: &Announcement,
    ) -> Result<Vec<Cid>> {
        if self.hub.is_some() {
            return crate::hub::on_announced(self, store, announcement).await;
        }
        if announcement.policy {
            return self.rebuild(store).await;
        }
        let mut roots = Vec::new();
        for cid in &announcement.cids {
            if self.cids.contains(cid) {
                continue;
            }
            let covered = announcement
                .values
                .get(cid)
                .is_some_and(|value| by_target(&self.policy, None, &self.targets, cid, value))
                || (self.policy.is_hub(&self.peer)
                    && !self.targets.is_empty()
                    && self.policy.own_recipes().contains(cid))
                || announcement
                    .referrers
                    .get(cid)
                    .is_some_and(|referrers| referrers.iter().any(|r| self.cids.contains(r)));
            if covered {
                roots.push(cid.clone());
            }
        }
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = BTreeSet::new();
        self.closure_from(store, roots, announcement, &mut found, &|_| true)
            .await?;
        // The announced objects are shared; anything else the closure reached is checked.
        let (known, unknown): (Vec<Cid>, Vec<Cid>) = found
            .into_iter()
            .partition(|cid| announcement.set.contains(cid));
        let mut added = known;
        for chunk in unknown.chunks(PAGE) {
            added.extend(chum_store::sync::shared_among(store, chunk.to_vec()).await?);
        }
        for cid in &added {
            self.cids.insert(cid.clone());
            self.by_short
                .entry(short_id(cid))
                .or_default()
                .push(cid.clone());
            self.summary.insert(cid);
        }
        Ok(added)
    }

    /// The closure of `roots` through shared objects not yet visible (what is visible is
    /// closed under links already), reading announced objects from the announcement.
    pub(crate) async fn closure_from(
        &self,
        store: &dyn Store,
        roots: Vec<Cid>,
        announcement: &Announcement,
        found: &mut BTreeSet<Cid>,
        within: &(dyn Fn(&Cid) -> bool + Sync),
    ) -> Result<()> {
        let mut stack = roots;
        let mut seen = HashSet::new();
        while let Some(cid) = stack.pop() {
            if self.cids.contains(&cid) || !seen.insert(cid.clone()) || !within(&cid) {
                continue;
            }
            if let Some(value) = announcement.values.get(&cid) {
                found.insert(cid.clone());
                stack.extend(links(value).into_iter().filter(|c| !seen.contains(c)));
                continue;
            }
            if announcement.set.contains(&cid) {
                // An announced raw block: no links.
                found.insert(cid);
                continue;
            }
            if !is_shared(store, &cid).await? {
                continue;
            }
            found.insert(cid.clone());
            if let Some((_, value)) = load(store, &cid).await? {
                stack.extend(links(&value).into_iter().filter(|c| !seen.contains(c)));
            }
        }
        Ok(())
    }

    /// Answers a session's request against this set (loading bytes from `store`).
    /// [`Request::Store`] and [`Request::Admit`] are the driver's: answered with a failure.
    pub async fn answer(&self, store: &dyn Store, request: Request) -> Answer {
        match request {
            // No journal position: positions count every shared object, granted or not.
            Request::Summary => Answer::Summary(self.summary, None),
            Request::Sketch { cells, salt } => {
                let mut sketch = Sketch::with_salt(cells, salt);
                for id in self
                    .by_short
                    .iter()
                    .flat_map(|(id, cids)| cids.iter().map(move |_| *id))
                {
                    sketch.insert(id);
                }
                Answer::Sketch(self.summary, sketch)
            }
            Request::ShortIds { after, limit } => {
                let low = match after {
                    None => Bound::Unbounded,
                    Some(after) => Bound::Excluded(after),
                };
                Answer::ShortIds(
                    self.by_short
                        .range((low, Bound::Unbounded))
                        .flat_map(|(id, cids)| cids.iter().map(move |_| *id))
                        .take(limit)
                        .collect(),
                )
            }
            Request::Cids { after, limit } => {
                let low = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                Answer::Cids(
                    self.cids
                        .range::<Cid, _>((low, Bound::Unbounded))
                        .take(limit)
                        .cloned()
                        .collect(),
                )
            }
            Request::Resolve(ids) => Answer::Resolved(
                ids.iter()
                    .filter_map(|id| self.by_short.get(id))
                    .flatten()
                    .cloned()
                    .collect(),
            ),
            Request::Shared(cids) => Answer::Resolved(
                cids.into_iter()
                    .filter(|cid| self.cids.contains(cid))
                    .collect(),
            ),
            Request::Load(cids) => {
                let cids: Vec<Cid> = cids
                    .into_iter()
                    .filter(|cid| self.cids.contains(cid))
                    .collect();
                self.load_all(store, cids).await
            }
            Request::Objects { after, limit } => {
                let low = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
                let cids: Vec<Cid> = self
                    .cids
                    .range::<Cid, _>((low, Bound::Unbounded))
                    .take(limit)
                    .cloned()
                    .collect();
                let next = if cids.len() < limit {
                    None
                } else {
                    cids.last().cloned()
                };
                match self.load_all(store, cids).await {
                    Answer::Loaded(objects) => Answer::Objects { objects, next },
                    other => other,
                }
            }
            _ => Answer::Failed("not a request for the visible set".into()),
        }
    }

    async fn load_all(&self, store: &dyn Store, cids: Vec<Cid>) -> Answer {
        match store.get_many(&cids).await {
            Ok(results) => Answer::Loaded(
                cids.into_iter()
                    .zip(results)
                    .filter_map(|(cid, bytes)| Some((cid, bytes.ok()?)))
                    .collect(),
            ),
            Err(error) => Answer::Failed(error.to_string()),
        }
    }
}

/// What this side accepts from a peer of another person (see the module docs).
#[derive(Debug, Clone)]
pub struct Coverage {
    me: PersonId,
    peer_key: [u8; 32],
    policy: Policy,
    /// What this side granted the peer: held targets its grants may name.
    granted_to_peer: BTreeSet<Cid>,
    targets: BTreeSet<Cid>,
    groups: BTreeSet<Cid>,
    expected: HashSet<Cid>,
    /// Certificates and revocations taken from the peer in this session.
    identity_objects: usize,
    /// On a hub: recipes taken from the peer in this session.
    recipes_taken: usize,
    /// Whether this side is a hub (see [`Policy::serve_as_hub`]): it also takes the peer's
    /// own grants and group statements on what the peer granted it, to forward.
    hub: bool,
}

/// Certificates and revocations (instance and access) of its own that a related person's
/// instance may hand over in one session; beyond, they are not taken.
pub const MAX_IDENTITY_OBJECTS: usize = 256;

/// Recipes a hub takes from one peer in one session.
pub const MAX_RECIPES_PER_SESSION: usize = 256;

impl Coverage {
    /// Whether this side and the peer's person share anything: a grant either way. A
    /// stranger is not related, and may write nothing into the shared set.
    pub fn related(&self) -> bool {
        !self.targets.is_empty() || !self.groups.is_empty() || !self.granted_to_peer.is_empty()
    }

    /// The coverage of grants from the person `peer_key` to `me` held in `store`.
    /// `granted_to_peer` are the targets of this side's grants to the peer: a grant of the
    /// peer's that names an object this side holds covers it only when it is one of those (a
    /// peer cannot write into this side's data by granting it back).
    pub async fn new(
        store: &dyn Store,
        policy: Policy,
        me: PersonId,
        peer_key: [u8; 32],
        granted_to_peer: BTreeSet<Cid>,
    ) -> Result<Coverage> {
        let hub = policy.serves_as_hub();
        let mut coverage = Coverage {
            me,
            peer_key,
            policy,
            granted_to_peer,
            targets: BTreeSet::new(),
            groups: BTreeSet::new(),
            expected: HashSet::new(),
            identity_objects: 0,
            recipes_taken: 0,
            hub,
        };
        // Held grants and statements were checked when they arrived. Only the peer's count,
        // and every one of them links to the peer's Person (its `person` field, checked
        // against the signing key): one indexed lookup per type, whose cost grows with what
        // the peer signed or was granted — never with how many persons this side (a hub)
        // serves. Statements first: grants to the groups they put `me` in count too.
        let peer_cid = PersonId::of_key(&peer_key).0;
        for (cid, object, value) in linking(store, &peer_cid, GROUP_MEMBERS_TYPE).await? {
            let names_me = GroupMembers::from_value(object, &value)
                .is_ok_and(|statement| statement.members.contains(&coverage.me));
            if names_me {
                coverage.grant_like(&cid, &value, true);
            }
        }
        for (cid, object, value) in linking(store, &peer_cid, ACCESS_TYPE).await? {
            let to_me = Access::from_value(object, &value).is_ok_and(|access| {
                access.grantee == coverage.me.0 || coverage.groups.contains(&access.grantee)
            });
            if to_me {
                coverage.grant_like(&cid, &value, true);
            }
        }
        Ok(coverage)
    }

    /// On a hub: takes the grants and group statements among `announcement`'s objects that
    /// the peer's person signed and that concern this side, as [`Coverage::new`] takes those
    /// held when the session starts — a grant that reached the hub another way (another
    /// session, another hub process over the store) covers what the peer sends from now on.
    /// Whether anything more is covered.
    ///
    /// Only on a hub, which has no data of its own that a grant could name: elsewhere a
    /// grant's target must pass [`Coverage::target_allowed`] as it arrives in the session.
    pub(crate) fn learn_announced(&mut self, announcement: &Announcement) -> bool {
        if !self.hub {
            return false;
        }
        let before = (self.targets.len(), self.groups.len());
        // Statements first: grants to the groups they put this side in count too.
        for kind in [GROUP_MEMBERS_TYPE, ACCESS_TYPE] {
            for (cid, value) in &announcement.values {
                if value.type_name() == Some(kind) && signer_key(value) == Some(self.peer_key) {
                    self.grant_like(cid, value, true);
                }
            }
        }
        (self.targets.len(), self.groups.len()) != before
    }

    /// Whether the target of a grant `value` (if it is one) may be covered: this side does
    /// not hold it, granted it to the peer itself, or already holds a grant of the peer's for
    /// it. (Otherwise the peer would be "granting" this side's own data back to it, to write
    /// into it.)
    async fn target_allowed(&self, store: &dyn Store, value: &Value) -> Result<bool> {
        // A hub has no data of its own to protect, and shows each object only through its
        // own sender's grants: any target may be granted to it (so a stranger who sent an ID
        // object first cannot keep its owner's data out).
        if self.hub {
            return Ok(true);
        }
        let Some(target) = value
            .as_map()
            .and_then(|map| map.get("target"))
            .and_then(Value::as_link)
        else {
            return Ok(true);
        };
        Ok(self.granted_to_peer.contains(target)
            || self.targets.contains(target)
            || !store.has(target).await?)
    }

    /// For a grant or group statement from the peer's person that concerns `me`: records it
    /// and returns true. `target_allowed`: whether a grant's target may become covered.
    fn grant_like(&mut self, cid: &Cid, value: &Value, target_allowed: bool) -> bool {
        let Ok(object) = Object::from_value(value) else {
            return false;
        };
        if object.cid() != cid {
            return false;
        }
        match value.type_name() {
            Some(ACCESS_TYPE) => match Access::from_value(object, value) {
                Ok(access)
                    if access.granter_key == self.peer_key
                        && (access.grantee == self.me.0
                            || self.groups.contains(&access.grantee)) =>
                {
                    // A grant naming this side's own data is not taken at all.
                    if target_allowed {
                        self.targets.insert(access.target.clone());
                        self.expected.extend(links(value));
                    }
                    target_allowed
                }
                // A hub takes the peer's grants to others on what the peer granted the hub:
                // it forwards the target to those grantees.
                Ok(access)
                    if self.hub
                        && access.granter_key == self.peer_key
                        && self.targets.contains(&access.target) =>
                {
                    self.expected.extend(links(value));
                    true
                }
                _ => false,
            },
            Some(GROUP_MEMBERS_TYPE) => match GroupMembers::from_value(object, value) {
                Ok(statement)
                    if statement.signer_key == self.peer_key
                        && statement.members.contains(&self.me) =>
                {
                    self.groups.insert(statement.group.clone());
                    self.expected.extend(links(value));
                    true
                }
                // A hub takes the peer's statements of its groups' members (grants to those
                // groups forward through it).
                Ok(statement) if self.hub && statement.signer_key == self.peer_key => {
                    self.expected.extend(links(value));
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether the object `cid` (decoded: `value`, `None` for a raw block) from the peer is
    /// covered; if so, what it links to becomes expected.
    pub async fn check(
        &mut self,
        store: &dyn Store,
        cid: &Cid,
        value: Option<&Value>,
    ) -> Result<bool> {
        let peer_person = PersonId::of_key(&self.peer_key);
        let covered = match value {
            None => self.expected.contains(cid) || self.held_referrer(store, cid).await?,
            Some(value) => match value.type_name() {
                Some(ACCESS_TYPE | GROUP_MEMBERS_TYPE) => {
                    let allowed = self.target_allowed(store, value).await?;
                    self.grant_like(cid, value, allowed)
                }
                // A stranger (no grant either way) writes nothing into the shared set, not even
                // its own identity; a related person's identity objects are bounded per session.
                Some(PERSON_TYPE) => {
                    (*cid == peer_person.0 && self.related())
                        || *cid == self.me.0
                        || self.expected.contains(cid)
                }
                Some(CERTIFICATE_TYPE | REVOCATION_TYPE | ACCESS_REVOCATION_TYPE) => {
                    let ok = self.related()
                        && self.identity_objects < MAX_IDENTITY_OBJECTS
                        && signer_key(value) == Some(self.peer_key)
                        && crate::grant::verify_value(value).is_ok();
                    if ok {
                        self.identity_objects += 1;
                    }
                    ok
                }
                Some(GROUP_TYPE) => {
                    group_owner(value).is_ok_and(|owner| owner == peer_person)
                        && (self.expected.contains(cid) || self.groups.contains(cid))
                }
                // Only a hub writes its notes of who sent which recipe: never taken from a
                // peer (one naming another person would change what that person's grants
                // cover).
                Some(crate::hub::RECIPE_NOTE_TYPE) if self.hub => false,
                // A hub takes a related person's recipes (bounded per session) and applies
                // them to that person's objects only.
                Some(RECIPE_TYPE) if self.hub => {
                    self.related()
                        && self.recipes_taken < MAX_RECIPES_PER_SESSION
                        && self.policy.learn_recipe(&peer_person, cid, value)
                        && {
                            self.recipes_taken += 1;
                            true
                        }
                }
                _ => {
                    let owner = self.hub.then_some(&peer_person);
                    by_target(&self.policy, owner, &self.targets, cid, value)
                        || self.expected.contains(cid)
                        || self.held_referrer(store, cid).await?
                }
            },
        };
        if covered && let Some(value) = value {
            self.expected.extend(links(value));
        }
        Ok(covered)
    }

    /// Whether `cid` is the target of one of the peer's grants to this side.
    pub fn is_target(&self, cid: &Cid) -> bool {
        self.targets.contains(cid)
    }

    /// The peer's person.
    pub fn peer_person(&self) -> PersonId {
        PersonId::of_key(&self.peer_key)
    }

    /// Whether a stored shared object links to `cid` (it is part of data already held here).
    async fn held_referrer(&self, store: &dyn Store, cid: &Cid) -> Result<bool> {
        let referrers = links_to(store, cid).await?;
        if referrers.is_empty() {
            return Ok(false);
        }
        Ok(!chum_store::sync::shared_among(store, referrers)
            .await?
            .is_empty())
    }

    /// Decodes received bytes for [`Coverage::check`] (`None` for raw blocks).
    pub fn decode(cid: &Cid, bytes: &[u8]) -> Option<Value> {
        if cid.codec() != Codec::DagCbor.code() {
            return None;
        }
        chum_object::dagcbor::decode_with_limits(bytes, &Limits::default()).ok()
    }
}
