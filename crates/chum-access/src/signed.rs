//! Signed objects: a map whose `signature` field is an ed25519 signature, by a key named in
//! the object, over the CID of the same map without its `signature` field.

use chum_object::sign::{self, SigningKey};
use chum_object::{Cid, Codec, Map, Object, Value};

use crate::error::{AccessError, Result};

/// Signs `map` (which must not yet have a `signature`) and returns the signed object.
pub(crate) fn seal(mut map: Map, key: &SigningKey) -> Result<Object> {
    let unsigned = Object::from_value(&Value::Map(map.clone()))?;
    let signature = sign::sign(key, unsigned.cid());
    map.insert("signature", signature.to_vec());
    Ok(Object::from_value(&Value::Map(map))?)
}

/// Checks the `signature` field of `map` against `signer`.
pub(crate) fn check(what: &'static str, map: &Map, signer: &[u8; 32]) -> Result<()> {
    let signature: [u8; 64] = match map.get("signature") {
        Some(Value::Bytes(bytes)) => bytes.as_slice().try_into().ok(),
        _ => None,
    }
    .ok_or_else(|| AccessError::malformed(what, "field `signature` must be 64 bytes"))?;
    let mut unsigned = map.clone();
    unsigned.remove("signature");
    let unsigned = Object::from_value(&Value::Map(unsigned))?;
    sign::verify(signer, unsigned.cid(), &signature)
        .map_err(|error| AccessError::Signature { what, error })
}

/// Signs arbitrary bytes (a handshake binding) by signing their raw-codec CID.
pub(crate) fn sign_bytes(key: &SigningKey, bytes: &[u8]) -> [u8; 64] {
    sign::sign(key, &Cid::hash(Codec::Raw, bytes))
}

/// Verifies a signature made by [`sign_bytes`].
pub(crate) fn verify_bytes(
    what: &'static str,
    signer: &[u8; 32],
    bytes: &[u8],
    signature: &[u8; 64],
) -> Result<()> {
    sign::verify(signer, &Cid::hash(Codec::Raw, bytes), signature)
        .map_err(|error| AccessError::Signature { what, error })
}
