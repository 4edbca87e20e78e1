//! # chum-sketch
//!
//! The primitives of set reconciliation, shared by the stores (which keep a set's summary and
//! smallest sketches current on every write) and the CHUM protocol (which exchanges them):
//!
//! - [`ids`]: 8-byte **short ids** of CIDs, the order-independent [`Summary`] of a set,
//!   journal ids, the CID range a short-id range covers;
//! - [`sketch`]: the invertible **sketch** (an IBLT over short ids) that decodes a small
//!   difference between two sets in one message;
//! - [`varint`]: the unsigned LEB128 integers of the wire format;
//! - [`SKETCH_SIZES`]: the sketch sizes reconciliation tries, the one list every kept sketch
//!   takes its sizes from.
//!
//! **Architecture invariant:** a leaf — it depends on `chum-object` only, does no I/O, never
//! reads the clock, and builds for `wasm32-unknown-unknown`.
#![warn(missing_docs)]

pub mod ids;
pub mod sketch;
pub mod varint;

pub use crate::ids::{Summary, short_id};

/// Sketch sizes tried in turn, in cells (each 8× the one before).
///
/// This is the one list of sizes: a set that keeps the smallest few sketches current (the
/// kept sketches of `chum_sync::memory::MemorySet` and of every store) takes their sizes from
/// the start of this list rather than repeating the numbers.
pub const SKETCH_SIZES: [usize; 7] = [36, 288, 2_304, 18_432, 147_456, 1_179_648, 9_437_184];
