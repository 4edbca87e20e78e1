use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};

use super::*;
use crate::cid::Codec;

fn cid(seed: &[u8]) -> Cid {
    Cid::hash(Codec::DagCbor, seed)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    name: String,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Point(i32, i32),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meters(u16);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    flag: bool,
    small: i8,
    big: u64,
    negative: i64,
    wide: i128,
    ratio: f32,
    letter: char,
    text: String,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    plain_bytes: Vec<u8>,
    maybe: Option<u32>,
    nothing: Option<String>,
    unit: (),
    unit_struct: Unit,
    meters: Meters,
    pair: (u8, String),
    inner: Inner,
    shapes: Vec<Shape>,
    hash_map: HashMap<String, i32>,
    tree: BTreeMap<String, Vec<u8>>,
    by_shape: BTreeMap<Shape, u8>,
    link: Cid,
    links: Vec<Cid>,
    raw: Value,
}

fn everything() -> Everything {
    let raw = Value::List(vec![
        Value::Link(cid(b"raw")),
        Value::Bytes(vec![0, 255]),
        Value::Integer(Int::MIN),
        Value::Integer(Int::MAX),
        Value::Map([("k", Value::Null)].into()),
    ]);
    Everything {
        flag: true,
        small: -8,
        big: u64::MAX,
        negative: i64::MIN,
        wide: -(1i128 << 64),
        ratio: 0.1,
        letter: 'é',
        text: "hello".into(),
        blob: vec![1, 2, 3],
        plain_bytes: vec![4, 5],
        maybe: Some(7),
        nothing: None,
        unit: (),
        unit_struct: Unit,
        meters: Meters(300),
        pair: (9, "nine".into()),
        inner: Inner {
            name: "in".into(),
            tags: vec!["a".into(), "b".into()],
        },
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.5),
            Shape::Point(-1, 2),
            Shape::Rect { w: 3, h: 4 },
        ],
        hash_map: [("x".to_owned(), -1), ("yy".to_owned(), 2)].into(),
        tree: [("b".to_owned(), vec![1]), ("a".to_owned(), vec![])].into(),
        by_shape: [(Shape::Empty, 1)].into(),
        link: cid(b"link"),
        links: vec![cid(b"1"), cid(b"2")],
        raw,
    }
}

impl Eq for Shape {}
impl PartialOrd for Shape {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Shape {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        format!("{self:?}").cmp(&format!("{other:?}"))
    }
}

#[test]
fn struct_with_every_field_kind_round_trips() {
    let original = everything();
    let value = to_value(&original).unwrap();
    let map = value.as_map().unwrap();
    assert_eq!(map.get("flag"), Some(&Value::Bool(true)));
    assert_eq!(map.get("big"), Some(&Value::Integer(Int::from(u64::MAX))));
    assert_eq!(map.get("wide"), Some(&Value::Integer(Int::MIN)));
    assert_eq!(map.get("blob"), Some(&Value::Bytes(vec![1, 2, 3])));
    assert_eq!(
        map.get("plain_bytes"),
        Some(&Value::List(vec![4.into(), 5.into()]))
    );
    assert_eq!(map.get("maybe"), Some(&Value::from(7)));
    assert_eq!(map.get("nothing"), Some(&Value::Null));
    assert_eq!(map.get("unit"), Some(&Value::Null));
    assert_eq!(map.get("unit_struct"), Some(&Value::Null));
    assert_eq!(map.get("meters"), Some(&Value::from(300)));
    assert_eq!(map.get("letter"), Some(&Value::from("é")));
    assert_eq!(map.get("link"), Some(&Value::Link(cid(b"link"))));
    assert_eq!(map.get("raw"), Some(&original.raw));
    assert_eq!(
        map.get("by_shape"),
        Some(&Value::Map([("Empty", 1)].into()))
    );
    let shapes = Value::List(vec![
        Value::from("Empty"),
        Value::Map([("Circle", Value::Float(1.5))].into()),
        Value::Map([("Point", Value::List(vec![(-1).into(), 2.into()]))].into()),
        Value::Map([("Rect", Value::Map([("w", 3), ("h", 4)].into()))].into()),
    ]);
    assert_eq!(map.get("shapes"), Some(&shapes));

    let back: Everything = from_value(value.clone()).unwrap();
    assert_eq!(back, original);
    let borrowed: Everything = from_value_ref(&value).unwrap();
    assert_eq!(borrowed, original);
    // And through serde_json, where links are text and bytes are lists of integers.
    let json = serde_json::to_string(&original).unwrap();
    assert!(
        json.contains(&format!("\"link\":\"{}\"", cid(b"link"))),
        "{json}"
    );
    let from_json: Everything = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json.link, original.link);
    assert_eq!(from_json.blob, original.blob);
}

