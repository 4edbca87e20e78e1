//! A notes app on chum's typed API, as an app would write it with `chum` as its only chum
//! dependency: typed notes (field-merge) with comments (an append-only collection), two
//! instances of one person ("desk" on disk, listening; "laptop" joined with an invitation),
//! a live watch, concurrent offline edits, an offline restart, and a grant to another person.
//!
//! `cargo run --release -p chum-examples --example notes` runs it; `examples/tests/notes.rs`
//! runs it in CI.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use chum::{Document, Event, Id, Instance};
use serde::{Deserialize, Serialize};

/// A note: one document across all its versions, named by its `id`. Field-merge: edits of
/// different fields on two instances both survive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
pub struct Note {
    /// Names the note (an ID field).
    #[chum(id)]
    pub id: String,
    /// Required.
    pub title: String,
    /// Optional.
    pub body: Option<String>,
    /// An add-wins set.
    pub tags: BTreeSet<String>,
}

/// A comment: an immutable entry of its note's collection. chum fills in `clock` and
/// `author`, which order the collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Document)]
pub struct Comment {
    /// The note it belongs to (`collection`: the comment is an entry of the note).
    #[chum(collection)]
    pub note: Id<Note>,
    /// What it says.
    pub text: String,
    /// Set by chum when the comment is appended.
    pub clock: Option<Vec<u64>>,
    /// Set by chum when the comment is appended.
    pub author: Option<chum::ByteBuf>,
}

impl Comment {
    fn new(note: &Id<Note>, text: &str) -> Comment {
        Comment {
            note: note.clone(),
            text: text.to_owned(),
            clock: None,
            author: None,
        }
    }
}

/// What a run showed.
#[derive(Debug)]
pub struct Report {
    /// The note as each of the three instances sees it at the end (desk, laptop, friend).
    pub notes: [Note; 3],
    /// The comments' texts in collection order, on each of the three.
    pub comments: [Vec<String>; 3],
    /// Live latency of an edit on desk until laptop's watch shows it, sorted.
    pub latencies: Vec<Duration>,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Opens desk in `dir/desk`, listening on `url`.
async fn open_desk(dir: &Path, url: &str) -> Result<(Instance, chum::Listener)> {
    let desk = Instance::builder()
        .path(dir.join("desk"))
        .document::<Note>()
        .document::<Comment>()
        .open()
        .await?;
    let listener = desk.listen(url).await?;
    Ok((desk, listener))
}

/// Runs the whole story; `say` gets a line for each step.
pub async fn run(dir: &Path, url: &str, edits: usize, say: impl Fn(String)) -> Result<Report> {
    let (desk, listener) = open_desk(dir, url).await?;
    let url = listener.url().to_owned();
    let invitation = desk.invite(Duration::from_secs(600)).await?;
    // The laptop's first start joins the person; later starts open the same store as itself.
    let laptop = Instance::builder()
        .path(dir.join("laptop"))
        .join(invitation)
        .open()
        .await?;
    let link = laptop.connect(&url)?;
    link.established().await?;
    say(format!("desk and laptop paired, person {}", desk.person()));

    // A note with a comment, written on desk; the laptop watches it live.
    let notes = desk.doc::<Note>();
    let id = notes
        .create(&Note {
            id: chum::fresh_id(),
            title: "Trip".into(),
            body: None,
            tags: ["travel".to_owned()].into(),
        })
        .await?;
    desk.collection::<Comment>(id.clone())
        .append(&Comment::new(&id, "book the train"))
        .await?;
    let mut watch = laptop.doc::<Note>().watch(&id).await?;
    if watch.snapshot().is_none() {
        watch.next().await; // the note arrives
    }
    let mut latencies = Vec::with_capacity(edits);
    for i in 0..edits {
        let start = Instant::now();
        notes
            .update(&id, |note| note.title = format!("Trip ({i})"))
            .await?;
        while let Some(seen) = watch.next().await {
            if seen.is_some_and(|note| note.title == format!("Trip ({i})")) {
                break;
            }
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    say(format!(
        "{edits} live edits desk → laptop: p50 {:?}, p99 {:?}",
        latencies[latencies.len() / 2],
        latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
    ));

    // Apart, each edits another field; together again, both edits survive.
    link.close().await;
    notes
        .update(&id, |note| note.title = "Trip to Lyon".into())
        .await?;
    laptop
        .doc::<Note>()
        .update(&id, |note| {
            note.body = Some("Leave Friday".into());
            note.tags.insert("family".into());
        })
        .await?;
    let link = laptop.connect(&url)?;
    link.established().await?;
    wait_until(&laptop, || async {
        laptop.doc::<Note>().get(&id).await.ok().flatten()
            == desk.doc::<Note>().get(&id).await.ok().flatten()
    })
    .await?;
    say("concurrent offline edits merged field by field".into());

    // Desk stops; the laptop comments offline; desk restarts from disk on the same port.
    listener.close();
    desk.close().await;
    laptop
        .collection::<Comment>(id.clone())
        .append(&Comment::new(&id, "written while desk was down"))
        .await?;
    let (desk, _listener) = open_desk(dir, &url).await?;
    link.connected().await?;
    wait_until(&desk, || async {
        desk.collection::<Comment>(id.clone())
            .list()
            .await
            .is_ok_and(|comments| comments.len() == 2)
    })
    .await?;
    say("desk restarted and caught up with the offline comment".into());

    // Another person, granted the note: sees it and its comments, nothing else.
    let friend = Instance::builder()
        .memory()
        .document::<Note>()
        .document::<Comment>()
        .open()
        .await?;
    let _grant = desk.grant(id.cid(), &friend.person()).await?;
    friend.sync_once(&url, Duration::from_secs(10)).await?;
    say(format!("granted to {}: synced", friend.person()));

    let mut notes_seen = Vec::new();
    let mut comments_seen = Vec::new();
    for instance in [&desk, &laptop, &friend] {
        notes_seen.push(
            instance
                .doc::<Note>()
                .get(&id)
                .await?
                .ok_or("the note is missing")?,
        );
        let comments = instance.collection::<Comment>(id.clone()).list().await?;
        comments_seen.push(comments.into_iter().map(|(_, c)| c.text).collect());
    }
    link.close().await;
    for instance in [desk, laptop, friend] {
        instance.close().await;
    }
    Ok(Report {
        notes: notes_seen.try_into().map_err(|_| "three notes")?,
        comments: comments_seen.try_into().map_err(|_| "three lists")?,
        latencies,
    })
}

/// Waits (at most 10 s) until `done` holds, re-checking on every event of `instance`.
async fn wait_until<F, Fut>(instance: &Instance, done: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut events = instance.events();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.min(Duration::from_millis(200)), events.next()).await {
            Ok(None | Some(Event::Closed)) => return Err("the instance closed".into()),
            _ if left.is_zero() => return Err("timed out".into()),
            _ => {}
        }
    }
    Ok(())
}
