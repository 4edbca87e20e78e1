//! Typed documents: a Rust type bound to a recipe ([`Document`]), typed names for versioned
//! objects ([`Id`]) and immutable ones ([`Ref`]), and the field kinds the derive reads from
//! Rust types ([`FieldKind`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use chum_object::recipe::{Field, Kind, Recipe};
use chum_object::{Cid, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A Rust type bound to a recipe: what [`Instance::doc`](crate::Instance::doc),
/// [`Instance::collection`](crate::Instance::collection) and
/// [`Instance::query`](crate::Instance::query) read and write.
///
/// Derive it: `#[derive(Serialize, Deserialize, Document)]` on a struct with named fields.
/// The recipe is named after the struct (or `#[chum(name = "…")]`), each field's kind comes from
/// its Rust type (see [`FieldKind`]: `String` is text, `Option<T>` optional, `BTreeSet<T>` a
/// set, [`Id<T>`]/[`Ref<T>`] a link to that type, …), and keys follow serde's `rename` and
/// `rename_all`.
///
/// | attribute | where | meaning |
/// |---|---|---|
/// | `#[chum(id)]` | field | an ID field: the fields that name the document across its versions |
/// | `#[chum(collection)]` | link field | the object is an entry of the linked object's collection |
/// | `#[chum(strategy = "…")]` | struct | `"field-merge"` (the default with ID fields), `"last-write"`, `"instance-local"`, or `"append-only"` (the default without) |
/// | `#[chum(name = "…")]` | struct | the `$type` (default: the struct's name) |
/// | `#[chum(version = N)]` | struct | the recipe version (default 1) |
///
/// ```
/// use chum::{Document, Id};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
/// struct Note {
///     #[chum(id)]
///     id: String,
///     title: String,
///     body: Option<String>,
///     tags: std::collections::BTreeSet<String>,
/// }
///
/// #[derive(Debug, Clone, Serialize, Deserialize, Document)]
/// #[serde(rename_all = "camelCase")]
/// struct Comment {
///     #[chum(collection)]
///     note: Id<Note>,
///     text: String,
///     reply_to: Option<chum::Ref<Comment>>,
/// }
///
/// let recipe = Note::recipe();
/// assert_eq!(recipe.name, "Note");
/// assert!(recipe.get_field("id").unwrap().id);
/// assert!(recipe.get_field("body").unwrap().optional);
/// assert!(Comment::recipe().get_field("replyTo").is_some());
/// ```
///
/// **Entries** (append-only types, e.g. a comment): give the type `clock: Option<Vec<u64>>`
/// and `author: Option<chum::ByteBuf>` fields and leave them `None`; chum fills them in
/// when the entry is appended (the clock orders a collection, the author says which instance
/// wrote it).
///
/// **Optional fields and `None`.** A document's `Option` field that is `None` is *absent*: it
/// is never written as `null`. [`Docs::update`](crate::Docs::update) writes only the fields
/// the closure changed, so a `None` that stays `None` changes nothing, and a field set from
/// `Some` to `None` is unset — a deliberate change, merged per field like any other.
pub trait Document: Serialize + DeserializeOwned + 'static {
    /// The `$type` of its objects.
    const TYPE: &'static str;
    /// Its recipe.
    fn recipe() -> Recipe;
}

/// The recipe kind of a Rust type, for [`Document`] fields.
///
/// | Rust | kind |
/// |---|---|
/// | `bool` | bool |
/// | integers | integer |
/// | `f32`, `f64` | float |
/// | `String` | text |
/// | [`ByteBuf`](crate::ByteBuf) (`serde_bytes`) | bytes |
/// | `Vec<T>` | list of `T` (a plain `Vec<u8>` is a list of integers) |
/// | `BTreeSet<T>`, `HashSet<T>` | set of `T` (field-merge merges it as an add-wins set) |
/// | `BTreeMap<String, T>`, `HashMap<String, T>` | map of `T` |
/// | [`Cid`] | link to anything; [`Id<T>`], [`Ref<T>`]: link to a `T` |
/// | [`Value`] | any |
/// | `Option<T>` | `T`, optional |
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no recipe kind, so it cannot be a field of a Document",
    label = "no recipe kind",
    note = "use a type from the table in chum::FieldKind's docs, implement chum::FieldKind for it, or hold it as a chum::Value"
)]
pub trait FieldKind {
    /// The kind.
    fn kind() -> Kind;
    /// Whether the field may be absent.
    fn optional() -> bool {
        false
    }
}

/// One recipe field of Rust type `T` (what the derive emits).
#[doc(hidden)]
pub fn field_of<T: FieldKind>(name: &str, id: bool, collection: bool) -> Field {
    let mut field = Field::new(name, T::kind());
    if T::optional() {
        field = field.optional();
    }
    if id {
        field = field.id();
    }
    if collection {
        field = field.collection();
    }
    field
}

