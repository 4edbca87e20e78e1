//! The serde bridge between Rust types and [`Value`]: [`to_value`], [`from_value`] and
//! [`from_value_ref`], plus `Serialize`/`Deserialize` for [`Value`], [`Int`], [`Map`] and [`Cid`].
//!
//! Mapping (the same as `serde_json` wherever DAG-CBOR allows it):
//! - `bool` → `Bool`; every integer type → `Integer` (an `i128`/`u128` outside −2^64 ..= 2^64−1
//!   is an error); `f32`/`f64` → `Float` (NaN and infinities are errors); `char`/`str` → `Text`;
//!   `serialize_bytes` (`serde_bytes`) → `Bytes`, while a plain `Vec<u8>` is a list of integers.
//! - unit, `None` and unit structs → `Null`; `Some(x)` → `x`; newtype structs → their inner value.
//! - sequences, tuples and tuple structs → `List`; maps and structs → `Map` (keys must be text;
//!   duplicate keys are an error).
//! - enums are externally tagged: a unit variant is its name as `Text`, any other variant a map
//!   with one entry from the variant name to its content.
//! - a [`Cid`] becomes `Link`. Under other serializers it is its text form (human-readable
//!   formats such as JSON) or its binary form (compact formats), and it reads back from either.
//!
//! Reading is strict: no number is converted between integer and float types, except that an
//! integer may be read into `f32`/`f64`; a struct must come from a map; a `Cid` must come from a
//! link (a `String` asking for a link gets its text form). Unknown struct fields are skipped.
//! Errors name the path to the offending field, e.g. ``invalid type: … at `items[2].name` ``.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::ser::{self, Serialize, Serializer};
use serde::{Deserialize, Deserializer, forward_to_deserialize_any};

use crate::cid::Cid;
use crate::value::{Int, Map, Value};

/// The newtype-struct name through which a [`Cid`] announces itself to our serializer and asks
/// our deserializer for a link. Other formats treat it as an ordinary (transparent) newtype.
const LINK: &str = "$__chum_private_link";

/// Most elements reserved up front from a size hint that the data itself supplies.
const MAX_PREALLOC: usize = 4096;

/// A Rust value that does not map to a DAG-CBOR value, or a value that does not fit a Rust type.
///
/// The message says what went wrong and, when it happened inside a list or map, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", Location(.path))]
pub struct SerdeError {
    message: String,
    /// Path from the root to where the error happened, e.g. `.items[2].name`.
    path: String,
}

impl SerdeError {
    fn new(message: impl Into<String>) -> SerdeError {
        SerdeError {
            message: message.into(),
            path: String::new(),
        }
    }

    /// Prefixes the path with a map key (on the way out of the map that held it).
    fn at_key(mut self, key: &str) -> SerdeError {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '-'));
        let segment = if plain {
            format!(".{key}")
        } else {
            format!("[{key:?}]")
        };
        self.path.insert_str(0, &segment);
        self
    }

    /// Prefixes the path with a list index.
    fn at_index(mut self, index: usize) -> SerdeError {
        self.path.insert_str(0, &format!("[{index}]"));
        self
    }
}

struct Location<'a>(&'a str);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            "" => Ok(()),
            path => write!(f, " at `{}`", path.strip_prefix('.').unwrap_or(path)),
        }
    }
}

impl ser::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError::new(msg.to_string())
    }
}

impl de::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError::new(msg.to_string())
    }
}

fn out_of_range(n: impl fmt::Display) -> SerdeError {
    SerdeError::new(format!(
        "integer {n} is outside the DAG-CBOR range -2^64 ..= 2^64-1"
    ))
}

fn finite(f: f64) -> Result<f64, SerdeError> {
    if f.is_finite() {
        Ok(f)
    } else {
        Err(SerdeError::new(format!(
            "float {f} is not allowed: DAG-CBOR floats must be finite"
        )))
    }
}

fn cautious(hint: Option<usize>) -> usize {
    hint.unwrap_or(0).min(MAX_PREALLOC)
}

/// Converts a Rust value to a [`Value`].
///
/// Fails on what DAG-CBOR cannot hold: non-finite floats, integers outside −2^64 ..= 2^64−1,
/// map keys that are not text, and duplicate map keys.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerdeError> {
    value.serialize(ValueSerializer::PLAIN)
}

/// Converts a [`Value`] to a Rust value, moving text and bytes out of it.
pub fn from_value<T: de::DeserializeOwned>(value: Value) -> Result<T, SerdeError> {
    T::deserialize(ValueDeserializer {
        src: Src::Owned(value),
    })
}

/// Converts a borrowed [`Value`] to a Rust value, which may borrow `&str` and `&[u8]` from it.
pub fn from_value_ref<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, SerdeError> {
    T::deserialize(ValueDeserializer {
        src: Src::Borrowed(value),
    })
}

