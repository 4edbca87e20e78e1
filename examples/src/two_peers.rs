//! The seed's flow between two instances of one person, synced by CHUM instead of IPC:
//! "renderer" creates `Message {text, needsAI: true, status: "pending"}`; "main" notices it in
//! its event stream, runs the [`Enhancer`] on a worker thread (its event loop never blocks),
//! and stores `Message {originalId, text: <enhanced>, status: "enhanced"}`, which syncs back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chum::{Cid, Event, Instance, Value};

use crate::ai::Enhancer;

/// A pending message as the renderer creates it.
pub fn pending(text: &str) -> chum::Result<Value> {
    let mut map = chum_object::Map::new();
    map.insert("$type", "Message");
    map.insert("text", text);
    map.insert("needsAI", true);
    map.insert("status", "pending");
    Ok(Value::Map(map))
}

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_map()?.get(name)
}

/// Whether `value` is a message waiting for enhancement.
pub fn needs_ai(value: &Value) -> bool {
    value.type_name() == Some("Message")
        && field(value, "needsAI") == Some(&Value::Bool(true))
        && field(value, "status").and_then(Value::as_text) == Some("pending")
}

/// The enhanced message for `original`, if one is stored.
pub async fn enhanced_of(instance: &Instance, original: &Cid) -> chum::Result<Option<Cid>> {
    let store = instance.store();
    let referrers = store
        .query(chum_store::Query::LinksTo {
            target: original,
            after: None,
            limit: 64,
        })
        .await?;
    for cid in referrers {
        let value = instance.get(&cid).await?;
        if field(&value, "originalId").and_then(Value::as_link) == Some(original)
            && field(&value, "status").and_then(Value::as_text) == Some("enhanced")
        {
            return Ok(Some(cid));
        }
    }
    Ok(None)
}

/// Enhances one pending message (unless it already has an enhanced version): the enhancer
/// runs on a blocking worker thread.
async fn enhance_one(
    instance: &Instance,
    enhancer: &Arc<dyn Enhancer>,
    cid: &Cid,
) -> chum::Result<Option<Cid>> {
    if enhanced_of(instance, cid).await?.is_some() {
        return Ok(None);
    }
    let original = instance.get(cid).await?;
    let text = field(&original, "text")
        .and_then(Value::as_text)
        .unwrap_or_default()
        .to_owned();
    let worker = Arc::clone(enhancer);
    let enhanced = tokio::task::spawn_blocking(move || worker.enhance(&text))
        .await
        .map_err(|error| chum::Error::Invalid(format!("the enhancer crashed: {error}")))?
        .map_err(|error| chum::Error::Transport(error.to_string()))?;
    let mut map = chum_object::Map::new();
    map.insert("$type", "Message");
    map.insert("originalId", cid.clone());
    map.insert("text", enhanced);
    map.insert("status", "enhanced");
    let written = instance.create(&Value::Map(map)).await?;
    Ok(Some(written.cid().clone()))
}

/// Main's worker: enhances every pending message already stored, then every one that
/// arrives, until the instance goes away. Enhancement failures are logged to stderr and the
/// message stays pending (it is retried at the next start).
pub async fn enhance_forever(instance: Instance, enhancer: Arc<dyn Enhancer>) {
    let mut events = instance.events();
    // Messages that arrived while main was down.
    if let Ok(messages) = instance.of_type("Message").await {
        for cid in messages {
            if let Ok(value) = instance.get(&cid).await
                && needs_ai(&value)
                && let Err(error) = enhance_one(&instance, &enhancer, &cid).await
            {
                eprintln!("main: cannot enhance {cid}: {error}");
            }
        }
    }
    while let Some(event) = events.next().await {
        let cid = match event {
            Event::Stored {
                cid,
                type_name: Some(type_name),
                ..
            } if type_name == "Message" => cid,
            Event::Lagged { .. } => {
                // Re-scan: something may have been missed.
                if let Ok(messages) = instance.of_type("Message").await {
                    for cid in messages {
                        if let Ok(value) = instance.get(&cid).await
                            && needs_ai(&value)
                        {
                            let _ = enhance_one(&instance, &enhancer, &cid).await;
                        }
                    }
                }
                continue;
            }
            _ => continue,
        };
        match instance.get(&cid).await {
            Ok(value) if needs_ai(&value) => {
                if let Err(error) = enhance_one(&instance, &enhancer, &cid).await {
                    eprintln!("main: cannot enhance {cid}: {error}");
                }
            }
            _ => {}
        }
    }
}

/// The main process: an instance on disk at `dir`, listening on `url`, enhancing.
#[derive(Debug)]
pub struct Main {
    /// The instance.
    pub instance: Instance,
    /// Where it listens.
    pub url: String,
    worker: tokio::task::JoinHandle<()>,
    _listener: chum::Listener,
}

impl Main {
    /// Opens (or creates) main's store in `dir`, listens on `url`, starts the worker.
    pub async fn start(
        dir: &std::path::Path,
        url: &str,
        enhancer: Arc<dyn Enhancer>,
    ) -> chum::Result<Main> {
        let instance = Instance::builder().path(dir).open().await?;
        let listener = instance.listen(url).await?;
        let worker = tokio::spawn(enhance_forever(instance.clone(), enhancer));
        Ok(Main {
            url: listener.url().to_owned(),
            instance,
            worker,
            _listener: listener,
        })
    }