#[test]
fn borrowed_deserialization_borrows_text_and_bytes() {
    #[derive(Deserialize)]
    struct View<'a> {
        name: &'a str,
        data: &'a [u8],
        #[serde(borrow)]
        keys: BTreeMap<&'a str, bool>,
    }
    let value = Value::Map(
        [
            ("name", Value::from("n")),
            ("data", Value::Bytes(vec![7])),
            ("keys", Value::Map([("a", true)].into())),
        ]
        .into(),
    );
    let view: View<'_> = from_value_ref(&value).unwrap();
    assert_eq!((view.name, view.data), ("n", &[7u8][..]));
    assert_eq!(view.keys.get("a"), Some(&true));
    // Owned conversion cannot hand out borrows.
    assert!(from_value::<serde_json::Value>(Value::from("x")).is_ok());
}

#[test]
fn links_go_to_cid_and_value_and_text_when_asked() {
    let link = cid(b"x");
    assert_eq!(to_value(&link).unwrap(), Value::Link(link.clone()));
    assert_eq!(from_value::<Cid>(Value::Link(link.clone())).unwrap(), link);
    assert_eq!(
        from_value::<Value>(Value::Link(link.clone())).unwrap(),
        Value::Link(link.clone())
    );
    assert_eq!(
        from_value::<String>(Value::Link(link.clone())).unwrap(),
        link.to_string()
    );
    // Strict: text or bytes are not links to our deserializer ...
    let error = from_value::<Cid>(Value::from(link.to_string())).unwrap_err();
    assert_eq!(error.to_string(), "expected a link, found text");
    assert!(
        from_value::<u64>(Value::Link(link.clone()))
            .unwrap_err()
            .to_string()
            .contains("link")
    );
    // ... but other formats carry CIDs as text (or bytes in compact formats).
    let json = serde_json::to_string(&link).unwrap();
    assert_eq!(json, format!("\"{link}\""));
    assert_eq!(serde_json::from_str::<Cid>(&json).unwrap(), link);
    assert!(serde_json::from_str::<Cid>("\"bafy\"").is_err());
    let value = Value::List(vec![Value::Link(link.clone())]);
    let json = serde_json::to_string(&value).unwrap();
    assert_eq!(json, format!("[\"{link}\"]"));
    // CIDs as map keys use their text form.
    let keyed: BTreeMap<Cid, u8> = [(link.clone(), 1)].into();
    let value = to_value(&keyed).unwrap();
    assert_eq!(value, Value::Map([(link.to_string(), 1)].into()));
    assert_eq!(from_value::<BTreeMap<Cid, u8>>(value).unwrap(), keyed);
}

#[test]
fn links_survive_internally_tagged_and_untagged_enums() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "$type")]
    enum Typed {
        Post { parent: Cid, body: Value },
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Link(Cid),
        Number(u64),
    }
    let post = Typed::Post {
        parent: cid(b"p"),
        body: Value::List(vec![Value::Link(cid(b"b")), Value::Bytes(vec![1])]),
    };
    let value = to_value(&post).unwrap();
    assert_eq!(value.type_name(), Some("Post"));
    assert_eq!(from_value::<Typed>(value).unwrap(), post);
    for either in [Either::Link(cid(b"e")), Either::Number(5)] {
        assert_eq!(
            from_value::<Either>(to_value(&either).unwrap()).unwrap(),
            either
        );
    }
}

