//! Persons, instances and their certificates.
//!
//! ```text
//! {"$type": "Person", "key": <32 bytes: the person's ed25519 public key>}
//! {"$type": "InstanceCertificate", "person": <link to the Person>, "personKey": <32 bytes>,
//!  "instance": <32 bytes: the instance's ed25519 public key>, "created": <ms since epoch>,
//!  "replaces": <32 bytes, optional: the instance key this one rotates>, "signature": <64 bytes>}
//! {"$type": "InstanceRevocation", "person": <link>, "personKey": <32 bytes>,
//!  "instance": <32 bytes>, "created": <ms>, "signature": <64 bytes>}
//! ```
//! A person *is* its key: [`PersonId`] is the CID of its `Person` object, which anyone can
//! compute from the key. Certificates and revocations are signed by the person key (see
//! `docs/security.md` for the rule), and are ordinary objects that replicate.

use std::fmt;
use std::str::FromStr;

use chum_crdt::InstanceId;
use chum_object::sign::SigningKey;
use chum_object::{Cid, CidError, Map, Object, Value};

use crate::error::{AccessError, Result};
use crate::fields::Fields;
use crate::signed;

/// The `$type` of person objects.
pub const PERSON_TYPE: &str = "Person";
/// The `$type` of instance certificates.
pub const CERTIFICATE_TYPE: &str = "InstanceCertificate";
/// The `$type` of instance revocations.
pub const REVOCATION_TYPE: &str = "InstanceRevocation";

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| AccessError::Random(error.to_string()))?;
    Ok(bytes)
}

/// A new ed25519 key from the operating system's random source.
pub fn generate_key() -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&random_bytes::<32>()?))
}

/// A person: the CID of its `Person` object (displayed as that CID).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersonId(pub Cid);

impl PersonId {
    /// The id of the person whose public key is `key`.
    pub fn of_key(key: &[u8; 32]) -> PersonId {
        PersonId(person_object(key).cid().clone())
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.0
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonId({})", self.0)
    }
}

impl FromStr for PersonId {
    type Err = CidError;
    fn from_str(text: &str) -> Result<PersonId, CidError> {
        Cid::from_str(text).map(PersonId)
    }
}

/// The `Person` object of a public key.
pub fn person_object(key: &[u8; 32]) -> Object {
    let mut map = Map::with_capacity(2);
    map.insert("$type", PERSON_TYPE);
    map.insert("key", key.to_vec());
    #[allow(clippy::expect_used)]
    Object::from_value(&Value::Map(map)).expect("a two-field map always encodes")
}

/// An instance id as text: its public key in base32 (multibase, `b…`); the same as its
/// `Display`.
pub fn instance_text(instance: &InstanceId) -> String {
    instance.to_string()
}

/// Parses [`instance_text`].
pub fn parse_instance(text: &str) -> Result<InstanceId> {
    text.parse()
        .map_err(|error: String| AccessError::malformed("instance id", error))
}

/// An instance certificate: the person vouches that an instance key belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    person_key: [u8; 32],
    instance: InstanceId,
    created_ms: u64,
    replaces: Option<InstanceId>,
    object: Object,
}

impl Certificate {
    /// Signs a certificate for `instance` with the person key.
    pub fn issue(
        person: &SigningKey,
        instance: InstanceId,
        created_ms: u64,
        replaces: Option<InstanceId>,
    ) -> Result<Certificate> {
        let person_key = person.verifying_key().to_bytes();
        let mut map = Map::new();
        map.insert("$type", CERTIFICATE_TYPE);
        map.insert("person", PersonId::of_key(&person_key).0);
        map.insert("personKey", person_key.to_vec());
        map.insert("instance", instance.0.to_vec());
        map.insert("created", created_ms);
        if let Some(old) = replaces {
            map.insert("replaces", old.0.to_vec());
        }
        let object = signed::seal(map, person)?;
        Ok(Certificate {
            person_key,
            instance,
            created_ms,
            replaces,
            object,
        })
    }

    /// Reads and verifies a certificate from its object value: shape, person link, signature.
    pub fn from_value(object: Object, value: &Value) -> Result<Certificate> {
        let fields = Fields::of(value, CERTIFICATE_TYPE)?;
        fields.only(&[
            "person",
            "personKey",
            "instance",
            "created",
            "replaces",
            "signature",
        ])?;
        let person_key = fields.signer()?;
        let instance = InstanceId(fields.key("instance")?);
        let created_ms = fields.int("created")?;
        let replaces = fields.optional_key("replaces")?.map(InstanceId);
        Ok(Certificate {
            person_key,
            instance,
            created_ms,
            replaces,
            object,
        })
    }

