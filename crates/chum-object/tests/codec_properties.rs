//! Property tests and hostile inputs for the strict DAG-CBOR codec.
#![allow(clippy::unwrap_used)]

use chum_object::{Cid, Codec, Int, Limits, Map, Value, dagcbor, dagcbor::Rule, dagjson};
use proptest::prelude::*;

fn arb_cid() -> impl Strategy<Value = Cid> {
    (any::<[u8; 8]>(), any::<bool>())
        .prop_map(|(seed, raw)| Cid::hash(if raw { Codec::Raw } else { Codec::DagCbor }, &seed))
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| Value::Integer(Int::from_u64(n))),
        any::<u64>().prop_map(|n| Value::Integer(Int::negative_from_cbor(n))),
        any::<i8>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        ".{0,12}".prop_map(Value::from),
        arb_cid().prop_map(Value::Link),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec((".{0,6}", inner), 0..8)
                .prop_map(|entries| Value::Map(entries.into_iter().collect::<Map>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode(value in arb_value()) {
        let bytes = dagcbor::encode(&value).unwrap();
        prop_assert_eq!(dagcbor::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn dag_json_round_trips(value in arb_value()) {
        // Maps whose bytewise-first key is "/" may be unrepresentable in DAG-JSON.
        if let Ok(text) = dagjson::to_string(&value) {
            prop_assert_eq!(dagjson::from_str(&text).unwrap(), value);
        }
    }

    /// Any accepted byte string is the canonical encoding of what it decodes to, so a value
    /// has exactly one byte form.
    #[test]
    fn accepted_bytes_are_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(value) = dagcbor::decode(&bytes) {
            prop_assert_eq!(dagcbor::encode(&value).unwrap(), bytes);
        }
    }

    /// Validation without building accepts and refuses exactly what decoding does, with the
    /// same rule at the same offset — on valid encodings and on single-byte mutations of them.
    #[test]
    fn validation_agrees_with_decoding(value in arb_value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let bytes = dagcbor::encode(&value).unwrap();
        let mut mutated = bytes.clone();
        let i = at.index(mutated.len());
        mutated[i] = byte;
        for input in [&bytes, &mutated] {
            let limits = Limits::default();
            prop_assert_eq!(
                dagcbor::validate_with_limits(input, &limits).err(),
                dagcbor::decode_with_limits(input, &limits).err()
            );
        }
    }

    /// Mutating one byte of a valid encoding never yields a second encoding of the same value.
    #[test]
    fn no_second_encoding(value in arb_value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let bytes = dagcbor::encode(&value).unwrap();
        let mut mutated = bytes.clone();
        let i = at.index(mutated.len());
        mutated[i] = byte;
        if mutated != bytes && let Ok(other) = dagcbor::decode(&mutated) {
            prop_assert_ne!(&other, &value);
            prop_assert_eq!(dagcbor::encode(&other).unwrap(), mutated);
        }
    }
}

fn rule(bytes: &[u8]) -> Rule {
    dagcbor::decode(bytes).unwrap_err().rule
}

#[test]
fn hostile_inputs_fail_fast_without_allocating_the_claim() {
    // A list claiming 2^64-1 entries, a byte string claiming 4 GiB, a map claiming 2^32 pairs.
    assert_eq!(
        rule(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Rule::Truncated
    );
    assert_eq!(rule(&[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]), Rule::Truncated);
    assert_eq!(rule(&[0xbb, 0, 0, 0, 1, 0, 0, 0, 0]), Rule::Truncated);
    // 100,000 nested lists.
    let deep = vec![0x81u8; 100_000];
    assert_eq!(rule(&deep), Rule::TooDeep(64));
    // Oversized input is refused before parsing.
    let big = vec![0u8; (1 << 20) + 1];
    assert!(matches!(rule(&big), Rule::TooLarge { .. }));
    // A list longer than the collection limit.
    let limits = Limits {
        max_collection_len: 3,
        ..Limits::default()
    };
    let error = dagcbor::decode_with_limits(&[0x84, 1, 2, 3, 4], &limits).unwrap_err();
    assert!(matches!(
        error.rule,
        Rule::TooManyEntries { len: 4, limit: 3 }
    ));
    // A configured depth beyond the hard cap is capped.
    let limits = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    let error = dagcbor::decode_with_limits(&deep, &limits).unwrap_err();
    assert_eq!(error.rule, Rule::TooDeep(Limits::HARD_MAX_DEPTH));
    let deep_json = "[".repeat(100_000) + &"]".repeat(100_000);
    assert!(dagjson::from_str_with_limits(&deep_json, &limits).is_err());
    let deep_json = "{\"a\":".repeat(100_000);
    assert!(dagjson::from_str_with_limits(&deep_json, &limits).is_err());
}

#[test]
fn every_rule_is_named() {
    let cases: &[(&[u8], &str)] = &[
        (&[], "empty input"),
        (&[0x18, 0x05], "shortest form"),
        (&[0x5f, 0xff], "indefinite"),
        (
            &[0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02],
            "canonical order",
        ),
        (
            &[0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02],
            "duplicate map key \"a\"",
        ),
        (&[0xa1, 0x01, 0x02], "not text"),
        (&[0xf9, 0x3c, 0x00], "not 64-bit"),
        (&[0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], "NaN"),
        (&[0xc1, 0x01], "tag 1"),
        (&[0xd8, 0x2a, 0x41, 0x01], "invalid link"),
        (&[0x61, 0xff], "UTF-8"),
        (&[0xf7], "simple value 23"),
        (&[0x01, 0x01], "trailing"),
        (&[0x1c], "reserved"),
        (&[0x62, 0x61], "truncated"),
    ];
    for (bytes, expected) in cases {
        let message = dagcbor::decode(bytes).unwrap_err().to_string();
        assert!(
            message.contains(expected),
            "{bytes:02x?}: {message:?} should mention {expected:?}"
        );
    }
}

#[test]
fn encoder_refuses_what_decoders_would_refuse() {
    assert!(dagcbor::encode(&Value::Float(f64::NAN)).is_err());
    assert!(dagcbor::encode(&Value::Float(f64::INFINITY)).is_err());
    let mut deep = Value::Null;
    for _ in 0..65 {
        deep = Value::List(vec![deep]);
    }
    assert!(dagcbor::encode(&deep).is_err());
    let big = Value::Bytes(vec![0; 1 << 20]);
    assert!(dagcbor::encode(&big).is_err());
}
