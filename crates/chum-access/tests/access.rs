//! Identities at rest, rotation, backup, invitations, and the visibility rule with groups.
#![allow(clippy::unwrap_used)]

use chum_access::grant::{Access, AccessRevocation, GroupMembers, group};
use chum_access::secrets::KdfCost;
use chum_access::{Identity, InstanceId, Invitation, Policy, VisibleSet, invite};
use chum_crdt::preset;
use chum_object::{Cid, Object, dagjson};
use chum_store::{MemoryStore, Scope, Store};
use futures::executor::block_on;

const CHEAP: KdfCost = KdfCost {
    memory_kib: 256,
    passes: 1,
    lanes: 1,
};

fn object(json: &str) -> (Cid, Vec<u8>) {
    let object = Object::from_value(&dagjson::from_str(json).unwrap()).unwrap();
    (object.cid().clone(), object.bytes().to_vec())
}

#[test]
fn identities_are_saved_plainly_or_sealed_and_load_back() {
    block_on(async {
        let store = MemoryStore::new();
        let identity = Identity::new_person(1).unwrap();
        assert!(Identity::load(&store, None).await.unwrap().is_none());
        identity.save_with_cost(&store, None, CHEAP).await.unwrap();
        assert_eq!(
            Identity::load(&store, None).await.unwrap().unwrap(),
            identity
        );
        // The public objects are shared; the secrets stay in the local area.
        for object in identity.public_objects() {
            assert!(store.has(object.cid()).await.unwrap());
        }

        identity
            .save_with_cost(&store, Some("hunter2"), CHEAP)
            .await
            .unwrap();
        assert!(
            Identity::load(&store, None).await.is_err(),
            "needs the passphrase"
        );
        assert!(Identity::load(&store, Some("wrong")).await.is_err());
        assert_eq!(
            Identity::load(&store, Some("hunter2"))
                .await
                .unwrap()
                .unwrap(),
            identity
        );
        let raw = store
            .local_get(chum_access::identity::SECRETS_KEY)
            .await
            .unwrap()
            .unwrap();
        let secret = identity.instance_key().to_bytes();
        assert!(
            !raw.windows(32).any(|w| w == secret),
            "sealed keys are not in the clear"
        );
    });
}

#[test]
fn rotation_revocation_and_person_key_backup() {
    let mut identity = Identity::new_person(1).unwrap();
    let old = identity.instance();
    let revocation = identity.rotate(2).unwrap();
    assert_ne!(identity.instance(), old);
    assert_eq!(identity.certificate().replaces(), Some(old));
    assert_eq!(revocation.instance(), old);
    assert_eq!(revocation.person(), identity.person());

    let exported = identity.export_person_key("backup words").unwrap();
    // A joined instance (no person key) can restore it from the backup, and only with the
    // right passphrase.
    let key = chum_access::keys::generate_key().unwrap();
    let certificate = identity
        .certify(InstanceId(key.verifying_key().to_bytes()), 3)
        .unwrap();
    let mut joined = Identity::joined(key, certificate).unwrap();
    assert!(
        joined.revoke(old, 4).is_err(),
        "no person key, no revocation"
    );
    assert!(joined.import_person_key(&exported, "wrong").is_err());
    joined.import_person_key(&exported, "backup words").unwrap();
    assert!(joined.holds_person_key());
    // Another person's backup is refused.
    let stranger = Identity::new_person(1).unwrap();
    let foreign = stranger.export_person_key("x").unwrap();
    assert!(joined.import_person_key(&foreign, "x").is_err());
}

