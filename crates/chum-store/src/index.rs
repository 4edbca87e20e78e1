//! What the store indexes about an object, derived from its bytes alone, the same way by every
//! backend.

use chum_crdt::{Timestamp, Version, entry_clock};
use chum_object::recipe::{Recipe, Strategy};
use chum_object::{Cid, Codec, Limits, Value, dagcbor};

use crate::error::{Error, Result};

/// The index entries of one object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexEntries {
    /// The `$type` of a typed object.
    pub type_name: Option<chum_object::Text>,
    /// Every distinct link in the object, sorted.
    pub links: Vec<Cid>,
    /// For a `Version`: the object it changes and its parents.
    pub version: Option<VersionEntry>,
    /// For an object with a 32-byte `author` (and optionally a `clock`): who wrote it, when.
    pub author: Option<([u8; 32], Timestamp)>,
}

/// The version facts the store indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// The ID hash the version belongs to.
    pub of: Cid,
    /// Its parents.
    pub parents: Vec<Cid>,
}

/// The longest `$type` a store indexes; objects with a longer one are refused.
pub const MAX_TYPE_NAME: usize = 1024;

/// A batch of objects already verified and indexed under some limits, so that a store can
/// write it without checking again. Only [`Verified::check`] makes one: a `Verified` always
/// holds objects that passed [`verify_and_index`] and exactly their entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    objects: Vec<(Cid, Vec<u8>)>,
    entries: Vec<IndexEntries>,
    limits: Limits,
}

impl Verified {
    /// Verifies and indexes `objects` under `limits` (see [`verify_and_index_all`]).
    pub fn check(objects: Vec<(Cid, Vec<u8>)>, limits: &Limits) -> Result<Verified> {
        Verified::check_with(objects, limits, None)
    }

    /// [`Verified::check`], also applying `accept` to every decoded dag-cbor object.
    pub fn check_with(
        objects: Vec<(Cid, Vec<u8>)>,
        limits: &Limits,
        accept: Option<&dyn Acceptance>,
    ) -> Result<Verified> {
        let entries = verify_all(&objects, limits, accept)?;
        Ok(Verified {
            objects,
            entries,
            limits: *limits,
        })
    }

    /// [`Verified::check_with`] with two rules: an object `hard` refuses (or broken bytes)
    /// refuses the whole batch, as there; an object `soft` refuses is left out alone and
    /// listed with the reason (e.g. an object of a newer app version that breaks this side's
    /// recipe: the rest of the batch is still stored).
    pub fn check_split(
        objects: Vec<(Cid, Vec<u8>)>,
        limits: &Limits,
        hard: Option<&dyn Acceptance>,
        soft: Option<&dyn Acceptance>,
    ) -> Result<(Verified, Vec<(Cid, String)>)> {
        let checked = verify_all_split(&objects, limits, hard, soft)?;
        let mut kept = Vec::with_capacity(objects.len());
        let mut entries = Vec::with_capacity(objects.len());
        let mut refused = Vec::new();
        for ((cid, bytes), checked) in objects.into_iter().zip(checked) {
            match checked {
                Ok(entry) => {
                    kept.push((cid, bytes));
                    entries.push(entry);
                }
                Err(reason) => refused.push((cid, reason)),
            }
        }
        Ok((
            Verified {
                objects: kept,
                entries,
                limits: *limits,
            },
            refused,
        ))
    }

    /// Several verified batches as one (each keeps the limits it was checked under only if
    /// they agree; otherwise the strictest check is redone by the store).
    pub fn concat(batches: Vec<Verified>) -> Verified {
        let limits = batches.first().map_or_else(Limits::default, |b| b.limits);
        let same = batches.iter().all(|b| b.limits == limits);
        let total = batches.iter().map(Verified::len).sum();
        let mut all = Verified {
            objects: Vec::with_capacity(total),
            entries: Vec::with_capacity(total),
            limits: if same { limits } else { widest_limits() },
        };
        for batch in batches {
            all.objects.extend(batch.objects);
            all.entries.extend(batch.entries);
        }
        all
    }

