//! The local instance's identity: its key, its certificate, and — on the instance that created
//! the person — the person key.

use chum_crdt::InstanceId;
use chum_object::sign::SigningKey;
use chum_object::{Limits, Map, Object, Value, dagcbor};
use chum_store::Store;

use crate::error::{AccessError, Result};
use crate::keys::{Certificate, PersonId, Revocation, generate_key, person_object};
use crate::secrets::{self, KdfCost};

/// The instance-local key under which [`Identity::save`] keeps the secrets.
pub const SECRETS_KEY: &[u8] = b"chum-access/identity";

/// One instance of a person, with its secrets.
#[derive(Clone)]
pub struct Identity {
    person_key: Option<SigningKey>,
    person_public: [u8; 32],
    instance_key: SigningKey,
    certificate: Certificate,
    /// Invitations being redeemed right now (by the hash of their secret), shared by every
    /// clone: redeeming one is a read, a certificate and a write, which must not interleave.
    redeeming: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<[u8; 32]>>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("person", &self.person())
            .field("instance", &self.instance())
            .field("holds_person_key", &self.person_key.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.person_public == other.person_public
            && self.instance_key.to_bytes() == other.instance_key.to_bytes()
            && self.certificate == other.certificate
            && self.person_key.as_ref().map(SigningKey::to_bytes)
                == other.person_key.as_ref().map(SigningKey::to_bytes)
    }
}

impl Eq for Identity {}

impl Identity {
    /// A new person and its first instance, at `now_ms` (ms since the Unix epoch).
    pub fn new_person(now_ms: u64) -> Result<Identity> {
        Identity::from_keys(generate_key()?, generate_key()?, now_ms)
    }

    /// A new person from given keys (deterministic; for tests and simulations).
    pub fn from_keys(person: SigningKey, instance: SigningKey, now_ms: u64) -> Result<Identity> {
        let certificate = Certificate::issue(
            &person,
            InstanceId(instance.verifying_key().to_bytes()),
            now_ms,
            None,
        )?;
        Ok(Identity {
            person_public: person.verifying_key().to_bytes(),
            person_key: Some(person),
            instance_key: instance,
            certificate,
            redeeming: std::sync::Arc::default(),
        })
    }

    /// A joined instance: its own key and the certificate its person issued for it.
    pub fn joined(instance_key: SigningKey, certificate: Certificate) -> Result<Identity> {
        if certificate.instance().0 != instance_key.verifying_key().to_bytes() {
            return Err(AccessError::malformed(
                "InstanceCertificate",
                "the certificate is for another instance key",
            ));
        }
        Ok(Identity {
            person_key: None,
            person_public: *certificate.person_key(),
            instance_key,
            certificate,
            redeeming: std::sync::Arc::default(),
        })
    }

    /// Claims the invitation whose secret hashes to `key` for one redemption at a time:
    /// `None` while another redemption of it runs (on any clone of this identity).
    pub(crate) fn claim_invitation(&self, key: [u8; 32]) -> Option<RedeemClaim> {
        let mut redeeming = self
            .redeeming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        redeeming.insert(key).then(|| RedeemClaim {
            key,
            redeeming: std::sync::Arc::clone(&self.redeeming),
        })
    }

    /// The person.
    pub fn person(&self) -> PersonId {
        PersonId::of_key(&self.person_public)
    }

    /// The person's public key.
    pub fn person_public(&self) -> &[u8; 32] {
        &self.person_public
    }

    /// Whether this instance holds the person key (it created the person).
    pub fn holds_person_key(&self) -> bool {
        self.person_key.is_some()
    }

    /// The person's secret key, if held here.
    pub fn person_key(&self) -> Result<&SigningKey> {
        self.person_key.as_ref().ok_or(AccessError::NoPersonKey)
    }

    /// This instance.
    pub fn instance(&self) -> InstanceId {
        self.certificate.instance()
    }

    /// This instance's secret key.
    pub fn instance_key(&self) -> &SigningKey {
        &self.instance_key
    }

    /// This instance's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The objects every peer may see about this identity: the `Person` and this instance's
    /// certificate. Store them in the shared set.
    pub fn public_objects(&self) -> Vec<Object> {
        vec![
            person_object(&self.person_public),
            self.certificate.object().clone(),
        ]
    }

    /// Certifies another instance key of this person (needs the person key).
    pub fn certify(&self, instance: InstanceId, now_ms: u64) -> Result<Certificate> {
        Certificate::issue(self.person_key()?, instance, now_ms, None)
    }

    /// Revokes an instance of this person (needs the person key). Store the revocation; it
    /// replicates to every peer, which refuses the instance from then on.
    pub fn revoke(&self, instance: InstanceId, now_ms: u64) -> Result<Revocation> {
        Revocation::issue(self.person_key()?, instance, now_ms)
    }

