//! The DAG-CBOR data model: [`Value`], [`Int`] and the canonically ordered [`Map`].

use std::cmp::Ordering;
use std::fmt;

use crate::cid::Cid;

/// The text type of [`Value::Text`] and map keys: a string that keeps up to 24 bytes inline.
/// Build one with `.into()` from `&str` or `String`; it dereferences to `&str`.
pub type Text = compact_str::CompactString;

/// One value of the IPLD data model as DAG-CBOR can carry it.
///
/// Equality compares floats by their bits, so `0.0` and `-0.0` are different values (they have
/// different encodings and so different CIDs), and a value always equals itself.
#[derive(Clone, Debug)]
pub enum Value {
    /// CBOR `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer in −2^64 ..= 2^64 − 1.
    Integer(Int),
    /// A finite 64-bit float. The encoder refuses NaN and infinities.
    Float(f64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A UTF-8 text string ([`Text`] keeps up to 24 bytes inline, without an allocation).
    Text(Text),
    /// A list of values.
    List(Vec<Value>),
    /// A map with text keys, kept in canonical key order.
    Map(Map),
    /// A link to another block (CBOR tag 42).
    Link(Cid),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Integer(a), Value::Integer(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Link(a), Value::Link(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// The kind of this value as a short lowercase word (`"map"`, `"text"`, …), for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Text(_) => "text",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Link(_) => "link",
        }
    }

    /// The map inside, if this is a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The text inside, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The link inside, if this is a link.
    pub fn as_link(&self) -> Option<&Cid> {
        match self {
            Value::Link(cid) => Some(cid),
            _ => None,
        }
    }

    /// The list inside, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(list) => Some(list),
            _ => None,
        }
    }

    /// The integer inside, if this is an integer.
    pub fn as_int(&self) -> Option<Int> {
        match self {
            Value::Integer(int) => Some(*int),
            _ => None,
        }
    }

    /// The `$type` field of a typed object (a map with a text `$type`).
    pub fn type_name(&self) -> Option<&str> {
        self.as_map()?.get("$type")?.as_text()
    }

    /// Calls `visit` for every link in this value, depth first, in encoding order.
    pub fn for_each_link(&self, visit: &mut impl FnMut(&Cid)) {
        match self {
            Value::Link(cid) => visit(cid),
            Value::List(list) => list.iter().for_each(|item| item.for_each_link(visit)),
            Value::Map(map) => map.values().for_each(|item| item.for_each_link(visit)),
            _ => {}
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant(v.into()) }
        }
    )*};
}
value_from!(bool => Bool, f64 => Float, Vec<u8> => Bytes, String => Text, &str => Text, Text => Text,
    Vec<Value> => List, Map => Map, Cid => Link, Int => Integer,
    i8 => Integer, i16 => Integer, i32 => Integer, i64 => Integer,
    u8 => Integer, u16 => Integer, u32 => Integer, u64 => Integer);

/// An integer in the DAG-CBOR range −2^64 ..= 2^64 − 1, stored as CBOR stores it: a sign and a
/// 64-bit magnitude (for negatives the value is −1 − magnitude).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Int {
    negative: bool,
    magnitude: u64,
}

impl Int {
    /// The smallest integer DAG-CBOR holds, −2^64.
    pub const MIN: Int = Int {
        negative: true,
        magnitude: u64::MAX,
    };
    /// The largest integer DAG-CBOR holds, 2^64 − 1.
    pub const MAX: Int = Int {
        negative: false,
        magnitude: u64::MAX,
    };

    /// The non-negative integer `n`.
    pub const fn from_u64(n: u64) -> Int {
        Int {
            negative: false,
            magnitude: n,
        }
    }

    /// The negative integer −1 − `n` (CBOR major type 1 with argument `n`).
    pub const fn negative_from_cbor(n: u64) -> Int {
        Int {
            negative: true,
            magnitude: n,
        }
    }

    /// Whether the integer is below zero.
    pub const fn is_negative(self) -> bool {
        self.negative
    }

    /// The CBOR argument: the value itself when non-negative, −1 − value when negative.
    pub const fn cbor_argument(self) -> u64 {
        self.magnitude
    }

    /// The value as an `i128` (every DAG-CBOR integer fits).
    pub const fn to_i128(self) -> i128 {
        if self.negative {
            -1 - self.magnitude as i128
        } else {
            self.magnitude as i128
        }
    }

    /// The value as an `i64`, if it fits.
    pub fn to_i64(self) -> Option<i64> {
        i64::try_from(self.to_i128()).ok()
    }

    /// The value as a `u64`, if it fits.
    pub fn to_u64(self) -> Option<u64> {
        if self.negative {
            None
        } else {
            Some(self.magnitude)
        }
    }
}