    /// Splits the batch in two: the objects whose flag in `keep` is set (still verified), and
    /// the others as plain pairs. Objects past the end of `keep` are not kept.
    pub fn select(self, keep: &[bool]) -> (Verified, Vec<(Cid, Vec<u8>)>) {
        let mut kept = Verified {
            objects: Vec::with_capacity(self.objects.len()),
            entries: Vec::with_capacity(self.objects.len()),
            limits: self.limits,
        };
        let mut left = Vec::new();
        for (i, (object, entry)) in self.objects.into_iter().zip(self.entries).enumerate() {
            if keep.get(i).copied().unwrap_or(false) {
                kept.objects.push(object);
                kept.entries.push(entry);
            } else {
                left.push(object);
            }
        }
        (kept, left)
    }

    /// The objects.
    pub fn objects(&self) -> &[(Cid, Vec<u8>)] {
        &self.objects
    }

    /// The objects and their index entries, taken apart (a store that keeps the bytes as they
    /// are moves them in instead of copying).
    pub fn into_parts(self) -> (Vec<(Cid, Vec<u8>)>, Vec<IndexEntries>) {
        (self.objects, self.entries)
    }

    /// The index entries, one per object.
    pub fn entries(&self) -> &[IndexEntries] {
        &self.entries
    }

    /// The limits the batch was checked under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// [`verify_and_index`] for a batch, in order; the first object (in batch order) that fails
/// is the error. Large batches are checked on several threads (natively), since hashing and
/// strict decoding are most of what storing costs before the database write.
pub fn verify_and_index_all(
    objects: &[(Cid, Vec<u8>)],
    limits: &Limits,
) -> Result<Vec<IndexEntries>> {
    verify_all(objects, limits, None)
}

fn verify_all(
    objects: &[(Cid, Vec<u8>)],
    limits: &Limits,
    accept: Option<&dyn Acceptance>,
) -> Result<Vec<IndexEntries>> {
    verify_all_split(objects, limits, accept, None)?
        .into_iter()
        .zip(objects)
        .map(|(checked, (cid, _))| {
            checked.map_err(|reason| Error::Invalid {
                cid: cid.clone(),
                reason,
            })
        })
        .collect()
}

/// [`verify_split`] for a batch, in order, on several threads for large batches.
fn verify_all_split(
    objects: &[(Cid, Vec<u8>)],
    limits: &Limits,
    accept: Option<&dyn Acceptance>,
    soft: Option<&dyn Acceptance>,
) -> Result<Vec<std::result::Result<IndexEntries, String>>> {
    // wasm32 has one thread.
    #[cfg(not(target_arch = "wasm32"))]
    {
        const PER_THREAD: usize = 256;
        let threads = parallelism().min(objects.len() / PER_THREAD);
        if threads > 1 {
            return verify_on_threads(objects, limits, accept, soft, threads);
        }
    }
    objects
        .iter()
        .map(|(cid, bytes)| verify_split(cid, bytes, limits, accept, soft))
        .collect()
}

/// [`verify_all_split`] in `threads` parts on rayon's pool (natively; wasm32 has one thread): no
/// thread is spawned per batch.
#[cfg(not(target_arch = "wasm32"))]
fn verify_on_threads(
    objects: &[(Cid, Vec<u8>)],
    limits: &Limits,
    accept: Option<&dyn Acceptance>,
    soft: Option<&dyn Acceptance>,
    threads: usize,
) -> Result<Vec<std::result::Result<IndexEntries, String>>> {
    use rayon::prelude::*;
    let chunk = objects.len().div_ceil(threads);
    let parts: Vec<Result<Vec<_>>> = objects
        .par_chunks(chunk)
        .map(|part| {
            part.iter()
                .map(|(cid, bytes)| verify_split(cid, bytes, limits, accept, soft))
                .collect::<Result<Vec<_>>>()
        })
        .collect();
    let mut all = Vec::with_capacity(objects.len());
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

#[cfg(not(target_arch = "wasm32"))]
fn parallelism() -> usize {
    // Asked once: the answer reads the cgroup's files, and this runs for every batch.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(8)
    })
}

/// Verifies `bytes` against `cid` (size, hash; for dag-cbor also strict decoding under
/// `limits`) and derives the index entries. Raw blocks (blob chunks) have no entries.
pub fn verify_and_index(cid: &Cid, bytes: &[u8], limits: &Limits) -> Result<IndexEntries> {
    verify_accept_index(cid, bytes, limits, None)
}

/// What a receiver accepts beyond a valid, canonical object (checked by
/// [`Verified::check_with`] on the decoded value): recipes, well-formed versions, scopes.
pub trait Acceptance: crate::MaybeSendSync {
    /// `Err(reason)` refuses the object (and with it the batch).
    fn accept(&self, cid: &Cid, value: &Value) -> std::result::Result<(), String>;
}

