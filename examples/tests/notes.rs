//! The notes example end to end (real sockets on 127.0.0.1, redb stores on disk).
#![allow(clippy::unwrap_used)]

use chum_examples::notes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_app_converges_on_three_instances() {
    let dir = std::env::temp_dir().join(format!("chum-notes-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = notes::run(&dir, "ws://127.0.0.1:0", 20, |_| {}).await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = report.unwrap();
    let [desk, laptop, friend] = &report.notes;
    assert_eq!(desk, laptop);
    assert_eq!(desk, friend);
    // Both concurrent edits survived.
    assert_eq!(desk.title, "Trip to Lyon");
    assert_eq!(desk.body.as_deref(), Some("Leave Friday"));
    assert_eq!(desk.tags, ["family".to_owned(), "travel".to_owned()].into());
    for comments in &report.comments {
        assert_eq!(comments, &["book the train", "written while desk was down"]);
    }
    assert_eq!(report.latencies.len(), 20);
}
