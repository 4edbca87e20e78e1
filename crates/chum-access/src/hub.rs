//! What a **hub** shows each peer: the instance many persons grant access to, which stores
//! what they send it and forwards it to whom they granted it.
//!
//! One rule, the same as between persons but applied per sender: a peer of person X sees
//! - every object an instance of X sent the hub;
//! - for each other person A with grants to X held here (directly or through A's groups, not
//!   revoked): what A sent the hub that those grants cover — the grant, its target, the
//!   target's versions and collection entries, and what those link to, following only
//!   objects A sent;
//! - the public identity (person, certificates, revocations) of those persons.
//!
//! Who sent what is recorded as it arrives ([`record_contributions`]), before the objects are
//! stored, in the instance-local area (so every hub process over one database reads the
//! same records). Everything else a hub holds — other persons' data, including versions
//! or entries of a target a grant names — stays out of the set: a grant naming data its
//! granter never sent (a computed ID object's CID, a CID learnt elsewhere) uncovers nothing.

use std::collections::{BTreeMap, BTreeSet};

use chum_object::{Cid, Object, Value};
use chum_store::Store;

use crate::error::Result;
use crate::grant::{ACCESS_TYPE, Access, GROUP_MEMBERS_TYPE, GROUP_TYPE, GroupMembers};
use crate::keys::{PersonId, person_object};
use crate::visibility::{
    Affects, Announcement, VisibleSet, by_target, grants_for, linking, load, public_identity,
    signer_key,
};

/// Key prefix of the records by sender: `prefix ‖ len(person) ‖ person CID ‖ object CID`.
pub const BY_SENDER: &[u8] = b"chum-access/hub/sent-by/";
/// Key prefix of the records by object: `prefix ‖ len(object) ‖ object CID ‖ person CID`.
pub const BY_OBJECT: &[u8] = b"chum-access/hub/sender-of/";

fn prefixed(prefix: &[u8], first: &Cid) -> Vec<u8> {
    let bytes = first.as_bytes();
    let mut key = prefix.to_vec();
    // A CID is far shorter than 256 bytes.
    key.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(bytes);
    key
}

/// Records that an instance of `person` sent the hub `cids` (in one write of the local area).
pub async fn record_contributions(
    store: &dyn Store,
    person: &PersonId,
    cids: &[Cid],
) -> Result<()> {
    if cids.is_empty() {
        return Ok(());
    }
    store.local_put_many(&contributions(person, cids)).await?;
    Ok(())
}

/// The local-area entries that record that an instance of `person` sent the hub `cids`
/// (what [`record_contributions`] writes; [`Store::put_with_local`] writes them with the
/// objects).
pub fn contributions(person: &PersonId, cids: &[Cid]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let by_sender = prefixed(BY_SENDER, &person.0);
    let mut entries = Vec::with_capacity(cids.len() * 2);
    for cid in cids {
        let mut key = by_sender.clone();
        key.extend_from_slice(cid.as_bytes());
        entries.push((key, Vec::new()));
        let mut key = prefixed(BY_OBJECT, cid);
        key.extend_from_slice(person.0.as_bytes());
        entries.push((key, Vec::new()));
    }
    entries
}

/// Everything an instance of `person` sent the hub.
pub async fn sent_by(store: &dyn Store, person: &PersonId) -> Result<BTreeSet<Cid>> {
    let prefix = prefixed(BY_SENDER, &person.0);
    Ok(store
        .local_keys(&prefix)
        .await?
        .iter()
        .filter_map(|key| Cid::from_bytes(key.get(prefix.len()..)?).ok())
        .collect())
}

/// The persons whose instances sent the hub `cid`.
pub async fn senders(store: &dyn Store, cid: &Cid) -> Result<Vec<PersonId>> {
    let prefix = senders_prefix(cid);
    Ok(senders_in(&prefix, &store.local_keys(&prefix).await?))
}

/// The prefix of the local keys that record who sent `cid` (see [`senders_in`]).
pub(crate) fn senders_prefix(cid: &Cid) -> Vec<u8> {
    prefixed(BY_OBJECT, cid)
}