/// The acceptance rule of a peer configured with recipes: an object whose `$type` has a recipe
/// must satisfy it, and must not be of an instance-local type (those never travel); a `Version`
/// must be well-formed. Objects of other types pass.
#[derive(Debug, Clone, Default)]
pub struct RecipeCheck {
    recipes: std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<String, Recipe>>>,
}

/// A table of recipes by name that several holders read and one may update (an app that
/// registers a recipe at run time: its [`RecipeCheck`] sees it at once).
pub type RecipeTable =
    std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<String, Recipe>>>;

impl RecipeCheck {
    /// A check with these recipes (the last of several with one name wins).
    pub fn new(recipes: impl IntoIterator<Item = Recipe>) -> RecipeCheck {
        RecipeCheck::shared(std::sync::Arc::new(std::sync::RwLock::new(
            recipes
                .into_iter()
                .map(|recipe| (recipe.name.clone(), recipe))
                .collect(),
        )))
    }

    /// A check that reads `table` on every object, so recipes added to it later apply.
    pub fn shared(table: RecipeTable) -> RecipeCheck {
        RecipeCheck { recipes: table }
    }
}

impl Acceptance for RecipeCheck {
    fn accept(&self, _cid: &Cid, value: &Value) -> std::result::Result<(), String> {
        let Some(type_name) = value.type_name() else {
            return Ok(());
        };
        if type_name == chum_crdt::version::VERSION_TYPE {
            return Version::from_value(value)
                .map(|_| ())
                .map_err(|error| format!("not a well-formed version: {error}"));
        }
        let recipes = self
            .recipes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match recipes.get(type_name) {
            Some(recipe) if recipe.strategy == Strategy::InstanceLocal => Err(format!(
                "{type_name} is instance-local and never travels between peers"
            )),
            // A versioned type's objects are its ID objects; the other fields live in
            // versions.
            Some(recipe) if recipe.is_versioned() => recipe
                .validate_id_object(value)
                .map_err(|error| format!("breaks its recipe: {error}")),
            Some(recipe) => recipe
                .validate(value)
                .map_err(|error| format!("breaks its recipe: {error}")),
            None => Ok(()),
        }
    }
}

fn verify_accept_index(
    cid: &Cid,
    bytes: &[u8],
    limits: &Limits,
    accept: Option<&dyn Acceptance>,
) -> Result<IndexEntries> {
    match verify_split(cid, bytes, limits, accept, None)? {
        Ok(entries) => Ok(entries),
        Err(reason) => Err(Error::Invalid {
            cid: cid.clone(),
            reason,
        }),
    }
}

/// Verifies one object: broken bytes and `hard` refusals are errors; a `soft` refusal is
/// `Ok(Err(reason))` (the object is refused alone).
fn verify_split(
    cid: &Cid,
    bytes: &[u8],
    limits: &Limits,
    accept: Option<&dyn Acceptance>,
    soft: Option<&dyn Acceptance>,
) -> Result<std::result::Result<IndexEntries, String>> {
    let invalid = |reason: String| Error::Invalid {
        cid: cid.clone(),
        reason,
    };
    if bytes.len() > limits.max_size {
        return Err(invalid(format!(
            "{} bytes exceed the limit of {}",
            bytes.len(),
            limits.max_size
        )));
    }
    if cid.is_blake3(Codec::Raw) {
        return match cid.verify(bytes) {
            Ok(true) => Ok(Ok(IndexEntries::default())),
            Ok(false) => Err(invalid("bytes do not hash to the CID".into())),
            Err(error) => Err(invalid(error.to_string())),
        };
    }
    if !cid.is_blake3(Codec::DagCbor) {
        return Err(invalid(format!(
            "only BLAKE3 dag-cbor objects and raw blocks can be verified (codec {:#x}, hash {:#x})",
            cid.codec(),
            cid.hash_code()
        )));
    }
    match cid.verify(bytes) {
        Ok(true) => {}
        Ok(false) => return Err(invalid("bytes do not hash to the CID".into())),
        Err(error) => return Err(invalid(error.to_string())),
    }
    let value =
        dagcbor::decode_with_limits(bytes, limits).map_err(|error| invalid(error.to_string()))?;
    if let Some(accept) = accept {
        accept.accept(cid, &value).map_err(invalid)?;
    }
    let entries = index_entries(&value);
    if entries
        .type_name
        .as_ref()
        .is_some_and(|name| name.len() > MAX_TYPE_NAME)
    {
        return Err(invalid(format!("$type longer than {MAX_TYPE_NAME} bytes")));
    }
    if let Some(soft) = soft
        && let Err(reason) = soft.accept(cid, &value)
    {
        return Ok(Err(reason));
    }
    Ok(Ok(entries))
}