    /// Reads and verifies a certificate from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate> {
        let (object, value) =
            Object::from_bytes(bytes.to_vec(), &chum_object::Limits::default())
                .map_err(|error| AccessError::malformed(CERTIFICATE_TYPE, error.to_string()))?;
        Certificate::from_value(object, &value)
    }

    /// The person.
    pub fn person(&self) -> PersonId {
        PersonId::of_key(&self.person_key)
    }

    /// The person's public key.
    pub fn person_key(&self) -> &[u8; 32] {
        &self.person_key
    }

    /// The certified instance.
    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// When it was issued (ms since the Unix epoch).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// The instance key this certificate's key replaces (key rotation), if any.
    pub fn replaces(&self) -> Option<InstanceId> {
        self.replaces
    }

    /// The signed object.
    pub fn object(&self) -> &Object {
        &self.object
    }
}

/// A revocation: the person withdraws an instance's certificate. Peers refuse the instance
/// from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    person_key: [u8; 32],
    instance: InstanceId,
    object: Object,
}

impl Revocation {
    /// Signs a revocation of `instance` with the person key.
    pub fn issue(person: &SigningKey, instance: InstanceId, created_ms: u64) -> Result<Revocation> {
        let person_key = person.verifying_key().to_bytes();
        let mut map = Map::new();
        map.insert("$type", REVOCATION_TYPE);
        map.insert("person", PersonId::of_key(&person_key).0);
        map.insert("personKey", person_key.to_vec());
        map.insert("instance", instance.0.to_vec());
        map.insert("created", created_ms);
        let object = signed::seal(map, person)?;
        Ok(Revocation {
            person_key,
            instance,
            object,
        })
    }

    /// Reads and verifies a revocation from its object value.
    pub fn from_value(object: Object, value: &Value) -> Result<Revocation> {
        let fields = Fields::of(value, REVOCATION_TYPE)?;
        fields.only(&["person", "personKey", "instance", "created", "signature"])?;
        let person_key = fields.signer()?;
        let instance = InstanceId(fields.key("instance")?);
        fields.int("created")?;
        Ok(Revocation {
            person_key,
            instance,
            object,
        })
    }

    /// The revoking person.
    pub fn person(&self) -> PersonId {
        PersonId::of_key(&self.person_key)
    }

    /// The revoked instance.
    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// The signed object.
    pub fn object(&self) -> &Object {
        &self.object
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn certificates_verify_and_forgeries_do_not() {
        let person = SigningKey::from_bytes(&[1; 32]);
        let instance = InstanceId(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes());
        let cert = Certificate::issue(&person, instance, 1_000, None).unwrap();
        let read = Certificate::from_bytes(cert.object().bytes()).unwrap();
        assert_eq!(read, cert);
        assert_eq!(
            read.person(),
            PersonId::of_key(&person.verifying_key().to_bytes())
        );

        // Another person's key signing a certificate that names this person: refused.
        let stranger = SigningKey::from_bytes(&[3; 32]);
        let (_, value) =
            Object::from_bytes(cert.object().bytes().to_vec(), &Default::default()).unwrap();
        let mut map = value.as_map().unwrap().clone();
        map.remove("signature");
        let forged = signed::seal(map.clone(), &stranger).unwrap();
        assert!(matches!(
            Certificate::from_bytes(forged.bytes()),
            Err(AccessError::Signature { .. })
        ));
        // A changed field under the old signature: refused.
        let mut changed = value.as_map().unwrap().clone();
        changed.insert("created", 2_000u64);
        let changed = Object::from_value(&Value::Map(changed)).unwrap();
        assert!(Certificate::from_bytes(changed.bytes()).is_err());
        // An extra field: refused (one meaning per signature).
        let mut extra = value.as_map().unwrap().clone();
        extra.insert("admin", true);
        let extra = Object::from_value(&Value::Map(extra)).unwrap();
        assert!(matches!(
            Certificate::from_bytes(extra.bytes()),
            Err(AccessError::Malformed { .. })
        ));
    }

    #[test]
    fn instance_ids_round_trip_as_text() {
        let id = InstanceId([9; 32]);
        let text = instance_text(&id);
        assert!(text.starts_with('b'));
        assert_eq!(parse_instance(&text).unwrap(), id);
        assert!(parse_instance("bxyz").is_err());
    }
}
