//! Set-reconciliation sketches from a peer: parsing, subtracting and peeling arbitrary bytes
//! never panics, and a sketch that parses writes back to the same bytes.
#![no_main]

use chum_sync::sketch::Sketch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sketch) = Sketch::from_bytes(data, 4096) {
        assert_eq!(sketch.to_bytes(), data, "the wire form is canonical");
        let empty = Sketch::new(sketch.len());
        if let Ok(difference) = sketch.subtract(&empty) {
            let _ = difference.decode();
        }
    }
});
