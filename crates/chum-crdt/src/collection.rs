//! Append-only collections: immutable entries that never conflict.
//!
//! An entry (e.g. a Message) belongs to the collection of every object its collection fields
//! link to (e.g. the Conversation its `conversation` field names). A collection is the set of
//! its entries, ordered by (clock, CID); merging is set union, so it commutes, associates and
//! is idempotent by construction. Entries without a `clock` field sort first.

use std::collections::BTreeSet;

use chum_object::recipe::Recipe;
use chum_object::{Cid, Value};

use crate::clock::Timestamp;

/// The ordered entries of one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    entries: BTreeSet<(Timestamp, Cid)>,
}

impl Collection {
    /// An empty collection.
    pub fn new() -> Collection {
        Collection::default()
    }

    /// Adds an entry; returns whether it was new.
    pub fn insert(&mut self, clock: Timestamp, cid: Cid) -> bool {
        self.entries.insert((clock, cid))
    }

    /// Adds every entry of `other`.
    pub fn merge(&mut self, other: &Collection) {
        self.entries.extend(other.entries.iter().cloned());
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in (clock, CID) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Timestamp, &Cid)> {
        self.entries.iter().map(|(clock, cid)| (clock, cid))
    }

    /// The entries from `after` (exclusive) on, for paging.
    pub fn after(&self, after: &(Timestamp, Cid)) -> impl Iterator<Item = (&Timestamp, &Cid)> {
        use std::ops::Bound;
        self.entries
            .range((Bound::Excluded(after.clone()), Bound::Unbounded))
            .map(|(clock, cid)| (clock, cid))
    }
}

/// The `clock` field of an entry (`[wall_ms, counter]`), or the zero timestamp when it has none.
pub fn entry_clock(entry: &Value) -> Timestamp {
    entry
        .as_map()
        .and_then(|map| map.get("clock"))
        .and_then(Timestamp::from_value)
        .unwrap_or_default()
}

/// The `[wall_ms, counter]` value of a timestamp, as entries carry it.
pub fn clock_value(clock: Timestamp) -> Value {
    clock.to_value()
}

/// The objects whose collections `entry` belongs to: the targets of its recipe's collection
/// fields.
pub fn collection_targets<'a>(
    recipe: &'a Recipe,
    entry: &'a Value,
) -> impl Iterator<Item = &'a Cid> + 'a {
    let map = entry.as_map();
    recipe
        .fields
        .iter()
        .filter(|field| field.collection)
        .filter_map(move |field| {
            map.and_then(|map| map.get(&field.name))
                .and_then(Value::as_link)
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chum_object::{Codec, Map};

    #[test]
    fn entries_order_by_clock_then_cid_and_merge_by_union() {
        let cid = |n: u8| Cid::hash(Codec::DagCbor, &[n]);
        let mut a = Collection::new();
        a.insert(Timestamp::new(5, 0), cid(1));
        a.insert(Timestamp::new(1, 0), cid(2));
        let mut b = Collection::new();
        b.insert(Timestamp::new(5, 0), cid(1));
        b.insert(Timestamp::new(3, 0), cid(3));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.len(), 3);
        let clocks: Vec<u64> = ab.iter().map(|(clock, _)| clock.wall_ms).collect();
        assert_eq!(clocks, [1, 3, 5]);
        assert_eq!(ab.after(&(Timestamp::new(1, 0), cid(2))).count(), 2);
    }

    #[test]
    fn entry_clock_reads_the_field_or_defaults() {
        let with: Value = Value::Map([("clock", clock_value(Timestamp::new(9, 2)))].into());
        assert_eq!(entry_clock(&with), Timestamp::new(9, 2));
        assert_eq!(entry_clock(&Value::Map(Map::new())), Timestamp::default());
        let bad: Value = Value::Map([("clock", Value::Text("x".into()))].into());
        assert_eq!(entry_clock(&bad), Timestamp::default());
    }
}
