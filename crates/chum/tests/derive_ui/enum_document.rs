use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, chum::Document)]
enum Status {
    Open,
    Closed,
}

fn main() {}
