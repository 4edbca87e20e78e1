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
#![warn(missing_docs)]

mod commit;
mod deps;
mod events;
mod host;
pub mod journals;
pub mod peers;

pub use crate::commit::{Commit, Committed, LocalWrite};
pub use crate::events::{Facts, NodeEvent, SessionOptions, SessionReport};
pub use crate::host::{ConnId, ConnInput, Host, HostOutput, HostStats, Now, Opening};
pub use crate::peers::PeerRecord;