// ---------------------------------------------------------------------------------------------
// Serializer

/// Serializes into a [`Value`].
#[derive(Debug, Clone, Copy)]
struct ValueSerializer {
    /// Set while serializing the payload of the link newtype: the serializer then says it is not
    /// human-readable, so that a [`Cid`] hands over its bytes rather than its text.
    link_payload: bool,
}

impl ValueSerializer {
    const PLAIN: ValueSerializer = ValueSerializer {
        link_payload: false,
    };
}

/// Builds a `List` (sequences, tuples, tuple structs).
#[derive(Debug)]
struct ListBuilder {
    items: Vec<Value>,
}

/// Builds a `Map` (maps, structs).
#[derive(Debug)]
struct MapBuilder {
    map: Map,
    key: Option<String>,
}

/// Wraps a tuple or struct variant's content in a single-entry map.
#[derive(Debug)]
struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

fn single_entry(key: &str, value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert(key, value);
    Value::Map(map)
}

/// Implements the `Serializer` methods of the integer types that always fit an [`Int`].
macro_rules! small_integers {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<Value, SerdeError> {
            Ok(Value::from(v))
        }
    )*};
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = ListBuilder;
    type SerializeTuple = ListBuilder;
    type SerializeTupleStruct = ListBuilder;
    type SerializeTupleVariant = VariantBuilder<ListBuilder>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder<MapBuilder>;

    fn is_human_readable(&self) -> bool {
        !self.link_payload
    }
    fn serialize_bool(self, v: bool) -> Result<Value, SerdeError> {
        Ok(Value::Bool(v))
    }
    small_integers!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_i128(self, v: i128) -> Result<Value, SerdeError> {
        Int::try_from(v)
            .map(Value::Integer)
            .map_err(|_| out_of_range(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerdeError> {
        u64::try_from(v)
            .map(Value::from)
            .map_err(|_| out_of_range(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerdeError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerdeError> {
        finite(v).map(Value::Float)
    }
    fn serialize_char(self, v: char) -> Result<Value, SerdeError> {
        Ok(Value::Text(v.to_string().into()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerdeError> {
        Ok(Value::Text(v.into()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerdeError> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, SerdeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerdeError> {
        Ok(Value::Text(variant.into()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        if name != LINK {
            return value.serialize(self);
        }
        let cid = match value.serialize(ValueSerializer { link_payload: true })? {
            Value::Bytes(bytes) => Cid::from_bytes(&bytes),
            Value::Text(text) => text.parse(),
            other => {
                let kind = other.kind();
                return Err(SerdeError::new(format!(
                    "a link must be CID bytes or text, not {kind}"
                )));
            }
        };
        cid.map(Value::Link)
            .map_err(|e| SerdeError::new(format!("invalid link: {e}")))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        let inner = value.serialize(self).map_err(|e| e.at_key(variant))?;
        Ok(single_entry(variant, inner))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ListBuilder, SerdeError> {
        Ok(ListBuilder {
            items: Vec::with_capacity(cautious(len)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<ListBuilder, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<ListBuilder, SerdeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<ListBuilder>, SerdeError> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_seq(Some(len))?,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            map: Map::with_capacity(cautious(len)),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, SerdeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<MapBuilder>, SerdeError> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_map(Some(len))?,
        })
    }
}

impl ListBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let index = self.items.len();
        self.items.push(
            value
                .serialize(ValueSerializer::PLAIN)
                .map_err(|e| e.at_index(index))?,
        );
        Ok(())
    }
}

impl ser::SerializeSeq for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::List(self.items))
    }
}

impl ser::SerializeTuple for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::List(self.items))
    }
}

impl ser::SerializeTupleStruct for ListBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::List(self.items))
    }
}

impl ser::SerializeTupleVariant for VariantBuilder<ListBuilder> {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        self.inner.push(value).map_err(|e| e.at_key(self.variant))
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(single_entry(self.variant, Value::List(self.inner.items)))
    }
}

impl MapBuilder {
    fn insert<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), SerdeError> {
        let value = value
            .serialize(ValueSerializer::PLAIN)
            .map_err(|e| e.at_key(&key))?;
        if self.map.contains_key(&key) {
            return Err(SerdeError::new(format!("duplicate map key {key:?}")));
        }
        self.map.insert(key, value);
        Ok(())
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.key = Some(match key.serialize(ValueSerializer::PLAIN)? {
            Value::Text(text) => text.into_string(),
            // A CID (say a `BTreeMap<Cid, _>` key) stands for itself by its text form.
            Value::Link(cid) => cid.to_string(),
            other => {
                let kind = other.kind();
                return Err(SerdeError::new(format!(
                    "map key must be text, found {kind}"
                )));
            }
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        match self.key.take() {
            Some(key) => self.insert(key, value),
            None => Err(SerdeError::new("map value serialized before its key")),
        }
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::Map(self.map))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.insert(key.to_owned(), value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(Value::Map(self.map))
    }
}

impl ser::SerializeStructVariant for VariantBuilder<MapBuilder> {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        self.inner
            .insert(key.to_owned(), value)
            .map_err(|e| e.at_key(self.variant))
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(single_entry(self.variant, Value::Map(self.inner.map)))
    }
}

// ---------------------------------------------------------------------------------------------
// Deserializer

/// A [`Value`] being read, owned (its text and bytes are moved out) or borrowed for `'de`.
#[derive(Debug)]
enum Src<'de> {
    Owned(Value),
    Borrowed(&'de Value),
}

/// Deserializes a Rust value from a [`Value`], owned or borrowed; made by [`from_value`],
/// [`from_value_ref`] and `IntoDeserializer` for `Value` and `&Value`.
#[derive(Debug)]
pub struct ValueDeserializer<'de> {
    src: Src<'de>,
}

impl<'de> IntoDeserializer<'de, SerdeError> for Value {
    type Deserializer = ValueDeserializer<'de>;
    fn into_deserializer(self) -> ValueDeserializer<'de> {
        ValueDeserializer {
            src: Src::Owned(self),
        }
    }
}

impl<'de> IntoDeserializer<'de, SerdeError> for &'de Value {
    type Deserializer = ValueDeserializer<'de>;
    fn into_deserializer(self) -> ValueDeserializer<'de> {
        ValueDeserializer {
            src: Src::Borrowed(self),
        }
    }
}

