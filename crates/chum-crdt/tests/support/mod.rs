//! A small replica simulator shared by the law and scenario tests: replicas write versions on
//! their own clocks (with skew), exchange versions, and resolve.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use chum_crdt::{Clock, InstanceId, Resolver, Version};
use chum_object::recipe::{Recipe, Strategy};
use chum_object::{Cid, Map, Value};

/// One replica of one object.
#[derive(Debug, Clone)]
pub struct Replica {
    pub author: InstanceId,
    pub clock: Clock,
    pub skew_ms: i64,
    pub resolver: Resolver,
    pub versions: BTreeMap<Cid, Version>,
}

impl Replica {
    pub fn new(recipe: &Recipe, n: u8, skew_ms: i64) -> Replica {
        Replica {
            author: InstanceId([n; 32]),
            clock: Clock::with_max_drift(u64::MAX / 4),
            skew_ms,
            resolver: Resolver::for_recipe(recipe).unwrap(),
            versions: BTreeMap::new(),
        }
    }

    fn now(&self, true_now: u64) -> u64 {
        (true_now as i64 + self.skew_ms).max(0) as u64
    }

    /// Writes a version with `body` on top of the current heads.
    pub fn write(&mut self, of: &Cid, body: Map, deleted: bool, true_now: u64) -> (Cid, Version) {
        let parents: Vec<Cid> = self.resolver.heads().cloned().collect();
        let clock = self.clock.tick(self.now(true_now)).unwrap();
        let mut version = Version::new(of.clone(), parents, clock, self.author, body);
        version.deleted = deleted;
        let cid = version.cid().unwrap();
        self.receive(&cid, &version, true_now);
        (cid, version)
    }

    pub fn receive(&mut self, cid: &Cid, version: &Version, true_now: u64) {
        let now = self.now(true_now);
        self.clock.observe(version.clock, now).unwrap();
        self.resolver.add(cid, version).unwrap();
        self.versions.insert(cid.clone(), version.clone());
    }

    /// Receives everything `other` has.
    pub fn sync_from(&mut self, other: &Replica, true_now: u64) {
        for (cid, version) in &other.versions {
            self.receive(cid, version, true_now);
        }
    }
}

/// A body for an edit of the seed-like test types, chosen by `choice`.
pub fn edit_body(strategy: Strategy, replica: &Replica, choice: u8, value: u8) -> (Map, bool) {
    let text = |v: u8| Value::Text(format!("v{}", v % 4).into());
    match strategy {
        Strategy::FieldMerge => match choice % 6 {
            0 => ([("name", text(value))].into(), false),
            1 => ([("phone", text(value))].into(), false),
            2 => ([("name", Value::Null)].into(), false),
            3 | 4 => {
                let current = replica.resolver.state();
                let mut tags: Vec<Value> = current
                    .fields
                    .get("tags")
                    .and_then(Value::as_list)
                    .unwrap_or_default()
                    .to_vec();
                let tag = text(value);
                if choice % 6 == 3 {
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                } else {
                    tags.retain(|t| *t != tag);
                }
                (
                    [("tags", replica.resolver.set_update("tags", &tags))].into(),
                    false,
                )
            }
            _ => (replica.resolver.tombstone_body(), true),
        },
        _ => match choice % 4 {
            3 => (Map::new(), true),
            _ => (
                [("title", text(value)), ("n", Value::from(choice))].into(),
                false,
            ),
        },
    }
}

/// The ID hash every test object shares.
pub fn object_id(recipe: &Recipe) -> Cid {
    let id_field = recipe.id_fields().next().unwrap().name.clone();
    let value = Value::Map(
        [
            ("$type", Value::Text(recipe.name.as_str().into())),
            (id_field.as_str(), Value::from("the-one")),
        ]
        .into(),
    );
    recipe.id_hash(&value).unwrap()
}

/// Resolves a list of versions in the given order.
pub fn resolve(recipe: &Recipe, versions: &[(Cid, Version)]) -> Resolver {
    let mut resolver = Resolver::for_recipe(recipe).unwrap();
    for (cid, version) in versions {
        resolver.add(cid, version).unwrap();
    }
    resolver
}

/// Everything an observer can see of a resolver.
pub fn observe(
    resolver: &Resolver,
) -> (chum_crdt::State, Vec<Cid>, bool, Vec<chum_crdt::Conflict>) {
    (
        resolver.state(),
        resolver.heads().cloned().collect(),
        resolver.is_deleted(),
        resolver.conflicts(),
    )
}
