//! The journal positions a node holds of its peers' journals (its version vector), in its
//! store's instance-local area: one entry per peer journal under `chum-net/holds/` ‖ the
//! 16-byte journal id, holding the position (8 bytes, big-endian) and when it was learned (ms
//! since the Unix epoch, 8 bytes). Bounded: beyond [`MAX_ENTRIES`] the oldest is dropped (a
//! dropped position only costs that peer's next session a sketch instead of the fast path).

use chum_store::Store;
use chum_sync::ids::JournalId;

const PREFIX: &[u8] = b"chum-net/holds/";

/// The most journal positions kept.
pub const MAX_ENTRIES: usize = 1_024;

fn key(journal: &JournalId) -> Vec<u8> {
    [PREFIX, journal.as_slice()].concat()
}

fn decode(bytes: &[u8]) -> Option<(u64, u64)> {
    let (position, rest) = bytes.split_first_chunk::<8>()?;
    let learned = <[u8; 8]>::try_from(rest).ok()?;
    Some((u64::from_be_bytes(*position), u64::from_be_bytes(learned)))
}

/// The position held of `journal`, if one was learned (a damaged entry reads as none).
pub async fn held(store: &dyn Store, journal: &JournalId) -> chum_store::Result<Option<u64>> {
    Ok(store
        .local_get(&key(journal))
        .await?
        .and_then(|bytes| decode(&bytes))
        .map(|(position, _)| position))
}

/// Every position held, most recently learned first, at most `limit`.
pub async fn recent(store: &dyn Store, limit: usize) -> chum_store::Result<Vec<(JournalId, u64)>> {
    let mut entries = Vec::new();
    for key in store.local_keys(PREFIX).await? {
        let Ok(journal) = JournalId::try_from(&key[PREFIX.len()..]) else {
            continue;
        };
        if let Some((position, learned)) = store
            .local_get(&key)
            .await?
            .and_then(|bytes| decode(&bytes))
        {
            entries.push((learned, journal, position));
        }
    }
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(entries
        .into_iter()
        .take(limit)
        .map(|(_, journal, position)| (journal, position))
        .collect())
}

/// Records that this node holds every object of `journal` up to `position` (the peer's latest
/// checkpoint replaces an earlier one, also a higher one: a peer restored from a backup moves
/// back).
pub async fn record(
    store: &dyn Store,
    journal: &JournalId,
    position: u64,
    now_ms: u64,
) -> chum_store::Result<()> {
    let key = key(journal);
    let value = [position.to_be_bytes(), now_ms.to_be_bytes()].concat();
    let known = store.local_get(&key).await?.is_some();
    store.local_put(&key, &value).await?;
    if !known {
        let keys = store.local_keys(PREFIX).await?;
        if keys.len() > MAX_ENTRIES {
            let mut oldest: Option<(u64, Vec<u8>)> = None;
            for other in keys {
                let learned = store
                    .local_get(&other)
                    .await?
                    .and_then(|bytes| decode(&bytes))
                    .map_or(0, |(_, learned)| learned);
                if oldest.as_ref().is_none_or(|(at, _)| learned < *at) {
                    oldest = Some((learned, other));
                }
            }
            if let Some((_, other)) = oldest {
                store.local_delete(&other).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chum_store::MemoryStore;
    use futures::executor::block_on;

    use super::*;

    #[test]
    fn positions_are_kept_replaced_listed_newest_first_and_bounded() {
        let store = MemoryStore::new();
        block_on(async {
            assert_eq!(held(&store, &[1; 16]).await.unwrap(), None);
            record(&store, &[1; 16], 10, 100).await.unwrap();
            record(&store, &[2; 16], 20, 200).await.unwrap();
            record(&store, &[1; 16], 5, 300).await.unwrap();
            assert_eq!(held(&store, &[1; 16]).await.unwrap(), Some(5));
            assert_eq!(
                recent(&store, 10).await.unwrap(),
                [([1; 16], 5), ([2; 16], 20)]
            );
            assert_eq!(recent(&store, 1).await.unwrap(), [([1; 16], 5)]);
            for n in 0..MAX_ENTRIES as u64 {
                let mut journal = [0xaa; 16];
                journal[..8].copy_from_slice(&n.to_be_bytes());
                record(&store, &journal, n, 1_000 + n).await.unwrap();
            }
            assert_eq!(store.local_keys(PREFIX).await.unwrap().len(), MAX_ENTRIES);
            assert_eq!(
                held(&store, &[2; 16]).await.unwrap(),
                None,
                "the oldest went"
            );
            assert_eq!(held(&store, &[1; 16]).await.unwrap(), None);
        });
    }
}
