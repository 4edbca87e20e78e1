//! # chum
//!
//! Local-first, peer-to-peer sync for Rust apps. An [`Instance`] is one instance of a person
//! (a device, a browser profile, a process) over one store: it creates and reads
//! content-addressed objects, versions them with the merge strategy of their recipe, reports
//! every change as an [`Event`], and — with the default `native` feature — listens, connects
//! (reconnecting with backoff) and pairs with other instances, every session encrypted and
//! authenticated, filtered by access grants.
//!
//! ## Two instances of one person, syncing
//! ```
//! use std::time::Duration;
//! use chum::{Event, Instance};
//! use chum_object::dagjson;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // "main": a new person, listening on a free port.
//! let main = Instance::builder().memory().open().await?;
//! let listener = main.listen("ws://127.0.0.1:0").await?;
//! let invitation = main.invite(Duration::from_secs(600)).await?;
//!
//! // "renderer": joins the person with the invitation, then stays connected.
//! let renderer = Instance::join(
//!     std::sync::Arc::new(chum_store::MemoryStore::new()),
//!     invitation,
//!     None,
//!     None,
//! )
//! .await?;
//! assert_eq!(renderer.person(), main.person());
//! let link = renderer.connect(listener.url())?;
//! link.established().await?;
//!
//! // A message written on the renderer reaches main, and main's peer holds it.
//! let mut events = main.events();
//! let message = dagjson::from_str(r#"{"$type":"Message","text":"hello","needsAI":true}"#)?;
//! let written = renderer.create(&message).await?;
//! written.durable().await?;
//! loop {
//!     if let Some(Event::Stored { cid, .. }) = events.next().await {
//!         if &cid == written.cid() {
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(written.held_by_peer().await?, main.instance_id());
//! link.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Writing
//! - [`Instance::put`] stores an object; an unversioned one exactly as given (its CID is the
//!   hash of its canonical bytes), a versioned one as a new version of its ID;
//!   [`Instance::create`] adds an entry's `clock` and `author`; [`Instance::update`] and
//!   [`Instance::delete`] change a versioned object. Writes return after the local commit with
//!   a [`Written`] receipt: [`Written::durable`] and [`Written::held_by_peer`].
//! - Reading is local and bounded: [`Instance::get`], [`Instance::state`] (the merged object),
//!   [`Instance::query`] (by type), [`Instance::collection`] (entries in order).
//! - Sharing: [`Instance::grant`], [`Instance::revoke_grant`], [`Instance::revoke_instance`];
//!   pairing: [`Instance::invite`] and [`Instance::join`].
//!
//! Without the `native` feature the crate builds for `wasm32-unknown-unknown`: everything
//! above except the network (the browser's transport comes with the browser peer).
#![warn(missing_docs)]

mod docs;
mod error;
mod events;
mod instance;
#[cfg(feature = "native")]
mod net;
pub mod typed;

pub use crate::docs::{DocQuery, Docs, Entries, Page, QueryChange, Watch, Watchable};
pub use crate::error::{Error, Result};
pub use crate::events::{Event, Events, Origin};
pub use crate::instance::{Builder, DEFAULT_EVENT_CAPACITY, Instance, Upgrade, Written};
#[cfg(feature = "native")]
pub use crate::net::{Link, LinkState, Listener};
pub use crate::typed::{Document, FieldKind, Id, Ref, fresh_id};
pub use chum_access::{Identity, InstanceId, Invitation, PersonId};
pub use chum_crdt::{Conflict, preset};
/// `#[derive(Document)]`: see [`Document`].
pub use chum_derive::Document;
pub use chum_object::recipe::{Field, Kind, Recipe, RecipeError, Strategy};
pub use chum_object::{Cid, Map, Object, SerdeError, Value, dagjson, from_value, to_value};
pub use chum_store::{MemoryStore, Store};
#[cfg(feature = "native")]
pub use chum_store_redb::RedbStore;
