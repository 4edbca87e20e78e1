//! Typed handles over an [`Instance`]: documents ([`Docs`]), collections ([`Entries`]),
//! queries that page ([`DocQuery`]) and watches that give a snapshot, then changes ([`Watch`]).

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chum_crdt::Conflict;
use chum_object::recipe::{Recipe, Strategy};
use chum_object::{Cid, Map, Value};
use futures::Stream;

use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::instance::Instance;
use crate::typed::{Document, Id, Ref};

#[cfg(not(target_arch = "wasm32"))]
type Changes<C> = futures::stream::BoxStream<'static, C>;
#[cfg(target_arch = "wasm32")]
type Changes<C> = futures::stream::LocalBoxStream<'static, C>;

/// What a typed handle's values must be to travel in a [`Watch`]: `Send` natively (watches
/// run on any thread), anything in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub trait Watchable: Send + 'static {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + 'static> Watchable for T {}
/// What a typed handle's values must be to travel in a [`Watch`]: `Send` natively (watches
/// run on any thread), anything in the browser.
#[cfg(target_arch = "wasm32")]
pub trait Watchable: 'static {}
#[cfg(target_arch = "wasm32")]
impl<T: 'static> Watchable for T {}

/// A snapshot, then every change after it: [`Watch::snapshot`] is the state when the watch
/// was made; as a [`Stream`] it yields each change from then on (nothing between the snapshot
/// and the first change is missed: the watch subscribes before it reads). It ends when the
/// instance is closed or dropped; dropping it unsubscribes.
#[must_use = "a watch does nothing unless polled"]
pub struct Watch<S, C = S> {
    snapshot: S,
    changes: Changes<C>,
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for Watch<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

impl<S, C> Watch<S, C> {
    /// The state when the watch was made.
    pub fn snapshot(&self) -> &S {
        &self.snapshot
    }

    /// The next change; `None` once the instance is closed.
    pub async fn next(&mut self) -> Option<C> {
        futures::StreamExt::next(&mut self.changes).await
    }

    /// The snapshot and the stream of changes, apart.
    pub fn into_parts(self) -> (S, Changes<C>) {
        (self.snapshot, self.changes)
    }
}

impl<S: Unpin, C> Stream for Watch<S, C> {
    type Item = C;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C>> {
        self.changes.as_mut().poll_next(cx)
    }
}

/// Events of one instance as they come, ending when the instance is closed or dropped.
async fn next_event(events: &mut Events) -> Option<Event> {
    match events.next().await {
        None | Some(Event::Closed) => None,
        event => event,
    }
}

fn to_map<T: Document>(document: &T) -> Result<Map> {
    let Value::Map(mut map) = chum_object::to_value(document)? else {
        return Err(Error::Invalid(format!(
            "a {} must serialize to a map (a struct with named fields)",
            T::TYPE
        )));
    };
    // `None` is absent, never `null` (which would unset the field).
    let nulls: Vec<String> = map
        .iter()
        .filter(|(_, value)| **value == Value::Null)
        .map(|(key, _)| key.to_owned())
        .collect();
    for key in nulls {
        map.remove(&key);
    }
    map.insert("$type", T::TYPE);
    Ok(map)
}

fn from_state<T: Document>(mut state: Value) -> Result<T> {
    // `$type` is the recipe's, not a field of the type (so `deny_unknown_fields` works).
    if let Value::Map(map) = &mut state {
        map.remove("$type");
    }
    Ok(chum_object::from_value(state)?)
}

impl Instance {
    /// The documents of type `T` (a versioned type: it has `#[chum(id)]` fields). Its recipe
    /// is registered on first use (read or write) when this instance does not know it yet;
    /// register types at open with [`Builder::document`](crate::Builder::document) so that
    /// the first sync already knows them (another person's objects of a type unknown here
    /// are not taken: see [`Event::Refused`]).
    pub fn doc<T: Document>(&self) -> Docs<T> {
        Docs {
            instance: self.clone(),
            of: PhantomData,
        }
    }

    /// The entries of type `C` in the collection of `of` (e.g. the Comments of a Note: `C`
    /// has a `#[chum(collection)]` link field pointing at `of`), in collection order.
    pub fn collection<C: Document>(&self, of: impl Into<Cid>) -> Entries<C> {
        Entries {
            instance: self.clone(),
            of: of.into(),
            entry: PhantomData,
        }
    }

    /// A query over the documents of type `T`: filter, page, watch.
    pub fn query<T: Document>(&self) -> DocQuery<T> {
        DocQuery {
            instance: self.clone(),
            filter: None,
            limit: 100,
            after: None,
        }
    }

