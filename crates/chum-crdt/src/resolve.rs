//! State resolution for versioned strategies: last-write, field-merge and instance-local.
//!
//! A [`Resolver`] holds what it needs of the versions of one object (one ID hash) and updates
//! the current state incrementally: adding a version costs O(log n + fields it touches),
//! whatever the history. The state depends only on the *set* of versions added, never on the
//! order or on duplicates, so replicas holding the same versions show the same state.
//!
//! ## last-write (and instance-local)
//! A version's body is the object's whole state (its fields, without `$type` and ID fields).
//! The state is the body of the greatest head by (clock, author, CID), where the heads are the
//! versions no other present version names as a parent. **Delete wins**: if any head is a
//! tombstone, the object is deleted; an edit made after seeing the delete (a descendant of the
//! tombstone) brings it back.
//!
//! ## field-merge
//! A version's body holds only the fields it changes. A plain field resolves to the value of the
//! greatest version (by clock, author, CID) that sets it; `null` unsets it. A set field
//! (recipe kind `set`) is an add-wins observed-remove set: its body entry is
//! `{"add": [elements], "remove": [[element, <link to the version that added it>], …]}`, and an
//! element is present while some version added it and no version removed that addition — a
//! remove cancels only the additions its author had seen. **Edit wins**: the object is deleted
//! only when every head is a tombstone; a field-merge tombstone unsets the fields and removes the
//! set elements its author saw, so an edit concurrent with a delete keeps what it wrote.

use std::collections::{BTreeMap, BTreeSet};

use chum_object::recipe::{Kind, Recipe, Strategy};
use chum_object::{Cid, Map, Value, dagcbor};

use crate::fasthash::{CidMap, CidSet};
use crate::version::{Version, VersionKey};

/// The resolved state of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Whether the object exists: it has versions and is not deleted.
    pub exists: bool,
    /// The current fields (without `$type` and ID fields); empty when it does not exist. Set
    /// fields are lists in DAG-CBOR order of their elements.
    pub fields: Map,
}

/// A concurrent value that lost, for apps that show conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The field (field-merge), or `None` for the whole state (last-write).
    pub field: Option<String>,
    /// The losing version.
    pub cid: Cid,
    /// Its value (the field's value, or the whole body).
    pub value: Value,
}

/// A version that cannot be resolved with the others. The caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The version belongs to another object.
    #[error("version of {found} added to the resolver of {expected}")]
    OtherObject {
        /// The resolver's ID hash.
        expected: Cid,
        /// The version's `of`.
        found: Cid,
    },
    /// Two resolvers built for different strategies or set fields cannot be merged.
    #[error("resolvers of different recipes (strategy or set fields) cannot be merged")]
    DifferentRecipes,
    /// Append-only types have no versions to resolve (see `Collection`).
    #[error("{0} is append-only: its entries are immutable and need no resolution")]
    NotVersioned(String),
}

#[derive(Debug, Clone)]
struct Entry {
    clock: crate::clock::Timestamp,
    author: crate::version::InstanceId,
    deleted: bool,
    /// Whether some present version names this one as a parent (so it is not a head).
    referenced: bool,
}

