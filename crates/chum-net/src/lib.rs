//! # chum-net
//!
//! Thin drivers for the CHUM protocol: on tokio natively, on the browser's event loop on
//! wasm32 ([`rt`] is the difference). The protocol itself lives in `chum-sync` as a
//! sans-IO state machine; this crate moves its frames over real transports, answers its store
//! requests from a [`chum_store::Store`], and fans newly stored objects out to every live
//! session of a [`Node`].
//!
//! - [`transport`]: an in-memory pipe and TCP; `ws`: WebSocket (`ws://`, `wss://` with
//!   rustls); `browser` (wasm32): the browser's `WebSocket` — all carrying the same frames.
//! - [`Node`]: a store plus its sessions — encrypted and authenticated when it has an
//!   identity ([`Node::with_identity`], [`Node::join`]); [`Node::put`] stores and pushes live.
//! - [`peers`]: what a node remembers about each peer instance; [`journals`]: the positions it
//!   holds of peers' journals, which let a reconnecting peer skip reconciliation.
//! - `listener` (native): accepts connections with a cap on concurrent sessions and a per-address
//!   rate limit that never bans.
//!
//! Store calls run on the session's task; a store that blocks (redb commits with fsync)
//! blocks that task's thread while it writes, so run nodes on the multi-threaded runtime.
#![warn(missing_docs)]
// On wasm32 the same types are shared through `Arc` as natively, where they are `Send + Sync`;
// in the browser everything runs on one thread.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub use chum_host::{journals, peers};
#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(not(target_arch = "wasm32"))]
pub mod listener;
mod node;
pub mod rt;
pub mod transport;
#[cfg(not(target_arch = "wasm32"))]
pub mod ws;

pub use crate::node::{Facts, HostLimits, Node, NodeEvent, SessionOptions, SessionReport};
pub use crate::peers::PeerRecord;
pub use crate::transport::{Connection, memory_pair};
