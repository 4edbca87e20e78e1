//! Runnable examples of chum live in `examples/examples/`; run one with
//! `cargo run -p chum-examples --example NAME`.
