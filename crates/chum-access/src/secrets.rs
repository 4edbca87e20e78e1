//! Secret keys at rest: stored plainly, or sealed with a passphrase (Argon2id, a memory-hard
//! key derivation, then XChaCha20-Poly1305).
//!
//! The envelope is a DAG-CBOR map: `{"v": 1, "plain": <bytes>}` or `{"v": 1, "kdf":
//! "argon2id", "m": <KiB>, "t": <passes>, "p": <lanes>, "salt": <16 bytes>, "nonce": <24
//! bytes>, "sealed": <ciphertext and tag>}`. The parameters travel with the data, so they can
//! be raised later without breaking old envelopes.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chum_object::{Limits, Map, Value, dagcbor};

use crate::error::{AccessError, Result};
use crate::keys::random_bytes;

/// Argon2id cost: memory in KiB, passes, lanes. The default follows the common
/// recommendation for interactive use (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Parallel lanes.
    pub lanes: u32,
}

impl Default for KdfCost {
    fn default() -> KdfCost {
        KdfCost {
            memory_kib: 19 * 1024,
            passes: 2,
            lanes: 1,
        }
    }
}

/// Wraps `secret` for storage: plainly without a passphrase, sealed with one.
pub fn seal(secret: &[u8], passphrase: Option<&str>, cost: KdfCost) -> Result<Vec<u8>> {
    let mut map = Map::new();
    map.insert("v", 1u64);
    match passphrase {
        None => {
            map.insert("plain", secret.to_vec());
        }
        Some(passphrase) => {
            let salt = random_bytes::<16>()?;
            let nonce = random_bytes::<24>()?;
            let key = derive(passphrase, &salt, cost)?;
            let cipher = XChaCha20Poly1305::new(&key.into());
            let sealed = cipher
                .encrypt(XNonce::from_slice(&nonce), secret)
                .map_err(|_| AccessError::Secrets("encryption failed".into()))?;
            map.insert("kdf", "argon2id");
            map.insert("m", cost.memory_kib);
            map.insert("t", cost.passes);
            map.insert("p", cost.lanes);
            map.insert("salt", salt.to_vec());
            map.insert("nonce", nonce.to_vec());
            map.insert("sealed", sealed);
        }
    }
    Ok(dagcbor::encode(&Value::Map(map))?)
}

/// Whether an envelope needs a passphrase to open.
pub fn is_sealed(envelope: &[u8]) -> Result<bool> {
    let map = read(envelope)?;
    Ok(map.contains_key("sealed"))
}

/// Opens an envelope made by [`seal`]. A sealed one needs the passphrase it was sealed with.
pub fn open(envelope: &[u8], passphrase: Option<&str>) -> Result<Vec<u8>> {
    let map = read(envelope)?;
    let bytes = |field: &str| match map.get(field) {
        Some(Value::Bytes(bytes)) => Ok(bytes.clone()),
        _ => Err(AccessError::Secrets(format!(
            "envelope field `{field}` missing"
        ))),
    };
    if map.contains_key("plain") {
        return bytes("plain");
    }
    let passphrase = passphrase.ok_or_else(|| {
        AccessError::Secrets("the keys are sealed with a passphrase and none was given".into())
    })?;
    if map.get("kdf").and_then(Value::as_text) != Some("argon2id") {
        return Err(AccessError::Secrets("unknown key derivation".into()));
    }
    let number = |field: &str| {
        map.get(field)
            .and_then(Value::as_int)
            .and_then(|int| int.to_u64())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| AccessError::Secrets(format!("envelope field `{field}` missing")))
    };
    let cost = KdfCost {
        memory_kib: number("m")?,
        passes: number("t")?,
        lanes: number("p")?,
    };
    // Refuse costs that would let a damaged file exhaust memory (4 GiB).
    if cost.memory_kib > 4 << 20 || cost.passes > 64 || cost.lanes > 64 {
        return Err(AccessError::Secrets(
            "key derivation cost out of range".into(),
        ));
    }
    let salt = bytes("salt")?;
    let nonce: [u8; 24] = bytes("nonce")?
        .try_into()
        .map_err(|_| AccessError::Secrets("nonce is not 24 bytes".into()))?;
    let key = derive(passphrase, &salt, cost)?;
    XChaCha20Poly1305::new(&key.into())
        .decrypt(XNonce::from_slice(&nonce), bytes("sealed")?.as_slice())
        .map_err(|_| AccessError::Secrets("wrong passphrase, or the data is damaged".into()))
}

fn read(envelope: &[u8]) -> Result<Map> {
    let value = dagcbor::decode_with_limits(envelope, &Limits::default())
        .map_err(|error| AccessError::Secrets(format!("not a key envelope: {error}")))?;
    match value {
        Value::Map(map)
            if map
                .get("v")
                .and_then(Value::as_int)
                .and_then(|v| v.to_u64())
                == Some(1) =>
        {
            Ok(map)
        }
        _ => Err(AccessError::Secrets("not a version-1 key envelope".into())),
    }
}

fn derive(passphrase: &str, salt: &[u8], cost: KdfCost) -> Result<[u8; 32]> {
    let params = Params::new(cost.memory_kib, cost.passes, cost.lanes, Some(32))
        .map_err(|error| AccessError::Secrets(format!("key derivation parameters: {error}")))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|error| AccessError::Secrets(format!("key derivation: {error}")))?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CHEAP: KdfCost = KdfCost {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };

    #[test]
    fn plain_and_sealed_round_trip() {
        let plain = seal(b"secret", None, CHEAP).unwrap();
        assert!(!is_sealed(&plain).unwrap());
        assert_eq!(open(&plain, None).unwrap(), b"secret");

        let sealed = seal(b"secret", Some("correct horse"), CHEAP).unwrap();
        assert!(is_sealed(&sealed).unwrap());
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&sealed, Some("correct horse")).unwrap(), b"secret");
        assert!(matches!(
            open(&sealed, Some("wrong")),
            Err(AccessError::Secrets(_))
        ));
        assert!(matches!(open(&sealed, None), Err(AccessError::Secrets(_))));
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(open(&damaged, Some("correct horse")).is_err());
        assert!(open(b"garbage", None).is_err());
    }
}
