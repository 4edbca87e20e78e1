use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

// A field type with no recipe kind (implement chum::FieldKind for it, or use a Value).
#[derive(Serialize, Deserialize, chum::Document)]
struct Place {
    #[chum(id)]
    name: String,
    at: Point,
}

fn main() {}
