//! The native side of the browser peer's benchmark page (`crates/chum-web/tests/page/bench.mjs`,
//! run by `cargo xtask web-bench`): an instance on redb holding N small Messages, listening on
//! WebSocket. It prints one JSON line — `{"url": …, "invitation": …}` — then takes commands on
//! stdin:
//!
//! - `live K MS`: writes K Messages, one every MS milliseconds, each text `live I T` with T the
//!   wall time in microseconds when the write began; prints `durable I T2` once it is durable
//!   here (T2 in microseconds: the page subtracts either from the time it sees the object), and
//!   `live done` at the end;
//! - `quit` (or end of input): exits.
//!
//! `browser_peer [N]` (default 100,000).

use std::io::BufRead;
use std::time::Duration;

fn micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros())
}

/// A Message with `text` (plain ASCII: no escaping needed).
fn message(text: &str) -> chum::Value {
    chum::dagjson::from_str(&format!(r#"{{"$type":"Message","text":"{text}"}}"#))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("chum-browser-peer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let instance = chum::Instance::builder()
        .path(&dir)
        .open()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut batch = Vec::new();
    for i in 0..count {
        batch.push(message(&format!(
            "native message number {i:>8} with some words"
        )));
        if batch.len() == 4_096 || i + 1 == count {
            instance
                .put_many(&batch)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            batch.clear();
        }
    }
    let listener = instance
        .listen("ws://127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let invitation = instance
        .invite_with(chum::InviteOptions::new(Duration::from_secs(3_600)).uses(8))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        r#"{{"url":"{}","invitation":"{}","objects":{count}}}"#,
        listener.url(),
        invitation.to_text()
    );
    let (commands_tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if commands_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(command) = commands.recv().await {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["live", k, ms] => {
                let k: usize = k.parse().unwrap_or(100);
                let ms: u64 = ms.parse().unwrap_or(20);
                for i in 0..k {
                    let text = format!("live {i} {}", micros());
                    let _written = instance
                        .put(&message(&text))
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    println!("durable {i} {}", micros());
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                println!("live done");
            }
            ["quit"] => break,
            _ => eprintln!("browser_peer: unknown command {command:?}"),
        }
    }
    instance.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
