//! Frozen format vectors: chum's own (`test-vectors/objects.json`, generated with an independent
//! IPLD implementation) and the IPLD project's codec fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use chum_object::{Cid, Codec, dagcbor, dagjson};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

#[test]
fn chum_object_vectors() {
    let text = std::fs::read_to_string(vectors_dir().join("objects.json")).unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let valid = vectors["valid"].as_array().unwrap();
    let invalid = vectors["invalid"].as_array().unwrap();
    assert!(valid.len() >= 40 && invalid.len() >= 30);
    for case in valid {
        let name = case["name"].as_str().unwrap();
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let value = dagcbor::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            dagcbor::validate_with_limits(&bytes, &Default::default()),
            Ok(()),
            "{name}: validation agrees"
        );
        assert_eq!(
            dagcbor::encode(&value).unwrap(),
            bytes,
            "{name}: re-encoding"
        );
        let cid = Cid::hash(Codec::DagCbor, &bytes);
        assert_eq!(
            cid.to_string(),
            case["cid"].as_str().unwrap(),
            "{name}: CID"
        );
        let json = dagjson::to_string(&value).unwrap();
        assert_eq!(
            dagjson::from_str(&json).unwrap(),
            value,
            "{name}: our DAG-JSON round trip"
        );
        if let Some(expected_json) = case["dag_json"].as_str() {
            let parsed = dagjson::from_str(expected_json).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed, value, "{name}: DAG-JSON parses to the same value");
            assert_eq!(json, expected_json, "{name}: DAG-JSON text");
        }
    }
    for case in invalid {
        let name = case["name"].as_str().unwrap();
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let result = dagcbor::decode(&bytes);
        assert!(
            result.is_err(),
            "{name} ({}) must be rejected: {result:?}",
            case["rule"]
        );
        assert_eq!(
            dagcbor::validate_with_limits(&bytes, &Default::default()).err(),
            result.err(),
            "{name}: validation refuses with the same rule at the same offset"
        );
    }
}

struct Fixture {
    name: String,
    cbor: Option<Vec<u8>>,
    json: Option<Vec<u8>>,
}

fn fixtures() -> Vec<Fixture> {
    let root = vectors_dir().join("ipld-codec-fixtures/fixtures");
    let mut fixtures = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let mut fixture = Fixture {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            cbor: None,
            json: None,
        };
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            match file.extension().and_then(|e| e.to_str()) {
                Some("dag-cbor") => fixture.cbor = Some(std::fs::read(&file).unwrap()),
                Some("dag-json") => fixture.json = Some(std::fs::read(&file).unwrap()),
                _ => {}
            }
        }
        fixtures.push(fixture);
    }
    fixtures.sort_by(|a, b| a.name.cmp(&b.name));
    fixtures
}

#[test]
fn ipld_codec_fixtures() {
    let (mut cbor_checked, mut json_checked) = (0, 0);
    for fixture in fixtures() {
        let name = &fixture.name;
        if let Some(cbor) = &fixture.cbor {
            let value = dagcbor::decode(cbor).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                &dagcbor::encode(&value).unwrap(),
                cbor,
                "{name}: re-encoding"
            );
            if let Some(json) = &fixture.json {
                assert_eq!(
                    dagjson::to_string(&value).unwrap().as_bytes(),
                    json.as_slice(),
                    "{name}: DAG-CBOR → DAG-JSON"
                );
            }
            cbor_checked += 1;
        }
        if let Some(json) = &fixture.json {
            let value = dagjson::from_slice(json).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(cbor) = &fixture.cbor {
                assert_eq!(
                    &dagcbor::encode(&value).unwrap(),
                    cbor,
                    "{name}: DAG-JSON → DAG-CBOR"
                );
            }
            assert_eq!(
                dagjson::to_string(&value).unwrap().as_bytes(),
                json.as_slice(),
                "{name}"
            );
            json_checked += 1;
        }
    }
    let mut negative_checked = 0;
    for codec in ["dag-cbor", "dag-json"] {
        let dir = vectors_dir()
            .join("ipld-codec-fixtures/negative-fixtures")
            .join(codec)
            .join("decode");
        for file in std::fs::read_dir(dir).unwrap() {
            let cases: serde_json::Value =
                serde_json::from_slice(&std::fs::read(file.unwrap().path()).unwrap()).unwrap();
            for case in cases.as_array().unwrap() {
                let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
                let rejected = match codec {
                    "dag-cbor" => dagcbor::decode(&bytes).is_err(),
                    _ => dagjson::from_slice(&bytes).is_err(),
                };
                assert!(
                    rejected,
                    "{codec} negative fixture {} must be rejected",
                    case["name"]
                );
                negative_checked += 1;
            }
        }
    }
    println!(
        "IPLD fixtures: {cbor_checked} DAG-CBOR, {json_checked} DAG-JSON, {negative_checked} negative"
    );
    assert_eq!((cbor_checked, json_checked), (128, 128));
    assert_eq!(negative_checked, 2);
}
