//! Invitations: how a new instance joins its person.
//!
//! The inviting instance (it must hold the person key) makes an [`Invitation`] — a one-time
//! secret, an expiry, its reachable address when it has one, the person key and its own
//! instance key — and keeps only a hash of the secret in its instance-local area. The new
//! instance connects, authenticates the inviter as an instance of that person inside the Noise
//! handshake, and presents the secret (encrypted to the inviter); the inviter issues it a
//! certificate. One use by default (or up to `max_uses` distinct instances): the same joining
//! instance may retry (it gets the same certificate), any further instance is refused, and so
//! is a wrong, expired or cancelled invitation ([`cancel`]).
//!
//! The text form is `chum-invite-` followed by the DAG-CBOR map in multibase base32:
//! `{"secret": <32>, "expires": <ms>, "person": <32: person key>, "inviter": <32: instance
//! key>, "address": <text, optional>}`.

use chum_crdt::InstanceId;
use chum_object::{Limits, Map, Value, dagcbor};
use chum_store::Store;

use crate::error::{AccessError, Result};
use crate::handshake::{Peer, Presented, read_payload};
use crate::identity::Identity;
use crate::keys::{Certificate, PersonId, random_bytes};

const PREFIX: &str = "chum-invite-";
/// The instance-local key prefix of invitation records.
pub const RECORD_PREFIX: &[u8] = b"chum-access/invite/";

/// An invitation to join a person.
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The one-time secret.
    pub secret: [u8; 32],
    /// When it expires (ms since the Unix epoch).
    pub expires_ms: u64,
    /// The person's public key.
    pub person_key: [u8; 32],
    /// The inviting instance.
    pub inviter: InstanceId,
    /// Where the inviting instance listens (`tcp://…`, `ws://…`), when it does.
    pub address: Option<String>,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("person", &PersonId::of_key(&self.person_key))
            .field("expires_ms", &self.expires_ms)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Invitation {
    /// The text form, to hand to the new instance.
    pub fn to_text(&self) -> String {
        let mut map = Map::new();
        map.insert("secret", self.secret.to_vec());
        map.insert("expires", self.expires_ms);
        map.insert("person", self.person_key.to_vec());
        map.insert("inviter", self.inviter.0.to_vec());
        if let Some(address) = &self.address {
            map.insert("address", address.as_str());
        }
        #[allow(clippy::expect_used)]
        let bytes = dagcbor::encode(&Value::Map(map)).expect("a small map always encodes");
        format!(
            "{PREFIX}{}",
            multibase::encode(multibase::Base::Base32Lower, bytes)
        )
    }

    /// Parses [`Invitation::to_text`] (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Invitation> {
        let bad = |reason: &str| AccessError::Invitation(format!("not an invitation: {reason}"));
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("it does not start with `chum-invite-`"))?;
        let (base, bytes) = multibase::decode(body).map_err(|error| bad(&error.to_string()))?;
        if base != multibase::Base::Base32Lower {
            return Err(bad("not base32"));
        }
        let value = dagcbor::decode_with_limits(&bytes, &Limits::default())
            .map_err(|error| bad(&error.to_string()))?;
        let map = value.as_map().ok_or_else(|| bad("not a map"))?;
        let key = |field: &str| -> Result<[u8; 32]> {
            match map.get(field) {
                Some(Value::Bytes(bytes)) => bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad(&format!("`{field}` is not 32 bytes"))),
                _ => Err(bad(&format!("no `{field}`"))),
            }
        };
        let expires_ms = map
            .get("expires")
            .and_then(Value::as_int)
            .and_then(|int| int.to_u64())
            .ok_or_else(|| bad("no `expires`"))?;
        let address = match map.get("address") {
            None => None,
            Some(Value::Text(text)) => Some(text.to_string()),
            Some(_) => return Err(bad("`address` is not text")),
        };
        Ok(Invitation {
            secret: key("secret")?,
            expires_ms,
            person_key: key("person")?,
            inviter: InstanceId(key("inviter")?),
            address,
        })
    }

    /// The joining side's check of the inviter inside the handshake: its payload must verify
    /// and name the invitation's person.
    pub fn check_inviter(&self, payload: &[u8], remote_static: &[u8; 32]) -> Result<Peer> {
        match read_payload(payload, remote_static)? {
            Presented::Member(certificate)
                if *certificate.person_key() == self.person_key
                    && certificate.instance() == self.inviter =>
            {
                Ok(Peer {
                    person: certificate.person(),
                    person_key: self.person_key,
                    instance: certificate.instance(),
                    same_person: true,
                    certificate: Some(certificate),
                    issued: None,
                })
            }
            Presented::Member(_) => Err(AccessError::Invitation(
                "the peer is not the inviting instance".into(),
            )),
            Presented::Join { .. } => Err(AccessError::Invitation(
                "the peer is itself joining, not inviting".into(),
            )),
        }
    }
}

