//! The seed's AI-enhancement flow between two instances, including main going offline.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chum_examples::{ai, two_peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_enhanced_once_even_when_main_was_offline() {
    let dir = std::env::temp_dir().join(format!("chum-two-peers-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = Vec::new();
    let report = two_peers::run(
        &dir,
        "tcp://127.0.0.1:0",
        Arc::new(ai::LocalEnhancer),
        "first",
        &["offline one", "offline two", "offline three"],
        |line| lines.push(line.to_owned()),
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(report.duplicates, 0);
    assert_eq!(
        report.enhanced,
        vec![
            ("first".to_owned(), "First. (enhanced)".to_owned()),
            (
                "offline one".to_owned(),
                "Offline one. (enhanced)".to_owned()
            ),
            (
                "offline two".to_owned(),
                "Offline two. (enhanced)".to_owned()
            ),
            (
                "offline three".to_owned(),
                "Offline three. (enhanced)".to_owned()
            ),
        ]
    );
    assert!(lines.iter().any(|line| line.contains("restarted")));
}
