//! The AI enhancer of main: every `Message` with `needsAI: true` gets exactly one answer — a
//! `Message {originalId, text, status: "enhanced"}`, or `status: "failed"` with the error as
//! its text (an endpoint down or too slow shows on the message; it never stops main). Answers
//! join the original's conversation, so they sync back and the renderer shows them in place.
//! Messages that arrived while main was down are answered at start; an answer already stored
//! (from before a restart) is never written twice.

use std::sync::Arc;
use std::time::Duration;

use chum::{Cid, Event, Instance, Value};
use chum_examples::ai::{Enhancer, LocalEnhancer, OpenAiEnhancer};
use tokio::sync::mpsc;

use crate::settings;

/// How long an endpoint may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_map()?.get(name)
}

/// Whether `value` is a message asking for enhancement (and not itself an answer).
fn asks(value: &Value) -> bool {
    value.type_name() == Some("Message")
        && field(value, "needsAI") == Some(&Value::Bool(true))
        && field(value, "originalId").is_none()
}

/// The enhancer main's settings (or else the environment) choose: an OpenAI-compatible
/// endpoint (`ai.endpoint`, `ai.model`, `ai.key`; `CHUM_AI_ENDPOINT`, `CHUM_AI_MODEL`,
/// `CHUM_AI_KEY`), or the local one.
/// The settings come as a whole from one place — main's settings when they name an endpoint,
/// else the environment — so a key is only ever sent to the endpoint it was given with.
pub async fn configured(instance: &Instance) -> Arc<dyn Enhancer> {
    let saved =
        |key: &'static str| async move { settings::text(instance, key).await.ok().flatten() };
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let (endpoint, model, key) = match saved("ai.endpoint").await {
        Some(endpoint) => (
            Some(endpoint),
            saved("ai.model").await,
            saved("ai.key").await,
        ),
        None => (
            env("CHUM_AI_ENDPOINT"),
            env("CHUM_AI_MODEL"),
            env("CHUM_AI_KEY"),
        ),
    };
    match endpoint {
        Some(endpoint) => {
            let mut client =
                OpenAiEnhancer::new(endpoint, model.unwrap_or_else(|| "default".into()))
                    .with_timeout(TIMEOUT);
            if let Some(key) = key {
                client = client.with_api_key(key);
            }
            Arc::new(client)
        }
        None => Arc::new(LocalEnhancer),
    }
}

/// The answer stored for `original`, if any.
async fn answer_of(instance: &Instance, original: &Cid) -> chum::Result<Option<Cid>> {
    let mut after = None;
    loop {
        let page = instance
            .store()
            .query(chum_store::Query::LinksTo {
                target: original,
                after: after.as_ref(),
                limit: 256,
            })
            .await?;
        for cid in &page {
            if let Ok(value) = instance.get(cid).await
                && field(&value, "originalId").and_then(Value::as_link) == Some(original)
            {
                return Ok(Some(cid.clone()));
            }
        }
        match page.last() {
            Some(last) if page.len() == 256 => after = Some(last.clone()),
            _ => return Ok(None),
        }
    }
}

/// Answers `cid` unless it needs no answer or has one.
async fn answer(instance: &Instance, cid: &Cid) -> chum::Result<()> {
    let original = instance.get(cid).await?;
    if !asks(&original) || answer_of(instance, cid).await?.is_some() {
        return Ok(());
    }
    let text = field(&original, "text")
        .and_then(Value::as_text)
        .unwrap_or_default()
        .to_owned();
    let enhancer = configured(instance).await;
    let outcome = tokio::task::spawn_blocking(move || enhancer.enhance(&text)).await;
    let (status, text) = match outcome {
        Ok(Ok(enhanced)) => ("enhanced", enhanced),
        Ok(Err(error)) => ("failed", error.to_string()),
        Err(error) => ("failed", format!("the enhancer crashed: {error}")),
    };
    let mut map = chum::Map::new();
    map.insert("$type", "Message");
    map.insert("originalId", cid.clone());
    map.insert("text", text);
    map.insert("status", status);
    if let Some(conversation) = field(&original, "conversation") {
        map.insert("conversation", conversation.clone());
    }
    let _answer = instance.create(&Value::Map(map)).await?;
    Ok(())
}

/// Queues every stored message (at start, and after missed events).
async fn scan(instance: &Instance, queue: &mpsc::UnboundedSender<Cid>) {
    match instance.of_type("Message").await {
        Ok(messages) => {
            for cid in messages {
                let _ = queue.send(cid);
            }
        }
        Err(error) => eprintln!("chum-desktop: cannot list the messages: {error}"),
    }
}

/// Answers every message that asks, one at a time, until the instance closes.
pub async fn run(instance: Instance) {
    let (queue, mut work) = mpsc::unbounded_channel::<Cid>();
    // Events first, then the scan: nothing stored in between is missed.
    let mut events = instance.events();
    scan(&instance, &queue).await;
    let watcher = {
        let instance = instance.clone();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Event::Stored {
                        cid,
                        type_name: Some(type_name),
                        ..
                    } if type_name == "Message" => {
                        // The queue lives as long as this task (aborted when `run` ends).
                        let _ = queue.send(cid);
                    }
                    Event::Lagged { .. } => scan(&instance, &queue).await,
                    Event::Closed => break,
                    _ => {}
                }
            }
        })
    };
    while let Some(cid) = work.recv().await {
        if let Err(error) = answer(&instance, &cid).await {
            if matches!(error, chum::Error::Closed) {
                break;
            }
            eprintln!("chum-desktop: cannot answer {cid}: {error}");
        }
    }
    watcher.abort();
}
