//! The merge scenarios the issue names, each on two replicas.
#![allow(clippy::unwrap_used)]

mod support;

use chum_crdt::{Clock, ClockError, InstanceId, Timestamp, Version, preset};
use chum_object::{Map, Value};
use support::{Replica, object_id};

fn text(s: &str) -> Value {
    Value::from(s)
}

fn exchange(a: &mut Replica, b: &mut Replica, now: u64) {
    let (a_copy, b_copy) = (a.clone(), b.clone());
    a.sync_from(&b_copy, now);
    b.sync_from(&a_copy, now);
}

#[test]
fn concurrent_edits_of_different_contact_fields_both_survive() {
    let recipe = preset::contact();
    let of = object_id(&recipe);
    let (mut a, mut b) = (Replica::new(&recipe, 1, 0), Replica::new(&recipe, 2, 0));
    a.write(&of, [("name", "Ann")].into(), false, 1_000);
    exchange(&mut a, &mut b, 1_001);
    a.write(&of, [("name", "Anna")].into(), false, 2_000);
    b.write(&of, [("phone", "555-0100")].into(), false, 2_000);
    exchange(&mut a, &mut b, 3_000);
    let state = a.resolver.state();
    assert_eq!(state, b.resolver.state());
    assert_eq!(state.fields.get("name"), Some(&text("Anna")));
    assert_eq!(state.fields.get("phone"), Some(&text("555-0100")));
    assert!(a.resolver.conflicts().is_empty());
}

#[test]
fn concurrent_edits_of_the_same_field_resolve_identically() {
    let recipe = preset::contact();
    let of = object_id(&recipe);
    let (mut a, mut b) = (Replica::new(&recipe, 1, 0), Replica::new(&recipe, 2, 0));
    a.write(&of, [("name", "from a")].into(), false, 5_000);
    b.write(&of, [("name", "from b")].into(), false, 5_000);
    exchange(&mut a, &mut b, 6_000);
    assert_eq!(a.resolver.state(), b.resolver.state());
    // Same clock: the author breaks the tie (b's id is greater).
    assert_eq!(a.resolver.state().fields.get("name"), Some(&text("from b")));
    let conflicts = a.resolver.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].value, text("from a"));
    assert_eq!(conflicts[0].field.as_deref(), Some("name"));
}

#[test]
fn a_replica_an_hour_ahead_does_not_win_forever() {
    let recipe = preset::conversation();
    let of = object_id(&recipe);
    let hour = 3_600_000;
    // With the default bound, the hour-ahead clock is refused and drags nobody forward.
    let mut clock = Clock::new();
    let ahead = Timestamp::new(10_000 + hour, 0);
    assert!(matches!(
        clock.observe(ahead, 10_000),
        Err(ClockError::TooFarAhead { .. })
    ));
    assert_eq!(clock.tick(10_001).unwrap(), Timestamp::new(10_001, 0));
    // With a bound that admits it, the ahead version wins only until someone who has seen it
    // writes again: later writes order after it.
    let mut fast = Replica::new(&recipe, 9, hour as i64);
    let mut normal = Replica::new(&recipe, 1, 0);
    fast.write(&of, [("title", "fast clock")].into(), false, 10_000);
    normal.sync_from(&fast, 10_000);
    assert_eq!(
        normal.resolver.state().fields.get("title"),
        Some(&text("fast clock"))
    );
    normal.write(&of, [("title", "later edit")].into(), false, 20_000);
    fast.sync_from(&normal, 20_000);
    for replica in [&normal, &fast] {
        assert_eq!(
            replica.resolver.state().fields.get("title"),
            Some(&text("later edit"))
        );
    }
}

#[test]
fn remove_against_a_concurrent_add_keeps_the_add() {
    let recipe = preset::contact();
    let of = object_id(&recipe);
    let (mut a, mut b) = (Replica::new(&recipe, 1, 0), Replica::new(&recipe, 2, 0));
    let tags = |r: &Replica, wanted: &[&str]| -> Map {
        let wanted: Vec<Value> = wanted.iter().map(|t| text(t)).collect();
        [("tags", r.resolver.set_update("tags", &wanted))].into()
    };
    let body = tags(&a, &["friend"]);
    a.write(&of, body, false, 1_000);
    exchange(&mut a, &mut b, 1_001);
    // a removes "friend"; b concurrently adds "friend" again (a new addition a has not seen)
    // and "work". Let b's removal-free re-add be a fresh tag by clearing and re-adding.
    let body = tags(&a, &[]);
    a.write(&of, body, false, 2_000);
    b.write(
        &of,
        [(
            "tags",
            Value::Map([("add", Value::List(vec![text("friend"), text("work")]))].into()),
        )]
        .into(),
        false,
        2_000,
    );
    exchange(&mut a, &mut b, 3_000);
    let expected = Value::List(vec![text("work"), text("friend")]);
    assert_eq!(a.resolver.state().fields.get("tags"), Some(&expected));
    assert_eq!(a.resolver.state(), b.resolver.state());
}

