//! # chum-host
//!
//! The peer host: every session of one node and all the policy between the sans-IO
//! [`chum_sync::Session`] and the store — who is admitted, which journal positions are offered
//! (only within one person), what another person sees and what is taken from it, which
//! received objects wait for their link targets (and fetching those), acceptance (signatures
//! for the whole batch, recipes one object at a time), grouped commits, live fan-out between
//! sessions, revocations ending sessions, and the records kept of peers.
//!
//! A [`Host`] does no I/O of its own: no sockets, no clock, no tasks, no sleeping. A driver
//! (the tokio one in `chum-net`, the simulator in `chum-sim`, the browser's) moves bytes, time
//! and commits in and out:
//!
//! - it [`Host::open`]s a session per connection (with fresh entropy for the Noise keys),
//!   feeds what arrives with [`Host::handle`], and [`Host::timeout`] when
//!   [`Host::poll_timeout`] is reached;
//! - it tells the host of the application's own writes ([`Host::local_stored`]);
//! - after every call it drains [`Host::poll_output`]: bytes to send, commits to run
//!   ([`Commit::run`], then [`Host::committed`]), events for the application, and sessions
//!   that ended (close their transport).
//!
//! The host reads the store directly through the [`chum_store::Store`] trait (small lookups:
//! admission, visibility, journals, link targets); the one expensive write, committing
//! received batches, leaves as an output so the driver can run it where it suits.
//! `docs/architecture.md` ("The driver contract") has the rules a driver follows.
//!
//! # Example: two hosts in one thread
//!
//! The smallest driver: two hosts over in-memory stores, frames handed across directly, commits
//! run inline, time advanced by hand.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chum_host::{ConnInput, Host, HostOutput, LocalWrite, NodeEvent, Now, Opening};
//! use chum_object::{Object, dagjson};
//! use chum_store::{MemoryStore, Scope, Store};
//! use chum_sync::Role;
//! use futures::executor::block_on;
//!
//! let stores = [Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new())];
//! let mut hosts: Vec<Host> =
//!     stores.iter().map(|store| Host::new(store.clone() as Arc<dyn Store>)).collect();
//! let now = |ms: u64| Now { elapsed: Duration::from_millis(ms), unix_ms: 1_700_000_000_000 + ms };
//!
//! // The application writes on side 0, and tells its host.
//! let note = Object::from_value(&dagjson::from_str(r#"{"$type":"Note","text":"hi"}"#)?)?;
//! let objects = vec![(note.cid().clone(), note.bytes().to_vec())];
//! let changed = block_on(stores[0].put_scoped(&objects, Scope::Shared))?;
//! block_on(hosts[0].local_stored(now(0), LocalWrite::of(&objects, &changed)));
//!
//! // One connection, numbered 1 on both sides (entropy: use getrandom in a real driver).
//! block_on(hosts[0].open(now(0), 1, Opening::new(Role::Initiator, "side 1", [1; 64])));
//! block_on(hosts[1].open(now(0), 1, Opening::new(Role::Responder, "side 0", [2; 64])));
//!
//! let mut received = false;
//! for _ in 0..100 {
//!     for side in 0..2 {
//!         while let Some(output) = hosts[side].poll_output() {
//!             match output {
//!                 HostOutput::Transmit { conn, frame } => {
//!                     block_on(hosts[1 - side].handle(now(0), conn, ConnInput::Frame(frame)));
//!                 }
//!                 HostOutput::Commit { conn, commit } => {
//!                     let committed = block_on(commit.run(&*stores[side]));
//!                     block_on(hosts[side].committed(now(0), conn, committed));
//!                 }
//!                 HostOutput::Event(NodeEvent::Received { cids, .. }) => {
//!                     received = cids.contains(note.cid());
//!                 }
//!                 _ => {}
//!             }
//!         }
//!     }
//!     if received {
//!         break;
//!     }
//! }
//! assert!(received && block_on(stores[1].has(note.cid()))?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
// On wasm32 the same types are shared through `Arc` as natively, where they are `Send + Sync`;
// in the browser everything runs on one thread.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

mod commit;
mod deps;
mod events;
mod host;
pub mod journals;
pub mod peers;

pub use crate::commit::{Commit, Committed, LocalWrite};
pub use crate::events::{Facts, NodeEvent, SessionOptions, SessionReport};
pub use crate::host::{ConnId, ConnInput, Host, HostLimits, HostOutput, HostStats, Now, Opening};
pub use crate::peers::PeerRecord;