    /// Makes sure this instance validates and merges `T` with `T`'s recipe: registers it when
    /// unknown or older here; refuses when this instance knows a newer version of it (data
    /// written by a newer app may not fit `T`).
    pub(crate) async fn ensure_recipe<T: Document>(&self) -> Result<Recipe> {
        let wanted = T::recipe();
        match self.recipe(T::TYPE) {
            Some(known) if known == wanted => Ok(known),
            Some(known) if known.version > wanted.version => Err(Error::Invalid(format!(
                "this instance knows {} recipe version {}, newer than the type's version {}",
                T::TYPE,
                known.version,
                wanted.version
            ))),
            Some(known) if known.version == wanted.version => Err(Error::Invalid(format!(
                "two different recipes of {} are both version {}: give the changed one a higher version (#[chum(version = N)])",
                T::TYPE,
                known.version
            ))),
            _ => {
                self.register(wanted.clone()).await?;
                Ok(wanted)
            }
        }
    }
}

/// The documents of one type; see [`Instance::doc`]. Cheap to clone; holds its instance
/// (but never keeps it open: after [`Instance::close`] every call fails with
/// [`Error::Closed`]).
pub struct Docs<T> {
    instance: Instance,
    of: PhantomData<fn() -> T>,
}

impl<T> Clone for Docs<T> {
    fn clone(&self) -> Self {
        Docs {
            instance: self.instance.clone(),
            of: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Docs<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: Document> Docs<T> {
    async fn versioned_recipe(&self) -> Result<Recipe> {
        let recipe = self.instance.ensure_recipe::<T>().await?;
        if !recipe.is_versioned() {
            return Err(Error::Invalid(format!(
                "{} has no ID fields: it is not a document; use Instance::collection for entries",
                T::TYPE
            )));
        }
        Ok(recipe)
    }

    /// The ID of `document` (from its ID fields), whether or not it is stored.
    pub fn id_of(&self, document: &T) -> Result<Id<T>> {
        let recipe = T::recipe();
        let map = to_map(document)?;
        recipe
            .id_hash(&Value::Map(map))
            .map(Id::from_cid)
            .map_err(Error::from)
    }

    /// Writes `document` as the document's state: every field as given, and fields it
    /// leaves `None` unset (only where they differ from the current state, so concurrent
    /// edits of other fields survive a field-merge). Returns its ID.
    pub async fn create(&self, document: &T) -> Result<Id<T>> {
        let recipe = self.versioned_recipe().await?;
        let new = to_map(document)?;
        let id = recipe.id_hash(&Value::Map(new.clone()))?;
        let current = self.instance.state(&id).await?;
        let current = current.as_ref().and_then(Value::as_map);
        self.write(&recipe, current, new).await?;
        Ok(Id::from_cid(id))
    }

    /// The document, merged from every version held here; `None` when it does not exist here
    /// (never created, deleted, or not synced yet).
    pub async fn get(&self, id: &Id<T>) -> Result<Option<T>> {
        self.instance.ensure_recipe::<T>().await?;
        self.instance
            .state(id.cid())
            .await?
            .map(from_state)
            .transpose()
    }

    /// Changes the document: `change` edits the current state, and only the fields it
    /// changed are written (a field set to `None` is unset). Returns whether anything
    /// changed; [`Error::NotFound`] when the document does not exist here.
    pub async fn update(&self, id: &Id<T>, change: impl FnOnce(&mut T)) -> Result<bool> {
        let recipe = self.versioned_recipe().await?;
        let Some(current) = self.instance.state(id.cid()).await? else {
            return Err(Error::NotFound(format!("{} {id}", T::TYPE)));
        };
        let mut document: T = from_state(current.clone())?;
        change(&mut document);
        let new = to_map(&document)?;
        if recipe.id_hash(&Value::Map(new.clone()))? != *id.cid() {
            return Err(Error::Invalid(format!(
                "an update cannot change the ID fields of {} {id}",
                T::TYPE
            )));
        }
        self.write(&recipe, current.as_map(), new).await
    }

    /// Writes the difference between `current` and `new`.
    async fn write(&self, recipe: &Recipe, current: Option<&Map>, new: Map) -> Result<bool> {
        let empty = Map::new();
        let current = current.unwrap_or(&empty);
        let mut change = Map::new();
        let mut changed = false;
        for (key, value) in new.iter() {
            let is_id = key == "$type" || recipe.get_field(key).is_some_and(|field| field.id);
            if is_id {
                change.insert(key, value.clone());
            } else if !same_field(recipe, key, current.get(key), value) {
                change.insert(key, value.clone());
                changed = true;
            }
        }
        for (key, _) in current.iter() {
            let is_id = key == "$type" || recipe.get_field(key).is_some_and(|field| field.id);
            if !is_id && new.get(key).is_none() {
                change.insert(key, Value::Null);
                changed = true;
            }
        }
        let exists = !current.is_empty();
        if exists && !changed {
            return Ok(false);
        }
        if recipe.strategy == Strategy::LastWrite {
            // The whole state is the version's body.
            change = new;
        }
        let _ = self.instance.update(&Value::Map(change)).await?;
        Ok(true)
    }

    /// Deletes the document (a tombstone version that syncs like any change).
    pub async fn delete(&self, id: &Id<T>) -> Result<()> {
        self.versioned_recipe().await?;
        let _ = self.instance.delete(id.cid()).await?;
        Ok(())
    }

    /// Whether this instance may write the document so that the others sharing it see the
    /// write (see [`Instance::may_write`]): `false` for a document another person shared
    /// read-only. Writes it may not are refused with [`Error::Denied`].
    pub async fn may_write(&self, id: &Id<T>) -> Result<bool> {
        self.instance.may_write(id.cid()).await
    }

    /// The values of concurrent edits that lost the merge (for apps that show conflicts).
    pub async fn conflicts(&self, id: &Id<T>) -> Result<Vec<Conflict>> {
        self.instance.conflicts(id.cid()).await
    }

    /// The document now, then its state after every change (local or from a peer): `None`
    /// when it is deleted. Unchanged states are not repeated.
    pub async fn watch(&self, id: &Id<T>) -> Result<Watch<Option<T>>>
    where
        T: Watchable,
    {
        self.instance.ensure_recipe::<T>().await?;
        let events = self.instance.events();
        let state = self.instance.state(id.cid()).await?;
        let snapshot = state.clone().map(from_state::<T>).transpose()?;
        // The stream holds the instance weakly: a watch never keeps it (or its store) open.
        let changes = futures::stream::unfold(
            (self.instance.downgrade(), id.clone(), state, events),
            |(weak, id, mut last, mut events)| async move {
                loop {
                    let relevant = match next_event(&mut events).await? {
                        Event::Changed { id: changed, .. } => changed == *id.cid(),
                        Event::Lagged { .. } => true,
                        _ => false,
                    };
                    if !relevant {
                        continue;
                    }
                    let instance = Instance::upgrade(&weak)?;
                    let state = instance.state(id.cid()).await.ok()?;
                    if state == last {
                        continue;
                    }
                    let document = state.clone().map(from_state::<T>).transpose().ok()?;
                    last = state;
                    return Some((document, (weak, id, last, events)));
                }
            },
        );
        Ok(Watch {
            snapshot,
            changes: boxed(changes),
        })
    }

    /// Every document of this type here, in ID order, one page at a time (see
    /// [`DocQuery`]).
    pub fn query(&self) -> DocQuery<T> {
        self.instance.query::<T>()
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn boxed<C, S: Stream<Item = C> + Send + 'static>(stream: S) -> Changes<C> {
    Box::pin(stream)
}

#[cfg(target_arch = "wasm32")]
fn boxed<C, S: Stream<Item = C> + 'static>(stream: S) -> Changes<C> {
    Box::pin(stream)
}

/// Whether a document's field `key` holds `new` already (`current`). A set field compares as a
/// set: the merged state and a Rust set may list the same elements in different orders.
fn same_field(recipe: &Recipe, key: &str, current: Option<&Value>, new: &Value) -> bool {
    let is_set = recipe
        .get_field(key)
        .is_some_and(|field| matches!(field.kind, chum_object::recipe::Kind::Set(_)));
    match (current, new) {
        (Some(Value::List(have)), Value::List(want)) if is_set => {
            have.len() == want.len() && want.iter().all(|element| have.contains(element))
        }
        (current, new) => current == Some(new),
    }
}

/// The entries of one collection; see [`Instance::collection`].
pub struct Entries<C> {
    instance: Instance,
    of: Cid,
    entry: PhantomData<fn() -> C>,
}

impl<C> std::fmt::Debug for Entries<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("type", &std::any::type_name::<C>())
            .field("of", &self.of)
            .finish_non_exhaustive()
    }
}

impl<C: Document> Entries<C> {
    /// Appends `entry` (its `clock` and `author` fields, when its recipe has them and they are
    /// `None`, are filled in). It must link to this collection's object through a
    /// `#[chum(collection)]` field.
    pub async fn append(&self, entry: &C) -> Result<Ref<C>> {
        let recipe = self.instance.ensure_recipe::<C>().await?;
        let value = Value::Map(to_map(entry)?);
        if !chum_crdt::collection_targets(&recipe, &value).any(|target| *target == self.of) {
            return Err(Error::Invalid(format!(
                "this {} does not link to {} through a collection field",
                C::TYPE,
                self.of
            )));
        }
        let written = self.instance.create(&value).await?;
        Ok(Ref::from_cid(written.cid().clone()))
    }

