//! The `chum object` commands as real processes.
#![allow(clippy::unwrap_used)]

mod common;

use common::chum;

#[test]
fn hash_encode_decode_agree() {
    let json = br#"{"text": "hello", "$type": "Message",  "needsAI": true}"#;
    let hash = chum(&["object", "hash"], json);
    assert!(hash.status.success());
    let cid = String::from_utf8(hash.stdout).unwrap();
    assert!(
        cid.starts_with("bafyr4i") && cid.ends_with('\n') && cid.lines().count() == 1,
        "{cid}"
    );

    let encoded = chum(&["object", "encode"], json);
    assert!(encoded.status.success());
    let hex = chum(&["object", "encode", "--hex"], json);
    assert_eq!(
        String::from_utf8(hex.stdout.clone()).unwrap().trim(),
        hex::encode(&encoded.stdout)
    );

    let decoded = chum(&["object", "decode"], &encoded.stdout);
    assert!(decoded.status.success());
    assert_eq!(
        String::from_utf8(decoded.stdout).unwrap(),
        "{\"$type\":\"Message\",\"needsAI\":true,\"text\":\"hello\"}\n"
    );
    let decoded_hex = chum(&["object", "decode", "--hex"], &hex.stdout);
    assert!(decoded_hex.status.success());

    // The same value from a file.
    let dir = std::env::temp_dir().join(format!("chum-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.json");
    std::fs::write(&path, json).unwrap();
    let from_file = chum(&["object", "hash", path.to_str().unwrap()], b"");
    assert_eq!(String::from_utf8(from_file.stdout).unwrap(), cid);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn any_value_hashes_not_only_maps() {
    for json in ["1", "[1,2]", "\"x\"", "{}", "null", "-18446744073709551616"] {
        assert!(
            chum(&["object", "hash"], json.as_bytes()).status.success(),
            "{json}"
        );
    }
}

#[test]
fn bad_input_gives_one_line_and_exit_1() {
    let cases: &[(&[&str], &[u8], &str)] = &[
        (
            &["object", "decode"],
            &[0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02],
            "canonical order",
        ),
        (&["object", "decode", "--hex"], b"1817", "shortest form"),
        (&["object", "decode", "--hex"], b"zz", "invalid hex"),
        (&["object", "decode"], b"", "empty input"),
        (&["object", "decode"], &[0x9f, 0xff], "indefinite"),
        (&["object", "hash"], b"{\"a\":", "invalid DAG-JSON"),
        (&["object", "encode"], b"\xff\xfe", "UTF-8"),
        (&["object", "hash"], b"1e400", "float"),
        (&["object", "hash", "/nonexistent/file"], b"", "cannot open"),
    ];
    for (args, stdin, expected) in cases {
        let output = chum(args, stdin);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
        assert!(output.stdout.is_empty());
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let len = (seed % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        for args in [&["object", "decode"][..], &["object", "hash"][..]] {
            let output = chum(args, &bytes);
            assert!(matches!(output.status.code(), Some(0 | 1)), "{bytes:02x?}");
            assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
        }
    }
}
