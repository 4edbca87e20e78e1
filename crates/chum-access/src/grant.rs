//! Access grants, their revocations, groups, and the recipes of every type this crate defines.
//!
//! ```text
//! {"$type": "Access", "target": <link: an object or an ID hash>, "grantee": <link: a Person
//!  or a Group>, "person": <link: the granting Person>, "personKey": <32>, "created": <ms>,
//!  "signature": <64>}
//! {"$type": "AccessRevocation", "access": <link>, "person": <link>, "personKey": <32>,
//!  "created": <ms>, "signature": <64>}
//! {"$type": "Group", "owner": <link: Person>, "name": <text>}          (the group's identity)
//! {"$type": "GroupMembers", "group": <link>, "members": [<links: Persons>], "person": <link>,
//!  "personKey": <32>, "created": <ms>, "signature": <64>}
//! ```
//! A grant counts only when signed by the person whose data it shares (the sending instance's
//! person) and not revoked by it. A group's members are those of its owner's latest
//! `GroupMembers` statement (greatest `created`, then CID).

use chum_object::recipe::{Field, Kind, Recipe, Strategy};
use chum_object::sign::SigningKey;
use chum_object::{Cid, Map, Object, Value};
use chum_store::index::Acceptance;

use crate::error::{AccessError, Result};
use crate::fields::Fields;
use crate::keys::{CERTIFICATE_TYPE, PERSON_TYPE, PersonId, REVOCATION_TYPE};
use crate::signed;

/// The `$type` of grants.
pub const ACCESS_TYPE: &str = "Access";
/// The `$type` of grant revocations.
pub const ACCESS_REVOCATION_TYPE: &str = "AccessRevocation";
/// The `$type` of group identities.
pub const GROUP_TYPE: &str = "Group";
/// The `$type` of group membership statements.
pub const GROUP_MEMBERS_TYPE: &str = "GroupMembers";

/// Every type whose objects change who may see what (a new one makes a driver recompute).
pub const POLICY_TYPES: [&str; 5] = [
    ACCESS_TYPE,
    ACCESS_REVOCATION_TYPE,
    GROUP_MEMBERS_TYPE,
    REVOCATION_TYPE,
    CERTIFICATE_TYPE,
];

/// A grant: `grantee` may see `target` (see the crate docs for what that covers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The granted object or ID hash.
    pub target: Cid,
    /// A Person or a Group.
    pub grantee: Cid,
    /// The granting person's key.
    pub granter_key: [u8; 32],
    /// The signed object.
    pub object: Object,
}

impl Access {
    /// Signs a grant of `target` to `grantee` (a [`PersonId`]'s CID or a Group's CID).
    pub fn issue(
        person: &SigningKey,
        target: Cid,
        grantee: Cid,
        created_ms: u64,
    ) -> Result<Access> {
        let granter_key = person.verifying_key().to_bytes();
        let mut map = Map::new();
        map.insert("$type", ACCESS_TYPE);
        map.insert("target", target.clone());
        map.insert("grantee", grantee.clone());
        map.insert("person", PersonId::of_key(&granter_key).0);
        map.insert("personKey", granter_key.to_vec());
        map.insert("created", created_ms);
        let object = signed::seal(map, person)?;
        Ok(Access {
            target,
            grantee,
            granter_key,
            object,
        })
    }

    /// Reads and verifies a grant.
    pub fn from_value(object: Object, value: &Value) -> Result<Access> {
        let fields = Fields::of(value, ACCESS_TYPE)?;
        fields.only(&[
            "target",
            "grantee",
            "person",
            "personKey",
            "created",
            "signature",
        ])?;
        let granter_key = fields.signer()?;
        fields.int("created")?;
        Ok(Access {
            target: fields.link("target")?,
            grantee: fields.link("grantee")?,
            granter_key,
            object,
        })
    }

    /// The granting person.
    pub fn granter(&self) -> PersonId {
        PersonId::of_key(&self.granter_key)
    }
}

/// Withdraws a grant: nothing more is delivered under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRevocation {
    /// The revoked grant.
    pub access: Cid,
    /// The revoking person's key (must be the grant's granter to count).
    pub granter_key: [u8; 32],
    /// The signed object.
    pub object: Object,
}

