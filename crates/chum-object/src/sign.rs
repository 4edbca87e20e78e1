//! ed25519 signatures over CID bytes, verified strictly.
//!
//! Strict verification rejects non-canonical signatures (an `S` not reduced mod ℓ), small-order
//! `R` components, and small-order ("weak") public keys, on every peer alike, so a signature
//! is valid everywhere or nowhere.
//!
//! ```
//! use chum_object::{Cid, Codec, sign};
//!
//! let key = sign::SigningKey::from_bytes(&[7u8; 32]);
//! let cid = Cid::hash(Codec::DagCbor, b"\xa0");
//! let signature = sign::sign(&key, &cid);
//! sign::verify(&key.verifying_key().to_bytes(), &cid, &signature)?;
//! # Ok::<(), chum_object::Error>(())
//! ```

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::cid::Cid;

/// Length of a public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// A signature that does not verify. The signer's (or a forger's) fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key bytes are not a valid curve point.
    #[error("public key is not a valid ed25519 point")]
    InvalidKey,
    /// The public key has small order; anyone could forge signatures for it.
    #[error("public key has small order (weak key)")]
    WeakKey,
    /// The signature is malformed, non-canonical, or does not match key and CID.
    #[error("signature does not verify")]
    BadSignature,
}

/// Signs the bytes of `cid`.
pub fn sign(key: &SigningKey, cid: &Cid) -> [u8; SIGNATURE_LEN] {
    use ed25519_dalek::Signer as _;
    key.sign(cid.as_bytes()).to_bytes()
}

/// Verifies `signature` by `public_key` over the bytes of `cid`, strictly.
pub fn verify(
    public_key: &[u8; PUBLIC_KEY_LEN],
    cid: &Cid,
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::InvalidKey)?;
    if key.is_weak() {
        return Err(SignatureError::WeakKey);
    }
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(cid.as_bytes(), &signature)
        .map_err(|_| SignatureError::BadSignature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cid::Codec;

    #[test]
    fn signatures_verify_only_for_their_key_and_cid() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let public = key.verifying_key().to_bytes();
        let cid = Cid::hash(Codec::DagCbor, b"one");
        let other = Cid::hash(Codec::DagCbor, b"two");
        let signature = sign(&key, &cid);
        assert_eq!(verify(&public, &cid, &signature), Ok(()));
        assert_eq!(
            verify(&public, &other, &signature),
            Err(SignatureError::BadSignature)
        );
        let stranger = SigningKey::from_bytes(&[2u8; 32])
            .verifying_key()
            .to_bytes();
        assert_eq!(
            verify(&stranger, &cid, &signature),
            Err(SignatureError::BadSignature)
        );
        let mut flipped = signature;
        flipped[10] ^= 1;
        assert_eq!(
            verify(&public, &cid, &flipped),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn non_canonical_signatures_and_weak_keys_are_rejected() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let public = key.verifying_key().to_bytes();
        let cid = Cid::hash(Codec::DagCbor, b"x");
        let mut signature = sign(&key, &cid);
        // S + ℓ: same group element, non-canonical encoding (S ≥ ℓ).
        const ELL: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(signature[32 + i]) + u16::from(ELL[i]) + carry;
            signature[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(
            verify(&public, &cid, &signature),
            Err(SignatureError::BadSignature)
        );
        // The identity point (small order) as a public key, with an all-identity signature,
        // verifies under lax rules for every message; strict rules refuse it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert_eq!(
            verify(&identity, &cid, &forged),
            Err(SignatureError::WeakKey)
        );
    }
}
