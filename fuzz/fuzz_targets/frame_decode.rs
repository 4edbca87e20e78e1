//! Frames from a peer: decoding arbitrary bytes never panics; a frame that decodes is
//! canonical (it re-encodes to the same bytes), except a hello, whose absent or unknown fields
//! decode to the same message again.
#![no_main]

use chum_sync::wire::{Limits, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_sketch_cells: 4_096,
        ..Limits::default()
    };
    if let Ok(message) = Message::decode(data, &limits) {
        let again = message.encode();
        if matches!(message, Message::Hello(_)) {
            assert_eq!(Message::decode(&again, &limits).ok(), Some(message));
        } else {
            assert_eq!(again, data, "one encoding per message");
        }
    }
});
