//! [`Store::watch_others`](chum_store::Store::watch_others) for PostgreSQL: a connection of its
//! own `LISTEN`s on the schema's channel; every write that adds to the shared set notifies it
//! on commit; the watcher then reads the journal after the last position it handled and
//! passes on the entries this process did not write. A lost connection is reopened (with
//! backoff) and the journal read from where it stopped, so nothing committed meanwhile is
//! missed — notifications only say "look now".

use std::sync::{Arc, Weak};
use std::time::Duration;

use chum_object::Cid;
use chum_store::Store;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{PostgresStore, Shared};

/// Journal entries read per page while catching up.
const PAGE: usize = 1_024;

/// Batches of CIDs handed on and not yet taken by the consumer, at most.
const QUEUED_BATCHES: usize = 64;

pub(crate) fn start(shared: &Arc<Shared>) -> Option<BoxStream<'static, Vec<Cid>>> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("watch_others outside a tokio runtime: no watcher");
        return None;
    };
    shared
        .own
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .watchers += 1;
    let (sender, receiver) = mpsc::channel(QUEUED_BATCHES);
    runtime.spawn(run(Arc::downgrade(shared), sender));
    Some(
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        })
        .boxed(),
    )
}

/// Unregisters a watcher when its task ends.
struct Registered(Weak<Shared>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            let mut own = shared
                .own
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            own.watchers = own.watchers.saturating_sub(1);
            if own.watchers == 0 {
                own.ranges.clear();
            }
        }
    }
}

async fn run(weak: Weak<Shared>, sender: mpsc::Sender<Vec<Cid>>) {
    let _registered = Registered(weak.clone());
    let mut seen: Option<u64> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let (config, channel) = (shared.config.clone(), shared.channel.clone());
        drop(shared);
        let connected = tokio::select! {
            connected = config.connect(NoTls) => connected,
            () = sender.closed() => return,
        };
        let (client, mut connection) = match connected {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "the store watcher cannot connect; trying again");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = sender.closed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Each notification of new entries, with the journal head its write left (`None`: not
        // said).
        let (wake, mut woken) = mpsc::unbounded_channel::<Option<u64>>();
        let deletes = weak.clone();
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notice)) => {
                        // "-<hex CID>": a delete, for the cache; anything else: new entries.
                        if let Some(deleted) = notice.payload().strip_prefix('-') {
                            if let (Some(shared), Some(cid)) = (
                                deletes.upgrade(),
                                crate::unhex(deleted).and_then(|b| Cid::from_bytes(&b).ok()),
                            ) {
                                shared.cache.remove(&cid);
                            }
                        } else if wake.send(notice.payload().parse().ok()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        if let Err(error) = client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
            tracing::warn!(%error, "the store watcher cannot listen; trying again");
            driver.abort();
            continue;
        }
        backoff = Duration::from_millis(100);
        // Deletes while no connection listened were not heard: the cache starts over.
        if let Some(shared) = weak.upgrade() {
            shared.cache.clear();
        }
        // Listening now: whatever commits from here on notifies; what committed before is in
        // the journal after `seen`.
        let mut read = true;
        loop {
            let Some(shared) = weak.upgrade() else {
                driver.abort();
                return;
            };
            let caught_up = if read {
                catch_up(&shared, &mut seen, &sender).await
            } else {
                Ok(true)
            };
            drop(shared);
            match caught_up {
                Ok(true) => {}
                Ok(false) => {
                    driver.abort();
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "the store watcher cannot read the journal; reconnecting");
                    break;
                }
            }
            let mut head = tokio::select! {
                woke = woken.recv() => match woke {
                    Some(head) => head,
                    None => break,
                },
                () = sender.closed() => {
                    driver.abort();
                    return;
                }
            };
            // One read covers every notification queued meanwhile.
            while let Ok(more) = woken.try_recv() {
                head = head.zip(more).map(|(a, b)| a.max(b));
            }
            // Entries all written by this process need no read.
            read = match (head, weak.upgrade()) {
                (Some(head), Some(shared)) => !own_up_to(&shared, &mut seen, head).await,
                _ => true,
            };
        }
        driver.abort();
        drop(client);
    }
}

/// Whether every journal entry after `seen` up to `head` was written by this process (then
/// `seen` moves to `head`: there is nothing to read or hand on). Waits for this process's
/// writes still committing there (briefly: when they take long, `false`, and the journal is
/// read).
async fn own_up_to(shared: &Arc<Shared>, seen: &mut Option<u64>, head: u64) -> bool {
    let Some(after) = *seen else {
        return false;
    };
    // Up to 100 ms for this process's writes in the range to finish committing.
    for _ in 0..50 {
        {
            let mut own = shared
                .own
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let covering = |ranges: &std::collections::BTreeMap<u64, u64>, position: u64| {
                ranges
                    .range(..=position)
                    .next_back()
                    .filter(|(_, last)| **last >= position)
                    .map(|(_, last)| *last)
            };
            let mut position = after + 1;
            let mut committing = false;
            while position <= head {
                if let Some(last) = covering(&own.ranges, position) {
                    position = last + 1;
                } else if covering(&own.pending, position).is_some() {
                    committing = true;
                    break;
                } else {
                    return false; // another process's entry
                }
            }
            if !committing {
                own.ranges.retain(|_, last| *last > head);
                *seen = Some(after.max(head));
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Reads the journal after `seen` up to its head and hands on other processes' entries.
/// `Ok(false)` when the consumer is gone.
async fn catch_up(
    shared: &Arc<Shared>,
    seen: &mut Option<u64>,
    sender: &mpsc::Sender<Vec<Cid>>,
) -> chum_store::Result<bool> {
    let store = PostgresStore {
        shared: Arc::clone(shared),
        limits: chum_object::Limits::default(),
    };
    let Some(mut after) = *seen else {
        // The first connection starts at the head: earlier writes are not news.
        *seen = Some(store.journal(0, 0).await?.head);
        return Ok(true);
    };
    loop {
        let page = store.journal(after, PAGE).await?;
        let (foreign, handled, blocked) = {
            let mut own = shared
                .own
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let inside = |ranges: &std::collections::BTreeMap<u64, u64>, position: &u64| {
                ranges
                    .range(..=*position)
                    .next_back()
                    .is_some_and(|(_, last)| last >= position)
            };
            // Up to the first entry of a write of this process still committing: whether it
            // is this process's is known once it is done.
            let mut handled = after;
            let mut blocked = false;
            let mut foreign = Vec::new();
            for (position, cid) in page.entries {
                if inside(&own.pending, &position) {
                    blocked = true;
                    break;
                }
                if !inside(&own.ranges, &position) {
                    foreign.push(cid);
                }
                handled = position;
            }
            if !blocked {
                handled = page.last;
            }
            // Ranges wholly handled are forgotten.
            own.ranges.retain(|_, last| *last > handled);
            (foreign, handled, blocked)
        };
        if !foreign.is_empty() && sender.send(foreign).await.is_err() {
            return Ok(false);
        }
        after = handled;
        *seen = Some(after);
        if blocked {
            // A write of this process is finishing: read on in a moment.
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        if page.last >= page.head {
            return Ok(true);
        }
    }
}
