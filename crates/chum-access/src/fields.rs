//! Reading typed fields out of object maps, with errors that name the field.

use chum_object::{Cid, Map, Value};

use crate::error::{AccessError, Result};

pub(crate) struct Fields<'a> {
    pub(crate) what: &'static str,
    pub(crate) map: &'a Map,
}

impl<'a> Fields<'a> {
    /// The map of `value`, which must have `$type` = `what`.
    pub(crate) fn of(value: &'a Value, what: &'static str) -> Result<Fields<'a>> {
        let map = value
            .as_map()
            .ok_or_else(|| AccessError::malformed(what, "not a map"))?;
        match map.get("$type").and_then(Value::as_text) {
            Some(name) if name == what => Ok(Fields { what, map }),
            Some(name) => Err(AccessError::malformed(what, format!("`$type` is {name:?}"))),
            None => Err(AccessError::malformed(what, "no text `$type`")),
        }
    }

    fn missing(&self, field: &str, kind: &str) -> AccessError {
        AccessError::malformed(self.what, format!("field `{field}` must be {kind}"))
    }

    pub(crate) fn key(&self, field: &str) -> Result<[u8; 32]> {
        match self.map.get(field) {
            Some(Value::Bytes(bytes)) => bytes
                .as_slice()
                .try_into()
                .map_err(|_| self.missing(field, "32 bytes")),
            _ => Err(self.missing(field, "32 bytes")),
        }
    }

    pub(crate) fn int(&self, field: &str) -> Result<u64> {
        self.map
            .get(field)
            .and_then(Value::as_int)
            .and_then(|int| int.to_u64())
            .ok_or_else(|| self.missing(field, "a non-negative integer"))
    }

    pub(crate) fn link(&self, field: &str) -> Result<Cid> {
        self.map
            .get(field)
            .and_then(Value::as_link)
            .cloned()
            .ok_or_else(|| self.missing(field, "a link"))
    }

    pub(crate) fn text(&self, field: &str) -> Result<&'a str> {
        self.map
            .get(field)
            .and_then(Value::as_text)
            .ok_or_else(|| self.missing(field, "text"))
    }

    pub(crate) fn optional_key(&self, field: &str) -> Result<Option<[u8; 32]>> {
        if self.map.contains_key(field) {
            self.key(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// For a signed object: checks that `person` is the Person of `personKey` and that the
    /// signature verifies by that key; returns the key.
    pub(crate) fn signer(&self) -> Result<[u8; 32]> {
        let key = self.key("personKey")?;
        if self.link("person")? != crate::keys::PersonId::of_key(&key).0 {
            return Err(AccessError::malformed(
                self.what,
                "`person` is not the Person of `personKey`",
            ));
        }
        crate::signed::check(self.what, self.map, &key)?;
        Ok(key)
    }

    /// Refuses fields other than `allowed` (and `$type`), so a signed object has one meaning.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<()> {
        for key in self.map.keys() {
            if key != "$type" && !allowed.contains(&key) {
                return Err(AccessError::malformed(
                    self.what,
                    format!("unexpected field `{key}`"),
                ));
            }
        }
        Ok(())
    }
}
