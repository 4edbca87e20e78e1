//! `test-vectors/crdt.json`: version sets and the state each strategy must resolve them to, for
//! other implementations to check against. This test rebuilds every case and compares it with
//! the file; `CHUM_BLESS=1 cargo test -p chum-crdt --test vectors` rewrites the file.
#![allow(clippy::unwrap_used)]

mod support;

use chum_crdt::{Collection, Resolver, Timestamp, clock_value, entry_clock, preset};
use chum_object::recipe::Recipe;
use chum_object::{Map, Object, Value, dagjson};
use support::{Replica, object_id};

fn json(value: &Value) -> serde_json::Value {
    serde_json::from_str(&dagjson::to_string(value).unwrap()).unwrap()
}

fn exchange(a: &mut Replica, b: &mut Replica, now: u64) {
    let (a_copy, b_copy) = (a.clone(), b.clone());
    a.sync_from(&b_copy, now);
    b.sync_from(&a_copy, now);
}

fn case(
    name: &str,
    recipe: &Recipe,
    script: impl FnOnce(&mut Replica, &mut Replica, &chum_object::Cid),
) -> serde_json::Value {
    let of = object_id(recipe);
    let (mut a, mut b) = (Replica::new(recipe, 1, 0), Replica::new(recipe, 2, 0));
    script(&mut a, &mut b, &of);
    exchange(&mut a, &mut b, 1_000_000);
    // Every version, in CID order, with its DAG-JSON.
    let versions: Vec<serde_json::Value> = a
        .versions
        .iter()
        .map(|(cid, version)| serde_json::json!({ "cid": cid.to_string(), "version": json(&version.to_value()) }))
        .collect();
    // Check the set resolves the same from scratch.
    let fresh = support::resolve(
        recipe,
        &a.versions
            .iter()
            .map(|(c, v)| (c.clone(), v.clone()))
            .collect::<Vec<_>>(),
    );
    let state = fresh.state();
    assert_eq!(state, b.resolver.state());
    serde_json::json!({
        "name": name,
        "strategy": recipe.strategy.name(),
        "recipe": json(&recipe.to_value()),
        "versions": versions,
        "state": { "exists": state.exists, "fields": json(&Value::Map(state.fields)) },
        "heads": fresh.heads().map(|c| c.to_string()).collect::<Vec<_>>(),
    })
}

fn append_only_case() -> serde_json::Value {
    let recipe = preset::message();
    let conversation = object_id(&preset::conversation());
    let mut collection = Collection::new();
    let mut entries = Vec::new();
    for (i, (ms, text)) in [
        (30, "third"),
        (10, "first"),
        (20, "second"),
        (20, "second, other"),
    ]
    .iter()
    .enumerate()
    {
        let mut map = Map::new();
        map.insert("$type", "Message");
        map.insert("text", *text);
        map.insert("conversation", conversation.clone());
        map.insert("clock", clock_value(Timestamp::new(*ms, 0)));
        map.insert("author", vec![i as u8; 32]);
        let value = Value::Map(map);
        recipe.validate(&value).unwrap();
        let object = Object::from_value(&value).unwrap();
        collection.insert(entry_clock(&value), object.cid().clone());
        entries.push(serde_json::json!({ "cid": object.cid().to_string(), "entry": json(&value) }));
    }
    serde_json::json!({
        "name": "append-only-collection-order",
        "strategy": "append-only",
        "recipe": json(&recipe.to_value()),
        "collection": conversation.to_string(),
        "entries": entries,
        "order": collection.iter().map(|(_, cid)| cid.to_string()).collect::<Vec<_>>(),
    })
}

