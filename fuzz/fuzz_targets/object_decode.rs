//! Strict DAG-CBOR decoding of arbitrary bytes: never panics; whatever it accepts re-encodes to
//! the same bytes and converts to DAG-JSON and back.
#![no_main]

use chum_object::{dagcbor, dagjson};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = dagcbor::decode(data) {
        let bytes = dagcbor::encode(&value).expect("an accepted value encodes");
        assert_eq!(bytes, data, "accepted bytes must be canonical");
        if let Ok(json) = dagjson::to_string(&value) {
            assert_eq!(dagjson::from_str(&json).expect("our DAG-JSON parses"), value);
        }
    }
});
