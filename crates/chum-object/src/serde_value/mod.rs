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

mod de;
mod impls;
mod ser;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use self::de::{Src, ValueDeserializer};
use self::ser::ValueSerializer;
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

impl serde::ser::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError::new(msg.to_string())
    }
}

impl serde::de::Error for SerdeError {
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
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, SerdeError> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
