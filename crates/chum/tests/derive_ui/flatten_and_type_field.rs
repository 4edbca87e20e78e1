use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Extra {
    note: String,
}

#[derive(Serialize, Deserialize, chum::Document)]
struct Flattened {
    #[chum(id)]
    id: String,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Serialize, Deserialize, chum::Document)]
struct Typed {
    #[chum(id)]
    id: String,
    #[serde(rename = "$type")]
    kind: String,
}

#[derive(Serialize, Deserialize, chum::Document)]
#[chum(strategy = "newest-wins")]
struct Unknown {
    #[chum(id)]
    id: String,
}

fn main() {}
