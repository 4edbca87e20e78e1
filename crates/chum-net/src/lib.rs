//! # chum-net
//!
//! Thin tokio drivers for the CHUM protocol. The protocol itself lives in `chum-sync` as a
//! sans-IO state machine; this crate moves its frames over real transports, answers its store
//! requests from a [`chum_store::Store`], and fans newly stored objects out to every live
//! session of a [`Node`].
//!
//! - [`transport`]: an in-memory pipe and TCP; [`ws`]: WebSocket (`ws://`, `wss://` with
//!   rustls) — all carrying the same frames.
//! - [`Node`]: a store plus its sessions — encrypted and authenticated when it has an
//!   identity ([`Node::with_identity`], [`Node::join`]); [`Node::put`] stores and pushes live.
//! - [`peers`]: what a node remembers about each peer instance; [`journals`]: the positions it
//!   holds of peers' journals, which let a reconnecting peer skip reconciliation.
//! - [`listener`]: accepts connections with a cap on concurrent sessions and a per-address
//!   rate limit that never bans.
//!
//! Store calls run on the session's task; a store that blocks (redb commits with fsync)
//! blocks that task's thread while it writes, so run nodes on the multi-threaded runtime.
#![warn(missing_docs)]

pub use chum_host::{journals, peers};
pub mod listener;
mod node;
pub mod transport;
pub mod ws;

pub use crate::node::{Facts, HostLimits, Node, NodeEvent, SessionOptions, SessionReport};
pub use crate::peers::PeerRecord;
pub use crate::transport::{Connection, memory_pair};
