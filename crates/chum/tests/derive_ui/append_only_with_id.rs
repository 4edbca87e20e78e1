use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, chum::Document)]
#[chum(strategy = "append-only")]
struct Message {
    #[chum(id)]
    id: String,
    text: String,
}

fn main() {}
