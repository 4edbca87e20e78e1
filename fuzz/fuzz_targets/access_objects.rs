//! Identity and grant objects, handshake payloads and invitations from untrusted bytes: every
//! reader must refuse what it cannot verify, with an error, never a panic.
#![no_main]

use chum_access::grant::verify_value;
use chum_access::handshake::read_payload;
use chum_access::{Certificate, Invitation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let remote = [7u8; 32];
    let _ = read_payload(data, &remote);
    let _ = Certificate::from_bytes(data);
    if let Ok(value) = chum_object::dagcbor::decode(data) {
        let _ = verify_value(&value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Invitation::from_text(text);
        if let Ok(invitation) = Invitation::from_text(text) {
            // What parses prints back to the same invitation.
            assert_eq!(Invitation::from_text(&invitation.to_text()).ok(), Some(invitation));
        }
    }
});
