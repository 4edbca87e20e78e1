//! The `Serializer` side: any `Serialize` type into a [`Value`].

use serde::ser::{self, Serialize, Serializer};

use super::{Cid, Int, LINK, Map, SerdeError, Value, cautious, finite, out_of_range};

/// Serializes into a [`Value`].
#[derive(Debug, Clone, Copy)]
pub(super) struct ValueSerializer {
    /// Set while serializing the payload of the link newtype: the serializer then says it is not
    /// human-readable, so that a [`Cid`] hands over its bytes rather than its text.
    link_payload: bool,
}

impl ValueSerializer {
    pub(super) const PLAIN: ValueSerializer = ValueSerializer {
        link_payload: false,
    };
}

/// Builds a `List` (sequences, tuples, tuple structs).
#[derive(Debug)]
pub(super) struct ListBuilder {
    items: Vec<Value>,
}

/// Builds a `Map` (maps, structs).
#[derive(Debug)]
pub(super) struct MapBuilder {
    map: Map,
    key: Option<String>,
}

/// Wraps a tuple or struct variant's content in a single-entry map.
#[derive(Debug)]
pub(super) struct VariantBuilder<B> {
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
