//! The few IndexedDB and Web Locks calls the store makes, as futures.
//!
//! A request or transaction is turned into a `Promise` whose executor sets the event handlers
//! at once (before any event can fire: they fire from a later task); awaiting it resumes the
//! Rust code from a microtask, while the transaction is still active, so several requests can
//! follow each other in one transaction.

use chum_store::{Error, Result};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{DomException, IdbDatabase, IdbKeyRange, IdbRequest, IdbTransaction};

/// A property of a JavaScript object (`undefined` when absent or unreadable).
pub fn get(target: &JsValue, name: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// What a thrown JavaScript value says: `name: message` of an exception, else its text.
pub fn describe(value: &JsValue) -> String {
    if let Some(exception) = value.dyn_ref::<DomException>() {
        return format!("{}: {}", exception.name(), exception.message());
    }
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        );
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// A store error from an IndexedDB failure (`what` says which call).
pub fn backend(what: &str, value: &JsValue) -> Error {
    let name = value
        .dyn_ref::<DomException>()
        .map(DomException::name)
        .unwrap_or_default();
    match name.as_str() {
        "QuotaExceededError" => Error::Limit(format!(
            "{what}: the browser's storage quota for this site is used up ({})",
            describe(value)
        )),
        "InvalidStateError" => Error::Closed,
        _ => Error::Backend(format!("IndexedDB {what}: {}", describe(value))),
    }
}

/// Bytes as a binary key or value.
pub fn bytes(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).into()
}

/// The bytes of a binary key (an `ArrayBuffer`) or value (a typed array or buffer); `None`
/// for anything else.
pub fn to_bytes(value: &JsValue) -> Option<Vec<u8>> {
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        return Some(array.to_vec());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Some(Uint8Array::new(value).to_vec());
    }
    None
}

/// The first key after every key that starts with `prefix` (`None`: no such key, the range
/// runs to the end).
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// The binary keys from `lower` (open or closed) up to `upper` (exclusive; `None`: no bound).
pub fn range(lower: &[u8], lower_open: bool, upper: Option<&[u8]>) -> Result<IdbKeyRange> {
    let made = match upper {
        Some(upper) => IdbKeyRange::bound_with_lower_open_and_upper_open(
            &bytes(lower),
            &bytes(upper),
            lower_open,
            true,
        ),
        None => IdbKeyRange::lower_bound_with_open(&bytes(lower), lower_open),
    };
    made.map_err(|error| backend("key range", &error))
}

/// Waits for a request's result.
pub async fn request(what: &str, request: &IdbRequest) -> Result<JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        request.set_onsuccess(Some(&resolve));
        request.set_onerror(Some(&reject));
    });
    let outcome = JsFuture::from(promise).await;
    request.set_onsuccess(None);
    request.set_onerror(None);
    if outcome.is_err() {
        let error = request
            .error()
            .ok()
            .flatten()
            .map_or(JsValue::UNDEFINED, JsValue::from);
        return Err(backend(what, &error));
    }
    request.result().map_err(|error| backend(what, &error))
}

/// An `error` handler for requests whose failure is an answer, not a fault (an `add` of a
/// key that exists): it keeps the failure from aborting the transaction and from reaching
/// the transaction's own handler. Keep it alive until the requests have settled.
pub fn ignore_errors() -> Closure<dyn FnMut(web_sys::Event)> {
    Closure::new(|event: web_sys::Event| {
        event.prevent_default();
        event.stop_propagation();
    })
}

/// Waits until a request has succeeded or failed (a failure is kept from aborting the
/// transaction, as with [`ignore_errors`]).
pub async fn settled(request: &IdbRequest) {
    if request.ready_state() == web_sys::IdbRequestReadyState::Done {
        return; // its events have fired already: none is coming
    }
    let resolver: std::rc::Rc<std::cell::RefCell<Option<Function>>> = std::rc::Rc::default();
    let on_error = {
        let resolver = std::rc::Rc::clone(&resolver);
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            event.prevent_default();
            event.stop_propagation();
            if let Some(resolve) = resolver.borrow().as_ref() {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            }
        })
    };
    let promise = Promise::new(&mut |resolve, _reject| {
        request.set_onsuccess(Some(&resolve));
        *resolver.borrow_mut() = Some(resolve);
        request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    });
    let _ = JsFuture::from(promise).await;
    request.set_onsuccess(None);
    request.set_onerror(None);
}

/// A transaction over `stores`, and a future of its end: `Ok` once committed.
pub fn transaction(
    db: &IdbDatabase,
    stores: &[&str],
    write: bool,
) -> Result<(IdbTransaction, JsFuture)> {
    let names = Array::new();
    for store in stores {
        names.push(&JsValue::from_str(store));
    }
    let mode = JsValue::from_str(if write { "readwrite" } else { "readonly" });
    // `durability: "strict"`: the browser reports `complete` only once the data is flushed
    // to disk (browsers without the option ignore it, and flush anyway).
    let options = Object::new();
    if write {
        let _ = Reflect::set(&options, &"durability".into(), &"strict".into());
    }
    let open = get(db, "transaction")
        .dyn_into::<Function>()
        .map_err(|_| Error::Backend("IndexedDB has no transaction()".into()))?;
    let transaction: IdbTransaction = open
        .call3(db, &names, &mode, &options)
        .map_err(|error| backend("transaction", &error))?
        .dyn_into()
        .map_err(|_| Error::Backend("IndexedDB transaction() returned no transaction".into()))?;
    let done = Promise::new(&mut |resolve, reject| {
        transaction.set_oncomplete(Some(&resolve));
        transaction.set_onerror(Some(&reject));
        transaction.set_onabort(Some(&reject));
    });
    Ok((transaction, JsFuture::from(done)))
}

/// Waits for a transaction's end (`done`, from [`transaction`]); asks the browser to commit
/// at once when it can (`commit()`), instead of when the last request's task ends.
pub async fn commit(transaction: &IdbTransaction, done: JsFuture) -> Result<()> {
    if let Ok(commit) = get(transaction, "commit").dyn_into::<Function>() {
        // Fails only when the transaction already ended, which `done` then reports.
        let _ = commit.call0(transaction);
    }
    let outcome = done.await;
    transaction.set_oncomplete(None);
    transaction.set_onerror(None);
    transaction.set_onabort(None);
    outcome.map(drop).map_err(|_| {
        let error = transaction
            .error()
            .map_or(JsValue::UNDEFINED, JsValue::from);
        if error.is_undefined() || error.is_null() {
            Error::Backend("IndexedDB transaction aborted".into())
        } else {
            backend("commit", &error)
        }
    })
}