#[test]
fn invitations_parse_strictly_and_are_used_once() {
    block_on(async {
        let store = MemoryStore::new();
        let identity = Identity::new_person(1).unwrap();
        let invitation = invite::create(
            &store,
            &identity,
            Some("ws://127.0.0.1:8765".into()),
            1_000,
            60_000,
        )
        .await
        .unwrap();
        let text = invitation.to_text();
        assert!(text.starts_with("chum-invite-b"));
        assert_eq!(
            Invitation::from_text(&format!("  {text}\n")).unwrap(),
            invitation
        );
        for bad in [
            "",
            "chum-invite-",
            "chum-invite-bxyz",
            "hello",
            &text[..text.len() - 3],
        ] {
            assert!(Invitation::from_text(bad).is_err(), "{bad:?}");
        }
        let joiner = InstanceId([7; 32]);
        let first = invite::redeem(&store, &identity, &invitation.secret, joiner, 2_000)
            .await
            .unwrap();
        assert_eq!(first.instance(), joiner);
        let again = invite::redeem(&store, &identity, &invitation.secret, joiner, 3_000)
            .await
            .unwrap();
        assert_eq!(again, first, "the same joiner may retry");
        let other = invite::redeem(
            &store,
            &identity,
            &invitation.secret,
            InstanceId([8; 32]),
            3_000,
        )
        .await;
        assert!(other.unwrap_err().to_string().contains("already used"));
        // Several uses when asked for; cancelled invitations are refused.
        let team = invite::create_with_uses(&store, &identity, None, 1_000, 60_000, 2)
            .await
            .unwrap();
        for joiner in [
            InstanceId([1; 32]),
            InstanceId([2; 32]),
            InstanceId([1; 32]),
        ] {
            invite::redeem(&store, &identity, &team.secret, joiner, 2_000)
                .await
                .unwrap();
        }
        let third =
            invite::redeem(&store, &identity, &team.secret, InstanceId([3; 32]), 2_000).await;
        assert!(third.unwrap_err().to_string().contains("as many instances"));
        assert!(invite::cancel(&store, &team).await.unwrap());
        let cancelled =
            invite::redeem(&store, &identity, &team.secret, InstanceId([1; 32]), 2_000).await;
        assert!(cancelled.unwrap_err().to_string().contains("cancelled"));
        let late = invite::create(&store, &identity, None, 1_000, 10)
            .await
            .unwrap();
        let expired = invite::redeem(&store, &identity, &late.secret, joiner, 2_000).await;
        assert!(expired.unwrap_err().to_string().contains("expired"));
        // A joined instance cannot invite: it has no person key.
        let joined = Identity::joined(chum_access::keys::generate_key().unwrap(), {
            let key = chum_access::keys::generate_key().unwrap();
            identity
                .certify(InstanceId(key.verifying_key().to_bytes()), 1)
                .unwrap()
        });
        assert!(joined.is_err(), "a certificate for another key is refused");
    });
}

#[test]
fn group_grants_cover_members_until_membership_or_grant_changes() {
    block_on(async {
        let store = MemoryStore::new();
        let owner = Identity::new_person(1).unwrap();
        let friend = Identity::new_person(1).unwrap();
        let stranger = Identity::new_person(1).unwrap();
        let key = owner.person_key().unwrap();
        let policy = Policy::new(&preset::seed());
        let conversation = preset::conversation()
            .id_object(&dagjson::from_str(r#"{"$type":"Conversation","id":"team"}"#).unwrap())
            .unwrap();
        let conversation = Object::from_value(&conversation).unwrap();
        let chat = conversation.cid().clone();
        let entry = object(&format!(
            r#"{{"$type":"Message","text":"hi team","conversation":{{"/":"{chat}"}}}}"#
        ));
        let private = object(r#"{"$type":"Message","text":"diary"}"#);
        let team = group(&owner.person(), "team").unwrap();
        let members = GroupMembers::issue(key, team.cid().clone(), &[friend.person()], 10).unwrap();
        let grant = Access::issue(key, chat.clone(), team.cid().clone(), 10).unwrap();
        let put = |objects: Vec<(Cid, Vec<u8>)>| {
            let store = &store;
            async move { store.put_scoped(&objects, Scope::Shared).await.unwrap() }
        };
        put(vec![
            (chat.clone(), conversation.bytes().to_vec()),
            entry.clone(),
            private.clone(),
            (team.cid().clone(), team.bytes().to_vec()),
            (
                members.object.cid().clone(),
                members.object.bytes().to_vec(),
            ),
            (grant.object.cid().clone(), grant.object.bytes().to_vec()),
        ])
        .await;
        let seen = |person: &Identity| {
            let store = &store;
            let policy = policy.clone();
            let person = person.person();
            let owner_key = *owner.person_public();
            async move {
                VisibleSet::compute(store, policy, owner_key, person)
                    .await
                    .unwrap()
            }
        };
        let view = seen(&friend).await;
        assert!(view.contains(&chat) && view.contains(&entry.0));
        assert!(view.contains(team.cid()) && view.contains(members.object.cid()));
        assert!(!view.contains(&private.0));
        let outsider = seen(&stranger).await;
        assert!(!outsider.contains(&chat) && !outsider.contains(&entry.0));
        assert!(!outsider.contains(&private.0));

        // A later statement without the friend removes the access.
        let later = GroupMembers::issue(key, team.cid().clone(), &[stranger.person()], 20).unwrap();
        put(vec![(
            later.object.cid().clone(),
            later.object.bytes().to_vec(),
        )])
        .await;
        assert!(!seen(&friend).await.contains(&entry.0));
        assert!(seen(&stranger).await.contains(&entry.0));

        // A statement signed by someone else than the owner does not count.
        let forged = GroupMembers::issue(
            friend.person_key().unwrap(),
            team.cid().clone(),
            &[friend.person()],
            30,
        )
        .unwrap();
        put(vec![(
            forged.object.cid().clone(),
            forged.object.bytes().to_vec(),
        )])
        .await;
        assert!(!seen(&friend).await.contains(&entry.0));

        // Revoking the grant hides the conversation from the group.
        let revocation = AccessRevocation::issue(key, grant.object.cid().clone(), 40).unwrap();
        put(vec![(
            revocation.object.cid().clone(),
            revocation.object.bytes().to_vec(),
        )])
        .await;
        assert!(!seen(&stranger).await.contains(&entry.0));
    });
}