fn cases() -> serde_json::Value {
    let contact = preset::contact();
    let conversation = preset::conversation();
    let settings = preset::settings();
    let text = |s: &str| Value::from(s);
    let cases = vec![
        case(
            "last-write-concurrent-edits-greatest-wins",
            &conversation,
            |a, b, of| {
                a.write(of, [("title", "a")].into(), false, 1_000);
                b.write(
                    of,
                    [
                        ("title", text("b")),
                        ("members", Value::List(vec![text("x")])),
                    ]
                    .into(),
                    false,
                    1_000,
                );
            },
        ),
        case(
            "last-write-delete-wins-over-concurrent-edit",
            &conversation,
            |a, b, of| {
                a.write(of, [("title", "a")].into(), false, 1_000);
                exchange(a, b, 1_001);
                a.write(of, Map::new(), true, 2_000);
                b.write(of, [("title", "b")].into(), false, 3_000);
            },
        ),
        case(
            "last-write-edit-after-delete-restores",
            &conversation,
            |a, b, of| {
                a.write(of, [("title", "a")].into(), false, 1_000);
                a.write(of, Map::new(), true, 2_000);
                exchange(a, b, 2_001);
                b.write(of, [("title", "back")].into(), false, 3_000);
            },
        ),
        case(
            "field-merge-different-fields-both-survive",
            &contact,
            |a, b, of| {
                a.write(of, [("name", "Ann")].into(), false, 1_000);
                b.write(of, [("phone", "555")].into(), false, 1_500);
            },
        ),
        case(
            "field-merge-same-field-author-breaks-tie",
            &contact,
            |a, b, of| {
                a.write(of, [("name", "from a")].into(), false, 1_000);
                b.write(of, [("name", "from b")].into(), false, 1_000);
            },
        ),
        case(
            "field-merge-set-add-wins-over-concurrent-remove",
            &contact,
            |a, b, of| {
                a.write(
                    of,
                    [(
                        "tags",
                        Value::Map([("add", Value::List(vec![text("friend")]))].into()),
                    )]
                    .into(),
                    false,
                    1_000,
                );
                exchange(a, b, 1_001);
                let remove: Map = [("tags", a.resolver.set_update("tags", &[]))].into();
                a.write(of, remove, false, 2_000);
                b.write(
                    of,
                    [(
                        "tags",
                        Value::Map([("add", Value::List(vec![text("friend")]))].into()),
                    )]
                    .into(),
                    false,
                    2_000,
                );
            },
        ),
        case(
            "field-merge-edit-wins-over-concurrent-delete",
            &contact,
            |a, b, of| {
                a.write(of, [("name", "Ann")].into(), false, 1_000);
                exchange(a, b, 1_001);
                let body = a.resolver.tombstone_body();
                a.write(of, body, true, 2_000);
                b.write(of, [("phone", "555")].into(), false, 3_000);
            },
        ),
        case(
            "instance-local-resolves-like-last-write",
            &settings,
            |a, b, of| {
                a.write(of, [("value", 1)].into(), false, 1_000);
                b.write(of, [("value", 2)].into(), false, 2_000);
            },
        ),
        append_only_case(),
    ];
    serde_json::json!({
        "description": "Sets of chum version objects (DAG-JSON, with their CIDs) and the state each merge strategy resolves them to. State fields exclude $type and ID fields; set fields list their elements in DAG-CBOR byte order; heads are the versions no other names as a parent, in (clock, author, CID) order. The append-only case lists entries and their order in the collection (by clock, then CID). See docs/merge.md.",
        "cases": cases,
    })
}

#[test]
fn crdt_vectors_match_the_file() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors/crdt.json");
    let fresh = serde_json::to_string_pretty(&cases()).unwrap() + "\n";
    if std::env::var_os("CHUM_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path)
        .expect("test-vectors/crdt.json exists (CHUM_BLESS=1 writes it)");
    assert_eq!(
        stored, fresh,
        "test-vectors/crdt.json differs from what the code resolves"
    );
    // And the file's version sets, read back through the public decoders, resolve as stated.
    let file: serde_json::Value = serde_json::from_str(&stored).unwrap();
    for case in file["cases"].as_array().unwrap() {
        let recipe =
            Recipe::from_value(&dagjson::from_str(&case["recipe"].to_string()).unwrap()).unwrap();
        let Some(versions) = case["versions"].as_array() else {
            continue;
        };
        let mut resolver = Resolver::for_recipe(&recipe).unwrap();
        for item in versions {
            let value = dagjson::from_str(&item["version"].to_string()).unwrap();
            let object = Object::from_value(&value).unwrap();
            assert_eq!(object.cid().to_string(), item["cid"].as_str().unwrap());
            resolver
                .add(
                    object.cid(),
                    &chum_crdt::Version::from_value(&value).unwrap(),
                )
                .unwrap();
        }
        let state = resolver.state();
        assert_eq!(
            serde_json::Value::Bool(state.exists),
            case["state"]["exists"],
            "{}",
            case["name"]
        );
        assert_eq!(
            json(&Value::Map(state.fields)),
            case["state"]["fields"],
            "{}",
            case["name"]
        );
    }
}