    /// Key rotation: a new instance key, certified as replacing the current one, and a
    /// revocation retiring the old key. Returns the revocation; `self` now uses the new key.
    pub fn rotate(&mut self, now_ms: u64) -> Result<Revocation> {
        let new_key = generate_key()?;
        let person = self.person_key()?;
        let certificate = Certificate::issue(
            person,
            InstanceId(new_key.verifying_key().to_bytes()),
            now_ms,
            Some(self.instance()),
        )?;
        let revocation = Revocation::issue(person, self.instance(), now_ms)?;
        self.instance_key = new_key;
        self.certificate = certificate;
        Ok(revocation)
    }

    /// The person key for backup, sealed with `passphrase` (Argon2id, XChaCha20-Poly1305).
    pub fn export_person_key(&self, passphrase: &str) -> Result<Vec<u8>> {
        secrets::seal(
            &self.person_key()?.to_bytes(),
            Some(passphrase),
            KdfCost::default(),
        )
    }

    /// Restores the person key from [`Identity::export_person_key`]'s output. It must be the
    /// key of this identity's person.
    pub fn import_person_key(&mut self, exported: &[u8], passphrase: &str) -> Result<()> {
        let bytes: [u8; 32] = secrets::open(exported, Some(passphrase))?
            .try_into()
            .map_err(|_| AccessError::Secrets("not a person key".into()))?;
        let key = SigningKey::from_bytes(&bytes);
        if key.verifying_key().to_bytes() != self.person_public {
            return Err(AccessError::Secrets(
                "the key belongs to another person".into(),
            ));
        }
        self.person_key = Some(key);
        Ok(())
    }

    fn to_secret_bytes(&self) -> Result<Vec<u8>> {
        let mut map = Map::new();
        if let Some(person) = &self.person_key {
            map.insert("person", person.to_bytes().to_vec());
        }
        map.insert("instance", self.instance_key.to_bytes().to_vec());
        map.insert("certificate", self.certificate.object().bytes().to_vec());
        Ok(dagcbor::encode(&Value::Map(map))?)
    }

    fn from_secret_bytes(bytes: &[u8]) -> Result<Identity> {
        let bad = |reason: &str| AccessError::Secrets(format!("stored identity: {reason}"));
        let value = dagcbor::decode_with_limits(bytes, &Limits::default())
            .map_err(|error| bad(&error.to_string()))?;
        let map = value.as_map().ok_or_else(|| bad("not a map"))?;
        let key = |field: &str| -> Result<Option<SigningKey>> {
            match map.get(field) {
                None => Ok(None),
                Some(Value::Bytes(bytes)) => {
                    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad(field))?;
                    Ok(Some(SigningKey::from_bytes(&bytes)))
                }
                Some(_) => Err(bad(field)),
            }
        };
        let instance = key("instance")?.ok_or_else(|| bad("no instance key"))?;
        let certificate = match map.get("certificate") {
            Some(Value::Bytes(bytes)) => Certificate::from_bytes(bytes)?,
            _ => return Err(bad("no certificate")),
        };
        let mut identity = Identity::joined(instance, certificate)?;
        if let Some(person) = key("person")? {
            if person.verifying_key().to_bytes() != identity.person_public {
                return Err(bad("the person key does not match the certificate"));
            }
            identity.person_key = Some(person);
        }
        Ok(identity)
    }

    /// Keeps the secrets in `store`'s instance-local area (never synced): plainly without a
    /// passphrase, sealed with one.
    pub async fn save(&self, store: &dyn Store, passphrase: Option<&str>) -> Result<()> {
        self.save_with_cost(store, passphrase, KdfCost::default())
            .await
    }

    /// [`Identity::save`] with an explicit key-derivation cost.
    pub async fn save_with_cost(
        &self,
        store: &dyn Store,
        passphrase: Option<&str>,
        cost: KdfCost,
    ) -> Result<()> {
        let envelope = secrets::seal(&self.to_secret_bytes()?, passphrase, cost)?;
        store.local_put(SECRETS_KEY, &envelope).await?;
        let objects: Vec<_> = self
            .public_objects()
            .into_iter()
            .map(|object| (object.cid().clone(), object.into_bytes()))
            .collect();
        store.put_many(&objects).await?;
        Ok(())
    }

    /// The identity saved in `store`, if any.
    pub async fn load(store: &dyn Store, passphrase: Option<&str>) -> Result<Option<Identity>> {
        match store.local_get(SECRETS_KEY).await? {
            None => Ok(None),
            Some(envelope) => {
                Identity::from_secret_bytes(&secrets::open(&envelope, passphrase)?).map(Some)
            }
        }
    }
}

/// One redemption of an invitation in progress; released when dropped.
pub(crate) struct RedeemClaim {
    key: [u8; 32],
    redeeming: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<[u8; 32]>>>,
}

impl Drop for RedeemClaim {
    fn drop(&mut self) {
        self.redeeming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}
