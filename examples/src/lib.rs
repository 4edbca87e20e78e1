//! The code behind chum's runnable examples, so the examples' flows are also tested.
//!
//! - [`ai`]: the `Enhancer` that the seed's "AI enhancement" flow runs — a deterministic local
//!   one, and a client for any OpenAI-compatible chat endpoint (llama.cpp, Ollama, …).
//! - [`two_peers`]: the seed's flow between two instances of one person: "renderer" writes a
//!   message that needs AI, "main" enhances it on a worker thread, the result syncs back.
//! - [`notes`]: a notes app on the typed API (`#[derive(Document)]`): two instances of one
//!   person, field-merge, comments, a live watch, offline restart, a grant.

pub mod ai;
pub mod notes;
pub mod two_peers;