impl AccessRevocation {
    /// Signs the revocation of the grant `access`.
    pub fn issue(person: &SigningKey, access: Cid, created_ms: u64) -> Result<AccessRevocation> {
        let granter_key = person.verifying_key().to_bytes();
        let mut map = Map::new();
        map.insert("$type", ACCESS_REVOCATION_TYPE);
        map.insert("access", access.clone());
        map.insert("person", PersonId::of_key(&granter_key).0);
        map.insert("personKey", granter_key.to_vec());
        map.insert("created", created_ms);
        let object = signed::seal(map, person)?;
        Ok(AccessRevocation {
            access,
            granter_key,
            object,
        })
    }

    /// Reads and verifies a grant revocation.
    pub fn from_value(object: Object, value: &Value) -> Result<AccessRevocation> {
        let fields = Fields::of(value, ACCESS_REVOCATION_TYPE)?;
        fields.only(&["access", "person", "personKey", "created", "signature"])?;
        let granter_key = fields.signer()?;
        fields.int("created")?;
        Ok(AccessRevocation {
            access: fields.link("access")?,
            granter_key,
            object,
        })
    }
}

/// A group's identity object (unsigned: it only names the owner and the group).
pub fn group(owner: &PersonId, name: &str) -> Result<Object> {
    let mut map = Map::new();
    map.insert("$type", GROUP_TYPE);
    map.insert("owner", owner.0.clone());
    map.insert("name", name);
    Ok(Object::from_value(&Value::Map(map))?)
}

/// The owner of a group identity object.
pub fn group_owner(value: &Value) -> Result<PersonId> {
    let fields = Fields::of(value, GROUP_TYPE)?;
    fields.only(&["owner", "name"])?;
    fields.text("name")?;
    Ok(PersonId(fields.link("owner")?))
}

/// A statement of a group's members, signed by its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembers {
    /// The group.
    pub group: Cid,
    /// Its members.
    pub members: Vec<PersonId>,
    /// When (orders statements).
    pub created_ms: u64,
    /// The signer's key (must be the group's owner to count).
    pub signer_key: [u8; 32],
    /// The signed object.
    pub object: Object,
}

impl GroupMembers {
    /// Signs a statement that `group`'s members are `members`.
    pub fn issue(
        owner: &SigningKey,
        group: Cid,
        members: &[PersonId],
        created_ms: u64,
    ) -> Result<GroupMembers> {
        let signer_key = owner.verifying_key().to_bytes();
        let mut map = Map::new();
        map.insert("$type", GROUP_MEMBERS_TYPE);
        map.insert("group", group.clone());
        map.insert(
            "members",
            members
                .iter()
                .map(|member| Value::Link(member.0.clone()))
                .collect::<Vec<_>>(),
        );
        map.insert("person", PersonId::of_key(&signer_key).0);
        map.insert("personKey", signer_key.to_vec());
        map.insert("created", created_ms);
        let object = signed::seal(map, owner)?;
        Ok(GroupMembers {
            group,
            members: members.to_vec(),
            created_ms,
            signer_key,
            object,
        })
    }

