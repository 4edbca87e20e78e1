//! DAG-JSON parsing of arbitrary bytes: never panics; whatever it accepts writes back to
//! DAG-JSON that parses to the same value, and encodes to DAG-CBOR that decodes to it.
#![no_main]

use chum_object::{dagcbor, dagjson};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = dagjson::from_slice(data) {
        let json = dagjson::to_string(&value).expect("a parsed value writes back");
        assert_eq!(dagjson::from_str(&json).expect("our DAG-JSON parses"), value);
        if let Ok(bytes) = dagcbor::encode(&value) {
            assert_eq!(dagcbor::decode(&bytes).expect("our DAG-CBOR decodes"), value);
        }
    }
});