fn record_key(secret: &[u8; 32]) -> Vec<u8> {
    let mut key = RECORD_PREFIX.to_vec();
    key.extend_from_slice(blake3::hash(secret).as_bytes());
    key
}

/// Makes a one-use invitation valid for `ttl_ms` and records it (needs the person key).
pub async fn create(
    store: &dyn Store,
    identity: &Identity,
    address: Option<String>,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<Invitation> {
    create_with_uses(store, identity, address, now_ms, ttl_ms, 1).await
}

/// [`create`] for up to `max_uses` distinct joining instances.
pub async fn create_with_uses(
    store: &dyn Store,
    identity: &Identity,
    address: Option<String>,
    now_ms: u64,
    ttl_ms: u64,
    max_uses: u32,
) -> Result<Invitation> {
    identity.person_key()?;
    if max_uses == 0 {
        return Err(AccessError::Invitation(
            "an invitation needs at least one use".into(),
        ));
    }
    let invitation = Invitation {
        secret: random_bytes()?,
        expires_ms: now_ms.saturating_add(ttl_ms),
        person_key: *identity.person_public(),
        inviter: identity.instance(),
        address,
    };
    let mut record = Map::new();
    record.insert("expires", invitation.expires_ms);
    record.insert("uses", max_uses);
    record.insert("issued", Vec::<Value>::new());
    store
        .local_put(
            &record_key(&invitation.secret),
            &dagcbor::encode(&Value::Map(record))?,
        )
        .await?;
    Ok(invitation)
}

/// Redeems an invitation's `secret` for `joiner`: the certificate for it, issued once and
/// handed out again to the same joiner on a retry.
pub async fn redeem(
    store: &dyn Store,
    identity: &Identity,
    secret: &[u8; 32],
    joiner: InstanceId,
    now_ms: u64,
) -> Result<Certificate> {
    let key = record_key(secret);
    let refused = |reason: &str| AccessError::Invitation(reason.into());
    // Read, certify and write back as one step: a second joiner with the same secret waits
    // its turn (and then finds the invitation used), never both welcomed.
    let claim = *blake3::hash(&key).as_bytes();
    let _claim = loop {
        if let Some(claim) = identity.claim_invitation(claim) {
            break claim;
        }
        yield_now().await;
    };
    let record = store.local_get(&key).await?.ok_or_else(|| {
        refused("unknown invitation (wrong secret, cancelled, or made elsewhere)")
    })?;
    let value = dagcbor::decode_with_limits(&record, &Limits::default())
        .map_err(|_| refused("damaged invitation record"))?;
    let mut record = value
        .as_map()
        .cloned()
        .ok_or_else(|| refused("damaged invitation record"))?;
    let expires = record
        .get("expires")
        .and_then(Value::as_int)
        .and_then(|int| int.to_u64())
        .unwrap_or(0);
    if now_ms > expires {
        return Err(refused("the invitation has expired"));
    }
    let mut issued: Vec<Value> = record
        .get("issued")
        .and_then(Value::as_list)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    for bytes in &issued {
        if let Value::Bytes(bytes) = bytes {
            let certificate = Certificate::from_bytes(bytes)?;
            if certificate.instance() == joiner {
                return Ok(certificate);
            }
        }
    }
    let uses = record
        .get("uses")
        .and_then(Value::as_int)
        .and_then(|int| int.to_u64())
        .unwrap_or(1);
    if issued.len() as u64 >= uses {
        return Err(refused(if uses == 1 {
            "the invitation was already used by another instance"
        } else {
            "the invitation was already used by as many instances as it allows"
        }));
    }

    let certificate = identity.certify(joiner, now_ms)?;
    issued.push(Value::Bytes(certificate.object().bytes().to_vec()));
    record.insert("issued", issued);
    store
        .put_many(&[(
            certificate.object().cid().clone(),
            certificate.object().bytes().to_vec(),
        )])
        .await?;
    store
        .local_put(&key, &dagcbor::encode(&Value::Map(record))?)
        .await?;
    Ok(certificate)
}

/// Cancels an invitation: it is refused from now on (instances that already joined stay
/// joined; revoke them with [`Identity::revoke`]). Returns whether it was known here.
pub async fn cancel(store: &dyn Store, invitation: &Invitation) -> Result<bool> {
    Ok(store.local_delete(&record_key(&invitation.secret)).await?)
}

/// Lets other tasks run before trying again (no timer: this crate reads no clock).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}