/// The senders that the local keys under `prefix` (see [`senders_prefix`]) record.
pub(crate) fn senders_in(prefix: &[u8], keys: &[Vec<u8>]) -> Vec<PersonId> {
    keys.iter()
        .filter_map(|key| Cid::from_bytes(key.get(prefix.len()..)?).ok().map(PersonId))
        .collect()
}

/// The grants and group statements of one batch (or of the objects a session holds back),
/// indexed by group once, for [`names_others_own`].
#[derive(Debug, Default)]
pub struct GroupPolicy {
    /// Members each statement names, by group.
    members: BTreeMap<Cid, Vec<(PersonId, Vec<PersonId>)>>,
    /// Grants, by grantee.
    grants: BTreeMap<Cid, Vec<Access>>,
}

impl GroupPolicy {
    /// Indexes the grants and group statements among `values` (others are skipped).
    pub fn of<'a>(values: impl IntoIterator<Item = &'a Value>) -> GroupPolicy {
        let mut policy = GroupPolicy::default();
        for value in values {
            let Ok(object) = Object::from_value(value) else {
                continue;
            };
            match value.type_name() {
                Some(ACCESS_TYPE) => {
                    if let Ok(access) = Access::from_value(object, value) {
                        policy
                            .grants
                            .entry(access.grantee.clone())
                            .or_default()
                            .push(access);
                    }
                }
                Some(GROUP_MEMBERS_TYPE) => {
                    if let Ok(statement) = GroupMembers::from_value(object, value) {
                        policy
                            .members
                            .entry(statement.group)
                            .or_default()
                            .push((PersonId::of_key(&statement.signer_key), statement.members));
                    }
                }
                _ => {}
            }
        }
        policy
    }
}

/// Whether a grant or group statement that the person `granter` sends the hub would show
/// some other person what that person itself sent the hub: the grant's target (or, for a
/// statement, the target of a grant of the granter's to that group) was sent by a person the
/// grant would then cover, who did not grant that target to the granter. Returns that
/// person.
///
/// Such a grant is refused as it arrives, as a peer refuses a grant naming its own data in a
/// direct session: otherwise a stranger who knows a conversation's ID could grant it to its
/// owner and write into it through the hub. Checked against what the store holds and against
/// `batch` (the policy objects arriving together), so a grant and the statement that puts
/// its victim in the group cannot slip through side by side, in either order. As between
/// persons, the order decides: a grant that came before its grantee sent the target stays.
///
/// What it reads is bounded by the target's senders, the statements about the grantee
/// group and what the granter was granted, never by how widely others shared the target.
pub async fn names_others_own(
    store: &dyn Store,
    granter: &PersonId,
    value: &Value,
    batch: &GroupPolicy,
) -> Result<Option<PersonId>> {
    if !matches!(value.type_name(), Some(ACCESS_TYPE | GROUP_MEMBERS_TYPE)) {
        return Ok(None);
    }
    let Ok(object) = Object::from_value(value) else {
        return Ok(None);
    };
    // (target, the group or person granted) for each grant in question.
    let mut cases: Vec<(Cid, Cid)> = Vec::new();
    match value.type_name() {
        Some(ACCESS_TYPE) => {
            let Ok(access) = Access::from_value(object, value) else {
                return Ok(None);
            };
            if PersonId::of_key(&access.granter_key) == *granter {
                cases.push((access.target, access.grantee));
            }
        }
        Some(GROUP_MEMBERS_TYPE) => {
            let Ok(statement) = GroupMembers::from_value(object, value) else {
                return Ok(None);
            };
            if PersonId::of_key(&statement.signer_key) != *granter {
                return Ok(None);
            }
            let held = linking(store, &statement.group, ACCESS_TYPE).await?;
            let held = held
                .into_iter()
                .filter_map(|(_, object, value)| Access::from_value(object, &value).ok());
            let arriving = batch
                .grants
                .get(&statement.group)
                .into_iter()
                .flatten()
                .cloned();
            for access in held.chain(arriving) {
                if access.grantee == statement.group
                    && PersonId::of_key(&access.granter_key) == *granter
                {
                    cases.push((access.target, statement.group.clone()));
                }
            }
        }
        _ => {}
    }
    for (target, grantee) in cases {
        // Most targets were sent by their granter alone: one lookup decides.
        let sent: Vec<PersonId> = senders(store, &target)
            .await?
            .into_iter()
            .filter(|person| person != granter)
            .collect();
        if sent.is_empty() {
            continue;
        }
        let covered = grantees(store, granter, &grantee, batch).await?;
        for person in sent {
            // As between persons: a person may grant back what it was granted (to write
            // into a conversation shared with it).
            if covered.contains(&person) && !granted(store, &person, granter, &target).await? {
                return Ok(Some(person));
            }
        }
    }
    Ok(None)
}

