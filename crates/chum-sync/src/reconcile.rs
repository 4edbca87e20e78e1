//! The sketch sizes reconciliation tries, and the plan the [`Session`](crate::Session) follows
//! with them.
//!
//! 1. The initiator sends a [`Summary`](crate::Summary) of its set. Equal summaries end the
//!    exchange: one round trip.
//! 2. Otherwise the responder sends a sketch of its set, of the smallest of [`SKETCH_SIZES`]
//!    that fits the difference in counts; the initiator subtracts its own sketch of the same
//!    size and peels. Success: it now knows both halves of the difference and sends the ids it
//!    wants.
//! 3. On failure it asks for the next size (8× larger), or for the same size with a fresh salt
//!    when only a few cells are left over. When a sketch would cost more than the responder's
//!    whole id list (8 bytes an id), it asks for the list instead, which always succeeds — so no
//!    exchange costs much more than listing the set.

/// Sketch sizes tried in turn, in cells (defined beside the sketch, in `chum-sketch`, so the
/// stores' kept sketches take their sizes from the same list).
pub use chum_sketch::SKETCH_SIZES;
