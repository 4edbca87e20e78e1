//! A notes app on chum's typed API: two instances of one person, typed notes with
//! field-merge, comments, a live watch, offline edits and restart, a grant to another person.
//!
//! Run: `cargo run --release -p chum-examples --example notes`. The app is
//! `examples/src/notes.rs`.

use chum_examples::notes;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::temp_dir().join(format!("chum-notes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = notes::run(&dir, "ws://127.0.0.1:0", 100, |line| println!("{line}")).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = report?;
    println!("the note everywhere: {:?}", report.notes[0]);
    println!("its comments: {:?}", report.comments[0]);
    Ok(())
}