impl Entry {
    fn key(&self, cid: &Cid) -> VersionKey {
        VersionKey {
            clock: self.clock,
            author: self.author,
            cid: cid.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum FieldState {
    Plain { key: VersionKey, value: Value },
    Set(OrSet),
}

/// An add-wins observed-remove set; additions are tagged by the version that made them.
#[derive(Debug, Clone, Default, PartialEq)]
struct OrSet {
    /// Canonical element bytes → (element, live addition tags).
    adds: BTreeMap<Vec<u8>, (Value, BTreeSet<Cid>)>,
    /// Removed (element bytes, tag) pairs, kept so a late addition stays removed.
    removed: BTreeSet<(Vec<u8>, Cid)>,
}

impl OrSet {
    fn add(&mut self, element: &Value, tag: &Cid) {
        let Ok(bytes) = dagcbor::encode(element) else {
            return;
        };
        if self.removed.contains(&(bytes.clone(), tag.clone())) {
            return;
        }
        self.adds
            .entry(bytes)
            .or_insert_with(|| (element.clone(), BTreeSet::new()))
            .1
            .insert(tag.clone());
    }

    fn remove(&mut self, element: &Value, tag: &Cid) {
        let Ok(bytes) = dagcbor::encode(element) else {
            return;
        };
        if let Some((_, tags)) = self.adds.get_mut(&bytes) {
            tags.remove(tag);
            if tags.is_empty() {
                self.adds.remove(&bytes);
            }
        }
        self.removed.insert((bytes, tag.clone()));
    }

    fn merge(&mut self, other: &OrSet) {
        for (bytes, (element, tags)) in &other.adds {
            for tag in tags {
                if !self.removed.contains(&(bytes.clone(), tag.clone())) {
                    self.adds
                        .entry(bytes.clone())
                        .or_insert_with(|| (element.clone(), BTreeSet::new()))
                        .1
                        .insert(tag.clone());
                }
            }
        }
        for (bytes, tag) in &other.removed {
            if let Some((_, tags)) = self.adds.get_mut(bytes) {
                tags.remove(tag);
                if tags.is_empty() {
                    self.adds.remove(bytes);
                }
            }
            self.removed.insert((bytes.clone(), tag.clone()));
        }
    }

    fn value(&self) -> Value {
        Value::List(
            self.adds
                .values()
                .map(|(element, _)| element.clone())
                .collect(),
        )
    }

    /// The live (element, tag) additions, for building removals.
    fn observed(&self) -> impl Iterator<Item = (&Value, &Cid)> {
        self.adds
            .values()
            .flat_map(|(element, tags)| tags.iter().map(move |tag| (element, tag)))
    }
}

/// Merges `theirs` into `mine` in one pass over both (they are sorted by name): fields both
/// have are updated in place; fields only `theirs` has are inserted afterwards.
fn merge_fields(mine: &mut BTreeMap<String, FieldState>, theirs: &BTreeMap<String, FieldState>) {
    use std::cmp::Ordering;
    let mut missing = Vec::new();
    let mut theirs_iter = theirs.iter().peekable();
    for (name, state) in mine.iter_mut() {
        while let Some((their_name, their_state)) = theirs_iter.peek() {
            match their_name.as_str().cmp(name.as_str()) {
                Ordering::Less => {
                    missing.push((*their_name, *their_state));
                    theirs_iter.next();
                }
                Ordering::Equal => {
                    merge_field(state, their_state);
                    theirs_iter.next();
                    break;
                }
                Ordering::Greater => break,
            }
        }
    }
    missing.extend(theirs_iter);
    for (name, state) in missing {
        mine.insert(name.clone(), state.clone());
    }
}

fn merge_field(mine: &mut FieldState, theirs: &FieldState) {
    match (mine, theirs) {
        (
            FieldState::Plain { key, value },
            FieldState::Plain {
                key: their_key,
                value: their_value,
            },
        ) if their_key > key => {
            *key = their_key.clone();
            *value = their_value.clone();
        }
        (FieldState::Set(set), FieldState::Set(other)) => set.merge(other),
        _ => {}
    }
}

/// Resolves the current state of one object from its versions, incrementally.
///
/// The resolver trusts the versions it is given to be valid: verified against their CIDs, and
/// each with a clock greater than its parents' clocks and not beyond the receiver's drift
/// bound. Checking that is the job of whoever accepts versions (the sync engine and the
/// Instance API); the state stays deterministic either way, but a version that breaks the
/// clock rule can win over its own descendants in field-merge.
#[derive(Debug, Clone)]
pub struct Resolver {
    strategy: Strategy,
    set_fields: BTreeSet<String>,
    of: Option<Cid>,
    versions: CidMap<Cid, Entry>,
    /// CIDs named as parents that are not (yet) present.
    dangling: CidSet<Cid>,
    heads: BTreeSet<VersionKey>,
    tombstone_heads: usize,
    head_bodies: CidMap<Cid, Map>,
    fields: BTreeMap<String, FieldState>,
}

impl Resolver {
    /// A resolver for objects of `recipe`'s type.
    pub fn for_recipe(recipe: &Recipe) -> Result<Resolver, ResolveError> {
        if recipe.strategy == Strategy::AppendOnly {
            return Err(ResolveError::NotVersioned(recipe.name.clone()));
        }
        let set_fields = recipe
            .fields
            .iter()
            .filter(|field| matches!(field.kind, Kind::Set(_)))
            .map(|field| field.name.clone())
            .collect();
        Ok(Resolver::new(recipe.strategy, set_fields))
    }

    /// A resolver for `strategy`; `set_fields` names the set-valued fields (field-merge).
    pub fn new(strategy: Strategy, set_fields: BTreeSet<String>) -> Resolver {
        Resolver {
            strategy,
            set_fields,
            of: None,
            versions: CidMap::default(),
            dangling: CidSet::default(),
            heads: BTreeSet::new(),
            tombstone_heads: 0,
            head_bodies: CidMap::default(),
            fields: BTreeMap::new(),
        }
    }

    /// How many distinct versions were added.
    pub fn version_count(&self) -> usize {
        self.versions.len()
    }

    /// The current heads, greatest last.
    pub fn heads(&self) -> impl Iterator<Item = &Cid> {
        self.heads.iter().map(|key| &key.cid)
    }

    /// Whether the version `cid` was added.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.versions.contains_key(cid)
    }

    /// Adds a version (its CID computed by the caller, who verified it). Returns whether it was
    /// new; adding a version twice changes nothing.
    pub fn add(&mut self, cid: &Cid, version: &Version) -> Result<bool, ResolveError> {
        match &self.of {
            Some(of) if *of != version.of => {
                return Err(ResolveError::OtherObject {
                    expected: of.clone(),
                    found: version.of.clone(),
                });
            }
            Some(_) => {}
            None => self.of = Some(version.of.clone()),
        }
        if self.versions.contains_key(cid) {
            return Ok(false);
        }
        let key = version.key(cid.clone());
        let referenced = self.dangling.remove(cid);
        self.versions.insert(
            cid.clone(),
            Entry {
                clock: version.clock,
                author: version.author,
                deleted: version.deleted,
                referenced,
            },
        );
        for parent in &version.parents {
            match self.versions.get_mut(parent) {
                Some(entry) if !entry.referenced => {
                    entry.referenced = true;
                    let (parent_key, parent_deleted) = (entry.key(parent), entry.deleted);
                    self.drop_head(&parent_key, parent_deleted);
                }
                Some(_) => {}
                None => {
                    self.dangling.insert(parent.clone());
                }
            }
        }
        if !referenced {
            self.heads.insert(key.clone());
            self.tombstone_heads += usize::from(version.deleted);
            self.head_bodies.insert(cid.clone(), version.body.clone());
        }
        if self.strategy == Strategy::FieldMerge {
            self.apply_fields(&key, &version.body);
        }
        Ok(true)
    }

    fn drop_head(&mut self, key: &VersionKey, deleted: bool) {
        if self.heads.remove(key) {
            self.tombstone_heads -= usize::from(deleted);
            self.head_bodies.remove(&key.cid);
        }
    }

    fn apply_fields(&mut self, key: &VersionKey, body: &Map) {
        for (name, value) in body.iter() {
            if self.set_fields.contains(name) {
                let state = self
                    .fields
                    .entry(name.to_owned())
                    .or_insert_with(|| FieldState::Set(OrSet::default()));
                let FieldState::Set(set) = state else {
                    continue;
                };
                let Some(ops) = value.as_map() else { continue };
                for element in ops.get("add").and_then(Value::as_list).unwrap_or_default() {
                    set.add(element, &key.cid);
                }
                for removal in ops
                    .get("remove")
                    .and_then(Value::as_list)
                    .unwrap_or_default()
                {
                    if let Some([element, Value::Link(tag)]) = removal.as_list() {
                        set.remove(element, tag);
                    }
                }
            } else {
                match self.fields.get_mut(name) {
                    Some(FieldState::Plain {
                        key: current,
                        value: current_value,
                    }) => {
                        if key > current {
                            *current = key.clone();
                            *current_value = value.clone();
                        }
                    }
                    Some(FieldState::Set(_)) => {}
                    None => {
                        self.fields.insert(
                            name.to_owned(),
                            FieldState::Plain {
                                key: key.clone(),
                                value: value.clone(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Merges another resolver of the same object: the result is as if every version added to
    /// either had been added to this one.
    pub fn merge(&mut self, other: &Resolver) -> Result<(), ResolveError> {
        if self.strategy != other.strategy || self.set_fields != other.set_fields {
            return Err(ResolveError::DifferentRecipes);
        }
        if let (Some(mine), Some(theirs)) = (&self.of, &other.of)
            && mine != theirs
        {
            return Err(ResolveError::OtherObject {
                expected: mine.clone(),
                found: theirs.clone(),
            });
        }
        if self.of.is_none() {
            self.of = other.of.clone();
        }
        self.versions
            .reserve(other.versions.len().saturating_sub(self.versions.len()));
        for (cid, theirs) in &other.versions {
            // A shared history is mostly versions both hold: look up first, clone the key
            // only for a version that is new here.
            match self.versions.get_mut(cid) {
                Some(mine) => mine.referenced |= theirs.referenced,
                None => {
                    self.versions.insert(cid.clone(), theirs.clone());
                }
            }
        }
        let dangling: Vec<Cid> = self
            .dangling
            .drain()
            .chain(other.dangling.iter().cloned())
            .collect();
        for cid in dangling {
            match self.versions.get_mut(&cid) {
                Some(entry) => entry.referenced = true,
                None => {
                    self.dangling.insert(cid);
                }
            }
        }
        let mut heads = BTreeSet::new();
        let mut bodies = CidMap::default();
        let candidates = self
            .heads
            .iter()
            .map(|k| (k, &self.head_bodies))
            .chain(other.heads.iter().map(|k| (k, &other.head_bodies)));
        for (key, source) in candidates {
            let live = self
                .versions
                .get(&key.cid)
                .is_some_and(|entry| !entry.referenced);
            if live
                && heads.insert(key.clone())
                && let Some(body) = source.get(&key.cid)
            {
                bodies.insert(key.cid.clone(), body.clone());
            }
        }
        self.tombstone_heads = heads
            .iter()
            .filter(|key| self.versions.get(&key.cid).is_some_and(|e| e.deleted))
            .count();
        self.heads = heads;
        self.head_bodies = bodies;
        merge_fields(&mut self.fields, &other.fields);
        Ok(())
    }

    /// Whether the object is deleted under its strategy's rule (delete-wins for last-write,
    /// edit-wins for field-merge). An object with no versions is not "deleted", it is absent.
    pub fn is_deleted(&self) -> bool {
        match self.strategy {
            Strategy::FieldMerge => {
                !self.heads.is_empty() && self.tombstone_heads == self.heads.len()
            }
            _ => self.tombstone_heads > 0,
        }
    }

    fn winner(&self) -> Option<&VersionKey> {
        self.heads
            .iter()
            .rev()
            .find(|key| !self.versions.get(&key.cid).is_some_and(|e| e.deleted))
    }

    /// The current state.
    pub fn state(&self) -> State {
        if self.heads.is_empty() || self.is_deleted() {
            return State {
                exists: false,
                fields: Map::new(),
            };
        }
        let fields = match self.strategy {
            Strategy::FieldMerge => self
                .fields
                .iter()
                .filter_map(|(name, state)| match state {
                    FieldState::Plain {
                        value: Value::Null, ..
                    } => None,
                    FieldState::Plain { value, .. } => Some((name.clone(), value.clone())),
                    FieldState::Set(set) => Some((name.clone(), set.value())),
                })
                .collect(),
            _ => self
                .winner()
                .and_then(|key| self.head_bodies.get(&key.cid))
                .cloned()
                .unwrap_or_default(),
        };
        State {
            exists: true,
            fields,
        }
    }

    /// The concurrent values that lost: for last-write, the bodies of the other live heads;
    /// for field-merge, each head's value of a field where another version won.
    pub fn conflicts(&self) -> Vec<Conflict> {
        // When delete wins, every live head lost to the delete.
        let winner = if self.is_deleted() {
            None
        } else {
            self.winner()
        };
        let mut conflicts = Vec::new();
        for key in self.heads.iter().rev() {
            let (Some(body), Some(entry)) =
                (self.head_bodies.get(&key.cid), self.versions.get(&key.cid))
            else {
                continue;
            };
            if entry.deleted {
                continue;
            }
            match self.strategy {
                Strategy::FieldMerge => {
                    for (name, value) in body.iter() {
                        if let Some(FieldState::Plain {
                            key: won,
                            value: won_value,
                        }) = self.fields.get(name)
                            && won.cid != key.cid
                            && won_value != value
                        {
                            conflicts.push(Conflict {
                                field: Some(name.to_owned()),
                                cid: key.cid.clone(),
                                value: value.clone(),
                            });
                        }
                    }
                }
                _ if Some(key) != winner => {
                    conflicts.push(Conflict {
                        field: None,
                        cid: key.cid.clone(),
                        value: Value::Map(body.clone()),
                    });
                }
                _ => {}
            }
        }
        conflicts
    }

    /// The body of a field-merge tombstone that deletes what this replica sees: every plain
    /// field unset, every observed set addition removed.
    pub fn tombstone_body(&self) -> Map {
        let mut body = Map::new();
        for (name, state) in &self.fields {
            match state {
                FieldState::Plain {
                    value: Value::Null, ..
                } => {}
                FieldState::Plain { .. } => {
                    body.insert(name.as_str(), Value::Null);
                }
                FieldState::Set(set) => {
                    let removals: Vec<Value> = set
                        .observed()
                        .map(|(element, tag)| {
                            Value::List(vec![element.clone(), Value::Link(tag.clone())])
                        })
                        .collect();
                    if !removals.is_empty() {
                        body.insert(
                            name.as_str(),
                            Value::Map([("remove", Value::List(removals))].into()),
                        );
                    }
                }
            }
        }
        body
    }

    /// The body entry for a set field that turns the observed set into `target`: adds what is
    /// missing, removes the observed additions of what is no longer wanted.
    pub fn set_update(&self, field: &str, target: &[Value]) -> Value {
        let current = match self.fields.get(field) {
            Some(FieldState::Set(set)) => set.clone(),
            _ => OrSet::default(),
        };
        let wanted: BTreeSet<Vec<u8>> = target
            .iter()
            .filter_map(|v| dagcbor::encode(v).ok())
            .collect();
        let mut seen = BTreeSet::new();
        let add: Vec<Value> = target
            .iter()
            .filter(|v| {
                dagcbor::encode(v)
                    .is_ok_and(|bytes| !current.adds.contains_key(&bytes) && seen.insert(bytes))
            })
            .cloned()
            .collect();
        let remove: Vec<Value> = current
            .adds
            .iter()
            .filter(|(bytes, _)| !wanted.contains(*bytes))
            .flat_map(|(_, (element, tags))| {
                tags.iter()
                    .map(move |tag| Value::List(vec![element.clone(), Value::Link(tag.clone())]))
            })
            .collect();
        let mut ops = Map::new();
        if !add.is_empty() {
            ops.insert("add", Value::List(add));
        }
        if !remove.is_empty() {
            ops.insert("remove", Value::List(remove));
        }
        Value::Map(ops)
    }
}
