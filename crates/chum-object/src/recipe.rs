//! Typed objects and their recipes.
//!
//! A typed object is a map with a text `$type` field. Its [`Recipe`] declares the fields (kind,
//! optional or required, ID field or not, link targets, whether a link makes the object an entry
//! of the target's collection) and the merge strategy by name. Recipes are objects themselves
//! (`$type: "Recipe"`), so peers can send each other types they have not seen.
//!
//! The **ID object** of a versioned object is the object reduced to `$type` and its ID fields;
//! its CID is the object's **ID hash**, which names the object across all its versions. The ID
//! object is an ordinary object, stored and synced like any other, so a link to an ID hash
//! always resolves.
//!
//! ```
//! use chum_object::recipe::{Field, Kind, Recipe, Strategy};
//! use chum_object::dagjson;
//!
//! let contact = Recipe::new("Contact", Strategy::FieldMerge)
//!     .field(Field::new("email", Kind::Text).id())
//!     .field(Field::new("name", Kind::Text).optional())
//!     .field(Field::new("tags", Kind::Set(Box::new(Kind::Text))).optional());
//! let alice = dagjson::from_str(r#"{"$type":"Contact","email":"alice@example.org","name":"Alice"}"#)?;
//! contact.validate(&alice)?;
//! let renamed = dagjson::from_str(r#"{"$type":"Contact","email":"alice@example.org","name":"Al"}"#)?;
//! assert_eq!(contact.id_hash(&alice)?, contact.id_hash(&renamed)?);
//! # Ok::<(), chum_object::Error>(())
//! ```

use std::fmt::{self, Write as _};

use crate::cid::Cid;
use crate::dagcbor;
use crate::object::Object;
use crate::value::{Map, Value};

/// The `$type` of recipe objects.
pub const RECIPE_TYPE: &str = "Recipe";

/// How versions of a type merge (the semantics live in `chum-crdt`; here only the names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Immutable entries that never conflict; merge is union.
    AppendOnly,
    /// The whole state of the greatest version wins.
    LastWrite,
    /// Each field resolves independently; set fields are add-wins sets.
    FieldMerge,
    /// Stored and versioned locally, never synced.
    InstanceLocal,
}

impl Strategy {
    /// The name used in recipes (`"append-only"`, `"last-write"`, `"field-merge"`, `"instance-local"`).
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::AppendOnly => "append-only",
            Strategy::LastWrite => "last-write",
            Strategy::FieldMerge => "field-merge",
            Strategy::InstanceLocal => "instance-local",
        }
    }

    /// Parses a strategy name.
    pub fn from_name(name: &str) -> Option<Strategy> {
        [
            Strategy::AppendOnly,
            Strategy::LastWrite,
            Strategy::FieldMerge,
            Strategy::InstanceLocal,
        ]
        .into_iter()
        .find(|strategy| strategy.name() == name)
    }
}

/// The kind of value a field holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Any value.
    Any,
    /// `true` or `false`.
    Bool,
    /// An integer.
    Integer,
    /// A float.
    Float,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
    /// A link; the names of the types it may point to (empty: any target).
    Link(Vec<String>),
    /// A list of values of one kind.
    List(Box<Kind>),
    /// A set: a list of distinct values of one kind (merged as an add-wins set by field-merge).
    Set(Box<Kind>),
    /// A map from text to values of one kind.
    Map(Box<Kind>),
}

impl Kind {
    fn to_value(&self) -> Value {
        let simple = |name: &str| Value::Text(name.into());
        let nested = |key: &str, value: Value| Value::Map([(key, value)].into());
        match self {
            Kind::Any => simple("any"),
            Kind::Bool => simple("bool"),
            Kind::Integer => simple("integer"),
            Kind::Float => simple("float"),
            Kind::Text => simple("text"),
            Kind::Bytes => simple("bytes"),
            Kind::Link(types) if types.is_empty() => simple("link"),
            Kind::Link(types) => nested(
                "link",
                Value::List(
                    types
                        .iter()
                        .map(|t| Value::Text(t.as_str().into()))
                        .collect(),
                ),
            ),
            Kind::List(of) => nested("list", of.to_value()),
            Kind::Set(of) => nested("set", of.to_value()),
            Kind::Map(of) => nested("map", of.to_value()),
        }
    }

