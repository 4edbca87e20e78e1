//! # chum-sync
//!
//! The CHUM protocol: two peers find what the other lacks and exchange exactly that. The engine
//! will be a sans-IO state machine (`handle_input(now, input)` / `poll_output()`); this crate
//! is being built in steps, and today holds its first piece:
//!
//! - [`sketch`]: an invertible Bloom lookup table over 64-bit short ids. Each side sketches its
//!   set; subtracting one sketch from the other and peeling the result yields the symmetric
//!   difference — in one message, at about 14 bytes per cell and roughly 1.5 cells per
//!   difference — when the difference is small; otherwise decoding reports failure instead of
//!   guessing.
//! - [`reconcile`]: the reconciliation plan (summary, then sketches of growing size or fresh
//!   hashing, then the full id list as the bounded fallback) as a pure function over two
//!   in-memory sets, measuring messages and bytes. Store-maintained sketches and the wire
//!   protocol come next.
//!
//! ## Invariants
//! - No I/O, no clock, no threads; builds for `wasm32-unknown-unknown`.
//! - Nothing panics on bytes from a peer: every decoder returns `Err`.
//!
//! ```
//! use chum_sync::sketch::Sketch;
//!
//! let mine = [1u64, 2, 3, 4, 5];
//! let theirs = [1u64, 2, 3, 4, 6];
//! let (mut a, mut b) = (Sketch::new(32), Sketch::new(32));
//! mine.iter().for_each(|id| a.insert(*id));
//! theirs.iter().for_each(|id| b.insert(*id));
//! let wire = b.to_bytes();                       // what the other peer sends
//! let b = Sketch::from_bytes(&wire, 1 << 20)?;
//! let difference = a.subtract(&b)?.decode()?;
//! assert_eq!(difference.only_mine, [5]);
//! assert_eq!(difference.only_theirs, [6]);
//! # Ok::<(), chum_sync::sketch::SketchError>(())
//! ```
#![warn(missing_docs)]

pub mod reconcile;
pub mod sketch;
