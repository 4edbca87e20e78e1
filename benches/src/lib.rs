//! Shared inputs for chum's benchmarks.

use chum_object::{Cid, Codec, Map, Value};

/// A typical small object (about 100 bytes encoded): a chat message as the Instance API writes
/// it, with its hybrid-logical-clock reading.
pub fn small_object(i: u64) -> Value {
    let mut map = Map::new();
    map.insert("$type", "Message");
    map.insert("text", format!("hello number {i}, how are you today?"));
    map.insert("needsAI", true);
    map.insert("status", "pending");
    map.insert(
        "clock",
        Value::List(vec![Value::from(1_700_000_000_000 + i), Value::from(0u32)]),
    );
    Value::Map(map)
}

/// A small object that links to another (about 140 bytes): a message in a conversation.
pub fn small_linked_object(i: u64) -> Value {
    let mut value = small_object(i);
    if let Value::Map(map) = &mut value {
        map.insert("conversation", Cid::hash(Codec::DagCbor, b"conversation"));
    }
    value
}

/// A 16 KiB object: a document with many fields, nested lists and a byte payload.
pub fn large_object() -> Value {
    let mut map = Map::new();
    map.insert("$type", "Document");
    map.insert("title", "A larger object for codec benchmarks");
    let paragraphs: Vec<Value> = (0..48)
        .map(|i| Value::Text(format!("paragraph {i}: {}", "lorem ipsum dolor ".repeat(9)).into()))
        .collect();
    map.insert("paragraphs", Value::List(paragraphs));
    let links: Vec<Value> = (0..32u32)
        .map(|i| Value::Link(Cid::hash(Codec::Raw, &i.to_be_bytes())))
        .collect();
    map.insert("attachments", Value::List(links));
    map.insert(
        "thumbnail",
        Value::Bytes((0..4096u32).map(|i| (i % 251) as u8).collect()),
    );
    Value::Map(map)
}

/// The same value as a `ciborium::Value`, for the baseline.
pub fn to_ciborium(value: &Value) -> ciborium::Value {
    match value {
        Value::Null => ciborium::Value::Null,
        Value::Bool(b) => ciborium::Value::Bool(*b),
        Value::Integer(int) => ciborium::Value::Integer(
            ciborium::value::Integer::try_from(int.to_i128())
                .unwrap_or(ciborium::value::Integer::from(0)),
        ),
        Value::Float(f) => ciborium::Value::Float(*f),
        Value::Bytes(bytes) => ciborium::Value::Bytes(bytes.clone()),
        Value::Text(text) => ciborium::Value::Text(text.to_string()),
        Value::List(list) => ciborium::Value::Array(list.iter().map(to_ciborium).collect()),
        Value::Map(map) => ciborium::Value::Map(
            map.iter()
                .map(|(k, v)| (ciborium::Value::Text(k.to_owned()), to_ciborium(v)))
                .collect(),
        ),
        Value::Link(cid) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(cid.as_bytes());
            ciborium::Value::Tag(42, Box::new(ciborium::Value::Bytes(bytes)))
        }
    }
}

/// The same value as an `ipld_core::ipld::Ipld`, for the serde_ipld_dagcbor comparison.
pub fn to_ipld(value: &Value) -> ipld_core::ipld::Ipld {
    use ipld_core::ipld::Ipld;
    match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Integer(int) => Ipld::Integer(int.to_i128()),
        Value::Float(f) => Ipld::Float(*f),
        Value::Bytes(bytes) => Ipld::Bytes(bytes.clone()),
        Value::Text(text) => Ipld::String(text.to_string()),
        Value::List(list) => Ipld::List(list.iter().map(to_ipld).collect()),
        Value::Map(map) => Ipld::Map(
            map.iter()
                .map(|(k, v)| (k.to_owned(), to_ipld(v)))
                .collect(),
        ),
        Value::Link(cid) => match ipld_core::cid::Cid::try_from(cid.as_bytes()) {
            Ok(cid) => Ipld::Link(cid),
            Err(_) => Ipld::Null,
        },
    }
}
