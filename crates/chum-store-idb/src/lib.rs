//! # chum-store-idb
//!
//! The browser's `Store` of chum, on IndexedDB: the same contracts as the in-memory and
//! redb backends (it passes the same conformance suite, in headless Chromium), for an
//! instance that lives in a page or a worker.
//!
//! - **One writer.** Opening takes a Web Lock named after the store (`chum-store:NAME`); a
//!   second open in another tab or worker, while the first is open, fails at once with
//!   `Error::Locked`. `IdbStore::close` (or dropping the store) lets go of it.
//! - **Acknowledged means committed.** Every write is one `readwrite` transaction with
//!   `durability: "strict"`; a call returns `Ok` only after the transaction's `complete`
//!   event. The objects, their indexes, the journal, the count and the sync digest change in
//!   that one transaction, or not at all.
//! - **Verified both ways.** Objects are verified before they are stored and re-hashed when
//!   read; bytes that no longer match their CID are `Error::Corrupt`, never returned.
//! - **Persistent storage** is asked for when the store opens (`navigator.storage.persist()`);
//!   `IdbStore::persisted` says whether the browser granted it (without it, the browser may
//!   evict the site's data under storage pressure).
//!
//! ## Layout (format 1)
//! Database `chum:NAME`, version 1, with object stores:
//! - `objects`: CID bytes → `{b: bytes, t?: type key, l?: [link keys], a?: author key,
//!   s?: 1 when instance-local, j?: journal position}`, with IndexedDB indexes on `t`, `l`
//!   (multi-entry), `a`, `s` and `j` (the journal), which the browser keeps in the object's
//!   own write and removes with it. The index keys are `chum_store::keys`' binary keys, so
//!   each index orders by CID (by clock for authors), like every backend's.
//! - `versions`, `edges`, `heads`: the version tables' pair keys.
//! - `local`: the instance-local key/value area.
//! - `meta`: `format`, `count`, `journal_id`, `journal_head`, `digest`.
//!
//! Only for `wasm32` targets in a browser (window or worker).
#![warn(missing_docs)]
// On wasm32 the same types are shared through `Arc` as natively, where they are `Send + Sync`;
// in the browser everything runs on one thread.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod store;
#[cfg(target_arch = "wasm32")]
mod tables;

#[cfg(target_arch = "wasm32")]
pub use crate::store::IdbStore;

/// The object store of the version tables (and their key tables).
#[cfg(target_arch = "wasm32")]
const VERSIONS: &str = "versions";
#[cfg(target_arch = "wasm32")]
const EDGES: &str = "edges";
#[cfg(target_arch = "wasm32")]
const HEADS: &str = "heads";