    /// The entries, in collection order (clock, then CID). Reads the whole collection of one
    /// object; for very long ones use [`Entries::page`].
    pub async fn list(&self) -> Result<Vec<(Ref<C>, C)>> {
        self.page(None, usize::MAX).await
    }

    /// At most `limit` entries after `after` (an entry of an earlier page), in collection
    /// order.
    pub async fn page(&self, after: Option<&Ref<C>>, limit: usize) -> Result<Vec<(Ref<C>, C)>> {
        self.instance.ensure_recipe::<C>().await?;
        let cids = self.instance.entries(&self.of).await?;
        let start = match after {
            Some(after) => cids
                .iter()
                .position(|cid| cid == after.cid())
                .map_or(cids.len(), |at| at + 1),
            None => 0,
        };
        let mut out = Vec::new();
        for cid in cids.into_iter().skip(start) {
            if out.len() >= limit {
                break;
            }
            let value = self.instance.read(&cid).await?;
            if value.type_name() != Some(C::TYPE) {
                continue;
            }
            out.push((Ref::from_cid(cid), from_state(value)?));
        }
        Ok(out)
    }

    /// The entries now, then each new entry as it is stored (written here or by a peer).
    /// An entry from a peer may carry an earlier clock than entries already shown: place it
    /// by [`Entries::list`]'s order if that matters.
    pub async fn watch(&self) -> Result<Watch<Vec<(Ref<C>, C)>, (Ref<C>, C)>>
    where
        C: Watchable,
    {
        let events = self.instance.events();
        let snapshot = self.list().await?;
        let seen: std::collections::HashSet<Cid> =
            snapshot.iter().map(|(cid, _)| cid.cid().clone()).collect();
        // Entries found but not yet yielded (after missed events, a re-read finds several).
        let ready: std::collections::VecDeque<(Ref<C>, C)> = std::collections::VecDeque::new();
        let changes = futures::stream::unfold(
            (
                self.instance.downgrade(),
                self.of.clone(),
                events,
                seen,
                ready,
            ),
            |(weak, of, mut events, mut seen, mut ready)| async move {
                loop {
                    if let Some(entry) = ready.pop_front() {
                        return Some((entry, (weak, of, events, seen, ready)));
                    }
                    let event = next_event(&mut events).await?;
                    let instance = Instance::upgrade(&weak)?;
                    let cids = match event {
                        Event::Stored { cid, type_name, .. }
                            if type_name.as_deref() == Some(C::TYPE) =>
                        {
                            vec![cid]
                        }
                        // Events were missed: read the collection again for what is new.
                        Event::Lagged { .. } => instance.entries(&of).await.ok()?,
                        _ => continue,
                    };
                    let Some(recipe) = instance.recipe(C::TYPE) else {
                        continue;
                    };
                    for cid in cids {
                        if seen.contains(&cid) {
                            continue;
                        }
                        let Ok(value) = instance.read(&cid).await else {
                            continue;
                        };
                        if value.type_name() != Some(C::TYPE)
                            || !chum_crdt::collection_targets(&recipe, &value).any(|t| *t == of)
                        {
                            continue;
                        }
                        if let Ok(entry) = from_state::<C>(value) {
                            seen.insert(cid.clone());
                            ready.push_back((Ref::from_cid(cid), entry));
                        }
                    }
                }
            },
        );
        Ok(Watch {
            snapshot,
            changes: boxed(changes),
        })
    }
}

/// A filter of a [`DocQuery`].
#[cfg(not(target_arch = "wasm32"))]
type Filter<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;
#[cfg(target_arch = "wasm32")]
type Filter<T> = Arc<dyn Fn(&T) -> bool>;

/// A read over the documents of one type that pages: see [`Instance::query`]. Documents come
/// in ID order; [`DocQuery::page`] reads until it has `limit` matches or the type ends.
pub struct DocQuery<T> {
    instance: Instance,
    filter: Option<Filter<T>>,
    limit: usize,
    after: Option<Id<T>>,
}

impl<T> std::fmt::Debug for DocQuery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocQuery")
            .field("type", &std::any::type_name::<T>())
            .field("limit", &self.limit)
            .field("after", &self.after.as_ref().map(Id::cid))
            .finish_non_exhaustive()
    }
}

