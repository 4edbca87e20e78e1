//! Version objects: one immutable change to a versioned object.
//!
//! ```text
//! {"$type": "Version", "of": <link to the ID object>, "parents": [<links, sorted, distinct>],
//!  "clock": [wall_ms, counter], "author": <32 bytes: the writing instance>,
//!  "body": {…}, "deleted": true   // only on tombstones
//! }
//! ```
//! A new local version names every current head as a parent, which merges concurrent branches.
//! Versions are totally ordered by [`VersionKey`] = (clock, author, CID): the clock orders
//! causally related versions (a version's clock is greater than its parents'), and author and
//! CID break ties between concurrent ones, the same way on every replica.

use std::fmt;

use chum_object::{Cid, Codec, Map, Object, Value};

use crate::clock::Timestamp;

/// The `$type` of version objects.
pub const VERSION_TYPE: &str = "Version";

/// The instance (device, browser profile, process) that wrote a version: its 32-byte public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InstanceId(pub [u8; 32]);

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..6] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…")
    }
}

/// Displayed as its public key in base32 multibase (`b…`, 53 characters), the form
/// `chum whoami` prints and [`InstanceId::from_str`](std::str::FromStr) reads.
impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase::encode(multibase::Base::Base32Lower, self.0))
    }
}

impl std::str::FromStr for InstanceId {
    type Err = String;
    fn from_str(text: &str) -> Result<InstanceId, String> {
        let (base, bytes) =
            multibase::decode(text).map_err(|error| format!("not an instance id: {error}"))?;
        if base != multibase::Base::Base32Lower {
            return Err("not an instance id: not base32 (b…)".into());
        }
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "not an instance id: not 32 bytes".to_owned())?;
        Ok(InstanceId(key))
    }
}

/// One change to a versioned object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The ID hash of the object this version changes.
    pub of: Cid,
    /// The versions this one follows (the heads its author saw), sorted and distinct.
    pub parents: Vec<Cid>,
    /// When, on the hybrid logical clock.
    pub clock: Timestamp,
    /// Who wrote it.
    pub author: InstanceId,
    /// What changed: the whole state (last-write), or field values and set operations
    /// (field-merge). See the strategy for the exact shape.
    pub body: Map,
    /// Whether this version deletes the object (a tombstone).
    pub deleted: bool,
}

/// A version malformed as an object. The writer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version object: {0}")]
pub struct VersionError(pub String);

/// The total order on versions: clock, then author, then CID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionKey {
    /// The version's clock.
    pub clock: Timestamp,
    /// Its author.
    pub author: InstanceId,
    /// Its CID.
    pub cid: Cid,
}

impl Version {
    /// A version with sorted, distinct parents.
    pub fn new(
        of: Cid,
        mut parents: Vec<Cid>,
        clock: Timestamp,
        author: InstanceId,
        body: Map,
    ) -> Version {
        parents.sort();
        parents.dedup();
        Version {
            of,
            parents,
            clock,
            author,
            body,
            deleted: false,
        }
    }

    /// The same version marked as a tombstone.
    pub fn tombstone(mut self) -> Version {
        self.deleted = true;
        self
    }

