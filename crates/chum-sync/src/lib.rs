//! # chum-sync
//!
//! The CHUM protocol: two peers find what the other lacks and exchange exactly that, then push
//! new objects live. The engine is a sans-IO state machine — [`Session::handle_input`] with
//! the current time, [`Session::poll_output`] for what to do — so the same code runs over
//! memory, TCP, WebSocket and in the browser, and in deterministic simulations.
//!
//! - [`session`]: the state machine (hello → reconcile → transfer → live). It never touches a
//!   store: it asks its driver through [`Request`]s and gets [`Answer`]s back.
//! - [`wire`]: every message and its strict encoding (specified in `docs/protocol.md`).
//! - [`sketch`]: invertible Bloom lookup tables over 64-bit short ids, which find a small
//!   difference between two sets in one message.
//! - [`ids`]: short ids and set summaries.
//! - [`memory`]: an in-memory object set that answers a session's requests.
//! - [`reconcile`]: the reconciliation plan and the sketch sizes it tries.
//!
//! ## Invariants
//! - No I/O, no clock, no threads; builds for `wasm32-unknown-unknown`.
//! - Nothing panics on bytes from a peer: a broken frame closes the session with a reason.
//! - Every buffer is bounded: frames, batches in flight, queues, requests.
//!
//! ## Two peers in a loop, no network
//! ```
//! use std::time::Duration;
//! use chum_object::{Object, dagjson};
//! use chum_sync::{Config, Event, Input, Output, Role, Session, memory::MemorySet};
//!
//! let message = |text: &str| {
//!     let value = dagjson::from_str(&format!(r#"{{"$type":"Message","text":"{text}"}}"#))?;
//!     let object = Object::from_value(&value)?;
//!     Ok::<_, Box<dyn std::error::Error>>((object.cid().clone(), object.bytes().to_vec()))
//! };
//! let (mut alice, mut bob) = (MemorySet::new(), MemorySet::new());
//! let (hi, hi_bytes) = message("hi")?;
//! let (yo, yo_bytes) = message("yo")?;
//! alice.insert(hi.clone(), hi_bytes)?;
//! bob.insert(yo.clone(), yo_bytes)?;
//!
//! let now = Duration::ZERO;
//! let mut peers = [
//!     (Session::new(Config::new(Role::Initiator), now), alice),
//!     (Session::new(Config::new(Role::Responder), now), bob),
//! ];
//! loop {
//!     let mut in_flight = Vec::new();
//!     for (side, (session, set)) in peers.iter_mut().enumerate() {
//!         while let Some(output) = session.poll_output() {
//!             match output {
//!                 Output::Transmit(frame) => in_flight.push((1 - side, frame)),
//!                 Output::Request(id, request) => {
//!                     let (answer, _) = set.answer(request);
//!                     session.handle_input(now, Input::Answer(id, answer));
//!                 }
//!                 Output::Event(Event::Closed { reason, .. }) => panic!("{reason}"),
//!                 Output::Event(_) => {}
//!                 _ => {}
//!             }
//!         }
//!     }
//!     if in_flight.is_empty() {
//!         break;
//!     }
//!     for (to, frame) in in_flight {
//!         peers[to].0.handle_input(now, Input::Frame(frame));
//!     }
//! }
//! assert!(peers[0].0.is_synced() && peers[1].0.is_synced());
//! assert!(peers[0].1.contains(&yo) && peers[1].1.contains(&hi));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod memory;
pub mod noise;
pub mod reconcile;
pub mod session;
pub mod store;
pub mod wire;
pub use chum_sketch::{ids, sketch, varint};

pub use crate::ids::{Summary, short_id};
pub use crate::session::{Answer, Config, Event, Input, Output, Request, RequestId, Role, Session};
pub use crate::wire::{CloseCode, Limits, Message};
