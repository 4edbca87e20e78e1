//! What travels inside the Noise handshake, and who is let in.
//!
//! Each side's payload is a DAG-CBOR map that binds the session's static X25519 key (which the
//! handshake proves the sender holds) to an ed25519 identity:
//!
//! ```text
//! {"cert": <InstanceCertificate bytes>, "bind": <64 bytes>}            an instance of a person
//! {"join": {"instance": <32 bytes>, "secret": <32 bytes>}, "bind": <64 bytes>}
//!                                                      a new instance redeeming an invitation
//! ```
//! `bind` is the instance key's signature (see the crate's signing rule) over
//! `"chum static key 1:" ‖ static public key`. A replayed payload fails: its binding names a
//! static key the replayer does not hold, and the handshake needs that key.

use chum_crdt::InstanceId;
use chum_object::sign::SigningKey;
use chum_object::{Limits, Map, Value, dagcbor};
use chum_store::Store;

use crate::error::{AccessError, Result};
use crate::identity::Identity;
use crate::keys::{Certificate, PersonId, REVOCATION_TYPE, Revocation};
use crate::{invite, keys};

const BIND_CONTEXT: &[u8] = b"chum static key 1:";

fn binding(static_public: &[u8; 32]) -> Vec<u8> {
    let mut message = BIND_CONTEXT.to_vec();
    message.extend_from_slice(static_public);
    message
}

/// This instance's payload for a session whose static public key is `static_public`.
pub fn payload(identity: &Identity, static_public: &[u8; 32]) -> Result<Vec<u8>> {
    let mut map = Map::new();
    map.insert("cert", identity.certificate().object().bytes().to_vec());
    map.insert(
        "bind",
        crate::signed::sign_bytes(identity.instance_key(), &binding(static_public)).to_vec(),
    );
    Ok(dagcbor::encode(&Value::Map(map))?)
}

/// The payload of a new instance (key `instance_key`) redeeming an invitation's `secret`.
pub fn join_payload(
    instance_key: &SigningKey,
    secret: &[u8; 32],
    static_public: &[u8; 32],
) -> Result<Vec<u8>> {
    let mut join = Map::new();
    join.insert("instance", instance_key.verifying_key().to_bytes().to_vec());
    join.insert("secret", secret.to_vec());
    let mut map = Map::new();
    map.insert("join", join);
    map.insert(
        "bind",
        crate::signed::sign_bytes(instance_key, &binding(static_public)).to_vec(),
    );
    Ok(dagcbor::encode(&Value::Map(map))?)
}

/// Who the peer says it is, with the binding to its static key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// An instance with a certificate (its signature verified).
    Member(Certificate),
    /// A new instance redeeming an invitation.
    Join {
        /// The joining instance's key.
        instance: InstanceId,
        /// The invitation's secret.
        secret: [u8; 32],
    },
}

/// Reads a peer's payload and checks that it binds `remote_static`.
pub fn read_payload(payload: &[u8], remote_static: &[u8; 32]) -> Result<Presented> {
    const WHAT: &str = "handshake payload";
    let value = dagcbor::decode_with_limits(payload, &Limits::default())
        .map_err(|error| AccessError::malformed(WHAT, error.to_string()))?;
    let map = value
        .as_map()
        .ok_or_else(|| AccessError::malformed(WHAT, "not a map"))?;
    let bytes_field = |map: &Map, field: &str| match map.get(field) {
        Some(Value::Bytes(bytes)) => Ok(bytes.clone()),
        _ => Err(AccessError::malformed(WHAT, format!("no bytes `{field}`"))),
    };
    let fixed = |bytes: Vec<u8>, field: &str| -> Result<[u8; 32]> {
        bytes
            .try_into()
            .map_err(|_| AccessError::malformed(WHAT, format!("`{field}` is not 32 bytes")))
    };
    let bind: [u8; 64] = bytes_field(map, "bind")?
        .try_into()
        .map_err(|_| AccessError::malformed(WHAT, "`bind` is not 64 bytes"))?;
    if map.len() != 2 {
        return Err(AccessError::malformed(WHAT, "unexpected fields"));
    }
    let (presented, signer) = if map.contains_key("cert") {
        let certificate = Certificate::from_bytes(&bytes_field(map, "cert")?)?;
        let signer = certificate.instance();
        (Presented::Member(certificate), signer)
    } else {
        let join = map
            .get("join")
            .and_then(Value::as_map)
            .ok_or_else(|| AccessError::malformed(WHAT, "neither `cert` nor `join`"))?;
        if join.len() != 2 {
            return Err(AccessError::malformed(WHAT, "unexpected fields in `join`"));
        }
        let instance = InstanceId(fixed(bytes_field(join, "instance")?, "instance")?);
        let secret = fixed(bytes_field(join, "secret")?, "secret")?;
        (Presented::Join { instance, secret }, instance)
    };
    crate::signed::verify_bytes(
        "static key binding",
        &signer.0,
        &binding(remote_static),
        &bind,
    )?;
    Ok(presented)
}