macro_rules! kinds {
    ($kind:expr => $($ty:ty),+) => {
        $(impl FieldKind for $ty {
            fn kind() -> Kind {
                $kind
            }
        })+
    };
}

kinds!(Kind::Bool => bool);
kinds!(Kind::Integer => i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);
kinds!(Kind::Float => f32, f64);
kinds!(Kind::Text => String, char);
kinds!(Kind::Bytes => serde_bytes::ByteBuf);
kinds!(Kind::Link(Vec::new()) => Cid);
kinds!(Kind::Any => Value);

impl<T: FieldKind> FieldKind for Option<T> {
    fn kind() -> Kind {
        T::kind()
    }
    fn optional() -> bool {
        true
    }
}

impl<T: FieldKind> FieldKind for Vec<T> {
    fn kind() -> Kind {
        Kind::List(Box::new(T::kind()))
    }
}

impl<T: FieldKind> FieldKind for Box<T> {
    fn kind() -> Kind {
        T::kind()
    }
}

impl<T: FieldKind> FieldKind for BTreeSet<T> {
    fn kind() -> Kind {
        Kind::Set(Box::new(T::kind()))
    }
}

impl<T: FieldKind, S> FieldKind for HashSet<T, S> {
    fn kind() -> Kind {
        Kind::Set(Box::new(T::kind()))
    }
}

impl<T: FieldKind> FieldKind for BTreeMap<String, T> {
    fn kind() -> Kind {
        Kind::Map(Box::new(T::kind()))
    }
}

impl<T: FieldKind, S> FieldKind for HashMap<String, T, S> {
    fn kind() -> Kind {
        Kind::Map(Box::new(T::kind()))
    }
}

/// Typed CIDs: the same CID, with the type it names kept by the compiler.
macro_rules! typed_cid {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<T> {
            cid: Cid,
            of: PhantomData<fn() -> T>,
        }

        impl<T> $name<T> {
            /// Names `cid` as this type (nothing checks that it is one: reads say so).
            pub fn from_cid(cid: Cid) -> $name<T> {
                $name { cid, of: PhantomData }
            }

            /// The CID.
            pub fn cid(&self) -> &Cid {
                &self.cid
            }

            /// The CID, untyped.
            pub fn into_cid(self) -> Cid {
                self.cid
            }
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name::from_cid(self.cid.clone())
            }
        }

        impl<T> PartialEq for $name<T> {
            fn eq(&self, other: &Self) -> bool {
                self.cid == other.cid
            }
        }

        impl<T> Eq for $name<T> {}

        impl<T> PartialOrd for $name<T> {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl<T> Ord for $name<T> {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.cid.cmp(&other.cid)
            }
        }

        impl<T> std::hash::Hash for $name<T> {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.cid.hash(state);
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let type_name = std::any::type_name::<T>();
                let short = type_name.rsplit("::").next().unwrap_or(type_name);
                write!(f, "{}<{short}>({})", stringify!($name), self.cid)
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.cid, f)
            }
        }

        impl<T> std::str::FromStr for $name<T> {
            type Err = chum_object::CidError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name::from_cid)
            }
        }

        impl<T> From<$name<T>> for Cid {
            fn from(typed: $name<T>) -> Cid {
                typed.cid
            }
        }

        impl<T> AsRef<Cid> for $name<T> {
            fn as_ref(&self) -> &Cid {
                &self.cid
            }
        }

        impl<T> Serialize for $name<T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.cid.serialize(serializer)
            }
        }

        impl<'de, T> Deserialize<'de> for $name<T> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Cid::deserialize(deserializer).map($name::from_cid)
            }
        }

        impl<T: Document> FieldKind for $name<T> {
            fn kind() -> Kind {
                Kind::Link(vec![T::TYPE.to_owned()])
            }
        }
    };
}

typed_cid!(
    /// The ID hash of a versioned document of type `T`: it names the document across all its
    /// versions (the CID of its `$type` and ID fields). In a field it is a link to a `T`.
    Id
);

typed_cid!(
    /// The CID of one immutable object of type `T` (an append-only entry, or one version).
    /// In a field it is a link to a `T`.
    Ref
);

/// A fresh random id for an ID field (26 base32 characters, 128 bits): two instances that
/// create documents offline never pick the same one.
pub fn fresh_id() -> String {
    let bytes: [u8; 16] = chum_access::keys::random_bytes().unwrap_or_else(|_| {
        // No random source (should not happen on any supported platform): a hash of the
        // time and a counter still differs between calls.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        blake3_16(format!("{:p}-{n}", &COUNTER).as_bytes())
    });
    multibase_lower(&bytes)
}

fn blake3_16(bytes: &[u8]) -> [u8; 16] {
    let cid = Cid::hash(chum_object::Codec::Raw, bytes);
    let digest = cid.as_bytes();
    let mut out = [0u8; 16];
    let start = digest.len().saturating_sub(16);
    out.copy_from_slice(&digest[start..]);
    out
}

/// RFC 4648 base32, lower case, no padding.
fn multibase_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}