/// The widest limits: for re-reading bytes that were accepted earlier (e.g. to remove their
/// index entries), whatever limits are configured now.
pub fn widest_limits() -> Limits {
    Limits {
        max_size: usize::MAX,
        max_depth: Limits::HARD_MAX_DEPTH,
        max_collection_len: usize::MAX,
    }
}

/// The index entries of a decoded object.
pub fn index_entries(value: &Value) -> IndexEntries {
    let mut links = Vec::new();
    value.for_each_link(&mut |cid| links.push(cid.clone()));
    links.sort();
    links.dedup();
    let type_name = value.type_name().map(chum_object::Text::from);
    let mut entries = IndexEntries {
        type_name,
        links,
        version: None,
        author: None,
    };
    if entries.type_name.as_deref() == Some(chum_crdt::version::VERSION_TYPE) {
        if let Ok(version) = Version::from_value(value) {
            entries.author = Some((version.author.0, version.clock));
            entries.version = Some(VersionEntry {
                of: version.of,
                parents: version.parents,
            });
        }
    } else if let Some(Value::Bytes(author)) = value.as_map().and_then(|map| map.get("author"))
        && let Ok(author) = <[u8; 32]>::try_from(author.as_slice())
    {
        entries.author = Some((author, entry_clock(value)));
    }
    entries
}

/// The index operations heads maintenance needs; memory and disk backends implement it over
/// their own tables, and share [`insert_version`] and [`remove_version`].
pub trait VersionTables {
    /// Records `cid` as a version of `of`.
    fn add_version(&mut self, of: &Cid, cid: &Cid) -> Result<()>;
    /// Forgets `cid` as a version of `of`.
    fn remove_version(&mut self, of: &Cid, cid: &Cid) -> Result<()>;
    /// Whether `cid` is a stored version of `of`.
    fn is_version(&self, of: &Cid, cid: &Cid) -> Result<bool>;
    /// Records the parent edge `parent → child`.
    fn add_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()>;
    /// Forgets the parent edge `parent → child`.
    fn remove_edge(&mut self, parent: &Cid, child: &Cid) -> Result<()>;
    /// The children recorded for `parent`.
    fn children(&self, parent: &Cid) -> Result<Vec<Cid>>;
    /// Marks `cid` as a head of `of`.
    fn add_head(&mut self, of: &Cid, cid: &Cid) -> Result<()>;
    /// Unmarks `cid` as a head of `of`.
    fn remove_head(&mut self, of: &Cid, cid: &Cid) -> Result<()>;
}

fn has_child_version(tables: &impl VersionTables, of: &Cid, cid: &Cid) -> Result<bool> {
    for child in tables.children(cid)? {
        if tables.is_version(of, &child)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Indexes a newly stored version: its parents stop being heads; it becomes a head unless a
/// stored version already names it as a parent (it arrived after a child).
pub fn insert_version(
    tables: &mut impl VersionTables,
    cid: &Cid,
    entry: &VersionEntry,
) -> Result<()> {
    tables.add_version(&entry.of, cid)?;
    for parent in &entry.parents {
        tables.add_edge(parent, cid)?;
        tables.remove_head(&entry.of, parent)?;
    }
    if !has_child_version(tables, &entry.of, cid)? {
        tables.add_head(&entry.of, cid)?;
    }
    Ok(())
}

/// Un-indexes a deleted version: parents that no remaining version names become heads again.
pub fn remove_version(
    tables: &mut impl VersionTables,
    cid: &Cid,
    entry: &VersionEntry,
) -> Result<()> {
    tables.remove_version(&entry.of, cid)?;
    tables.remove_head(&entry.of, cid)?;
    for parent in &entry.parents {
        tables.remove_edge(parent, cid)?;
        if tables.is_version(&entry.of, parent)? && !has_child_version(tables, &entry.of, parent)? {
            tables.add_head(&entry.of, parent)?;
        }
    }
    Ok(())
}
