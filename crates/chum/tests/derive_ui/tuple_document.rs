use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, chum::Document)]
struct Pair(String, u32);

fn main() {}