    /// The version as an object value.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("$type", VERSION_TYPE);
        map.insert("of", self.of.clone());
        map.insert(
            "parents",
            Value::List(self.parents.iter().cloned().map(Value::Link).collect()),
        );
        map.insert("clock", self.clock.to_value());
        map.insert("author", self.author.0.to_vec());
        map.insert("body", self.body.clone());
        if self.deleted {
            map.insert("deleted", true);
        }
        Value::Map(map)
    }

    /// Encodes the version and names it.
    pub fn to_object(&self) -> Result<Object, chum_object::EncodeError> {
        Object::from_value(&self.to_value())
    }

    /// Reads a version object strictly: every field present and well-formed, parents sorted
    /// and distinct, `deleted` only when true, nothing else.
    pub fn from_value(value: &Value) -> Result<Version, VersionError> {
        let bad = |why: &str| VersionError(why.to_owned());
        let map = value.as_map().ok_or_else(|| bad("not a map"))?;
        if value.type_name() != Some(VERSION_TYPE) {
            return Err(bad("$type is not \"Version\""));
        }
        for key in map.keys() {
            if ![
                "$type", "of", "parents", "clock", "author", "body", "deleted",
            ]
            .contains(&key)
            {
                return Err(VersionError(format!("unknown field {key:?}")));
            }
        }
        let of = map
            .get("of")
            .and_then(Value::as_link)
            .ok_or_else(|| bad("of must be a link"))?
            .clone();
        let parents = map
            .get("parents")
            .and_then(Value::as_list)
            .ok_or_else(|| bad("parents must be a list"))?
            .iter()
            .map(|p| {
                p.as_link()
                    .cloned()
                    .ok_or_else(|| bad("a parent must be a link"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parents.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(bad("parents must be sorted and distinct"));
        }
        let clock = map
            .get("clock")
            .and_then(Timestamp::from_value)
            .ok_or_else(|| bad("clock must be [wall_ms (u64), counter (u32)]"))?;
        let author = match map.get("author") {
            Some(Value::Bytes(bytes)) => InstanceId(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("author must be 32 bytes"))?,
            ),
            _ => return Err(bad("author must be 32 bytes")),
        };
        let body = map
            .get("body")
            .and_then(Value::as_map)
            .ok_or_else(|| bad("body must be a map"))?
            .clone();
        let deleted = match map.get("deleted") {
            None => false,
            Some(Value::Bool(true)) => true,
            Some(_) => return Err(bad("deleted is either absent or true")),
        };
        Ok(Version {
            of,
            parents,
            clock,
            author,
            body,
            deleted,
        })
    }

    /// The ordering key of this version, given its CID.
    pub fn key(&self, cid: Cid) -> VersionKey {
        VersionKey {
            clock: self.clock,
            author: self.author,
            cid,
        }
    }

    /// The CID of this version's canonical encoding (default limits).
    pub fn cid(&self) -> Result<Cid, chum_object::EncodeError> {
        let bytes = chum_object::dagcbor::encode(&self.to_value())?;
        Ok(Cid::hash(Codec::DagCbor, &bytes))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Version {
        let of = Cid::hash(Codec::DagCbor, b"id");
        let parents = vec![
            Cid::hash(Codec::DagCbor, b"b"),
            Cid::hash(Codec::DagCbor, b"a"),
        ];
        let body: Map = [("name", "Alice")].into();
        Version::new(
            of,
            parents,
            Timestamp::new(1_700_000_000_000, 3),
            InstanceId([7; 32]),
            body,
        )
    }

    #[test]
    fn versions_round_trip_and_sort_their_parents() {
        let version = sample();
        assert!(version.parents[0] < version.parents[1]);
        assert_eq!(Version::from_value(&version.to_value()).unwrap(), version);
        let tombstone = version.clone().tombstone();
        assert_eq!(
            Version::from_value(&tombstone.to_value()).unwrap(),
            tombstone
        );
        assert_ne!(tombstone.cid().unwrap(), version.cid().unwrap());
    }

    #[test]
    fn malformed_versions_are_refused() {
        let good = sample().to_value();
        let with = |key: &str, value: Value| {
            let mut map = good.as_map().unwrap().clone();
            map.insert(key, value);
            Value::Map(map)
        };
        let a = Value::Link(Cid::hash(Codec::DagCbor, b"a"));
        for bad in [
            with("parents", Value::List(vec![a.clone(), a.clone()])),
            with("clock", Value::List(vec![1.into()])),
            with("clock", Value::List(vec![1.into(), (1u64 << 32).into()])),
            with("author", Value::Bytes(vec![1; 31])),
            with("deleted", Value::Bool(false)),
            with("body", Value::Null),
            with("extra", Value::Null),
            with("$type", "Other".into()),
        ] {
            assert!(Version::from_value(&bad).is_err(), "{bad:?}");
        }
    }
}