    fn from_value(value: &Value, depth: usize) -> Result<Kind, String> {
        if depth > 16 {
            return Err("kind nests deeper than 16".into());
        }
        match value {
            Value::Text(name) => match name.as_str() {
                "any" => Ok(Kind::Any),
                "bool" => Ok(Kind::Bool),
                "integer" => Ok(Kind::Integer),
                "float" => Ok(Kind::Float),
                "text" => Ok(Kind::Text),
                "bytes" => Ok(Kind::Bytes),
                "link" => Ok(Kind::Link(Vec::new())),
                other => Err(format!("unknown kind {other:?}")),
            },
            Value::Map(map) if map.len() == 1 => {
                let (key, inner) = map.iter().next().ok_or("empty kind map")?;
                match key {
                    "link" => {
                        let types = inner.as_list().ok_or("link targets must be a list")?;
                        types
                            .iter()
                            .map(|t| {
                                t.as_text()
                                    .map(str::to_owned)
                                    .ok_or("link target must be text")
                            })
                            .collect::<Result<_, _>>()
                            .map(Kind::Link)
                            .map_err(str::to_owned)
                    }
                    "list" => Ok(Kind::List(Box::new(Kind::from_value(inner, depth + 1)?))),
                    "set" => Ok(Kind::Set(Box::new(Kind::from_value(inner, depth + 1)?))),
                    "map" => Ok(Kind::Map(Box::new(Kind::from_value(inner, depth + 1)?))),
                    other => Err(format!("unknown kind {other:?}")),
                }
            }
            _ => Err("a kind is a name or a one-entry map".into()),
        }
    }

    /// Checks `value` against this kind; `path` names the place for errors.
    fn check(&self, value: &Value, path: &mut String) -> Result<(), (String, String)> {
        let mismatch = |path: &str| {
            Err((
                path.to_owned(),
                format!("expected {self}, found {}", value.kind()),
            ))
        };
        match (self, value) {
            (Kind::Any, _)
            | (Kind::Bool, Value::Bool(_))
            | (Kind::Integer, Value::Integer(_))
            | (Kind::Float, Value::Float(_))
            | (Kind::Text, Value::Text(_))
            | (Kind::Bytes, Value::Bytes(_))
            | (Kind::Link(_), Value::Link(_)) => Ok(()),
            (Kind::List(of) | Kind::Set(of), Value::List(items)) => {
                let base = path.len();
                for (i, item) in items.iter().enumerate() {
                    let _ = write!(path, "[{i}]");
                    of.check(item, path)?;
                    path.truncate(base);
                }
                if matches!(self, Kind::Set(_)) {
                    let mut encoded = items
                        .iter()
                        .map(dagcbor::encode)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|error| (path.clone(), error.to_string()))?;
                    encoded.sort();
                    if encoded.windows(2).any(|pair| pair[0] == pair[1]) {
                        return Err((path.clone(), "set holds the same element twice".into()));
                    }
                }
                Ok(())
            }
            (Kind::Map(of), Value::Map(map)) => {
                let base = path.len();
                for (key, item) in map.iter() {
                    let _ = write!(path, ".{key}");
                    of.check(item, path)?;
                    path.truncate(base);
                }
                Ok(())
            }
            _ => mismatch(path),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Any => f.write_str("any"),
            Kind::Bool => f.write_str("bool"),
            Kind::Integer => f.write_str("integer"),
            Kind::Float => f.write_str("float"),
            Kind::Text => f.write_str("text"),
            Kind::Bytes => f.write_str("bytes"),
            Kind::Link(types) if types.is_empty() => f.write_str("link"),
            Kind::Link(types) => write!(f, "link to {}", types.join(" or ")),
            Kind::List(of) => write!(f, "list of {of}"),
            Kind::Set(of) => write!(f, "set of {of}"),
            Kind::Map(of) => write!(f, "map of {of}"),
        }
    }
}

/// One field of a recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The key in the object's map.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// Whether it may be absent.
    pub optional: bool,
    /// Whether it is part of the object's identity (ID fields are required).
    pub id: bool,
    /// For a link field: the object is an entry of the linked object's collection (e.g. a
    /// Message whose `conversation` links to a Conversation).
    pub collection: bool,
}

impl Field {
    /// A required, non-ID field.
    pub fn new(name: impl Into<String>, kind: Kind) -> Field {
        Field {
            name: name.into(),
            kind,
            optional: false,
            id: false,
            collection: false,
        }
    }