    /// Reads and verifies a membership statement.
    pub fn from_value(object: Object, value: &Value) -> Result<GroupMembers> {
        let fields = Fields::of(value, GROUP_MEMBERS_TYPE)?;
        fields.only(&[
            "group",
            "members",
            "person",
            "personKey",
            "created",
            "signature",
        ])?;
        let signer_key = fields.signer()?;
        let members = fields
            .map
            .get("members")
            .and_then(Value::as_list)
            .ok_or_else(|| AccessError::malformed(GROUP_MEMBERS_TYPE, "`members` must be a list"))?
            .iter()
            .map(|member| {
                member.as_link().cloned().map(PersonId).ok_or_else(|| {
                    AccessError::malformed(GROUP_MEMBERS_TYPE, "`members` must hold links")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupMembers {
            group: fields.link("group")?,
            members,
            created_ms: fields.int("created")?,
            signer_key,
            object,
        })
    }
}

/// Checks the signature of any object of this crate's signed types (and the shape of the
/// others); `Ok(None)` for objects of other types. Receivers run this on every object (see
/// [`SignatureCheck`]).
pub fn verify_value(value: &Value) -> Result<Option<&'static str>> {
    let Some(type_name) = value.type_name() else {
        return Ok(None);
    };
    let object = || Object::from_value(value).map_err(AccessError::from);
    match type_name {
        PERSON_TYPE => {
            let fields = Fields::of(value, PERSON_TYPE)?;
            fields.only(&["key"])?;
            fields.key("key")?;
            Ok(Some(PERSON_TYPE))
        }
        CERTIFICATE_TYPE => {
            crate::keys::Certificate::from_value(object()?, value).map(|_| Some(CERTIFICATE_TYPE))
        }
        REVOCATION_TYPE => {
            crate::keys::Revocation::from_value(object()?, value).map(|_| Some(REVOCATION_TYPE))
        }
        ACCESS_TYPE => Access::from_value(object()?, value).map(|_| Some(ACCESS_TYPE)),
        ACCESS_REVOCATION_TYPE => {
            AccessRevocation::from_value(object()?, value).map(|_| Some(ACCESS_REVOCATION_TYPE))
        }
        GROUP_TYPE => group_owner(value).map(|_| Some(GROUP_TYPE)),
        GROUP_MEMBERS_TYPE => {
            GroupMembers::from_value(object()?, value).map(|_| Some(GROUP_MEMBERS_TYPE))
        }
        _ => Ok(None),
    }
}

/// A receiver's acceptance rule: every object of a signed type must carry a valid signature
/// (a forged grant, certificate or revocation refuses the batch), then `inner` (e.g. a recipe
/// check) decides.
#[derive(Clone, Default)]
pub struct SignatureCheck {
    inner: Option<std::sync::Arc<dyn Acceptance>>,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("inner", &self.inner.is_some())
            .finish()
    }
}

impl SignatureCheck {
    /// Signature checks, then `inner`.
    pub fn new(inner: Option<std::sync::Arc<dyn Acceptance>>) -> SignatureCheck {
        SignatureCheck { inner }
    }
}

impl Acceptance for SignatureCheck {
    fn accept(&self, cid: &Cid, value: &Value) -> std::result::Result<(), String> {
        verify_value(value).map_err(|error| error.to_string())?;
        match &self.inner {
            Some(inner) => inner.accept(cid, value),
            None => Ok(()),
        }
    }
}

/// The recipes of this crate's types (all immutable: append-only), for a node's recipe check.
pub fn recipes() -> Vec<Recipe> {
    let key = || Kind::Bytes;
    let person = || Kind::Link(vec![PERSON_TYPE.into()]);
    let signed = |recipe: Recipe| {
        recipe
            .field(Field::new("person", person()))
            .field(Field::new("personKey", key()))
            .field(Field::new("created", Kind::Integer))
            .field(Field::new("signature", Kind::Bytes))
    };
    vec![
        Recipe::new(PERSON_TYPE, Strategy::AppendOnly).field(Field::new("key", key())),
        signed(
            Recipe::new(CERTIFICATE_TYPE, Strategy::AppendOnly)
                .field(Field::new("instance", key()))
                .field(Field::new("replaces", key()).optional()),
        ),
        signed(
            Recipe::new(REVOCATION_TYPE, Strategy::AppendOnly).field(Field::new("instance", key())),
        ),
        signed(
            Recipe::new(ACCESS_TYPE, Strategy::AppendOnly)
                .field(Field::new("target", Kind::Link(Vec::new())))
                .field(Field::new(
                    "grantee",
                    Kind::Link(vec![PERSON_TYPE.into(), GROUP_TYPE.into()]),
                )),
        ),
        signed(
            Recipe::new(ACCESS_REVOCATION_TYPE, Strategy::AppendOnly)
                .field(Field::new("access", Kind::Link(vec![ACCESS_TYPE.into()]))),
        ),
        Recipe::new(GROUP_TYPE, Strategy::AppendOnly)
            .field(Field::new("owner", person()))
            .field(Field::new("name", Kind::Text)),
        signed(
            Recipe::new(GROUP_MEMBERS_TYPE, Strategy::AppendOnly)
                .field(Field::new("group", Kind::Link(vec![GROUP_TYPE.into()])))
                .field(Field::new("members", Kind::List(Box::new(person())))),
        ),
    ]
}
