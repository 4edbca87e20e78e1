//! A tour of chum objects: typed data in, canonical bytes and CIDs out, a recipe that checks
//! it, the ID hash that names a versioned object across versions, a blob split into verified
//! chunks, and a signature.
//!
//! Run: `cargo run -p chum-examples --example objects`

use chum_object::recipe::{Field, Kind, Recipe, Strategy};
use chum_object::{Object, blob, dagjson, sign, to_value};
use serde::Serialize;

#[derive(Serialize)]
struct Contact {
    #[serde(rename = "$type")]
    kind: &'static str,
    email: String,
    name: String,
    tags: Vec<String>,
}

fn main() -> Result<(), chum_object::Error> {
    // 1. A typed Rust value becomes a canonical object with one CID.
    let alice = Contact {
        kind: "Contact",
        email: "alice@example.org".into(),
        name: "Alice".into(),
        tags: vec!["friend".into(), "work".into()],
    };
    let value = to_value(&alice)?;
    let object = Object::from_value(&value)?;
    println!(
        "object   {}  ({} bytes)",
        object.cid(),
        object.bytes().len()
    );
    println!("dag-json {}", dagjson::to_string(&value)?);

    // 2. The same data typed as JSON in another key order and spacing is the same object.
    let typed = dagjson::from_str(
        r#"{ "tags": ["friend", "work"], "name": "Alice", "email": "alice@example.org", "$type": "Contact" }"#,
    )?;
    assert_eq!(Object::from_value(&typed)?.cid(), object.cid());
    println!("same CID from differently written JSON: yes");

    // 3. A recipe checks the object and gives its ID hash (stable across versions).
    let recipe = Recipe::new("Contact", Strategy::FieldMerge)
        .field(Field::new("email", Kind::Text).id())
        .field(Field::new("name", Kind::Text).optional())
        .field(Field::new("tags", Kind::Set(Box::new(Kind::Text))).optional());
    recipe.validate(&value)?;
    let renamed =
        dagjson::from_str(r#"{"$type":"Contact","email":"alice@example.org","name":"Alice B."}"#)?;
    println!(
        "id hash  {}  (same for every version of alice@example.org: {})",
        recipe.id_hash(&value)?,
        recipe.id_hash(&value)? == recipe.id_hash(&renamed)?
    );
    let wrong =
        dagjson::from_str(r#"{"$type":"Contact","email":"bob@example.org","tags":["a",3]}"#)?;
    if let Err(error) = recipe.validate(&wrong) {
        println!("invalid  {error}");
    }

    // 4. A blob: 2.5 MiB split into 1 MiB raw chunks under a manifest, verified on reassembly.
    let data: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 251) as u8).collect();
    let split = blob::split(&data, blob::MAX_CHUNK_SIZE)?;
    let manifest = blob::Manifest::from_value(&split.manifest.value()?)?;
    let back = blob::reassemble(&manifest, |cid| {
        split
            .chunks
            .iter()
            .find(|chunk| chunk.cid == *cid)
            .map(|chunk| chunk.bytes.clone())
    })?;
    assert_eq!(back, data);
    println!(
        "blob     {}  ({} chunks, {} bytes, reassembled and verified)",
        split.manifest.cid(),
        split.chunks.len(),
        back.len()
    );

    // 5. A signature over the object's CID, verified strictly.
    let key = sign::SigningKey::from_bytes(&[42u8; 32]);
    let signature = sign::sign(&key, object.cid());
    sign::verify(&key.verifying_key().to_bytes(), object.cid(), &signature)?;
    println!(
        "signed   {}  by {}",
        object.cid(),
        hex(&key.verifying_key().to_bytes())
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