/// Who a grant of `granter`'s to `grantee` may cover: the grantee as a person, and, unless
/// the hub holds it as something else than a group, every member any statement of the
/// granter's about it names (held or among `batch`), the latest or not, whether the group
/// object is here yet or not: no order of arrival lets a grant name a member's own data.
async fn grantees(
    store: &dyn Store,
    granter: &PersonId,
    grantee: &Cid,
    batch: &GroupPolicy,
) -> Result<BTreeSet<PersonId>> {
    let mut covered = BTreeSet::from([PersonId(grantee.clone())]);
    let known = load(store, grantee).await?;
    if known.is_some_and(|(_, value)| value.type_name() != Some(GROUP_TYPE)) {
        return Ok(covered);
    }
    for (_, object, value) in linking(store, grantee, GROUP_MEMBERS_TYPE).await? {
        if let Ok(statement) = GroupMembers::from_value(object, &value)
            && statement.group == *grantee
            && PersonId::of_key(&statement.signer_key) == *granter
        {
            covered.extend(statement.members);
        }
    }
    for (signer, members) in batch.members.get(grantee).into_iter().flatten() {
        if signer == granter {
            covered.extend(members.iter().cloned());
        }
    }
    Ok(covered)
}

/// Whether `from` granted `to` the target `target` (directly or through a group of its
/// own), by a grant held here: read from what names `to`, so bounded by what `to` was
/// granted, not by how widely `target` is shared.
async fn granted(store: &dyn Store, from: &PersonId, to: &PersonId, target: &Cid) -> Result<bool> {
    let grants_from = |object: Object, value: &Value, grantee: &Cid| {
        Access::from_value(object, value).is_ok_and(|access| {
            access.target == *target
                && access.grantee == *grantee
                && PersonId::of_key(&access.granter_key) == *from
        })
    };
    for (_, object, value) in linking(store, &to.0, ACCESS_TYPE).await? {
        if grants_from(object, &value, &to.0) {
            return Ok(true);
        }
    }
    for (_, object, value) in linking(store, &to.0, GROUP_MEMBERS_TYPE).await? {
        let Ok(statement) = GroupMembers::from_value(object, &value) else {
            continue;
        };
        if PersonId::of_key(&statement.signer_key) != *from || !statement.members.contains(to) {
            continue;
        }
        for (_, object, value) in linking(store, &statement.group, ACCESS_TYPE).await? {
            if grants_from(object, &value, &statement.group) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The `$type` of a hub's note that a person sent it a recipe: `{person, recipe}` (links).
/// The hub writes one, shared, beside a recipe it takes from a person, so that every process
/// over its store hears of it — the recipe itself is usually stored already (every person
/// of one app sends the same recipe objects), and only new objects are announced. Nobody
/// sent a note (no contribution records): no peer ever sees one.
pub const RECIPE_NOTE_TYPE: &str = "HubRecipeNote";

/// The note that `person` sent the recipe `recipe`, as a verified object (see
/// [`RECIPE_NOTE_TYPE`]).
pub(crate) fn recipe_note(person: &PersonId, recipe: &Cid) -> Option<(Cid, Vec<u8>)> {
    let mut map = chum_object::Map::new();
    map.insert("$type", RECIPE_NOTE_TYPE);
    map.insert("person", person.0.clone());
    map.insert("recipe", recipe.clone());
    let object = chum_object::Object::from_value(&chum_object::Value::Map(map)).ok()?;
    Some((object.cid().clone(), object.into_bytes()))
}

/// The person and recipe of a note (see [`RECIPE_NOTE_TYPE`]).
pub(crate) fn read_recipe_note(value: &chum_object::Value) -> Option<(PersonId, Cid)> {
    if value.type_name() != Some(RECIPE_NOTE_TYPE) {
        return None;
    }
    let map = value.as_map()?;
    let person = map.get("person")?.as_link()?.clone();
    let recipe = map.get("recipe")?.as_link()?.clone();
    Some((PersonId(person), recipe))
}

/// A hub's state of one peer's set.
#[derive(Debug, Clone)]
pub struct HubState {
    peer_key: [u8; 32],
    /// Per person with grants to the peer's person: the targets of those grants, and what
    /// that person sent.
    granters: BTreeMap<Cid, Granter>,
    /// Objects the peer's person sent, as known here (the store's records when the set was
    /// computed, then what was taken or announced since): what a quota counts.
    own_sent: u64,
    /// Objects counted in `own_sent` when taken, not announced yet.
    reserved: std::collections::HashSet<Cid>,
}

#[derive(Debug, Clone, Default)]
struct Granter {
    targets: BTreeSet<Cid>,
    sent: BTreeSet<Cid>,
}

impl HubState {
    pub(crate) fn new(peer_key: [u8; 32]) -> HubState {
        HubState {
            peer_key,
            granters: BTreeMap::new(),
            own_sent: 0,
            reserved: std::collections::HashSet::new(),
        }
    }

    /// See [`crate::visibility::VisibleSet::reserve`].
    pub(crate) fn reserve(&mut self, cid: &Cid, quota: u64) -> bool {
        if self.reserved.contains(cid) {
            return true;
        }
        if self.own_sent >= quota {
            return false;
        }
        self.own_sent += 1;
        self.reserved.insert(cid.clone());
        true
    }

    /// The persons with grants to the peer's person held here.
    pub(crate) fn granter_persons(&self) -> impl Iterator<Item = PersonId> + '_ {
        self.granters.keys().map(|person| PersonId(person.clone()))
    }
}

/// The persons (keys) with grants to `peer` held here: granters of grants naming it, and
/// owners of groups whose statements name it.
async fn granters_of(store: &dyn Store, peer: &PersonId) -> Result<BTreeSet<[u8; 32]>> {
    let mut granters = BTreeSet::new();
    for (_, object, value) in linking(store, &peer.0, ACCESS_TYPE).await? {
        if let Ok(access) = Access::from_value(object, &value)
            && access.grantee == peer.0
        {
            granters.insert(access.granter_key);
        }
    }
    for (_, object, value) in linking(store, &peer.0, GROUP_MEMBERS_TYPE).await? {
        if let Ok(statement) = GroupMembers::from_value(object, &value)
            && statement.members.contains(peer)
        {
            granters.insert(statement.signer_key);
        }
    }
    Ok(granters)
}

/// Computes a hub peer's set from the store (see the module docs); also refreshes the
/// set's per-granter state and targets.
pub(crate) async fn rebuild(set: &mut VisibleSet, store: &dyn Store) -> Result<BTreeSet<Cid>> {
    let Some(peer_key) = set.hub_state().map(|state| state.peer_key) else {
        return Ok(BTreeSet::new());
    };
    let peer = set.peer().clone();
    let mut found = sent_by(store, &peer).await?;
    let own_sent = found.len() as u64;
    found.insert(person_object(&peer_key).cid().clone());
    found.extend(public_identity(store, &peer_key).await?);
    let mut granters = BTreeMap::new();
    let mut all_targets = BTreeSet::new();
    for granter_key in granters_of(store, &peer).await? {
        if granter_key == peer_key {
            continue;
        }
        let granter = PersonId::of_key(&granter_key);
        let sent = sent_by(store, &granter).await?;
        let (grants, supporting) = grants_for(store, &granter_key, &peer).await?;
        let mut state = Granter {
            targets: BTreeSet::new(),
            sent,
        };
        // Only grants (and group statements) the granter sent count.
        let mut roots: Vec<Cid> = supporting
            .into_iter()
            .filter(|cid| state.sent.contains(cid))
            .collect();
        for grant in &grants {
            if state.sent.contains(grant.object.cid()) {
                roots.push(grant.object.cid().clone());
                state.targets.insert(grant.target.clone());
            }
        }
        if !state.targets.is_empty() {
            found.insert(person_object(&granter_key).cid().clone());
            found.extend(public_identity(store, &granter_key).await?);
        }
        for target in &state.targets {
            roots.extend(set.expansions(store, target, Some(&granter)).await?);
        }
        let sent = &state.sent;
        set.closure(store, roots, &mut found, &|cid| sent.contains(cid))
            .await?;
        all_targets.extend(state.targets.iter().cloned());
        granters.insert(granter.0, state);
    }
    if let Some(state) = set.hub_state() {
        state.granters = granters;
        // Taken objects committed by now are among those the store says the person sent.
        state.own_sent = own_sent;
        state.reserved.clear();
    }
    set.set_targets(all_targets);
    Ok(found)
}

/// Whether an announcement can change a hub peer's set at all: a policy object or a public
/// identity among it, or an object sent by the peer's person or by a person granting it
/// something. Synchronous and cheap: most announcements concern few of a hub's peers.
pub(crate) fn may_concern(set: &VisibleSet, announcement: &Announcement) -> bool {
    let Some(state) = set.hub_state_ref() else {
        return true;
    };
    if !announcement.affects.is_empty() || announcement.identity {
        return true;
    }
    let peer = set.peer();
    announcement
        .all_senders
        .iter()
        .any(|sender| sender == peer || state.granters.contains_key(&sender.0))
}

/// A hub peer's set after objects were stored: what the peer's person sent, and what each
/// granter sent that its grants cover (or that a visible object it sent links to).
pub(crate) async fn on_announced(
    set: &mut VisibleSet,
    store: &dyn Store,
    announcement: &Announcement,
) -> Result<Vec<Cid>> {
    let peer = set.peer().clone();
    // A policy object concerning this peer (a grant to it, its revocation, a statement of a
    // group it is or was in) changes the set: computed again.
    let concerned = announcement.affects.iter().any(|affects| match affects {
        Affects::All => true,
        Affects::Persons(persons) => persons.contains(&peer.0),
        Affects::Granters(granters) => granters.iter().any(|granter| {
            set.hub_state_ref()
                .is_some_and(|state| state.granters.contains_key(&granter.0))
        }),
        Affects::Group { signer, members } => {
            members.contains(&peer)
                || set
                    .hub_state()
                    .is_some_and(|state| state.granters.contains_key(&PersonId::of_key(signer).0))
        }
    });
    if concerned {
        let found = rebuild(set, store).await?;
        return set.replace_with(store, found).await;
    }
    // Most announcements concern few of a hub's peers: nothing sent by this peer's person or
    // by a person granting it anything, and no public identity, adds nothing.
    if !announcement.identity {
        let related = set.hub_state().is_some_and(|state| {
            announcement
                .all_senders
                .iter()
                .any(|sender| *sender == peer || state.granters.contains_key(&sender.0))
        });
        if !related {
            return Ok(Vec::new());
        }
    }
    let mut added = Vec::new();
    let mut roots_by: BTreeMap<Cid, Vec<Cid>> = BTreeMap::new();
    for cid in announcement.cids() {
        if set.contains(cid) {
            continue;
        }
        let Some(senders) = announcement.senders.get(cid) else {
            continue;
        };
        if senders.contains(&peer) {
            if let Some(state) = set.hub_state()
                && !state.reserved.remove(cid)
            {
                state.own_sent += 1; // sent through another session or process
            }
            added.push(cid.clone());
            continue;
        }
        let referrers = announcement.referrers.get(cid);
        let value = announcement.values.get(cid);
        let Some((policy, state)) = set.hub_parts() else {
            return Ok(Vec::new());
        };
        // A granter's public identity (certificates, revocations it signed) is shown with
        // what it granted.
        let identity_of_granter = value.is_some_and(|value| {
            matches!(
                value.type_name(),
                Some(crate::keys::CERTIFICATE_TYPE | crate::keys::REVOCATION_TYPE)
            ) && signer_key(value).is_some_and(|signer| {
                state
                    .granters
                    .get(&PersonId::of_key(&signer).0)
                    .is_some_and(|granter| !granter.targets.is_empty())
            })
        });
        if identity_of_granter {
            added.push(cid.clone());
            continue;
        }
        for sender in senders {
            let Some(granter) = state.granters.get_mut(&sender.0) else {
                continue;
            };
            granter.sent.insert(cid.clone());
            let covered = value
                .is_some_and(|value| by_target(policy, Some(sender), &granter.targets, cid, value));
            let linked = referrers
                .is_some_and(|referrers| referrers.iter().any(|r| granter.sent.contains(r)));
            if covered || linked {
                roots_by
                    .entry(sender.0.clone())
                    .or_default()
                    .push(cid.clone());
            }
        }
    }
    // Linked-from referrers must be visible; a referrer's visibility is checked here (the
    // per-granter test above only knew it was that granter's).
    let mut found = BTreeSet::new();
    for (sender, roots) in roots_by {
        let owner = PersonId(sender.clone());
        // Taken out while the set is read (and put back below): it grows with everything
        // the granter sent, too much to copy for every announcement.
        let Some(sent) = set
            .hub_state()
            .and_then(|state| state.granters.get_mut(&sender))
            .map(|granter| std::mem::take(&mut granter.sent))
        else {
            continue;
        };
        let roots: Vec<Cid> = roots
            .into_iter()
            .filter(|cid| {
                announcement.values.get(cid).is_some_and(|value| {
                    set.hub_state_ref()
                        .and_then(|state| state.granters.get(&sender))
                        .is_some_and(|g| {
                            by_target(set.policy(), Some(&owner), &g.targets, cid, value)
                        })
                }) || announcement.referrers.get(cid).is_some_and(|referrers| {
                    referrers
                        .iter()
                        .any(|r| set.contains(r) && sent.contains(r))
                })
            })
            .collect();
        let closed = set
            .closure_from(store, roots, announcement, &mut found, &|cid| {
                sent.contains(cid)
            })
            .await;
        if let Some(granter) = set
            .hub_state()
            .and_then(|state| state.granters.get_mut(&sender))
        {
            granter.sent = sent;
        }
        closed?;
    }
    added.extend(found);
    added.sort();
    added.dedup();
    added.retain(|cid| !set.contains(cid));
    // Announced objects are shared; anything else reached is checked.
    let mut shared = Vec::with_capacity(added.len());
    for cid in added {
        if announcement.contains(&cid)
            || !chum_store::sync::shared_among(store, vec![cid.clone()])
                .await?
                .is_empty()
        {
            shared.push(cid);
        }
    }
    set.add(&shared);
    Ok(shared)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::visibility::Policy;
    use chum_object::recipe::{Field, Kind, Recipe, Strategy};
    use chum_object::{Object, Value, dagjson};

    /// A hub learns a person's recipe from its own note (no sender), never from one a peer
    /// sent: that would let anyone attribute a recipe to someone else.
    #[test]
    fn only_the_hubs_own_recipe_notes_are_learnt() {
        let store = chum_store::MemoryStore::new();
        let alice = PersonId(
            Object::from_value(&dagjson::from_str(r#"{"$type":"Person","key":"a"}"#).unwrap())
                .unwrap()
                .cid()
                .clone(),
        );
        let mallory = PersonId(
            Object::from_value(&dagjson::from_str(r#"{"$type":"Person","key":"m"}"#).unwrap())
                .unwrap()
                .cid()
                .clone(),
        );
        let recipe = Recipe::new("Reply", Strategy::AppendOnly)
            .field(Field::new("on", Kind::Link(Vec::new())).collection());
        let recipe_value = recipe.to_value();
        let recipe_cid = Object::from_value(&recipe_value).unwrap().cid().clone();
        let (note_cid, note_bytes) = recipe_note(&alice, &recipe_cid).unwrap();
        let note_value: Value = chum_object::dagcbor::decode(&note_bytes).unwrap();
        let reply = dagjson::from_str(&format!(
            r#"{{"$type":"Reply","on":{{"/":"{recipe_cid}"}}}}"#
        ))
        .unwrap();
        for (senders, learnt) in [(vec![mallory.clone()], false), (Vec::new(), true)] {
            let policy = Policy::default();
            let mut announcement = Announcement::default();
            announcement
                .values
                .insert(recipe_cid.clone(), recipe_value.clone());
            announcement
                .values
                .insert(note_cid.clone(), note_value.clone());
            announcement.senders.insert(note_cid.clone(), senders);
            futures::executor::block_on(policy.learn_announced(&store, &mut announcement)).unwrap();
            assert_eq!(
                !policy.collection_links_of(Some(&alice), &reply).is_empty(),
                learnt
            );
        }
    }
}
