//! # chum
//!
//! Local-first, peer-to-peer sync for Rust apps. An [`Instance`] is one instance of a person
//! (a device, a browser profile, a process) over one store: it creates and reads
//! content-addressed objects, versions them with the merge strategy of their recipe, reports
//! every change as an [`Event`], and — with the default `native` feature — listens, connects
//! (reconnecting with backoff) and pairs with other instances, every session encrypted and
//! authenticated, filtered by access grants.
//!
//! ## Two instances of one person, syncing a typed document
//! ```
//! use std::time::Duration;
//! use chum::{Document, Instance};
//! use serde::{Deserialize, Serialize};
//!
//! /// A field-merge document: edits of different fields on two instances both survive.
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
//! struct Note {
//!     #[chum(id)]
//!     id: String,
//!     title: String,
//!     body: Option<String>,
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // "main": a new person, listening on a free port.
//! let main = Instance::builder().memory().document::<Note>().open().await?;
//! let listener = main.listen("ws://127.0.0.1:0").await?;
//! let invitation = main.invite(Duration::from_secs(600)).await?;
//!
//! // "renderer": joins the person with the invitation (its first open; later opens of the
//! // same store reuse the identity), then stays connected.
//! let renderer = Instance::builder().memory().join(invitation).open().await?;
//! assert_eq!(renderer.person(), main.person());
//! let link = renderer.connect(listener.url())?;
//! link.established().await?;
//!
//! // A note written on the renderer reaches main live.
//! let mut watch_on_main = main.doc::<Note>().watch(&main.doc::<Note>().id_of(&Note {
//!     id: "n1".into(),
//!     title: String::new(),
//!     body: None,
//! })?).await?;
//! let id = renderer
//!     .doc::<Note>()
//!     .create(&Note { id: "n1".into(), title: "hello".into(), body: None })
//!     .await?;
//! let seen = watch_on_main.next().await.flatten();
//! assert_eq!(seen.map(|note| note.title), Some("hello".to_owned()));
//!
//! // An update writes only the fields it changes.
//! main.doc::<Note>().update(&id, |note| note.body = Some("from main".into())).await?;
//! link.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Typed documents
//! [`Document`] binds a Rust struct to a recipe (`#[derive(Document)]`). [`Instance::doc`]
//! gives its documents ([`Docs`]: `create`, `get`, `update`, `delete`, `watch`,
//! `conflicts`), [`Instance::collection`] the entries of one object's collection
//! ([`Entries`]: `append`, `list`, `page`, `watch`), [`Instance::query`] a read that filters
//! and pages ([`DocQuery`], with `watch`). [`Id<T>`](Id) names a document across its versions,
//! [`Ref<T>`](Ref) one immutable object.
//!
//! ## Untyped values
//! - [`Instance::put`] stores an object; an unversioned one exactly as given (its CID is the
//!   hash of its canonical bytes), a versioned one as a new version of its ID;
//!   [`Instance::create`] adds an entry's `clock` and `author`; [`Instance::update`] and
//!   [`Instance::delete`] change a versioned object. Writes return after the local commit with
//!   a [`Written`] receipt: [`Written::durable`] and [`Written::held_by_peer`].
//! - Reading is local and bounded: [`Instance::get`], [`Instance::state`] (the merged object),
//!   [`Instance::of_type`] (by type), [`Instance::entries`] (a collection in order).
//! - Sharing: [`Instance::grant`], [`Instance::revoke_grant`], [`Instance::revoke_instance`];
//!   pairing: [`Instance::invite`] and [`Instance::join`].
//!
//! Without the `native` feature the crate builds for `wasm32-unknown-unknown`: everything
//! above except the network (the browser's transport comes with the browser peer).
#![warn(missing_docs)]
// On wasm32 the same types are shared through `Arc` as natively, where they are `Send + Sync`;
// in the browser everything runs on one thread.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

// Without the network nothing is ever held elsewhere: only the bookkeeping of writes runs.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
mod at_risk;
mod docs;
mod error;
mod events;
mod instance;
#[cfg(feature = "net")]
mod net;
pub mod typed;

pub use crate::docs::{DocQuery, Docs, Entries, Page, QueryChange, Watch, Watchable};
pub use crate::error::{Error, Result};
pub use crate::events::{Event, Events, Origin};
#[cfg(feature = "native")]
pub use crate::instance::STORE_FILE;
pub use crate::instance::{
    Builder, DEFAULT_EVENT_CAPACITY, Instance, TimeSource, Upgrade, Written,
};
#[cfg(feature = "native")]
pub use crate::net::Listener;
#[cfg(feature = "net")]
pub use crate::net::{InviteOptions, Link, LinkState, LinkStates, PeerInfo, SyncReport};
pub use crate::typed::{Document, FieldKind, Id, Ref, fresh_id};
pub use chum_access::{Identity, InstanceId, Invitation, PersonId};
pub use chum_crdt::{Conflict, preset};
/// `#[derive(Document)]`: see [`Document`].
pub use chum_derive::Document;
/// A transport connection (a frame reader and writer), for [`Instance::accept`].
#[cfg(feature = "native")]
pub use chum_net::Connection;
#[cfg(feature = "net")]
pub use chum_net::HostLimits;
#[cfg(feature = "native")]
pub use chum_net::listener::ListenerLimits;
pub use chum_object::recipe::{Field, Kind, Recipe, RecipeError, Strategy};
pub use chum_object::{
    Cid, Limits, Map, Object, SerdeError, Value, counters, dagcbor, dagjson, from_value, to_value,
};
pub use chum_store::{Error as StoreError, MemoryStore, Store};
#[cfg(feature = "postgres")]
pub use chum_store_postgres::PostgresStore;
#[cfg(feature = "native")]
pub use chum_store_redb::RedbStore;
/// Bytes that serialize as bytes (not as a list of integers): a `bytes` field of a
/// [`Document`].
pub use serde_bytes::ByteBuf;