impl From<i64> for Int {
    fn from(v: i64) -> Self {
        if v < 0 {
            // -1 - v is in 0..=i64::MAX for negative v.
            Int::negative_from_cbor((-1 - v) as u64)
        } else {
            Int::from_u64(v as u64)
        }
    }
}

macro_rules! int_from_small {
    ($($t:ty => $via:ty),*) => {$(
        impl From<$t> for Int {
            fn from(v: $t) -> Self { Int::from(v as $via) }
        }
    )*};
}
int_from_small!(i8 => i64, i16 => i64, i32 => i64, u8 => i64, u16 => i64, u32 => i64);

impl From<u64> for Int {
    fn from(v: u64) -> Self {
        Int::from_u64(v)
    }
}

/// The integer lies outside −2^64 ..= 2^64 − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("integer {0} is outside the DAG-CBOR range -2^64 ..= 2^64-1")]
pub struct IntOutOfRange(pub i128);

impl TryFrom<i128> for Int {
    type Error = IntOutOfRange;
    fn try_from(v: i128) -> Result<Self, IntOutOfRange> {
        if v >= 0 {
            u64::try_from(v)
                .map(Int::from_u64)
                .map_err(|_| IntOutOfRange(v))
        } else {
            u64::try_from(-1 - v)
                .map(Int::negative_from_cbor)
                .map_err(|_| IntOutOfRange(v))
        }
    }
}

impl Ord for Int {
    fn cmp(&self, other: &Self) -> Ordering {
        self.to_i128().cmp(&other.to_i128())
    }
}

impl PartialOrd for Int {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_i128(), f)
    }
}

impl fmt::Display for Int {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_i128(), f)
    }
}

/// Compares two map keys in DAG-CBOR order: shorter keys first, then bytewise.
pub fn canonical_key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// A map with text keys, always kept in canonical DAG-CBOR key order (length first, then
/// bytewise) with no duplicate keys, so encoding never sorts.
///
/// Keys of up to 24 bytes (almost all field names) are stored inline, without an allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Map {
    entries: Vec<(Key, Value)>,
}

type Key = Text;

impl Map {
    /// An empty map.
    pub const fn new() -> Map {
        Map {
            entries: Vec::new(),
        }
    }

    /// An empty map with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Map {
        Map {
            entries: Vec::with_capacity(capacity),
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(k, _)| canonical_key_order(k, key))
    }

    /// Inserts `value` under `key`, returning the value it replaced.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        let key = Key::from(key.into());
        let value = value.into();
        // Fast path: keys arriving in canonical order append.
        if let Some((last, _)) = self.entries.last() {
            if canonical_key_order(last, &key) == Ordering::Less {
                self.entries.push((key, value));
                return None;
            }
        } else {
            self.entries.push((key, value));
            return None;
        }
        match self.position(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    /// Appends an entry whose key the caller has checked to sort after every key present.
    pub(crate) fn push_sorted(&mut self, key: Key, value: Value) {
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|(last, _)| canonical_key_order(last, &key).is_lt())
        );
        self.entries.push((key, value));
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).ok().map(|at| &self.entries[at].1)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.position(key).ok().map(|at| &mut self.entries[at].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key).ok().map(|at| self.entries.remove(at).1)
    }

    /// How many entries the map has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in canonical key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in canonical order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values in canonical key order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter =
        std::iter::Map<std::vec::IntoIter<(Key, Value)>, fn((Key, Value)) -> (String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries
            .into_iter()
            .map(|(key, value)| (key.into_string(), value))
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Into<String>, V: Into<Value>, const N: usize> From<[(K, V); N]> for Map {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_canonical_order_whatever_the_insert_order() {
        let map: Map = [("b", 1), ("aa", 2), ("a", 3), ("c", 4), ("ab", 5)].into();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c", "aa", "ab"]);
        assert_eq!(map.get("aa"), Some(&Value::from(2)));
        let mut map = map;
        assert_eq!(map.insert("b", 9), Some(Value::from(1)));
        assert_eq!(map.len(), 5);
        assert_eq!(map.remove("c"), Some(Value::from(4)));
        assert!(!map.contains_key("c"));
    }

    #[test]
    fn int_boundaries_convert_exactly() {
        assert_eq!(Int::MIN.to_i128(), -(1i128 << 64));
        assert_eq!(Int::MAX.to_i128(), (1i128 << 64) - 1);
        assert_eq!(Int::try_from(-(1i128 << 64)), Ok(Int::MIN));
        assert!(Int::try_from(-(1i128 << 64) - 1).is_err());
        assert!(Int::try_from(1i128 << 64).is_err());
        assert_eq!(Int::from(i64::MIN).to_i64(), Some(i64::MIN));
        assert_eq!(Int::from(-1i64).cbor_argument(), 0);
        assert!(Int::from(-5i64) < Int::from(3u64));
    }

    #[test]
    fn floats_compare_by_bits() {
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    }
}
