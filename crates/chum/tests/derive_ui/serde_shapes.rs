use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, chum::Document)]
struct Blob {
    #[chum(id)]
    id: String,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize, chum::Document)]
struct Tags {
    #[chum(id)]
    id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, chum::Document)]
#[serde(tag = "kind")]
struct Tagged {
    #[chum(id)]
    id: String,
}

fn main() {}
