//! The encrypted channel: a Noise XX handshake (`Noise_XX_25519_ChaChaPoly_BLAKE2s`, through
//! `snow`) in front of every session, then the session's frames as a stream of records.
//!
//! This module holds the mechanics; what the handshake payloads mean (certificates, invitations)
//! is the driver's business — the session hands the peer's payload out in a
//! [`crate::Request::Admit`] and continues only when the driver admits the peer.
//!
//! ## Records
//! After the handshake, each side writes its frames as one plaintext stream — every frame is a
//! varint length and the frame's bytes — cut into records of at most
//! [`MAX_RECORD_PLAINTEXT`] bytes, each one Noise transport message (the stream's bytes and a
//! 16-byte tag). Everything a session produces in one step goes out in as few records as
//! possible, so many small frames share one AEAD operation, and a frame larger than a record
//! spans several.

use std::sync::Mutex;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Bound into every handshake: peers of another protocol or version fail the handshake.
pub const PROLOGUE: &[u8] = b"chum noise 1";
/// The largest Noise message.
pub const MAX_RECORD: usize = 65_535;
/// The largest plaintext in one record (a record adds a 16-byte tag).
pub const MAX_RECORD_PLAINTEXT: usize = MAX_RECORD - 16;
/// The largest handshake payload either side sends.
pub const MAX_PAYLOAD: usize = 16 << 10;

/// What the driver provides for an encrypted session.
#[derive(Clone, PartialEq, Eq)]
pub struct Security {
    /// The X25519 static secret for this session (see [`static_keypair`]).
    pub static_secret: [u8; 32],
    /// This side's handshake payload (credentials bound to the static key).
    pub payload: Vec<u8>,
    /// 32 bytes from a cryptographic random source, for the ephemeral key.
    pub entropy: [u8; 32],
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// A static X25519 key pair (secret, public) derived from 32 random bytes.
pub fn static_keypair(entropy: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    let builder = snow::Builder::with_resolver(params(), Box::new(Resolver::new(entropy)));
    // Generating a key pair with a working random source cannot fail.
    match builder.generate_keypair() {
        Ok(pair) => {
            let mut secret = [0u8; 32];
            let mut public = [0u8; 32];
            secret.copy_from_slice(&pair.private);
            public.copy_from_slice(&pair.public);
            (secret, public)
        }
        Err(_) => ([0; 32], [0; 32]),
    }
}

pub(crate) fn params() -> NoiseParams {
    #[allow(clippy::expect_used)]
    NOISE_PARAMS.parse().expect("the protocol name is valid")
}

/// Builds the handshake state for one side.
pub(crate) fn handshake(
    security: &Security,
    initiator: bool,
) -> Result<snow::HandshakeState, snow::Error> {
    let builder = snow::Builder::with_resolver(params(), Box::new(Resolver::new(security.entropy)))
        .local_private_key(&security.static_secret)?
        .prologue(PROLOGUE)?;
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
}

/// snow's default primitives (natively the cipher from ring), with randomness from the entropy
/// the driver gave (the engine has no random source of its own).
struct Resolver {
    rng: Mutex<ChaCha20Rng>,
}

impl Resolver {
    fn new(entropy: [u8; 32]) -> Resolver {
        Resolver {
            rng: Mutex::new(ChaCha20Rng::from_seed(entropy)),
        }
    }
}

struct Rng(ChaCha20Rng);

impl Random for Rng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        // Each caller gets its own stream, seeded from the shared one, so two keys generated
        // for one session never repeat.
        let mut seed = [0u8; 32];
        self.rng.lock().ok()?.fill_bytes(&mut seed);
        Some(Box::new(Rng(ChaCha20Rng::from_seed(seed))))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        // ChaCha20-Poly1305 from ring where it builds (the same cipher, faster); snow's
        // pure-Rust one elsewhere.
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(cipher) = snow::resolvers::RingResolver.resolve_cipher(choice) {
            return Some(cipher);
        }
        DefaultResolver.resolve_cipher(choice)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn static_keys_differ_per_entropy_and_handshakes_complete() {
        let (a_secret, a_public) = static_keypair([1; 32]);
        let (b_secret, _) = static_keypair([2; 32]);
        assert_ne!(a_secret, b_secret);
        assert_eq!(static_keypair([1; 32]).1, a_public);

        let side = |secret, entropy| Security {
            static_secret: secret,
            payload: Vec::new(),
            entropy,
        };
        let mut initiator = handshake(&side(a_secret, [3; 32]), true).unwrap();
        let mut responder = handshake(&side(b_secret, [4; 32]), false).unwrap();
        let mut buf = vec![0u8; MAX_RECORD];
        let mut out = vec![0u8; MAX_RECORD];
        let n = initiator.write_message(b"", &mut buf).unwrap();
        responder.read_message(&buf[..n], &mut out).unwrap();
        let n = responder.write_message(b"two", &mut buf).unwrap();
        let got = initiator.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..got], b"two");
        let n = initiator.write_message(b"three", &mut buf).unwrap();
        let got = responder.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..got], b"three");
        assert_eq!(responder.get_remote_static().unwrap(), &a_public);
        // Different ephemeral keys for a fresh handshake with other entropy.
        assert!(initiator.is_handshake_finished() && responder.is_handshake_finished());
    }
}
