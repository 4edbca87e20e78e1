//! The `Deserializer` side: a [`Value`], owned or borrowed, into any `Deserialize` type.

use std::borrow::Cow;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::{Deserializer, forward_to_deserialize_any};

use super::{Cid, Int, LINK, SerdeError, Value};

/// A [`Value`] being read, owned (its text and bytes are moved out) or borrowed for `'de`.
#[derive(Debug)]
pub(super) enum Src<'de> {
    Owned(Value),
    Borrowed(&'de Value),
}

/// Deserializes a Rust value from a [`Value`], owned or borrowed; made by
/// [`from_value`](super::from_value), [`from_value_ref`](super::from_value_ref) and
/// `IntoDeserializer` for `Value` and `&Value`.
#[derive(Debug)]
pub struct ValueDeserializer<'de> {
    pub(super) src: Src<'de>,
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