fn visit_int<'de, V: Visitor<'de>>(int: Int, visitor: V) -> Result<V::Value, SerdeError> {
    match (int.to_u64(), int.to_i64()) {
        (Some(u), _) => visitor.visit_u64(u),
        (None, Some(i)) => visitor.visit_i64(i),
        (None, None) => visitor.visit_i128(int.to_i128()),
    }
}

fn visit_list<'de, I, V>(iter: I, visitor: V) -> Result<V::Value, SerdeError>
where
    I: ExactSizeIterator<Item = Src<'de>>,
    V: Visitor<'de>,
{
    let mut access = ListAccess { iter, index: 0 };
    let out = visitor.visit_seq(&mut access)?;
    match access.iter.len() {
        0 => Ok(out),
        left => Err(SerdeError::new(format!(
            "list has {} elements, only {} expected",
            access.index + left,
            access.index
        ))),
    }
}

fn visit_map<'de, I, V>(iter: I, visitor: V) -> Result<V::Value, SerdeError>
where
    I: ExactSizeIterator<Item = (Cow<'de, str>, Src<'de>)>,
    V: Visitor<'de>,
{
    let mut access = EntryAccess {
        iter,
        pending: None,
        read: 0,
    };
    let out = visitor.visit_map(&mut access)?;
    match access.iter.len() {
        0 => Ok(out),
        left => Err(SerdeError::new(format!(
            "map has {} entries, only {} read",
            access.read + left,
            access.read
        ))),
    }
}

impl<'de> ValueDeserializer<'de> {
    fn value(&self) -> &Value {
        match &self.src {
            Src::Owned(value) => value,
            Src::Borrowed(value) => value,
        }
    }

    /// `deserialize_any` for callers that asked for a specific type: a link is then an error
    /// rather than the link newtype (which a plain visitor would describe confusingly).
    fn deserialize_typed<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        if let Value::Link(_) = self.value() {
            return Err(de::Error::invalid_type(Unexpected::Other("link"), &visitor));
        }
        self.deserialize_any(visitor)
    }
}