#[test]
fn integers_at_the_boundaries() {
    assert_eq!(
        to_value(&u64::MAX).unwrap(),
        Value::Integer(Int::from(u64::MAX))
    );
    assert_eq!(
        to_value(&i64::MIN).unwrap(),
        Value::Integer(Int::from(i64::MIN))
    );
    let min = -(1i128 << 64);
    let max = (1i128 << 64) - 1;
    assert_eq!(to_value(&min).unwrap(), Value::Integer(Int::MIN));
    assert_eq!(to_value(&max).unwrap(), Value::Integer(Int::MAX));
    assert_eq!(to_value(&(max as u128)).unwrap(), Value::Integer(Int::MAX));
    for bad in [min - 1, max + 1] {
        let error = to_value(&bad).unwrap_err().to_string();
        assert!(error.contains("outside the DAG-CBOR range"), "{error}");
    }
    assert!(to_value(&(1u128 << 64)).is_err());
    assert!(to_value(&u128::MAX).is_err());

    assert_eq!(
        from_value::<u64>(Value::Integer(Int::MAX)).unwrap(),
        u64::MAX
    );
    assert_eq!(from_value::<i64>(Value::from(i64::MIN)).unwrap(), i64::MIN);
    assert_eq!(from_value::<i128>(Value::Integer(Int::MIN)).unwrap(), min);
    assert_eq!(
        from_value::<u128>(Value::Integer(Int::MAX)).unwrap(),
        max as u128
    );
    assert_eq!(
        from_value::<Int>(Value::Integer(Int::MIN)).unwrap(),
        Int::MIN
    );
    assert!(from_value::<i64>(Value::Integer(Int::MAX)).is_err());
    assert!(from_value::<u64>(Value::from(-1)).is_err());
    let error = from_value::<u8>(Value::from(256)).unwrap_err().to_string();
    assert_eq!(error, "invalid value: integer `256`, expected u8");
    // Integers may be read as floats, never floats as integers.
    assert_eq!(from_value::<f64>(Value::from(3)).unwrap(), 3.0);
    assert!(from_value::<u32>(Value::Float(3.0)).is_err());
    // Value writes every integer to serde_json (which reads back only what fits i64/u64).
    let json = serde_json::to_string(&Value::Integer(Int::MIN)).unwrap();
    assert_eq!(json, "-18446744073709551616");
    let json = serde_json::to_string(&Value::Integer(Int::MAX)).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        Value::Integer(Int::MAX)
    );
    // Int asks for an i128, so serde_json reads all of it.
    assert_eq!(
        serde_json::from_str::<Int>("-18446744073709551616").unwrap(),
        Int::MIN
    );
    assert!(serde_json::from_str::<Int>("18446744073709551616").is_err());
    let error = from_value::<Int>(Value::Link(cid(b"i")))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("invalid type: link, expected an integer"),
        "{error}"
    );
}

#[test]
fn non_finite_floats_are_errors() {
    #[derive(Serialize)]
    struct Ratio {
        ratio: f64,
    }
    let error = to_value(&Ratio { ratio: f64::NAN }).unwrap_err();
    assert_eq!(
        error.to_string(),
        "float NaN is not allowed: DAG-CBOR floats must be finite at `ratio`"
    );
    assert!(to_value(&f32::INFINITY).is_err());
    assert!(to_value(&f64::NEG_INFINITY).is_err());
    assert_eq!(to_value(&-0.0f64).unwrap(), Value::Float(-0.0));
}

#[test]
fn unknown_fields_are_ignored_and_missing_ones_reported() {
    let value = Value::Map(
        [
            ("name", Value::from("n")),
            ("tags", Value::List(vec![])),
            (
                "extra",
                Value::List(vec![Value::Link(cid(b"z")), Value::Bytes(vec![])]),
            ),
        ]
        .into(),
    );
    let inner: Inner = from_value(value).unwrap();
    assert_eq!(
        inner,
        Inner {
            name: "n".into(),
            tags: vec![]
        }
    );
    let error = from_value::<Inner>(Value::Map([("name", "n")].into())).unwrap_err();
    assert_eq!(error.to_string(), "missing field `tags`");
}

