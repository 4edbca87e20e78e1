//! Measurement helpers for the benchmark page (`tests/page/bench.mjs`; feature `bench`, not
//! part of the API): objects made in Rust, and the store's own puts, so the page can put the
//! same bytes in the same batches into raw IndexedDB beside them.

use std::sync::Arc;

use chum::{Object, Store};
use chum_store_idb::IdbStore;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

/// Helpers of the benchmark page.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Bench;

fn milliseconds() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|performance| {
            let now = js_sys::Reflect::get(&performance, &"now".into()).ok()?;
            now.dyn_into::<js_sys::Function>()
                .ok()?
                .call0(&performance)
                .ok()?
                .as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

#[wasm_bindgen]
impl Bench {
    /// `count` small Messages (about 94 bytes each, like the sync benchmarks'):
    /// `[cids, bytes]`, two arrays of `Uint8Array`s.
    pub fn objects(count: u32, label: String) -> Result<Array, JsValue> {
        let cids = Array::new();
        let bytes = Array::new();
        for i in 0..count {
            let value = chum::dagjson::from_str(&format!(
                r#"{{"$type":"Message","text":"{label} message number {i:>8} with some words"}}"#
            ))
            .map_err(|error| JsValue::from_str(&error.to_string()))?;
            let object = Object::from_value(&value)
                .map_err(|error| JsValue::from_str(&error.to_string()))?;
            cids.push(&Uint8Array::from(object.cid().as_bytes()));
            bytes.push(&Uint8Array::from(object.bytes()));
        }
        Ok(Array::of2(&cids, &bytes))
    }

    /// Puts `objects` (from [`Bench::objects`]) into a new store `name` in batches of `batch`
    /// (each a durable transaction); the milliseconds it took.
    #[wasm_bindgen(js_name = storePuts)]
    pub async fn store_puts(name: String, objects: Array, batch: u32) -> Result<f64, JsValue> {
        let cids = Array::from(&objects.get(0));
        let bytes = Array::from(&objects.get(1));
        let mut all = Vec::with_capacity(cids.length() as usize);
        for (cid, data) in cids.iter().zip(bytes.iter()) {
            let cid = chum::Cid::from_bytes(&Uint8Array::new(&cid).to_vec())
                .map_err(|error| JsValue::from_str(&error.to_string()))?;
            all.push((cid, Uint8Array::new(&data).to_vec()));
        }
        let store = Arc::new(
            IdbStore::open(&name)
                .await
                .map_err(|error| JsValue::from_str(&error.to_string()))?,
        );
        let start = milliseconds();
        for chunk in all.chunks(batch.max(1) as usize) {
            store
                .put_many(chunk)
                .await
                .map_err(|error| JsValue::from_str(&error.to_string()))?;
        }
        let elapsed = milliseconds() - start;
        store.close().await;
        Ok(elapsed)
    }
}
