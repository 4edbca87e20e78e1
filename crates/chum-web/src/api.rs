//! The JavaScript surface: `Instance` and `Link`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use chum::{Cid, Event, Origin, Value};

/// The `$type` of version objects.
const VERSION_TYPE: &str = "Version";
use chum_store_idb::IdbStore;
use js_sys::{Array, Function, JSON, Object, Reflect};
use wasm_bindgen::prelude::*;

/// A JavaScript `Error` whose `name` is `name`.
fn error(name: &str, message: impl AsRef<str>) -> JsValue {
    let error = js_sys::Error::new(message.as_ref());
    error.set_name(name);
    error.into()
}

/// The `name` a JavaScript caller sees for each kind of failure.
fn error_name(error: &chum::Error) -> &'static str {
    match error {
        chum::Error::StoreLocked(_) => "StoreLocked",
        chum::Error::Storage(_) => "StorageError",
        chum::Error::Decode(_) => "DecodeError",
        chum::Error::Invalid(_) => "InvalidObject",
        chum::Error::Recipe(_) => "RecipeError",
        chum::Error::UnknownRecipe(_) => "UnknownRecipe",
        chum::Error::NotFound(_) => "NotFound",
        chum::Error::Denied(_) => "Denied",
        chum::Error::Invitation(reason) if reason.contains("already used") => "InvitationUsed",
        chum::Error::Invitation(reason) if reason.contains("expired") => "InvitationExpired",
        chum::Error::Invitation(_) => "InvitationRefused",
        chum::Error::Identity(_) => "IdentityError",
        chum::Error::Timeout(_) => "Timeout",
        chum::Error::Transport(_) => "TransportError",
        chum::Error::Closed => "Closed",
        _ => "ChumError",
    }
}

fn thrown(failure: chum::Error) -> JsValue {
    error(error_name(&failure), failure.to_string())
}

fn type_error(message: impl AsRef<str>) -> JsValue {
    error("TypeError", message)
}

/// A property of a JavaScript options object (`undefined` when absent).
fn option(options: &JsValue, name: &str) -> JsValue {
    Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn optional_string(options: &JsValue, name: &str) -> Result<Option<String>, JsValue> {
    let value = option(options, name);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .as_string()
        .map(Some)
        .ok_or_else(|| type_error(format!("option {name:?} must be a string")))
}

/// A string argument of `method`, or a `TypeError` saying what was expected.
fn string_arg(value: &JsValue, method: &str, expected: &str) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| type_error(format!("{method} takes {expected} (a string)")))
}

fn parse_cid(text: &str) -> Result<Cid, JsValue> {
    text.parse::<Cid>()
        .map_err(|failure| error("InvalidCid", format!("{text:?} is not a CID: {failure}")))
}

/// A DAG-JSON-shaped JavaScript value as a chum value.
fn to_value(value: &JsValue) -> Result<Value, JsValue> {
    if !value.is_object() || Array::is_array(value) {
        return Err(type_error(
            "expected an object such as {$type: \"Message\", text: \"hi\"}",
        ));
    }
    let text = JSON::stringify_with_replacer(value, &bytes_replacer())
        .map_err(|_| type_error("the value cannot be written as JSON (a cycle, or a BigInt)"))?;
    let text = String::from(text);
    chum::dagjson::from_str(&text).map_err(|failure| error("DecodeError", failure.to_string()))
}

thread_local! {
    /// `JSON.stringify`'s replacer: a `Uint8Array` (or `ArrayBuffer`) becomes DAG-JSON bytes.
    static BYTES_REPLACER: Function = Closure::<dyn Fn(JsValue, JsValue) -> JsValue>::new(
        |_key: JsValue, value: JsValue| {
            let bytes = if let Some(array) = value.dyn_ref::<js_sys::Uint8Array>() {
                array.to_vec()
            } else if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
                js_sys::Uint8Array::new(buffer).to_vec()
            } else {
                return value;
            };
            let text = chum::dagjson::to_string(&Value::Bytes(bytes)).unwrap_or_default();
            JSON::parse(&text).unwrap_or(value)
        },
    )
    .into_js_value()
    .unchecked_into();
}

fn bytes_replacer() -> JsValue {
    BYTES_REPLACER.with(|replacer| replacer.clone().into())
}

/// A chum value as a DAG-JSON-shaped JavaScript value.
fn from_value(value: &Value) -> Result<JsValue, JsValue> {
    let text = chum::dagjson::to_string(value)
        .map_err(|failure| error("DecodeError", failure.to_string()))?;
    JSON::parse(&text).map_err(|_| error("DecodeError", "a value JSON cannot carry"))
}