    /// Stops main: the worker, the listener, every session; the store is closed.
    pub async fn stop(self) {
        self.worker.abort();
        let _ = self.worker.await;
        self._listener.close();
        self.instance.close().await;
    }
}

/// What a run of the flow did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The renderer's messages and their enhanced texts, in the order written.
    pub enhanced: Vec<(String, String)>,
    /// Enhanced messages per original (each must be exactly 1).
    pub duplicates: usize,
}

/// Waits until the renderer holds an enhanced message for each of `originals`.
async fn await_enhanced(
    renderer: &Instance,
    originals: &[Cid],
    within: Duration,
) -> chum::Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut events = renderer.events();
    let mut texts = vec![None; originals.len()];
    loop {
        for (i, original) in originals.iter().enumerate() {
            if texts[i].is_none()
                && let Some(cid) = enhanced_of(renderer, original).await?
            {
                let value = renderer.get(&cid).await?;
                texts[i] = field(&value, "text")
                    .and_then(Value::as_text)
                    .map(str::to_owned);
            }
        }
        if texts.iter().all(Option::is_some) {
            return Ok(texts.into_iter().flatten().collect());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(chum::Error::Timeout(format!(
                "{} of {} messages were not enhanced",
                texts.iter().filter(|t| t.is_none()).count(),
                originals.len()
            )));
        }
        // Wake on the next event (or re-check now and then).
        let _ = tokio::time::timeout(
            (deadline - now).min(Duration::from_millis(200)),
            events.next(),
        )
        .await;
    }
}

/// The whole seed flow in `dir`: main starts (on `url`), the renderer pairs with an
/// invitation and stays connected; the renderer writes `first` and gets it enhanced; main
/// stops; the renderer writes `offline` while main is down; main restarts on the same port;
/// everything arrives and is enhanced exactly once.
pub async fn run(
    dir: &std::path::Path,
    url: &str,
    enhancer: Arc<dyn Enhancer>,
    first: &str,
    offline: &[&str],
    mut say: impl FnMut(&str),
) -> chum::Result<Report> {
    let main_dir = dir.join("main");
    let main = Main::start(&main_dir, url, Arc::clone(&enhancer)).await?;
    say(&format!("main: listening on {}", main.url));
    let invitation = main.instance.invite(Duration::from_secs(600)).await?;
    let renderer_store = chum_store_redb_open(&dir.join("renderer"))?;
    let renderer = Instance::join(renderer_store, invitation, None, None).await?;
    say(&format!(
        "renderer: joined person {} as a second instance",
        renderer.person()
    ));
    let link = renderer.connect(&main.url)?;
    link.established().await?;

    let mut originals = Vec::new();
    let mut texts = vec![first.to_owned()];
    let written = renderer.create(&pending(first)?).await?;
    say(&format!(
        "renderer: created a pending message {}",
        written.cid()
    ));
    originals.push(written.cid().clone());
    let enhanced = await_enhanced(&renderer, &originals, Duration::from_secs(60)).await?;
    say(&format!(
        "renderer: received the enhanced message: {}",
        enhanced[0]
    ));

    // Offline: main stops, the renderer keeps writing.
    let url = main.url.clone();
    main.stop().await;
    say("main: stopped");
    for text in offline {
        let written = renderer.create(&pending(text)?).await?;
        originals.push(written.cid().clone());
        texts.push((*text).to_owned());
    }
    say(&format!(
        "renderer: created {} messages while main was down",
        offline.len()
    ));
    let main = Main::start(&main_dir, &url, enhancer).await?;
    say("main: restarted on the same address");
    let enhanced = await_enhanced(&renderer, &originals, Duration::from_secs(60)).await?;
    for text in enhanced.iter().skip(1) {
        say(&format!("renderer: received the enhanced message: {text}"));
    }
    // Exactly one enhanced message per original, on both sides.
    let mut duplicates = 0;
    for instance in [&renderer, &main.instance] {
        let mut seen = BTreeSet::new();
        for cid in instance.of_type("Message").await? {
            let value = instance.get(&cid).await?;
            if let Some(original) = field(&value, "originalId").and_then(Value::as_link)
                && !seen.insert(original.clone())
            {
                duplicates += 1;
            }
        }
    }
    link.close().await;
    main.stop().await;
    Ok(Report {
        enhanced: texts.into_iter().zip(enhanced).collect(),
        duplicates,
    })
}

fn chum_store_redb_open(dir: &std::path::Path) -> chum::Result<Arc<dyn chum_store::Store>> {
    std::fs::create_dir_all(dir).map_err(|error| {
        chum::Error::Storage(chum_store::Error::Backend(format!(
            "cannot create {}: {error}",
            dir.display()
        )))
    })?;
    let store = chum_store_redb::RedbStore::open(dir.join("chum.redb"))?;
    Ok(Arc::new(store))
}