/// Forwards `Deserializer` methods to `deserialize_typed`.
macro_rules! forward_to_typed {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, SerdeError> {
            $(let _ = $arg;)*
            self.deserialize_typed(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDeserializer<'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.src {
            Src::Owned(value) => match value {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(b),
                Value::Integer(int) => visit_int(int, visitor),
                Value::Float(f) => visitor.visit_f64(f),
                Value::Bytes(bytes) => visitor.visit_byte_buf(bytes),
                Value::Text(text) => visitor.visit_string(text.into_string()),
                Value::List(list) => visit_list(list.into_iter().map(Src::Owned), visitor),
                Value::Map(map) => visit_map(
                    map.into_iter().map(|(k, v)| (Cow::Owned(k), Src::Owned(v))),
                    visitor,
                ),
                Value::Link(cid) => visitor.visit_newtype_struct(LinkDeserializer(&cid)),
            },
            Src::Borrowed(value) => match value {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(*b),
                Value::Integer(int) => visit_int(*int, visitor),
                Value::Float(f) => visitor.visit_f64(*f),
                Value::Bytes(bytes) => visitor.visit_borrowed_bytes(bytes),
                Value::Text(text) => visitor.visit_borrowed_str(text),
                Value::List(list) => visit_list(list.iter().map(Src::Borrowed), visitor),
                Value::Map(map) => visit_map(
                    map.iter()
                        .map(|(k, v)| (Cow::Borrowed(k), Src::Borrowed(v))),
                    visitor,
                ),
                Value::Link(cid) => visitor.visit_newtype_struct(LinkDeserializer(cid)),
            },
        }
    }

    forward_to_typed! {
        deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32();
        deserialize_i64(); deserialize_i128(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_u64(); deserialize_u128(); deserialize_f32();
        deserialize_f64(); deserialize_char(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_unit(); deserialize_seq(); deserialize_map();
        deserialize_unit_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value() {
            Value::Link(cid) => visitor.visit_string(cid.to_string()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.value() {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        if name != LINK {
            return visitor.visit_newtype_struct(self);
        }
        match self.value() {
            Value::Link(cid) => visitor.visit_newtype_struct(LinkDeserializer(cid)),
            other => Err(SerdeError::new(format!(
                "expected a link, found {}",
                other.kind()
            ))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self.value() {
            Value::List(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor)),
            _ => self.deserialize_typed(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        let (variant, value) = match self.src {
            Src::Owned(Value::Text(text)) => (Cow::Owned(text.into_string()), None),
            Src::Borrowed(Value::Text(text)) => (Cow::Borrowed(text.as_str()), None),
            Src::Owned(Value::Map(map)) if map.len() == 1 => match map.into_iter().next() {
                Some((key, value)) => (Cow::Owned(key), Some(Src::Owned(value))),
                None => return Err(SerdeError::new("expected an enum, found an empty map")),
            },
            Src::Borrowed(Value::Map(map)) if map.len() == 1 => match map.iter().next() {
                Some((key, value)) => (Cow::Borrowed(key), Some(Src::Borrowed(value))),
                None => return Err(SerdeError::new("expected an enum, found an empty map")),
            },
            src => {
                let found = match (ValueDeserializer { src }).value() {
                    Value::Map(map) => format!("a map with {} entries", map.len()),
                    other => other.kind().to_owned(),
                };
                return Err(SerdeError::new(format!(
                    "expected an enum (text or a map with one entry), found {found}"
                )));
            }
        };
        visitor.visit_enum(EnumDeserializer { variant, value })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }
}

/// Walks the elements of a list.
struct ListAccess<I> {
    iter: I,
    index: usize,
}

impl<'de, I: ExactSizeIterator<Item = Src<'de>>> SeqAccess<'de> for ListAccess<I> {
    type Error = SerdeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        let Some(src) = self.iter.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(ValueDeserializer { src })
            .map(Some)
            .map_err(|e| e.at_index(index))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Walks the entries of a map, keeping the current key to name it in errors.
struct EntryAccess<'de, I> {
    iter: I,
    pending: Option<(Cow<'de, str>, Src<'de>)>,
    read: usize,
}

impl<'de, I> MapAccess<'de> for EntryAccess<'de, I>
where
    I: ExactSizeIterator<Item = (Cow<'de, str>, Src<'de>)>,
{
    type Error = SerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        let Some((key, src)) = self.iter.next() else {
            return Ok(None);
        };
        self.read += 1;
        let out = seed
            .deserialize(KeyDeserializer(&key))
            .map_err(|e| e.at_key(&key))?;
        self.pending = Some((key, src));
        Ok(Some(out))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        match self.pending.take() {
            Some((key, src)) => seed
                .deserialize(ValueDeserializer { src })
                .map_err(|e| e.at_key(&key)),
            None => Err(SerdeError::new("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Deserializes a map key or an enum variant name: text, borrowed for `'de` where possible.
struct KeyDeserializer<'a, 'de>(&'a Cow<'de, str>);

impl<'de> Deserializer<'de> for KeyDeserializer<'_, 'de> {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self.0 {
            Cow::Borrowed(key) => visitor.visit_borrowed_str(key),
            Cow::Owned(key) => visitor.visit_str(key),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        // Also a CID key, which reads its text form (this deserializer being human-readable).
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        visitor.visit_enum(EnumDeserializer {
            variant: self.0.clone(),
            value: None,
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// An enum read from text (unit variant, `value` none) or a single-entry map.
struct EnumDeserializer<'de> {
    variant: Cow<'de, str>,
    value: Option<Src<'de>>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer<'de> {
    type Error = SerdeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), SerdeError> {
        let variant = seed.deserialize(KeyDeserializer(&self.variant))?;
        Ok((variant, self))
    }
}

impl<'de> EnumDeserializer<'de> {
    fn content(self, expected: &str) -> Result<(String, ValueDeserializer<'de>), SerdeError> {
        match self.value {
            Some(src) => Ok((self.variant.into_owned(), ValueDeserializer { src })),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &expected)),
        }
    }
}

impl<'de> VariantAccess<'de> for EnumDeserializer<'de> {
    type Error = SerdeError;

    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.value {
            None => Ok(()),
            Some(_) => Err(SerdeError::new(format!(
                "unit variant `{}` must be written as text, not as a map",
                self.variant
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        let (variant, content) = self.content("newtype variant")?;
        seed.deserialize(content).map_err(|e| e.at_key(&variant))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        let (variant, content) = self.content("tuple variant")?;
        content
            .deserialize_seq(visitor)
            .map_err(|e| e.at_key(&variant))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        let (variant, content) = self.content("struct variant")?;
        content
            .deserialize_struct("", fields, visitor)
            .map_err(|e| e.at_key(&variant))
    }
}

/// The payload of the link newtype: CID bytes for a `Cid` (which asks for bytes because this
/// deserializer is not human-readable), CID text for whoever asks for a string.
struct LinkDeserializer<'a>(&'a Cid);

impl<'de> Deserializer<'de> for LinkDeserializer<'_> {
    type Error = SerdeError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_bytes(self.0.as_bytes())
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_string(self.0.to_string())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

// ---------------------------------------------------------------------------------------------
// Serialize and Deserialize for the data model

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::cid::Codec;

    fn cid(seed: &[u8]) -> Cid {
        Cid::hash(Codec::DagCbor, seed)
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        name: String,
        tags: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Point(i32, i32),
        Rect { w: u32, h: u32 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Meters(u16);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Everything {
        flag: bool,
        small: i8,
        big: u64,
        negative: i64,
        wide: i128,
        ratio: f32,
        letter: char,
        text: String,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        plain_bytes: Vec<u8>,
        maybe: Option<u32>,
        nothing: Option<String>,
        unit: (),
        unit_struct: Unit,
        meters: Meters,
        pair: (u8, String),
        inner: Inner,
        shapes: Vec<Shape>,
        hash_map: HashMap<String, i32>,
        tree: BTreeMap<String, Vec<u8>>,
        by_shape: BTreeMap<Shape, u8>,
        link: Cid,
        links: Vec<Cid>,
        raw: Value,
    }

    fn everything() -> Everything {
        let raw = Value::List(vec![
            Value::Link(cid(b"raw")),
            Value::Bytes(vec![0, 255]),
            Value::Integer(Int::MIN),
            Value::Integer(Int::MAX),
            Value::Map([("k", Value::Null)].into()),
        ]);
        Everything {
            flag: true,
            small: -8,
            big: u64::MAX,
            negative: i64::MIN,
            wide: -(1i128 << 64),
            ratio: 0.1,
            letter: 'é',
            text: "hello".into(),
            blob: vec![1, 2, 3],
            plain_bytes: vec![4, 5],
            maybe: Some(7),
            nothing: None,
            unit: (),
            unit_struct: Unit,
            meters: Meters(300),
            pair: (9, "nine".into()),
            inner: Inner {
                name: "in".into(),
                tags: vec!["a".into(), "b".into()],
            },
            shapes: vec![
                Shape::Empty,
                Shape::Circle(1.5),
                Shape::Point(-1, 2),
                Shape::Rect { w: 3, h: 4 },
            ],
            hash_map: [("x".to_owned(), -1), ("yy".to_owned(), 2)].into(),
            tree: [("b".to_owned(), vec![1]), ("a".to_owned(), vec![])].into(),
            by_shape: [(Shape::Empty, 1)].into(),
            link: cid(b"link"),
            links: vec![cid(b"1"), cid(b"2")],
            raw,
        }
    }

    impl Eq for Shape {}
    impl PartialOrd for Shape {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Shape {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            format!("{self:?}").cmp(&format!("{other:?}"))
        }
    }

    #[test]
    fn struct_with_every_field_kind_round_trips() {
        let original = everything();
        let value = to_value(&original).unwrap();
        let map = value.as_map().unwrap();
        assert_eq!(map.get("flag"), Some(&Value::Bool(true)));
        assert_eq!(map.get("big"), Some(&Value::Integer(Int::from(u64::MAX))));
        assert_eq!(map.get("wide"), Some(&Value::Integer(Int::MIN)));
        assert_eq!(map.get("blob"), Some(&Value::Bytes(vec![1, 2, 3])));
        assert_eq!(
            map.get("plain_bytes"),
            Some(&Value::List(vec![4.into(), 5.into()]))
        );
        assert_eq!(map.get("maybe"), Some(&Value::from(7)));
        assert_eq!(map.get("nothing"), Some(&Value::Null));
        assert_eq!(map.get("unit"), Some(&Value::Null));
        assert_eq!(map.get("unit_struct"), Some(&Value::Null));
        assert_eq!(map.get("meters"), Some(&Value::from(300)));
        assert_eq!(map.get("letter"), Some(&Value::from("é")));
        assert_eq!(map.get("link"), Some(&Value::Link(cid(b"link"))));
        assert_eq!(map.get("raw"), Some(&original.raw));
        assert_eq!(
            map.get("by_shape"),
            Some(&Value::Map([("Empty", 1)].into()))
        );
        let shapes = Value::List(vec![
            Value::from("Empty"),
            Value::Map([("Circle", Value::Float(1.5))].into()),
            Value::Map([("Point", Value::List(vec![(-1).into(), 2.into()]))].into()),
            Value::Map([("Rect", Value::Map([("w", 3), ("h", 4)].into()))].into()),
        ]);
        assert_eq!(map.get("shapes"), Some(&shapes));

        let back: Everything = from_value(value.clone()).unwrap();
        assert_eq!(back, original);
        let borrowed: Everything = from_value_ref(&value).unwrap();
        assert_eq!(borrowed, original);
        // And through serde_json, where links are text and bytes are lists of integers.
        let json = serde_json::to_string(&original).unwrap();
        assert!(
            json.contains(&format!("\"link\":\"{}\"", cid(b"link"))),
            "{json}"
        );
        let from_json: Everything = serde_json::from_str(&json).unwrap();
        assert_eq!(from_json.link, original.link);
        assert_eq!(from_json.blob, original.blob);
    }

    #[test]
    fn borrowed_deserialization_borrows_text_and_bytes() {
        #[derive(Deserialize)]
        struct View<'a> {
            name: &'a str,
            data: &'a [u8],
            #[serde(borrow)]
            keys: BTreeMap<&'a str, bool>,
        }
        let value = Value::Map(
            [
                ("name", Value::from("n")),
                ("data", Value::Bytes(vec![7])),
                ("keys", Value::Map([("a", true)].into())),
            ]
            .into(),
        );
        let view: View<'_> = from_value_ref(&value).unwrap();
        assert_eq!((view.name, view.data), ("n", &[7u8][..]));
        assert_eq!(view.keys.get("a"), Some(&true));
        // Owned conversion cannot hand out borrows.
        assert!(from_value::<serde_json::Value>(Value::from("x")).is_ok());
    }

    #[test]
    fn links_go_to_cid_and_value_and_text_when_asked() {
        let link = cid(b"x");
        assert_eq!(to_value(&link).unwrap(), Value::Link(link.clone()));
        assert_eq!(from_value::<Cid>(Value::Link(link.clone())).unwrap(), link);
        assert_eq!(
            from_value::<Value>(Value::Link(link.clone())).unwrap(),
            Value::Link(link.clone())
        );
        assert_eq!(
            from_value::<String>(Value::Link(link.clone())).unwrap(),
            link.to_string()
        );
        // Strict: text or bytes are not links to our deserializer ...
        let error = from_value::<Cid>(Value::from(link.to_string())).unwrap_err();
        assert_eq!(error.to_string(), "expected a link, found text");
        assert!(
            from_value::<u64>(Value::Link(link.clone()))
                .unwrap_err()
                .to_string()
                .contains("link")
        );
        // ... but other formats carry CIDs as text (or bytes in compact formats).
        let json = serde_json::to_string(&link).unwrap();
        assert_eq!(json, format!("\"{link}\""));
        assert_eq!(serde_json::from_str::<Cid>(&json).unwrap(), link);
        assert!(serde_json::from_str::<Cid>("\"bafy\"").is_err());
        let value = Value::List(vec![Value::Link(link.clone())]);
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, format!("[\"{link}\"]"));
        // CIDs as map keys use their text form.
        let keyed: BTreeMap<Cid, u8> = [(link.clone(), 1)].into();
        let value = to_value(&keyed).unwrap();
        assert_eq!(value, Value::Map([(link.to_string(), 1)].into()));
        assert_eq!(from_value::<BTreeMap<Cid, u8>>(value).unwrap(), keyed);
    }

    #[test]
    fn links_survive_internally_tagged_and_untagged_enums() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "$type")]
        enum Typed {
            Post { parent: Cid, body: Value },
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(untagged)]
        enum Either {
            Link(Cid),
            Number(u64),
        }
        let post = Typed::Post {
            parent: cid(b"p"),
            body: Value::List(vec![Value::Link(cid(b"b")), Value::Bytes(vec![1])]),
        };
        let value = to_value(&post).unwrap();
        assert_eq!(value.type_name(), Some("Post"));
        assert_eq!(from_value::<Typed>(value).unwrap(), post);
        for either in [Either::Link(cid(b"e")), Either::Number(5)] {
            assert_eq!(
                from_value::<Either>(to_value(&either).unwrap()).unwrap(),
                either
            );
        }
    }

    #[test]
    fn integers_at_the_boundaries() {
        assert_eq!(
            to_value(&u64::MAX).unwrap(),
            Value::Integer(Int::from(u64::MAX))
        );
        assert_eq!(
            to_value(&i64::MIN).unwrap(),
            Value::Integer(Int::from(i64::MIN))
        );
        let min = -(1i128 << 64);
        let max = (1i128 << 64) - 1;
        assert_eq!(to_value(&min).unwrap(), Value::Integer(Int::MIN));
        assert_eq!(to_value(&max).unwrap(), Value::Integer(Int::MAX));
        assert_eq!(to_value(&(max as u128)).unwrap(), Value::Integer(Int::MAX));
        for bad in [min - 1, max + 1] {
            let error = to_value(&bad).unwrap_err().to_string();
            assert!(error.contains("outside the DAG-CBOR range"), "{error}");
        }
        assert!(to_value(&(1u128 << 64)).is_err());
        assert!(to_value(&u128::MAX).is_err());

        assert_eq!(
            from_value::<u64>(Value::Integer(Int::MAX)).unwrap(),
            u64::MAX
        );
        assert_eq!(from_value::<i64>(Value::from(i64::MIN)).unwrap(), i64::MIN);
        assert_eq!(from_value::<i128>(Value::Integer(Int::MIN)).unwrap(), min);
        assert_eq!(
            from_value::<u128>(Value::Integer(Int::MAX)).unwrap(),
            max as u128
        );
        assert_eq!(
            from_value::<Int>(Value::Integer(Int::MIN)).unwrap(),
            Int::MIN
        );
        assert!(from_value::<i64>(Value::Integer(Int::MAX)).is_err());
        assert!(from_value::<u64>(Value::from(-1)).is_err());
        let error = from_value::<u8>(Value::from(256)).unwrap_err().to_string();
        assert_eq!(error, "invalid value: integer `256`, expected u8");
        // Integers may be read as floats, never floats as integers.
        assert_eq!(from_value::<f64>(Value::from(3)).unwrap(), 3.0);
        assert!(from_value::<u32>(Value::Float(3.0)).is_err());
        // Value writes every integer to serde_json (which reads back only what fits i64/u64).
        let json = serde_json::to_string(&Value::Integer(Int::MIN)).unwrap();
        assert_eq!(json, "-18446744073709551616");
        let json = serde_json::to_string(&Value::Integer(Int::MAX)).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            Value::Integer(Int::MAX)
        );
        // Int asks for an i128, so serde_json reads all of it.
        assert_eq!(
            serde_json::from_str::<Int>("-18446744073709551616").unwrap(),
            Int::MIN
        );
        assert!(serde_json::from_str::<Int>("18446744073709551616").is_err());
        let error = from_value::<Int>(Value::Link(cid(b"i")))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid type: link, expected an integer"),
            "{error}"
        );
    }

    #[test]
    fn non_finite_floats_are_errors() {
        #[derive(Serialize)]
        struct Ratio {
            ratio: f64,
        }
        let error = to_value(&Ratio { ratio: f64::NAN }).unwrap_err();
        assert_eq!(
            error.to_string(),
            "float NaN is not allowed: DAG-CBOR floats must be finite at `ratio`"
        );
        assert!(to_value(&f32::INFINITY).is_err());
        assert!(to_value(&f64::NEG_INFINITY).is_err());
        assert_eq!(to_value(&-0.0f64).unwrap(), Value::Float(-0.0));
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_reported() {
        let value = Value::Map(
            [
                ("name", Value::from("n")),
                ("tags", Value::List(vec![])),
                (
                    "extra",
                    Value::List(vec![Value::Link(cid(b"z")), Value::Bytes(vec![])]),
                ),
            ]
            .into(),
        );
        let inner: Inner = from_value(value).unwrap();
        assert_eq!(
            inner,
            Inner {
                name: "n".into(),
                tags: vec![]
            }
        );
        let error = from_value::<Inner>(Value::Map([("name", "n")].into())).unwrap_err();
        assert_eq!(error.to_string(), "missing field `tags`");
    }

    #[test]
    fn wrong_types_name_what_and_where() {
        let mut value = to_value(&everything()).unwrap();
        let Value::Map(map) = &mut value else {
            panic!("a map")
        };
        let Some(Value::Map(inner)) = map.get_mut("inner") else {
            panic!("inner")
        };
        inner.insert("tags", Value::List(vec!["ok".into(), Value::from(5)]));
        let error = from_value::<Everything>(value).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid type: integer `5`, expected a string at `inner.tags[1]`"
        );

        let error = from_value::<Inner>(Value::List(vec![]))
            .unwrap_err()
            .to_string();
        assert_eq!(error, "invalid type: sequence, expected struct Inner");
        let error = from_value::<Shape>(Value::from("Hexagon"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("unknown variant `Hexagon`, expected one of"),
            "{error}"
        );
        let error = from_value::<Shape>(Value::from(1)).unwrap_err().to_string();
        assert_eq!(
            error,
            "expected an enum (text or a map with one entry), found integer"
        );
        let error = from_value::<Shape>(Value::Map([("Circle", "x")].into())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid type: string \"x\", expected f64 at `Circle`"
        );
        let error = from_value::<Shape>(Value::Map([("Empty", 1)].into())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unit variant `Empty` must be written as text, not as a map"
        );
        let error = from_value::<(u8, u8)>(Value::List(vec![1.into(); 3])).unwrap_err();
        assert_eq!(error.to_string(), "list has 3 elements, only 2 expected");
        let error = from_value::<Vec<u8>>(Value::Bytes(vec![1]))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid type: byte array"), "{error}");
        let weird_key = Value::Map([("a.b", Value::from("x"))].into());
        let error = from_value::<HashMap<String, u8>>(weird_key).unwrap_err();
        assert!(error.to_string().ends_with(r#"at `["a.b"]`"#), "{error}");
    }

    #[test]
    fn map_keys_must_be_text_and_unique() {
        let error = to_value(&HashMap::from([(1u8, 2u8)])).unwrap_err();
        assert_eq!(error.to_string(), "map key must be text, found integer");
        let error = to_value(&BTreeMap::from([(Some(vec![1u8]), 2u8)])).unwrap_err();
        assert_eq!(error.to_string(), "map key must be text, found list");
        let error = to_value(&BTreeMap::from([((), 1)])).unwrap_err();
        assert_eq!(error.to_string(), "map key must be text, found null");
        assert_eq!(
            to_value(&BTreeMap::from([('c', 1)])).unwrap(),
            Value::Map([("c", 1)].into())
        );

        #[derive(Serialize)]
        struct Clash {
            a: u8,
            #[serde(flatten)]
            rest: BTreeMap<String, u8>,
        }
        let clash = Clash {
            a: 1,
            rest: [("a".to_owned(), 2)].into(),
        };
        assert_eq!(
            to_value(&clash).unwrap_err().to_string(),
            "duplicate map key \"a\""
        );
        let error = serde_json::from_str::<Value>(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(error.to_string().contains("duplicate map key"), "{error}");
    }

    #[test]
    fn options_units_and_newtypes() {
        assert_eq!(from_value::<Option<u8>>(Value::Null).unwrap(), None);
        assert_eq!(from_value::<Option<u8>>(Value::from(1)).unwrap(), Some(1));
        assert_eq!(from_value::<()>(Value::Null).unwrap(), ());
        assert!(from_value::<()>(Value::from(false)).is_err());
        assert_eq!(from_value::<Meters>(Value::from(2)).unwrap(), Meters(2));
        assert_eq!(from_value::<Unit>(Value::Null).unwrap(), Unit);
        assert_eq!(from_value::<char>(Value::from("z")).unwrap(), 'z');
        assert!(from_value::<char>(Value::from("zz")).is_err());
        assert_eq!(
            from_value::<Map>(Value::Map([("a", 1)].into())).unwrap(),
            [("a", 1)].into()
        );
        assert!(from_value::<Map>(Value::List(vec![])).is_err());
        // serde_bytes reads bytes, and also a list of integers.
        let bytes: serde_bytes::ByteBuf =
            from_value(Value::List(vec![1.into(), 2.into()])).unwrap();
        assert_eq!(bytes.into_vec(), vec![1, 2]);
        let value = Value::from(5);
        assert_eq!(u8::deserialize((&value).into_deserializer()).unwrap(), 5);
        assert_eq!(u8::deserialize(value.into_deserializer()).unwrap(), 5);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (any::<bool>(), any::<u64>()).prop_map(|(negative, n)| Value::Integer(if negative {
                Int::negative_from_cbor(n)
            } else {
                Int::from_u64(n)
            })),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Float),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
            ".{0,8}".prop_map(Value::from),
            (any::<bool>(), any::<[u8; 4]>()).prop_map(|(raw, seed)| {
                Value::Link(Cid::hash(
                    if raw { Codec::Raw } else { Codec::DagCbor },
                    &seed,
                ))
            }),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                prop::collection::vec((".{0,6}", inner), 0..6)
                    .prop_map(|entries| Value::Map(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_value_round_trips(value in arb_value()) {
            prop_assert_eq!(&to_value(&value).unwrap(), &value);
            prop_assert_eq!(&from_value::<Value>(value.clone()).unwrap(), &value);
            prop_assert_eq!(&from_value_ref::<Value>(&value).unwrap(), &value);
            #[derive(Debug, PartialEq, Serialize, Deserialize)]
            struct Holder { value: Value, list: Vec<Value> }
            let holder = Holder { value: value.clone(), list: vec![value.clone(), Value::Null] };
            prop_assert_eq!(from_value::<Holder>(to_value(&holder).unwrap()).unwrap(), holder);
        }
    }
}