    /// Marks the field optional.
    pub fn optional(mut self) -> Field {
        self.optional = true;
        self
    }

    /// Marks the field as an ID field.
    pub fn id(mut self) -> Field {
        self.id = true;
        self
    }

    /// Marks a link field as making the object an entry of the target's collection.
    pub fn collection(mut self) -> Field {
        self.collection = true;
        self
    }
}

/// A type definition: name, version, merge strategy and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The `$type` name.
    pub name: String,
    /// The recipe's version (starts at 1; upgrades bump it).
    pub version: u64,
    /// How versions of objects of this type merge.
    pub strategy: Strategy,
    /// The fields, in declaration order.
    pub fields: Vec<Field>,
}

/// An object that does not satisfy its recipe, or a recipe that is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The value is not a map.
    #[error("a typed object must be a map, found {0}")]
    NotAMap(&'static str),
    /// The object's `$type` is missing or not the recipe's name.
    #[error("object has $type {found:?}, recipe is {expected:?}")]
    WrongType {
        /// The recipe's name.
        expected: String,
        /// The object's `$type`, if any.
        found: Option<String>,
    },
    /// A required field is absent.
    #[error("{recipe}: required field {field:?} is missing")]
    MissingField {
        /// The recipe.
        recipe: String,
        /// The field.
        field: String,
    },
    /// A field the recipe does not declare.
    #[error("{recipe}: unknown field {field:?}")]
    UnknownField {
        /// The recipe.
        recipe: String,
        /// The field.
        field: String,
    },
    /// A field (or an element inside it) of the wrong kind.
    #[error("{recipe}: field {path}: {reason}")]
    InvalidField {
        /// The recipe.
        recipe: String,
        /// Where: the field name, then `[i]` and `.key` steps.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The type has no ID fields, so it has no ID hash.
    #[error("{0} is not a versioned type (it has no ID fields)")]
    NotVersioned(String),
    /// The recipe itself is malformed.
    #[error("invalid recipe: {0}")]
    InvalidRecipe(String),
}

impl Recipe {
    /// A recipe with no fields yet, version 1.
    pub fn new(name: impl Into<String>, strategy: Strategy) -> Recipe {
        Recipe {
            name: name.into(),
            version: 1,
            strategy,
            fields: Vec::new(),
        }
    }

    /// Adds a field.
    pub fn field(mut self, field: Field) -> Recipe {
        self.fields.push(field);
        self
    }

    /// Sets the version.
    pub fn with_version(mut self, version: u64) -> Recipe {
        self.version = version;
        self
    }

    /// The field called `name`.
    pub fn get_field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The ID fields.
    pub fn id_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|field| field.id)
    }

    /// Whether objects of this type are versioned (they have ID fields).
    pub fn is_versioned(&self) -> bool {
        self.fields.iter().any(|field| field.id)
    }

    /// Checks the recipe itself: a name, distinct field names (none `$type`), ID fields
    /// required, collection only on links.
    pub fn check(&self) -> Result<(), RecipeError> {
        let invalid =
            |why: String| Err(RecipeError::InvalidRecipe(format!("{}: {why}", self.name)));
        if self.name.is_empty() {
            return invalid("empty name".into());
        }
        if self.version == 0 {
            return invalid("version must be at least 1".into());
        }
        for (i, field) in self.fields.iter().enumerate() {
            if field.name.is_empty() || field.name == "$type" {
                return invalid(format!("field name {:?} not allowed", field.name));
            }
            if self.fields[..i]
                .iter()
                .any(|other| other.name == field.name)
            {
                return invalid(format!("field {:?} declared twice", field.name));
            }
            if field.id && field.optional {
                return invalid(format!("ID field {:?} cannot be optional", field.name));
            }
            if field.collection && !matches!(field.kind, Kind::Link(_)) {
                return invalid(format!("collection field {:?} must be a link", field.name));
            }
        }
        Ok(())
    }

    /// The recipe as an object value (`$type: "Recipe"`).
    pub fn to_value(&self) -> Value {
        let fields = self
            .fields
            .iter()
            .map(|field| {
                let mut map = Map::new();
                map.insert("name", field.name.as_str());
                map.insert("kind", field.kind.to_value());
                if field.optional {
                    map.insert("optional", true);
                }
                if field.id {
                    map.insert("id", true);
                }
                if field.collection {
                    map.insert("collection", true);
                }
                Value::Map(map)
            })
            .collect();
        let mut map = Map::new();
        map.insert("$type", RECIPE_TYPE);
        map.insert("name", self.name.as_str());
        map.insert("version", self.version);
        map.insert("strategy", self.strategy.name());
        map.insert("fields", Value::List(fields));
        Value::Map(map)
    }

    /// Reads a recipe object (as written by [`Recipe::to_value`]) and checks it.
    pub fn from_value(value: &Value) -> Result<Recipe, RecipeError> {
        let invalid = |why: &str| RecipeError::InvalidRecipe(why.to_owned());
        let map = value.as_map().ok_or_else(|| invalid("not a map"))?;
        if value.type_name() != Some(RECIPE_TYPE) {
            return Err(invalid("$type is not \"Recipe\""));
        }
        for key in map.keys() {
            if !["$type", "name", "version", "strategy", "fields"].contains(&key) {
                return Err(RecipeError::InvalidRecipe(format!(
                    "unknown recipe field {key:?}"
                )));
            }
        }
        let name = map
            .get("name")
            .and_then(Value::as_text)
            .ok_or_else(|| invalid("name must be text"))?;
        let version = map
            .get("version")
            .and_then(Value::as_int)
            .and_then(|v| v.to_u64())
            .ok_or_else(|| invalid("version must be a non-negative integer"))?;
        let strategy = map
            .get("strategy")
            .and_then(Value::as_text)
            .and_then(Strategy::from_name)
            .ok_or_else(|| {
                invalid(
                    "strategy must be one of append-only, last-write, field-merge, instance-local",
                )
            })?;
        let fields = map
            .get("fields")
            .and_then(Value::as_list)
            .ok_or_else(|| invalid("fields must be a list"))?;
        let mut recipe = Recipe::new(name, strategy).with_version(version);
        for field in fields {
            let field = field
                .as_map()
                .ok_or_else(|| invalid("a field must be a map"))?;
            for key in field.keys() {
                if !["name", "kind", "optional", "id", "collection"].contains(&key) {
                    return Err(RecipeError::InvalidRecipe(format!(
                        "unknown field property {key:?}"
                    )));
                }
            }
            let flag = |key: &str| match field.get(key) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(RecipeError::InvalidRecipe(format!("{key} must be a bool"))),
            };
            let field_name = field
                .get("name")
                .and_then(Value::as_text)
                .ok_or_else(|| invalid("field name must be text"))?;
            let kind = Kind::from_value(
                field
                    .get("kind")
                    .ok_or_else(|| invalid("field kind missing"))?,
                0,
            )
            .map_err(|why| RecipeError::InvalidRecipe(format!("field {field_name:?}: {why}")))?;
            recipe.fields.push(Field {
                name: field_name.to_owned(),
                kind,
                optional: flag("optional")?,
                id: flag("id")?,
                collection: flag("collection")?,
            });
        }
        recipe.check()?;
        // One recipe, one object: refuse spellings that differ from the canonical one (explicit
        // `false` flags, `{"link": []}`, …), which would give the same recipe another CID.
        if recipe.to_value() != *value {
            return Err(invalid(
                "not in canonical form (omit false flags; write \"link\" for any link target)",
            ));
        }
        Ok(recipe)
    }

    /// The map of `object`, checked to be a map whose `$type` is this recipe's name.
    fn typed_map<'v>(&self, object: &'v Value) -> Result<&'v Map, RecipeError> {
        let map = object.as_map().ok_or(RecipeError::NotAMap(object.kind()))?;
        let found = object.type_name();
        if found != Some(self.name.as_str()) {
            return Err(RecipeError::WrongType {
                expected: self.name.clone(),
                found: found.map(str::to_owned),
            });
        }
        Ok(map)
    }

    /// Checks `object` against this recipe: `$type`, required fields, no unknown fields, kinds.
    pub fn validate(&self, object: &Value) -> Result<(), RecipeError> {
        let map = self.typed_map(object)?;
        // One pass over the object's entries: each names a field (checked against its kind)
        // or is refused; counting the required fields seen finds a missing one without a
        // lookup per field.
        let mut required_seen = 0;
        for (key, value) in map.iter() {
            if key == "$type" {
                continue;
            }
            let Some(field) = self.get_field(key) else {
                return Err(RecipeError::UnknownField {
                    recipe: self.name.clone(),
                    field: key.to_owned(),
                });
            };
            if !field.optional {
                required_seen += 1;
            }
            field
                .kind
                .check(value, &mut String::new())
                .map_err(|(path, reason)| RecipeError::InvalidField {
                    recipe: self.name.clone(),
                    path: format!("{}{path}", field.name),
                    reason,
                })?;
        }
        let required = self.fields.iter().filter(|field| !field.optional).count();
        if required_seen < required
            && let Some(missing) = self
                .fields
                .iter()
                .find(|field| !field.optional && map.get(&field.name).is_none())
        {
            return Err(RecipeError::MissingField {
                recipe: self.name.clone(),
                field: missing.name.clone(),
            });
        }
        Ok(())
    }

    /// Checks one field's value against its kind (for updates that give only some fields).
    pub fn validate_field(&self, name: &str, value: &Value) -> Result<(), RecipeError> {
        let field = self
            .get_field(name)
            .ok_or_else(|| RecipeError::UnknownField {
                recipe: self.name.clone(),
                field: name.to_owned(),
            })?;
        field
            .kind
            .check(value, &mut String::new())
            .map_err(|(path, reason)| RecipeError::InvalidField {
                recipe: self.name.clone(),
                path: format!("{name}{path}"),
                reason,
            })
    }

    /// Checks that `object` is an ID object of this versioned type: its `$type` and every ID
    /// field of the right kind, nothing else. (Objects of a versioned type are only ever
    /// stored as ID objects; their other fields live in versions, so a required non-ID field
    /// is checked against the merged state, never here.)
    pub fn validate_id_object(&self, object: &Value) -> Result<(), RecipeError> {
        if !self.is_versioned() {
            return Err(RecipeError::NotVersioned(self.name.clone()));
        }
        let map = self.typed_map(object)?;
        for key in map.keys() {
            if key != "$type" && !self.get_field(key).is_some_and(|field| field.id) {
                return Err(RecipeError::UnknownField {
                    recipe: self.name.clone(),
                    field: key.to_owned(),
                });
            }
        }
        // Every ID field present (as `id_object` requires), each of its kind.
        for (key, value) in self
            .id_object(object)?
            .as_map()
            .into_iter()
            .flat_map(Map::iter)
        {
            if key != "$type" {
                self.validate_field(key, value)?;
            }
        }
        Ok(())
    }

    /// The ID object of `object`: its `$type` and ID fields only.
    pub fn id_object(&self, object: &Value) -> Result<Value, RecipeError> {
        if !self.is_versioned() {
            return Err(RecipeError::NotVersioned(self.name.clone()));
        }
        let map = self.typed_map(object)?;
        let mut id = Map::new();
        id.insert("$type", self.name.as_str());
        for field in self.id_fields() {
            let value = map
                .get(&field.name)
                .ok_or_else(|| RecipeError::MissingField {
                    recipe: self.name.clone(),
                    field: field.name.clone(),
                })?;
            id.insert(field.name.as_str(), value.clone());
        }
        Ok(Value::Map(id))
    }

    /// The ID hash of `object`: the CID of its ID object.
    pub fn id_hash(&self, object: &Value) -> Result<Cid, RecipeError> {
        let id = self.id_object(object)?;
        Object::from_value(&id)
            .map(|object| object.cid().clone())
            .map_err(|error| RecipeError::InvalidField {
                recipe: self.name.clone(),
                path: "(ID fields)".into(),
                reason: error.to_string(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dagjson;

    fn contact() -> Recipe {
        Recipe::new("Contact", Strategy::FieldMerge)
            .field(Field::new("email", Kind::Text).id())
            .field(Field::new("name", Kind::Text).optional())
            .field(Field::new("tags", Kind::Set(Box::new(Kind::Text))).optional())
            .field(Field::new("owner", Kind::Link(vec!["Person".into()])).optional())
    }

    fn json(text: &str) -> Value {
        dagjson::from_str(text).unwrap()
    }

    #[test]
    fn recipes_round_trip_as_objects() {
        let recipe = contact();
        assert_eq!(Recipe::from_value(&recipe.to_value()).unwrap(), recipe);
        let text = dagjson::to_string(&recipe.to_value()).unwrap();
        assert!(text.contains(r#""strategy":"field-merge""#), "{text}");
    }

    #[test]
    fn validation_names_the_field_and_reason() {
        let recipe = contact();
        recipe
            .validate(&json(
                r#"{"$type":"Contact","email":"a@b","tags":["x","y"]}"#,
            ))
            .unwrap();
        let error = recipe
            .validate(&json(r#"{"$type":"Contact","email":"a@b","tags":["x",1]}"#))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Contact: field tags[1]: expected text, found integer"
        );
        let error = recipe
            .validate(&json(r#"{"$type":"Contact","name":"A"}"#))
            .unwrap_err();
        assert!(matches!(error, RecipeError::MissingField { ref field, .. } if field == "email"));
        let error = recipe
            .validate(&json(r#"{"$type":"Contact","email":"a","x":1}"#))
            .unwrap_err();
        assert!(matches!(error, RecipeError::UnknownField { .. }));
        let error = recipe
            .validate(&json(r#"{"$type":"Contact","email":"a","tags":["x","x"]}"#))
            .unwrap_err();
        assert!(error.to_string().contains("same element twice"));
        assert!(matches!(
            recipe.validate(&json(r#"{"$type":"Other"}"#)),
            Err(RecipeError::WrongType { .. })
        ));
        assert!(matches!(
            recipe.validate(&json("[1]")),
            Err(RecipeError::NotAMap("list"))
        ));
    }

    #[test]
    fn id_objects_are_checked_as_id_objects() {
        let note = Recipe::new("Note", Strategy::FieldMerge)
            .field(Field::new("id", Kind::Text).id())
            .field(Field::new("title", Kind::Text));
        // The ID object lacks the required `title`: that is checked on the merged state.
        note.validate_id_object(&json(r#"{"$type":"Note","id":"n1"}"#))
            .unwrap();
        assert!(
            note.validate(&json(r#"{"$type":"Note","id":"n1"}"#))
                .is_err()
        );
        for bad in [
            r#"{"$type":"Note","id":"n1","title":"t"}"#,
            r#"{"$type":"Note"}"#,
            r#"{"$type":"Note","id":1}"#,
            r#"{"$type":"Other","id":"n1"}"#,
        ] {
            assert!(note.validate_id_object(&json(bad)).is_err(), "{bad}");
        }
        assert!(matches!(
            contact().validate_id_object(&json(r#"{"$type":"Contact","email":"a"}"#)),
            Ok(())
        ));
    }

    #[test]
    fn id_hash_ignores_non_id_fields() {
        let recipe = contact();
        let a = json(r#"{"$type":"Contact","email":"a@b","name":"A"}"#);
        let b = json(r#"{"$type":"Contact","email":"a@b","name":"B","tags":["t"]}"#);
        let c = json(r#"{"$type":"Contact","email":"c@d","name":"A"}"#);
        assert_eq!(recipe.id_hash(&a).unwrap(), recipe.id_hash(&b).unwrap());
        assert_ne!(recipe.id_hash(&a).unwrap(), recipe.id_hash(&c).unwrap());
        assert_eq!(
            recipe.id_object(&b).unwrap(),
            json(r#"{"$type":"Contact","email":"a@b"}"#)
        );
        let message =
            Recipe::new("Message", Strategy::AppendOnly).field(Field::new("text", Kind::Text));
        assert!(matches!(
            message.id_hash(&json(r#"{"$type":"Message","text":"x"}"#)),
            Err(RecipeError::NotVersioned(_))
        ));
    }

    #[test]
    fn malformed_recipes_are_refused() {
        for bad in [
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"newest","fields":[]}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[{"name":"a","kind":"text","id":true,"optional":true}]}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[{"name":"a","kind":"text"},{"name":"a","kind":"bool"}]}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[{"name":"a","kind":"txt"}]}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[{"name":"a","kind":"text","collection":true}]}"#,
            r#"{"$type":"Recipe","name":"","version":1,"strategy":"last-write","fields":[]}"#,
            r#"{"$type":"Recipe","name":"X","version":0,"strategy":"last-write","fields":[]}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[],"extra":1}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[{"name":"a","kind":"text","optional":false}]}"#,
            r#"{"$type":"Recipe","name":"X","version":1,"strategy":"last-write","fields":[{"name":"a","kind":{"link":[]}}]}"#,
        ] {
            assert!(Recipe::from_value(&json(bad)).is_err(), "{bad}");
        }
    }
}
