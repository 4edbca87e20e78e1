//! [`Store::watch_others`](chum_store::Store::watch_others) for PostgreSQL: a connection of its
//! own `LISTEN`s on the schema's channel; every write that adds to the shared set notifies it
//! on commit, and the watcher passes on the entries this process did not write. A small
//! write's notification carries its journal entries — positions, CIDs and the bytes of
//! the objects that fit (see [`notice`]) — and when they follow the last position the watcher
//! handled, that is all it needs; otherwise it reads the journal after that position. A lost
//! connection is reopened (with backoff) and the journal read from where it stopped, so
//! nothing committed meanwhile is missed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chum_object::Cid;
use chum_store::{Added, Store};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::{PostgresStore, Shared};

/// Journal entries read per page while catching up.
const PAGE: usize = 1_024;

/// Batches of CIDs handed on and not yet taken by the consumer, at most.
const QUEUED_BATCHES: usize = 64;

/// The longest notification written, in bytes (the server's limit is 8,000). Kept small:
/// notifications wait in the server's queue (8 GB) for the slowest listener, and a full
/// queue fails every write.
const NOTICE_BYTES: usize = 2_000;

/// What a write that numbered journal positions `first..=last` with `entries` (their CIDs and
/// bytes, in order) tells the other processes: `"<last>"`, or when its entries fit,
/// `"<last>:<first>:<entry>,<entry>…"` where an entry is the CID in hexadecimal, followed by
/// `.` and the object's bytes in hexadecimal when those fit too (in order, while the room
/// lasts). A process of an older version cannot read it, and reads the journal instead.
pub(crate) fn notice(first: u64, last: u64, entries: &[(&Cid, &[u8])]) -> String {
    let head = last.to_string();
    let cids: usize = entries
        .iter()
        .map(|(cid, _)| cid.as_bytes().len() * 2 + 1)
        .sum();
    if entries.is_empty()
        || last + 1 != first + entries.len() as u64
        || head.len() + 22 + cids > NOTICE_BYTES
    {
        return head;
    }
    let mut text = String::with_capacity(NOTICE_BYTES.min(head.len() + 22 + cids * 4));
    text.push_str(&head);
    text.push(':');
    text.push_str(&first.to_string());
    text.push(':');
    // Room left for bytes once every CID is written.
    let mut room = NOTICE_BYTES - (head.len() + 22 + cids);
    for (i, (cid, bytes)) in entries.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        crate::push_hex(&mut text, cid.as_bytes());
        if bytes.len() * 2 < room {
            room -= bytes.len() * 2 + 1;
            text.push('.');
            crate::push_hex(&mut text, bytes);
        }
    }
    text
}

/// A notification of new journal entries, as heard.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Notice {
    /// The journal head the write left (`None`: not said).
    head: Option<u64>,
    /// The write's first position and its entries, when it told them.
    entries: Option<(u64, Vec<Added>)>,
}

/// Reads a notification of new entries (see [`notice`]); what does not parse says nothing
/// but "look now". Bytes are passed on only when they hash to their CID.
pub(crate) fn parse_notice(text: &str) -> Notice {
    let mut parts = text.splitn(3, ':');
    let head = parts.next().and_then(|head| head.parse::<u64>().ok());
    let entries = (|| {
        let first = parts.next()?.parse::<u64>().ok()?;
        let entries = parts
            .next()?
            .split(',')
            .map(|entry| {
                let (cid, bytes) = match entry.split_once('.') {
                    Some((cid, bytes)) => (cid, Some(bytes)),
                    None => (entry, None),
                };
                let cid = Cid::from_bytes(&crate::unhex(cid)?).ok()?;
                let bytes = bytes
                    .and_then(crate::unhex)
                    .filter(|bytes| cid.verify(bytes).unwrap_or(false));
                Some(Added { cid, bytes })
            })
            .collect::<Option<Vec<Added>>>()?;
        (head?.checked_add(1)? == first.checked_add(entries.len() as u64)?)
            .then_some((first, entries))
    })();
    Notice { head, entries }
}

pub(crate) fn start(shared: &Arc<Shared>) -> Option<BoxStream<'static, Vec<Added>>> {
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

async fn run(weak: Weak<Shared>, sender: mpsc::Sender<Vec<Added>>) {
    let _registered = Registered(weak.clone());
    let mut seen: Option<u64> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let (config, tls, channel) = (
            shared.config.clone(),
            shared.tls.clone(),
            shared.channel.clone(),
        );
        drop(shared);
        let connected = tokio::select! {
            connected = config.connect(tls) => connected,
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
        // Each notification of new entries.
        let (wake, mut woken) = mpsc::unbounded_channel::<Notice>();
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
                        } else if wake.send(parse_notice(notice.payload())).is_err() {
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
            let first = tokio::select! {
                woke = woken.recv() => match woke {
                    Some(notice) => notice,
                    None => break,
                },
                () = sender.closed() => {
                    driver.abort();
                    return;
                }
            };
            // Every notification queued meanwhile, in commit order: entries they carry that
            // follow what was handled are passed on as they are; at the first that does not
            // tell its entries (or does not follow), the journal is read, once for the rest.
            let mut notices = vec![first];
            while let Ok(more) = woken.try_recv() {
                notices.push(more);
            }
            let Some(shared) = weak.upgrade() else {
                driver.abort();
                return;
            };
            read = false;
            let mut heard: Vec<Added> = Vec::new();
            for notice in notices {
                if let Some(added) = told(&shared, &mut seen, notice.entries) {
                    heard.extend(added);
                    continue;
                }
                // Entries all written by this process need no read.
                let covered = match notice.head {
                    Some(head) => {
                        seen.is_some_and(|seen| seen >= head)
                            || own_up_to(&shared, &mut seen, head).await
                    }
                    None => false,
                };
                if !covered {
                    read = true;
                    break;
                }
            }
            drop(shared);
            if !heard.is_empty() && sender.send(heard).await.is_err() {
                driver.abort();
                return;
            }
        }
        driver.abort();
        drop(client);
    }
}

