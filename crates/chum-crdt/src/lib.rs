//! # chum-crdt
//!
//! Deterministic merge for chum's versioned data: a hybrid logical clock, immutable version
//! objects, and the four strategies a recipe can name.
//!
//! - [`Clock`] / [`Timestamp`]: the hybrid logical clock (wall ms, counter); time is always an
//!   argument, and a remote clock too far ahead is refused.
//! - [`Version`]: `{of, parents, clock, author, body}` (+ `deleted` on tombstones), ordered by
//!   [`VersionKey`] = (clock, author, CID).
//! - [`Resolver`]: the current state of one object from the versions present, updated one
//!   version at a time; last-write (delete wins), field-merge with add-wins sets (edit wins),
//!   instance-local (resolved like last-write, never synced).
//! - [`Collection`]: append-only entries ordered by (clock, CID).
//! - [`preset`]: the seed's Message, Conversation, Contact and Settings recipes.
//!
//! ## Invariants
//! - No I/O, no clock reads, no threads; builds for `wasm32-unknown-unknown`.
//! - State is a function of the set of versions: any order, any duplication, any grouping of
//!   merges gives the same state (property-tested for every strategy).
//! - Results never depend on hash-map iteration order.
//!
//! ## Example
//! ```
//! use chum_crdt::{Clock, InstanceId, Resolver, Version, preset};
//! use chum_object::{Map, Value};
//!
//! let contact = preset::contact();
//! let id = contact.id_hash(&chum_object::dagjson::from_str(r#"{"$type":"Contact","email":"a@b"}"#)?)?;
//! let (alice, bob) = (InstanceId([1; 32]), InstanceId([2; 32]));
//! let mut clock = Clock::new();
//!
//! // Two replicas edit different fields of the same contact concurrently.
//! let v1 = Version::new(id.clone(), vec![], clock.tick(1_000)?, alice, [("name", "Ann")].into());
//! let v2 = Version::new(id.clone(), vec![], clock.tick(1_001)?, bob, [("phone", "555")].into());
//! let mut resolver = Resolver::for_recipe(&contact)?;
//! resolver.add(&v2.cid()?, &v2)?;
//! resolver.add(&v1.cid()?, &v1)?;
//! let state = resolver.state();
//! assert_eq!(state.fields.get("name"), Some(&Value::from("Ann")));
//! assert_eq!(state.fields.get("phone"), Some(&Value::from("555")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod clock;
pub mod collection;
mod fasthash;
pub mod preset;
pub mod resolve;
pub mod version;

pub use crate::clock::{Clock, ClockError, Timestamp};
pub use crate::collection::{Collection, clock_value, collection_targets, entry_clock};
pub use crate::resolve::{Conflict, ResolveError, Resolver, State};
pub use crate::version::{InstanceId, Version, VersionError, VersionKey};