fn origin_text(origin: &Origin) -> JsValue {
    match origin {
        Origin::Local => JsValue::from_str("local"),
        Origin::Peer { instance, .. } => JsValue::from_str(&instance.to_string()),
        _ => JsValue::from_str("unknown"),
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/**
 * Errors are `Error`s whose `name` is the kind: `TypeError` (a wrong argument), `InvalidCid`,
 * `RecipeError` (the message names the field or rule), `UnknownRecipe`, `InvalidObject`,
 * `DecodeError`, `NotFound`, `Denied`, `StoreLocked` (the store is open in another tab or
 * worker), `StorageError`, `InvitationUsed`, `InvitationExpired`, `InvitationRefused`,
 * `IdentityError`, `Timeout`, `TransportError`, `Closed`.
 *
 * Values are DAG-JSON shapes: a link is `{"/": "bafy…"}`, bytes `{"/": {"bytes": "base64"}}`
 * (a `Uint8Array` or `ArrayBuffer` is written as bytes); other values go through
 * `JSON.stringify` (a `Date` becomes its ISO text; integers beyond 2^53 lose precision).
 * An object whose `$type` has a recipe is checked against it (`Message`, `Conversation`,
 * `Contact`, `Settings` are built in — see the project's docs); other objects are stored as
 * given.
 *
 * `"change"` events report what is stored from the moment `on` is called: what an `open`
 * with `join` brought in its first sync is already there — read it with `list`/`entries`.
 */
export type ChumErrorName = "TypeError" | "InvalidCid" | "RecipeError" | "UnknownRecipe" | "InvalidObject" | "DecodeError" | "NotFound" | "Denied" | "StoreLocked" | "StorageError" | "InvitationUsed" | "InvitationExpired" | "InvitationRefused" | "IdentityError" | "Timeout" | "TransportError" | "Closed";
/** Options of `Instance.open`. */
export interface OpenOptions {
    /** The store's name in this site's IndexedDB (default "default"). */
    name?: string;
    /** An invitation (text) that pairs a new store with its person; ignored once paired. */
    join?: string;
    /** Seals the keys at rest. */
    passphrase?: string;
    /** `false`: open only a store that already holds an identity (else throw `NotFound`);
     * nothing is created. */
    create?: boolean;
}
/** A DAG-JSON-shaped object: links are `{"/": "bafy…"}`, bytes `{"/": {"bytes": "…"}}`. */
export type ChumObject = { [field: string]: any };
/** Who an instance is. */
export interface Who { person: string; instance: string; }
/** An object stored here: by this instance (`"local"`) or from the instance named. A new
 * version of a versioned object (type `"Version"`) also names the object's ID hash (`id`: read
 * its merged state with `show(id)`). */
export interface Change { cid: string; type: string | null; origin: string; id?: string; }
/** The state of a link. */
export type LinkState = "connecting" | "connected" | "reconnecting" | "closed";
"#;

/// An instance of a person in this browser: its objects in IndexedDB, synced over WebSocket
/// links.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Instance {
    inner: chum::Instance,
    name: String,
    closed: Rc<Cell<bool>>,
}

#[wasm_bindgen]
impl Instance {
    /// Opens (or creates) the store `options.name` (default `"default"`) of this site.
    /// `options.join`: an invitation (text) to pair a **new** store with its person as a new
    /// instance (ignored when the store already holds an identity); without it a new store
    /// creates a new person. `options.passphrase` seals the keys at rest. With
    /// `options.create === false` only a store that already holds an identity opens (else
    /// `NotFound`, and nothing is created). Throws `StoreLocked` when the store is open in
    /// another tab or worker.
    pub async fn open(
        #[wasm_bindgen(unchecked_optional_param_type = "OpenOptions")] options: Option<JsValue>,
    ) -> Result<Instance, JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let options = if options.is_undefined() || options.is_null() {
            Object::new().into()
        } else if options.is_object() {
            options
        } else {
            return Err(type_error("Instance.open takes an options object"));
        };
        let name = optional_string(&options, "name")?.unwrap_or_else(|| "default".into());
        if name.is_empty() {
            return Err(type_error("option \"name\" must not be empty"));
        }
        let join = match optional_string(&options, "join")? {
            Some(text) => Some(
                chum::Invitation::from_text(text.trim())
                    .map_err(|failure| thrown(chum::Error::from(failure)))?,
            ),
            None => None,
        };
        let passphrase = optional_string(&options, "passphrase")?;
        let store = IdbStore::open(&name)
            .await
            .map_err(|failure| thrown(chum::Error::from(failure)))?;
        let mut builder = chum::Instance::builder()
            .store(Arc::new(store))
            .time_source(Arc::new(now_ms));
        if let Some(invitation) = join {
            builder = builder.join(invitation);
        }
        if let Some(passphrase) = passphrase {
            builder = builder.passphrase(passphrase);
        }
        let create = option(&options, "create");
        let inner = if create.is_falsy() && !create.is_undefined() && !create.is_null() {
            builder.open_existing().await
        } else {
            builder.open().await
        }
        .map_err(thrown)?;
        Ok(Instance {
            inner,
            name,
            closed: Rc::new(Cell::new(false)),
        })
    }

    /// The store's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Stores an object (a DAG-JSON-shaped value with a `$type`, or any map) and resolves to
    /// its CID once it is durable. For a versioned type, a new version of the object.
    pub async fn put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChumObject")] value: JsValue,
    ) -> Result<String, JsValue> {
        let value = to_value(&value)?;
        let written = self.inner.put(&value).await.map_err(thrown)?;
        Ok(written.cid().to_string())
    }

    /// Stores an append-only entry (e.g. a Message of a Conversation), adding its `clock`
    /// (this instance's hybrid logical clock) and `author` when its type has those fields, so
    /// `entries` orders it; resolves to its CID once it is durable.
    pub async fn create(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChumObject")] value: JsValue,
    ) -> Result<String, JsValue> {
        let value = to_value(&value)?;
        let written = self.inner.create(&value).await.map_err(thrown)?;
        Ok(written.cid().to_string())
    }

    /// The entries of a collection in order (clock, then CID): the CIDs of the objects that
    /// link to `target` (e.g. a Conversation's ID hash) through a collection field.
    pub async fn entries(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] target: JsValue,
    ) -> Result<Vec<String>, JsValue> {
        let target = parse_cid(&string_arg(&target, "entries", "a CID")?)?;
        let cids = self.inner.entries(&target).await.map_err(thrown)?;
        Ok(cids.iter().map(ToString::to_string).collect())
    }

    /// Deletes the versioned object `id` (its ID hash): a tombstone version (last-write: the
    /// delete wins over concurrent edits; field-merge: concurrent edits survive). Resolves to
    /// the tombstone's CID.
    pub async fn delete(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Result<String, JsValue> {
        let id = parse_cid(&string_arg(&id, "delete", "an ID hash")?)?;
        let written = self.inner.delete(&id).await.map_err(thrown)?;
        Ok(written.cid().to_string())
    }

    /// The object stored under `cid`, or `null` when none is.
    #[wasm_bindgen(unchecked_return_type = "ChumObject | null")]
    pub async fn get(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] cid: JsValue,
    ) -> Result<JsValue, JsValue> {
        let cid = parse_cid(&string_arg(&cid, "get", "a CID")?)?;
        match self.inner.get(&cid).await {
            Ok(value) => from_value(&value),
            Err(chum::Error::NotFound(_)) => Ok(JsValue::NULL),
            Err(failure) => Err(thrown(failure)),
        }
    }

    /// The CIDs of the stored objects of `$type` `type_name`.
    pub async fn list(
        &self,
        #[wasm_bindgen(js_name = typeName, unchecked_param_type = "string")] type_name: JsValue,
    ) -> Result<Vec<String>, JsValue> {
        let type_name = string_arg(&type_name, "list", "a type name")?;
        let cids = self.inner.of_type(&type_name).await.map_err(thrown)?;
        Ok(cids.iter().map(ToString::to_string).collect())
    }

    /// The merged state of the versioned object `id` (its ID hash), or `null`.
    #[wasm_bindgen(unchecked_return_type = "ChumObject | null")]
    pub async fn show(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let id = parse_cid(&string_arg(&id, "show", "an ID hash")?)?;
        match self.inner.state(&id).await.map_err(thrown)? {
            Some(state) => from_value(&state),
            None => Ok(JsValue::NULL),
        }
    }

    /// The ID hash of a versioned object (its type's ID fields), for `show`.
    #[wasm_bindgen(js_name = idOf)]
    pub fn id_of(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChumObject")] value: JsValue,
    ) -> Result<String, JsValue> {
        let value = to_value(&value)?;
        let id = self.inner.id_of(&value).map_err(thrown)?;
        Ok(id.to_string())
    }

    /// `{ person, instance }`: who this is.
    #[wasm_bindgen(unchecked_return_type = "Who")]
    pub async fn whoami(&self) -> Result<JsValue, JsValue> {
        if self.closed.get() {
            return Err(thrown(chum::Error::Closed));
        }
        let who = Object::new();
        let _ = Reflect::set(
            &who,
            &"person".into(),
            &self.inner.person().to_string().into(),
        );
        let _ = Reflect::set(
            &who,
            &"instance".into(),
            &self.inner.instance_id().to_string().into(),
        );
        Ok(who.into())
    }

    /// Connects to `url` (`ws://…` or `wss://…`) and stays connected: syncs, then live;
    /// reconnects with backoff when the connection drops, until `link.close()`.
    pub fn connect(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] url: JsValue,
    ) -> Result<Link, JsValue> {
        if self.closed.get() {
            return Err(thrown(chum::Error::Closed));
        }
        let url = string_arg(&url, "connect", "a ws:// or wss:// address")?;
        let link = self.inner.connect(&url).map_err(thrown)?;
        Ok(Link {
            inner: Rc::new(link),
        })
    }

    /// Calls `callback` for each event of kind `event` until the returned function is
    /// called. `"change"`: an object was stored here — `{ cid, type, origin }`, `origin`
    /// being `"local"` or the writing instance's id; a new version of a versioned object
    /// comes as `{ cid, type: "Version", origin, id }` with `id` the object's ID hash.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"change\"")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(change: Change) => void")] callback: JsValue,
    ) -> Result<Function, JsValue> {
        let event = string_arg(&event, "on", "an event name (\"change\")")?;
        let callback: Function = callback
            .dyn_into()
            .map_err(|_| type_error("on takes a callback function"))?;
        if event != "change" {
            return Err(type_error(format!(
                "unknown event {event:?} (known: \"change\")"
            )));
        }
        let mut events = self.inner.events();
        let stopped = Rc::new(Cell::new(false));
        let task_stopped = Rc::clone(&stopped);
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(event) = events.next().await {
                if task_stopped.get() {
                    break;
                }
                let change = Object::new();
                match event {
                    // A version is reported once, as the change of its object (with `id`).
                    Event::Stored {
                        cid,
                        type_name,
                        origin,
                    } if type_name.as_deref() != Some(VERSION_TYPE) => {
                        let _ = Reflect::set(&change, &"cid".into(), &cid.to_string().into());
                        let _ = Reflect::set(
                            &change,
                            &"type".into(),
                            &type_name.map_or(JsValue::NULL, |name| name.into()),
                        );
                        let _ = Reflect::set(&change, &"origin".into(), &origin_text(&origin));
                    }
                    Event::Changed {
                        id,
                        version,
                        origin,
                    } => {
                        let _ = Reflect::set(&change, &"cid".into(), &version.to_string().into());
                        let _ = Reflect::set(&change, &"type".into(), &VERSION_TYPE.into());
                        let _ = Reflect::set(&change, &"origin".into(), &origin_text(&origin));
                        let _ = Reflect::set(&change, &"id".into(), &id.to_string().into());
                    }
                    _ => continue,
                }
                // A callback that throws does not stop the others; its error is reported as
                // an unhandled rejection (the console shows it).
                if let Err(error) = callback.call1(&JsValue::NULL, &change) {
                    drop(js_sys::Promise::reject(&error));
                }
            }
        });
        let off = Closure::<dyn FnMut()>::new(move || stopped.set(true));
        Ok(off.into_js_value().unchecked_into())
    }

    /// How many of this instance's shared objects no other instance has acknowledged storing
    /// yet (they would be lost with this browser's storage).
    #[wasm_bindgen(js_name = atRisk)]
    pub fn at_risk(&self) -> f64 {
        self.inner.at_risk() as f64
    }

    /// Ends every session and closes the store (another tab may open it from now on).
    pub async fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        self.inner.clone().close().await;
    }
}