#[test]
fn a_removed_element_never_returns_when_an_older_branch_merges() {
    let recipe = preset::contact();
    let of = object_id(&recipe);
    let (mut a, mut b, mut c) = (
        Replica::new(&recipe, 1, 0),
        Replica::new(&recipe, 2, 0),
        Replica::new(&recipe, 3, 0),
    );
    let add = Value::Map([("add", Value::List(vec![text("x")]))].into());
    a.write(&of, [("tags", add)].into(), false, 1_000);
    b.sync_from(&a, 1_001);
    c.sync_from(&a, 1_001);
    // c wanders off with an older branch that still holds "x" (it edits another field).
    c.write(&of, [("name", "c")].into(), false, 1_500);
    // a removes "x".
    let body: Map = [("tags", a.resolver.set_update("tags", &[]))].into();
    a.write(&of, body, false, 2_000);
    b.sync_from(&a, 2_001);
    // The older branch merges in much later.
    b.sync_from(&c, 9_000);
    a.sync_from(&c, 9_000);
    for replica in [&a, &b] {
        let state = replica.resolver.state();
        assert_eq!(
            state.fields.get("tags"),
            Some(&Value::List(vec![])),
            "x must stay removed"
        );
        assert_eq!(state.fields.get("name"), Some(&text("c")));
    }
}

#[test]
fn delete_against_concurrent_edit_last_write_delete_wins() {
    let recipe = preset::conversation();
    let of = object_id(&recipe);
    let (mut a, mut b) = (Replica::new(&recipe, 1, 0), Replica::new(&recipe, 2, 0));
    a.write(&of, [("title", "hello")].into(), false, 1_000);
    exchange(&mut a, &mut b, 1_001);
    a.write(&of, Map::new(), true, 2_000);
    b.write(
        &of,
        [("title", "edited later by clock")].into(),
        false,
        5_000,
    );
    exchange(&mut a, &mut b, 6_000);
    for replica in [&a, &b] {
        assert!(replica.resolver.is_deleted());
        assert!(!replica.resolver.state().exists);
    }
    // An edit made after seeing the delete brings it back.
    b.write(&of, [("title", "restored")].into(), false, 7_000);
    a.sync_from(&b, 7_001);
    assert_eq!(
        a.resolver.state().fields.get("title"),
        Some(&text("restored"))
    );
}

#[test]
fn delete_against_concurrent_edit_field_merge_edit_wins() {
    let recipe = preset::contact();
    let of = object_id(&recipe);
    let (mut a, mut b) = (Replica::new(&recipe, 1, 0), Replica::new(&recipe, 2, 0));
    a.write(&of, [("name", "Ann"), ("phone", "1")].into(), false, 1_000);
    exchange(&mut a, &mut b, 1_001);
    let body = a.resolver.tombstone_body();
    a.write(&of, body, true, 5_000);
    b.write(&of, [("phone", "2")].into(), false, 2_000);
    exchange(&mut a, &mut b, 6_000);
    for replica in [&a, &b] {
        let state = replica.resolver.state();
        assert!(state.exists, "the concurrent edit keeps the contact");
        assert_eq!(
            state.fields.get("name"),
            None,
            "the delete removed what it saw"
        );
        assert_eq!(
            state.fields.get("phone"),
            None,
            "phone=2 is older than the delete's unset"
        );
    }
    // Had the edit been later than the delete, its value would survive too.
    let (mut a, mut b) = (Replica::new(&recipe, 1, 0), Replica::new(&recipe, 2, 0));
    a.write(&of, [("name", "Ann")].into(), false, 1_000);
    exchange(&mut a, &mut b, 1_001);
    let body = a.resolver.tombstone_body();
    a.write(&of, body, true, 2_000);
    b.write(&of, [("phone", "2")].into(), false, 3_000);
    exchange(&mut a, &mut b, 6_000);
    assert_eq!(a.resolver.state().fields.get("phone"), Some(&text("2")));
    assert_eq!(a.resolver.state(), b.resolver.state());
    // A delete nobody edits against deletes.
    let body = a.resolver.tombstone_body();
    a.write(&of, body, true, 7_000);
    assert!(a.resolver.is_deleted());
}

#[test]
fn versions_of_another_object_are_refused() {
    let recipe = preset::contact();
    let of = object_id(&recipe);
    let mut resolver = chum_crdt::Resolver::for_recipe(&recipe).unwrap();
    let v1 = Version::new(
        of.clone(),
        vec![],
        Timestamp::new(1, 0),
        InstanceId([1; 32]),
        Map::new(),
    );
    resolver.add(&v1.cid().unwrap(), &v1).unwrap();
    let other = Version::new(
        v1.cid().unwrap(),
        vec![],
        Timestamp::new(1, 0),
        InstanceId([1; 32]),
        Map::new(),
    );
    assert!(resolver.add(&other.cid().unwrap(), &other).is_err());
    assert!(chum_crdt::Resolver::for_recipe(&preset::message()).is_err());
}