/// The peer a session was admitted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its person.
    pub person: PersonId,
    /// Its person's public key.
    pub person_key: [u8; 32],
    /// Its instance.
    pub instance: InstanceId,
    /// Whether it is an instance of this side's own person.
    pub same_person: bool,
    /// The certificate it presented (verified).
    pub certificate: Option<Certificate>,
    /// For a peer that joined with an invitation: the certificate issued for it (sent to it in
    /// the session's welcome).
    pub issued: Option<Certificate>,
}

/// The instance-local key prefix of blocked persons (key = prefix ‖ person CID bytes).
pub const BLOCKED_PREFIX: &[u8] = b"chum-access/blocked/";

/// Blocks (or unblocks) a person: its instances are refused.
pub async fn set_blocked(store: &dyn Store, person: &PersonId, blocked: bool) -> Result<()> {
    let mut key = BLOCKED_PREFIX.to_vec();
    key.extend_from_slice(person.cid().as_bytes());
    if blocked {
        store.local_put(&key, b"").await?;
    } else {
        store.local_delete(&key).await?;
    }
    Ok(())
}

/// Whether `instance` of the person with key `person_key` is revoked by a revocation in
/// `store`.
pub async fn is_revoked(
    store: &dyn Store,
    person_key: &[u8; 32],
    instance: &InstanceId,
) -> Result<bool> {
    // A person's revocations link to its Person object: an indexed lookup over that person's
    // own objects, whatever others sent.
    let person = PersonId::of_key(person_key);
    for (_, object, value) in crate::visibility::linking(store, &person.0, REVOCATION_TYPE).await? {
        if let Ok(revocation) = Revocation::from_value(object, &value)
            && revocation.instance() == *instance
            && revocation.person() == person
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The admission rule: whether `identity` talks to the peer that presented `payload` over a
/// handshake that proved `remote_static`. Refused: payloads that do not verify, revoked
/// instances, blocked persons, invitations that are wrong, expired or used by another
/// instance. A certificate that verifies is accepted as its person (which then sees only what
/// that person may see). `now_ms` is the wall clock, for invitation expiry.
pub async fn admit(
    store: &dyn Store,
    identity: &Identity,
    payload: &[u8],
    remote_static: &[u8; 32],
    now_ms: u64,
) -> Result<Peer> {
    match read_payload(payload, remote_static)? {
        Presented::Member(certificate) => {
            let person_key = *certificate.person_key();
            let person = certificate.person();
            let instance = certificate.instance();
            if instance == identity.instance() {
                return Err(AccessError::Invitation(
                    "the peer presents this instance's own certificate".into(),
                ));
            }
            if is_revoked(store, &person_key, &instance).await? {
                return Err(AccessError::malformed(
                    "peer",
                    format!("instance {} is revoked", keys::instance_text(&instance)),
                ));
            }
            let mut key = BLOCKED_PREFIX.to_vec();
            key.extend_from_slice(person.cid().as_bytes());
            if store.local_get(&key).await?.is_some() {
                return Err(AccessError::malformed(
                    "peer",
                    format!("person {person} is blocked here"),
                ));
            }
            Ok(Peer {
                same_person: person == identity.person(),
                person,
                person_key,
                instance,
                certificate: Some(certificate),
                issued: None,
            })
        }
        Presented::Join { instance, secret } => {
            if is_revoked(store, identity.person_public(), &instance).await? {
                return Err(AccessError::Invitation(format!(
                    "instance {} is revoked",
                    keys::instance_text(&instance)
                )));
            }
            let certificate = invite::redeem(store, identity, &secret, instance, now_ms).await?;
            Ok(Peer {
                person: identity.person(),
                person_key: *identity.person_public(),
                instance,
                same_person: true,
                certificate: None,
                issued: Some(certificate),
            })
        }
    }
}