/// A link to a peer (see `Instance.connect`).
#[wasm_bindgen]
#[derive(Debug)]
pub struct Link {
    inner: Rc<chum::Link>,
}

#[wasm_bindgen]
impl Link {
    /// Resolves `{ instance, person }` once a session is up; throws `TransportError` when the
    /// attempt under way fails (the link keeps retrying behind).
    #[wasm_bindgen(unchecked_return_type = "Who")]
    pub async fn established(&self) -> Result<JsValue, JsValue> {
        let (instance, person) = self.inner.established().await.map_err(thrown)?;
        let peer = Object::new();
        let _ = Reflect::set(&peer, &"instance".into(), &instance.to_string().into());
        let _ = Reflect::set(&peer, &"person".into(), &person.to_string().into());
        Ok(peer.into())
    }

    /// Resolves once the peer holds everything this instance held at the call.
    pub async fn synced(&self) -> Result<(), JsValue> {
        self.inner.synced().await.map_err(thrown)
    }

    /// `"connecting"`, `"connected"`, `"reconnecting"` or `"closed"`.
    #[wasm_bindgen(getter, unchecked_return_type = "LinkState")]
    pub fn state(&self) -> String {
        match self.inner.state() {
            chum::LinkState::Connecting { .. } => "connecting",
            chum::LinkState::Connected { .. } => "connected",
            chum::LinkState::Reconnecting { .. } => "reconnecting",
            chum::LinkState::Closed => "closed",
            _ => "unknown",
        }
        .into()
    }

    /// The address.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.inner.url().to_owned()
    }

    /// Closes the link: the session ends and no more attempts are made.
    pub async fn close(&self) {
        self.inner.close().await;
    }
}
