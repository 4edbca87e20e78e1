//! What a node remembers about each peer instance it has synced with, in its store's
//! instance-local area: one small record per peer instance (so it stays bounded by the number
//! of peers, not by time or reconnects), under `chum-net/peer/` ‖ the instance key.

use chum_access::{InstanceId, PersonId};
use chum_object::{Limits, Map, Value, dagcbor};
use chum_store::Store;

const PREFIX: &[u8] = b"chum-net/peer/";

/// One peer instance, as this node has seen it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer instance.
    pub instance: InstanceId,
    /// Its person.
    pub person: PersonId,
    /// Whether it is an instance of this node's own person.
    pub same_person: bool,
    /// When a session with it was first admitted (ms since the Unix epoch).
    pub first_seen_ms: u64,
    /// When a session with it was last admitted.
    pub last_connected_ms: u64,
    /// When a session with it last completed its first reconciliation both ways.
    pub last_synced_ms: Option<u64>,
    /// Objects it acknowledged storing, over all sessions.
    pub acknowledged: u64,
    /// Objects received from it, over all sessions.
    pub received: u64,
    /// The journal its store announced in its latest hello (see [`crate::journals`]).
    pub journal: Option<chum_sync::ids::JournalId>,
}

impl PeerRecord {
    fn key(instance: &InstanceId) -> Vec<u8> {
        let mut key = PREFIX.to_vec();
        key.extend_from_slice(&instance.0);
        key
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut map = Map::new();
        map.insert("person", self.person.0.clone());
        map.insert("same", self.same_person);
        map.insert("first", self.first_seen_ms);
        map.insert("connected", self.last_connected_ms);
        if let Some(synced) = self.last_synced_ms {
            map.insert("synced", synced);
        }
        map.insert("acked", self.acknowledged);
        map.insert("received", self.received);
        if let Some(journal) = &self.journal {
            map.insert("journal", Value::Bytes(journal.to_vec()));
        }
        dagcbor::encode(&Value::Map(map)).unwrap_or_default()
    }

    fn from_bytes(instance: InstanceId, bytes: &[u8]) -> Option<PeerRecord> {
        let value = dagcbor::decode_with_limits(bytes, &Limits::default()).ok()?;
        let map = value.as_map()?;
        let int = |key: &str| {
            map.get(key)
                .and_then(Value::as_int)
                .and_then(|i| i.to_u64())
        };
        Some(PeerRecord {
            instance,
            person: PersonId(map.get("person")?.as_link()?.clone()),
            same_person: matches!(map.get("same"), Some(Value::Bool(true))),
            first_seen_ms: int("first")?,
            last_connected_ms: int("connected")?,
            last_synced_ms: int("synced"),
            acknowledged: int("acked")?,
            received: int("received")?,
            journal: match map.get("journal") {
                Some(Value::Bytes(bytes)) => <[u8; 16]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            },
        })
    }

    /// The record of `instance` in `store`, if any (a damaged record reads as none).
    pub async fn load(
        store: &dyn Store,
        instance: &InstanceId,
    ) -> chum_store::Result<Option<PeerRecord>> {
        Ok(store
            .local_get(&PeerRecord::key(instance))
            .await?
            .and_then(|bytes| PeerRecord::from_bytes(*instance, &bytes)))
    }

    /// Every peer record in `store`.
    pub async fn all(store: &dyn Store) -> chum_store::Result<Vec<PeerRecord>> {
        let mut records = Vec::new();
        for key in store.local_keys(PREFIX).await? {
            let Ok(instance) = <[u8; 32]>::try_from(&key[PREFIX.len()..]) else {
                continue;
            };
            let instance = InstanceId(instance);
            if let Some(record) = PeerRecord::load(store, &instance).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Writes the record.
    pub async fn save(&self, store: &dyn Store) -> chum_store::Result<()> {
        store
            .local_put(&PeerRecord::key(&self.instance), &self.to_bytes())
            .await
    }
}