#[test]
fn wrong_types_name_what_and_where() {
    let mut value = to_value(&everything()).unwrap();
    let Value::Map(map) = &mut value else {
        panic!("a map")
    };
    let Some(Value::Map(inner)) = map.get_mut("inner") else {
        panic!("inner")
    };
    inner.insert("tags", Value::List(vec!["ok".into(), Value::from(5)]));
    let error = from_value::<Everything>(value).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid type: integer `5`, expected a string at `inner.tags[1]`"
    );

    let error = from_value::<Inner>(Value::List(vec![]))
        .unwrap_err()
        .to_string();
    assert_eq!(error, "invalid type: sequence, expected struct Inner");
    let error = from_value::<Shape>(Value::from("Hexagon"))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("unknown variant `Hexagon`, expected one of"),
        "{error}"
    );
    let error = from_value::<Shape>(Value::from(1)).unwrap_err().to_string();
    assert_eq!(
        error,
        "expected an enum (text or a map with one entry), found integer"
    );
    let error = from_value::<Shape>(Value::Map([("Circle", "x")].into())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid type: string \"x\", expected f64 at `Circle`"
    );
    let error = from_value::<Shape>(Value::Map([("Empty", 1)].into())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unit variant `Empty` must be written as text, not as a map"
    );
    let error = from_value::<(u8, u8)>(Value::List(vec![1.into(); 3])).unwrap_err();
    assert_eq!(error.to_string(), "list has 3 elements, only 2 expected");
    let error = from_value::<Vec<u8>>(Value::Bytes(vec![1]))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("invalid type: byte array"), "{error}");
    let weird_key = Value::Map([("a.b", Value::from("x"))].into());
    let error = from_value::<HashMap<String, u8>>(weird_key).unwrap_err();
    assert!(error.to_string().ends_with(r#"at `["a.b"]`"#), "{error}");
}

#[test]
fn map_keys_must_be_text_and_unique() {
    let error = to_value(&HashMap::from([(1u8, 2u8)])).unwrap_err();
    assert_eq!(error.to_string(), "map key must be text, found integer");
    let error = to_value(&BTreeMap::from([(Some(vec![1u8]), 2u8)])).unwrap_err();
    assert_eq!(error.to_string(), "map key must be text, found list");
    let error = to_value(&BTreeMap::from([((), 1)])).unwrap_err();
    assert_eq!(error.to_string(), "map key must be text, found null");
    assert_eq!(
        to_value(&BTreeMap::from([('c', 1)])).unwrap(),
        Value::Map([("c", 1)].into())
    );

    #[derive(Serialize)]
    struct Clash {
        a: u8,
        #[serde(flatten)]
        rest: BTreeMap<String, u8>,
    }
    let clash = Clash {
        a: 1,
        rest: [("a".to_owned(), 2)].into(),
    };
    assert_eq!(
        to_value(&clash).unwrap_err().to_string(),
        "duplicate map key \"a\""
    );
    let error = serde_json::from_str::<Value>(r#"{"a": 1, "a": 2}"#).unwrap_err();
    assert!(error.to_string().contains("duplicate map key"), "{error}");
}

#[test]
fn options_units_and_newtypes() {
    assert_eq!(from_value::<Option<u8>>(Value::Null).unwrap(), None);
    assert_eq!(from_value::<Option<u8>>(Value::from(1)).unwrap(), Some(1));
    assert_eq!(from_value::<()>(Value::Null).unwrap(), ());
    assert!(from_value::<()>(Value::from(false)).is_err());
    assert_eq!(from_value::<Meters>(Value::from(2)).unwrap(), Meters(2));
    assert_eq!(from_value::<Unit>(Value::Null).unwrap(), Unit);
    assert_eq!(from_value::<char>(Value::from("z")).unwrap(), 'z');
    assert!(from_value::<char>(Value::from("zz")).is_err());
    assert_eq!(
        from_value::<Map>(Value::Map([("a", 1)].into())).unwrap(),
        [("a", 1)].into()
    );
    assert!(from_value::<Map>(Value::List(vec![])).is_err());
    // serde_bytes reads bytes, and also a list of integers.
    let bytes: serde_bytes::ByteBuf = from_value(Value::List(vec![1.into(), 2.into()])).unwrap();
    assert_eq!(bytes.into_vec(), vec![1, 2]);
    let value = Value::from(5);
    assert_eq!(u8::deserialize((&value).into_deserializer()).unwrap(), 5);
    assert_eq!(u8::deserialize(value.into_deserializer()).unwrap(), 5);
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (any::<bool>(), any::<u64>()).prop_map(|(negative, n)| Value::Integer(if negative {
            Int::negative_from_cbor(n)
        } else {
            Int::from_u64(n)
        })),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        ".{0,8}".prop_map(Value::from),
        (any::<bool>(), any::<[u8; 4]>()).prop_map(|(raw, seed)| {
            Value::Link(Cid::hash(
                if raw { Codec::Raw } else { Codec::DagCbor },
                &seed,
            ))
        }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec((".{0,6}", inner), 0..6)
                .prop_map(|entries| Value::Map(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn every_value_round_trips(value in arb_value()) {
        prop_assert_eq!(&to_value(&value).unwrap(), &value);
        prop_assert_eq!(&from_value::<Value>(value.clone()).unwrap(), &value);
        prop_assert_eq!(&from_value_ref::<Value>(&value).unwrap(), &value);
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Holder { value: Value, list: Vec<Value> }
        let holder = Holder { value: value.clone(), list: vec![value.clone(), Value::Null] };
        prop_assert_eq!(from_value::<Holder>(to_value(&holder).unwrap()).unwrap(), holder);
    }
}
