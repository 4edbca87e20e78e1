//! The version tables of one write, staged in memory.
//!
//! [`chum_store::index::insert_version`] and `remove_version` read and write the version,
//! edge and head tables synchronously, while IndexedDB answers asynchronously. So a write
//! first loads exactly the rows those functions will read (see [`Staged::prepare_insert`] and
//! [`Staged::prepare_remove`]), runs them against this staging area, then writes back the rows
//! that changed — all in the same transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chum_object::Cid;
use chum_store::index::{VersionEntry, VersionTables};
use chum_store::keys::{pair_key, pair_prefix, second_of};
use chum_store::{Error, Result};
use web_sys::IdbObjectStore;

use crate::js;

/// Rows of the version tables, as far as loaded, with what changed.
#[derive(Debug, Default)]
pub struct Staged {
    /// `(of, cid)` → whether `cid` is a version of `of` (loaded or written).
    versions: HashMap<(Cid, Cid), bool>,
    /// Parents whose children were all loaded → their children now.
    children: HashMap<Cid, BTreeSet<Cid>>,
    /// Rows written: table, key → present.
    written: BTreeMap<(&'static str, Vec<u8>), bool>,
}

fn not_prepared(what: &str) -> Error {
    Error::Backend(format!(
        "internal: the version index row {what} was not loaded"
    ))
}

impl Staged {
    /// Loads what inserting `entries` (CID, version) will read: each new version's children
    /// (versions that name it as parent and arrived first) and whether they are versions of
    /// the same object.
    pub async fn prepare_insert(
        &mut self,
        edges: &IdbObjectStore,
        versions: &IdbObjectStore,
        entries: &[(&Cid, &VersionEntry)],
    ) -> Result<()> {
        for (cid, entry) in entries {
            self.load_children(edges, cid).await?;
            self.load_versions_of_children(versions, &entry.of, cid)
                .await?;
        }
        Ok(())
    }

    /// Loads what removing `entry` (a version `cid`) will read: whether each parent is a
    /// version, its children and whether they are versions.
    pub async fn prepare_remove(
        &mut self,
        edges: &IdbObjectStore,
        versions: &IdbObjectStore,
        cid: &Cid,
        entry: &VersionEntry,
    ) -> Result<()> {
        self.load_version(versions, &entry.of, cid).await?;
        for parent in &entry.parents {
            self.load_version(versions, &entry.of, parent).await?;
            self.load_children(edges, parent).await?;
            self.load_versions_of_children(versions, &entry.of, parent)
                .await?;
        }
        Ok(())
    }

    async fn load_children(&mut self, edges: &IdbObjectStore, parent: &Cid) -> Result<()> {
        if self.children.contains_key(parent) {
            return Ok(());
        }
        let prefix = pair_prefix(parent);
        let keys = prefixed_keys(edges, &prefix).await?;
        let children = keys
            .iter()
            .map(|key| second_of(key, prefix.len()))
            .collect::<Result<BTreeSet<_>>>()?;
        self.children.insert(parent.clone(), children);
        Ok(())
    }

    async fn load_versions_of_children(
        &mut self,
        versions: &IdbObjectStore,
        of: &Cid,
        parent: &Cid,
    ) -> Result<()> {
        let children: Vec<Cid> = self
            .children
            .get(parent)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        for child in children {
            self.load_version(versions, of, &child).await?;
        }
        Ok(())
    }

    async fn load_version(&mut self, versions: &IdbObjectStore, of: &Cid, cid: &Cid) -> Result<()> {
        let pair = (of.clone(), cid.clone());
        if self.versions.contains_key(&pair) {
            return Ok(());
        }
        let request = versions
            .count_with_key(&js::bytes(&pair_key(of, cid)))
            .map_err(|error| js::backend("count", &error))?;
        let found = js::request("count", &request)
            .await?
            .as_f64()
            .unwrap_or(0.0)
            > 0.0;
        self.versions.insert(pair, found);
        Ok(())
    }

    /// The rows that changed: (table, key, present).
    pub fn into_writes(self) -> impl Iterator<Item = (&'static str, Vec<u8>, bool)> {
        self.written
            .into_iter()
            .map(|((table, key), present)| (table, key, present))
    }

    fn write(&mut self, table: &'static str, key: Vec<u8>, present: bool) {
        self.written.insert((table, key), present);
    }
}

/// Every key of `store` that starts with `prefix`, ascending.
pub async fn prefixed_keys(store: &IdbObjectStore, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
    let range = js::range(prefix, false, js::successor(prefix).as_deref())?;
    let request = store
        .get_all_keys_with_key(&range)
        .map_err(|error| js::backend("getAllKeys", &error))?;
    let keys = js::request("getAllKeys", &request).await?;
    js_sys::Array::from(&keys)
        .iter()
        .map(|key| {
            js::to_bytes(&key).ok_or_else(|| Error::Damaged("a non-binary index key".into()))
        })
        .collect()
}

impl VersionTables for Staged {
    fn add_version(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        self.versions.insert((of.clone(), cid.clone()), true);
        self.write(crate::VERSIONS, pair_key(of, cid), true);
        Ok(())
    }
    fn remove_version(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        self.versions.insert((of.clone(), cid.clone()), false);
        self.write(crate::VERSIONS, pair_key(of, cid), false);
        Ok(())
    }
    fn is_version(&self, of: &Cid, cid: &Cid) -> Result<bool> {
        self.versions
            .get(&(of.clone(), cid.clone()))
            .copied()
            .ok_or_else(|| not_prepared("versions"))
    }
    fn add_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()> {
        if let Some(children) = self.children.get_mut(parent) {
            children.insert(child.clone());
        }
        self.write(crate::EDGES, pair_key(parent, child), true);
        Ok(())
    }
    fn remove_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()> {
        if let Some(children) = self.children.get_mut(parent) {
            children.remove(child);
        }
        self.write(crate::EDGES, pair_key(parent, child), false);
        Ok(())
    }
    fn children(&self, parent: &Cid) -> Result<Vec<Cid>> {
        self.children
            .get(parent)
            .map(|set| set.iter().cloned().collect())
            .ok_or_else(|| not_prepared("edges"))
    }
    fn add_head(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        self.write(crate::HEADS, pair_key(of, cid), true);
        Ok(())
    }
    fn remove_head(&mut self, of: &Cid, cid: &Cid) -> Result<()> {
        self.write(crate::HEADS, pair_key(of, cid), false);
        Ok(())
    }
}