/// One page of a [`DocQuery`].
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The matching documents of this page, in ID order.
    pub items: Vec<(Id<T>, T)>,
    /// Where the next page starts (`DocQuery::after`), or `None` after the last page.
    pub next: Option<Id<T>>,
}

/// A change to the result of a watched [`DocQuery`].
#[derive(Debug, Clone)]
pub enum QueryChange<T> {
    /// The document now matches, with its new state (it may have matched before).
    Upsert(Id<T>, T),
    /// The document no longer matches (deleted, or changed so the filter refuses it).
    Removed(Id<T>),
    /// Changes were missed (the consumer fell behind): the first page again, to show instead
    /// of what was shown.
    Resync(Page<T>),
}

impl<T: Document> DocQuery<T> {
    /// Only documents for which `filter` says `true`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn filter(mut self, filter: impl Fn(&T) -> bool + Send + Sync + 'static) -> DocQuery<T> {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Only documents for which `filter` says `true`.
    #[cfg(target_arch = "wasm32")]
    pub fn filter(mut self, filter: impl Fn(&T) -> bool + 'static) -> DocQuery<T> {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// At most `limit` documents a page (default 100).
    pub fn limit(mut self, limit: usize) -> DocQuery<T> {
        self.limit = limit.max(1);
        self
    }

    /// Start after this document (a page's `next`).
    pub fn after(mut self, after: Id<T>) -> DocQuery<T> {
        self.after = Some(after);
        self
    }

    fn matches(&self, document: &T) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter(document))
    }

    /// The next page.
    pub async fn page(&self) -> Result<Page<T>> {
        const SCAN: usize = 256;
        self.instance.ensure_recipe::<T>().await?;
        let mut items = Vec::new();
        let mut after = self.after.as_ref().map(|id| id.cid().clone());
        loop {
            let ids = self
                .instance
                .of_type_page(T::TYPE, after.as_ref(), SCAN)
                .await?;
            let scanned = ids.len();
            for id in ids {
                after = Some(id.clone());
                let Some(state) = self.instance.state(&id).await? else {
                    continue;
                };
                let document: T = from_state(state)?;
                if self.matches(&document) {
                    items.push((Id::from_cid(id), document));
                    if items.len() == self.limit {
                        let next = items.last().map(|(id, _)| id.clone());
                        return Ok(Page { items, next });
                    }
                }
            }
            if scanned < SCAN {
                return Ok(Page { items, next: None });
            }
        }
    }

    /// The first page now, then every change to a document of this type: an
    /// [`QueryChange::Upsert`] when it matches, a [`QueryChange::Removed`] when it does not
    /// (deleted or filtered out).
    pub async fn watch(self) -> Result<Watch<Page<T>, QueryChange<T>>>
    where
        T: Watchable,
    {
        let events = self.instance.events();
        let snapshot = self.page().await?;
        let weak = self.instance.downgrade();
        let (filter, limit) = (self.filter.clone(), self.limit);
        let changes = futures::stream::unfold((weak, events), move |(weak, mut events)| {
            let filter = filter.clone();
            async move {
                loop {
                    let event = next_event(&mut events).await?;
                    let query = DocQuery {
                        instance: Instance::upgrade(&weak)?,
                        filter: filter.clone(),
                        limit,
                        after: None,
                    };
                    let id = match event {
                        Event::Changed { id, .. } => id,
                        // Events were missed: the first page again, to show instead.
                        Event::Lagged { .. } => match query.page().await {
                            Ok(page) => return Some((QueryChange::Resync(page), (weak, events))),
                            Err(_) => continue,
                        },
                        _ => continue,
                    };
                    let Ok(id_object) = query.instance.get(&id).await else {
                        continue;
                    };
                    if id_object.type_name() != Some(T::TYPE) {
                        continue;
                    }
                    let typed = Id::from_cid(id.clone());
                    let change = match query.instance.state(&id).await {
                        Ok(Some(state)) => match from_state::<T>(state) {
                            Ok(document) if query.matches(&document) => {
                                QueryChange::Upsert(typed, document)
                            }
                            _ => QueryChange::Removed(typed),
                        },
                        Ok(None) => QueryChange::Removed(typed),
                        Err(_) => continue,
                    };
                    return Some((change, (weak, events)));
                }
            }
        });
        Ok(Watch {
            snapshot,
            changes: boxed(changes),
        })
    }
}