/// The entries a notification told, when they follow `seen` (then `seen` moves past them):
/// none when they were written by this process, all of them otherwise (one write's entries
/// are all one process's). `None` when it told none, or ones that do not follow.
fn told(
    shared: &Shared,
    seen: &mut Option<u64>,
    entries: Option<(u64, Vec<Added>)>,
) -> Option<Vec<Added>> {
    let (first, added) = entries?;
    if (*seen)?.checked_add(1)? != first {
        return None;
    }
    let last = first.checked_add(added.len() as u64)?.checked_sub(1)?;
    let mut own = shared
        .own
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A write of this process is recorded as committing before its statement runs, so before
    // its notification can be heard; it is recorded as this process's once it committed.
    let covers = |ranges: &std::collections::BTreeMap<u64, u64>| {
        ranges
            .range(..=first)
            .next_back()
            .is_some_and(|(_, end)| *end >= first)
    };
    let mine = covers(&own.ranges);
    if !mine && covers(&own.pending) {
        // A write of this process still committing: until it is done, whether it took these
        // positions or failed and left them to another process is not known.
        return None;
    }
    own.ranges.retain(|_, end| *end > last);
    *seen = Some(last);
    Some(if mine { Vec::new() } else { added })
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
    sender: &mpsc::Sender<Vec<Added>>,
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
                    foreign.push(Added { cid, bytes: None });
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{NOTICE_BYTES, Notice, notice, parse_notice};
    use chum_object::{Cid, Object, dagjson};
    use chum_store::Added;

    fn message(text: &str) -> Object {
        let value =
            dagjson::from_str(&format!(r#"{{"$type":"Message","text":"{text}"}}"#)).unwrap();
        Object::from_value(&value).unwrap()
    }

    fn entries(objects: &[Object]) -> Vec<(&Cid, &[u8])> {
        objects.iter().map(|o| (o.cid(), o.bytes())).collect()
    }

    #[test]
    fn a_small_write_tells_its_entries_and_bytes() {
        let objects: Vec<Object> = (0..3).map(|i| message(&format!("m{i}"))).collect();
        let text = notice(41, 43, &entries(&objects));
        assert!(text.starts_with("43:41:"));
        let heard = parse_notice(&text);
        assert_eq!(heard.head, Some(43));
        let (first, added) = heard.entries.unwrap();
        assert_eq!(first, 41);
        let expected: Vec<Added> = objects
            .iter()
            .map(|o| Added {
                cid: o.cid().clone(),
                bytes: Some(o.bytes().to_vec()),
            })
            .collect();
        assert_eq!(added, expected);
    }

    #[test]
    fn what_does_not_fit_is_left_out() {
        // Bytes while the room lasts, then CIDs alone.
        let big = message(&"x".repeat(NOTICE_BYTES / 2 - 300));
        let objects = vec![message("a"), big.clone(), message("b"), big];
        let text = notice(1, 4, &entries(&objects));
        assert!(text.len() <= NOTICE_BYTES);
        let (_, added) = parse_notice(&text).entries.unwrap();
        let told: Vec<bool> = added.iter().map(|a| a.bytes.is_some()).collect();
        assert_eq!(told, [true, true, true, false]);
        // Too many entries for their CIDs: the head alone.
        let many: Vec<Object> = (0..200).map(|i| message(&format!("m{i}"))).collect();
        let text = notice(1, 200, &entries(&many));
        assert_eq!(text, "200");
        assert_eq!(
            parse_notice(&text),
            Notice {
                head: Some(200),
                entries: None
            }
        );
        // Positions that do not match the entries: the head alone.
        assert_eq!(notice(1, 5, &entries(&objects)), "5");
    }

    #[test]
    fn a_damaged_notice_says_look_now() {
        let objects = vec![message("a"), message("b")];
        let text = notice(7, 8, &entries(&objects));
        // Bytes that do not hash to their CID are dropped; the CID stays.
        let cid_hex = crate::hex(objects[0].cid().as_bytes());
        let other = crate::hex(objects[1].bytes());
        let forged = text.replacen(
            &format!("{cid_hex}.{}", crate::hex(objects[0].bytes())),
            &format!("{cid_hex}.{other}"),
            1,
        );
        let (_, added) = parse_notice(&forged).entries.unwrap();
        assert_eq!(added[0].bytes, None);
        assert_eq!(added[1].bytes.as_deref(), Some(objects[1].bytes()));
        // Counts that do not add up, a bad CID, garbage: nothing told.
        for bad in [
            text.replacen("8:7:", "9:7:", 1),
            text.replacen("8:7:", "8:x:", 1),
            format!("8:7:zz,{cid_hex}"),
            "8:7:".to_owned(),
            format!("{}:18446744073709551615:{cid_hex}", u64::MAX),
            "look".to_owned(),
        ] {
            assert_eq!(parse_notice(&bad).entries, None, "{bad}");
        }
        assert_eq!(parse_notice("look").head, None);
    }
}
