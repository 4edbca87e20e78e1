//! The seed's "sending a message with AI enhancement", end to end between two instances of one
//! person: "main" (redb store, listens on ws://127.0.0.1:8765 or a free port, does the heavy
//! work) and "renderer" (its own store, paired with an invitation). The renderer writes a
//! message that needs AI; main enhances it on a worker thread; the result syncs back. Then main
//! stops, the renderer keeps writing, main restarts, and everything arrives exactly once.
//!
//! Run: `cargo run --release -p chum-examples --example two_peers`. Set `CHUM_AI_ENDPOINT`
//! (and `CHUM_AI_MODEL`) to use an OpenAI-compatible server such as llama.cpp or Ollama
//! instead of the built-in local enhancer.

use std::sync::Arc;

use chum_examples::{ai, two_peers};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("chum-two-peers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let enhancer: Arc<dyn ai::Enhancer> = Arc::from(ai::from_env());
    println!("enhancer: {}", enhancer.describe());
    // 8765 when free, any port otherwise.
    let url = match std::net::TcpListener::bind("127.0.0.1:8765") {
        Ok(probe) => {
            drop(probe);
            "ws://127.0.0.1:8765"
        }
        Err(_) => "ws://127.0.0.1:0",
    };
    let report = two_peers::run(
        &dir,
        url,
        enhancer,
        "can you make this message sound better",
        &["second message, written offline", "third one, also offline"],
        |line| println!("{line}"),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = report?;
    for (original, enhanced) in &report.enhanced {
        println!("enhanced: {original:?} -> {enhanced:?}");
    }
    if report.duplicates > 0 {
        return Err(format!("{} duplicate enhancements", report.duplicates).into());
    }
    println!(
        "done: {} messages enhanced, none lost or duplicated",
        report.enhanced.len()
    );
    Ok(())
}
