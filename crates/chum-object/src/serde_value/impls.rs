//! `Serialize` and `Deserialize` for the data model: [`Value`], [`Int`], [`Map`] and [`Cid`].

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Cid, Int, LINK, Map, Value, cautious, finite, out_of_range};

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Integer(int) => int.serialize(serializer),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Bytes(bytes) => serializer.serialize_bytes(bytes),
            Value::Text(text) => serializer.serialize_str(text),
            Value::List(list) => serializer.collect_seq(list),
            Value::Map(map) => map.serialize(serializer),
            Value::Link(cid) => cid.serialize(serializer),
        }
    }
}

impl Serialize for Int {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.to_u64(), self.to_i64()) {
            (Some(u), _) => serializer.serialize_u64(u),
            (None, Some(i)) => serializer.serialize_i64(i),
            (None, None) => serializer.serialize_i128(self.to_i128()),
        }
    }
}

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl Serialize for Cid {
    /// A link to our serializer; text in human-readable formats, bytes in compact ones.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(LINK, &CidPayload(self))
    }
}

struct CidPayload<'a>(&'a Cid);

impl Serialize for CidPayload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self.0)
        } else {
            serializer.serialize_bytes(self.0.as_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for Cid {
    /// From a link through our deserializer; from CID text or bytes through others.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cid, D::Error> {
        deserializer.deserialize_newtype_struct(LINK, CidVisitor)
    }
}

struct CidVisitor;

impl<'de> Visitor<'de> for CidVisitor {
    type Value = Cid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CID (a link, CID text or CID bytes)")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Cid, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(self)
        } else {
            d.deserialize_bytes(self)
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cid, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Cid, E> {
        Cid::from_bytes(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Int, D::Error> {
        // Asking for an i128 lets formats such as JSON parse the whole range.
        deserializer.deserialize_i128(IntVisitor)
    }
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = Int;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer in -2^64 ..= 2^64-1")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
        Ok(Int::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
        Ok(Int::from(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Int, E> {
        u64::try_from(v)
            .map(Int::from)
            .map_err(|_| E::custom(out_of_range(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Int, E> {
        Int::try_from(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Map {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Map, D::Error> {
        deserializer.deserialize_map(MapVisitor)
    }
}

struct MapVisitor;

impl<'de> Visitor<'de> for MapVisitor {
    type Value = Map;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with text keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Map, A::Error> {
        let mut map = Map::with_capacity(cautious(access.size_hint()));
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate map key {key:?}")));
            }
            let value = access.next_value::<Value>()?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DAG-CBOR value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        IntVisitor.visit_i128(v).map(Value::Integer)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        IntVisitor.visit_u128(v).map(Value::Integer)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        finite(v).map(Value::Float).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.into()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v.into()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    /// Only our deserializer visits a newtype from `deserialize_any`: that is a link.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Cid::deserialize(d).map(Value::Link)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::with_capacity(cautious(seq.size_hint()));
        while let Some(item) = seq.next_element()? {
            list.push(item);
        }
        Ok(Value::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Value, A::Error> {
        MapVisitor.visit_map(access).map(Value::Map)
    }
}
