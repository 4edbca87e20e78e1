use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, chum::Document)]
#[chum(strategy = "field-merge")]
struct Contact {
    email: String,
    name: Option<String>,
}

fn main() {}
