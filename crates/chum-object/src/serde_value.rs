//! serde bridge between Rust types and [`Value`] (being written).
use crate::value::Value;

/// A Rust value that does not map to a DAG-CBOR value, or the reverse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(String);

/// Converts a Rust value to a [`Value`].
pub fn to_value<T: serde::Serialize + ?Sized>(_value: &T) -> Result<Value, SerdeError> {
    Err(SerdeError("not yet".into()))
}

/// Converts a [`Value`] to a Rust value.
pub fn from_value<T: serde::de::DeserializeOwned>(_value: Value) -> Result<T, SerdeError> {
    Err(SerdeError("not yet".into()))
}
