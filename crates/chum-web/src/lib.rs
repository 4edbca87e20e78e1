//! # chum-web
//!
//! chum in the browser: an instance of a person over IndexedDB (`chum-store-idb`), syncing
//! over the browser's `WebSocket` with the same encrypted CHUM sessions as native instances,
//! as a JavaScript API. `cargo xtask web` builds the ES module package into
//! `target/chum-web/pkg/` (`chum_web.js`, `chum_web_bg.wasm`, `chum_web.d.ts`,
//! `package.json`):
//!
//! ```js
//! import init, { Instance } from "./chum_web.js";
//! await init();
//! const inst = await Instance.open({ name: "renderer", join: invitation }); // join: first open only
//! const cid = await inst.put({ $type: "Message", text: "hi" });   // once durable
//! const obj = await inst.get(cid);                                 // the object, or null
//! const cids = await inst.list("Message");
//! const link = inst.connect("ws://127.0.0.1:8765"); await link.established();
//! const off = inst.on("change", (e) => console.log(e.cid, e.type, e.origin));
//! inst.atRisk();                                                   // not yet held elsewhere
//! await inst.close();
//! ```
//!
//! Values cross as DAG-JSON shapes: a link is `{"/": "bafy…"}`, bytes are
//! `{"/": {"bytes": "…"}}` (base64, no padding). Errors are JavaScript `Error`s whose `name`
//! says the kind (`StoreLocked`, `RecipeError`, `InvitationUsed`, `TypeError`, …; see
//! `docs/architecture.md`) and whose message names the field or rule.
//!
//! Only for `wasm32` targets in a browser (a page or a worker).
#![warn(missing_docs)]
// On wasm32 the same types are shared through `Arc` as natively, where they are `Send + Sync`;
// in the browser everything runs on one thread.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(all(target_arch = "wasm32", feature = "bench"))]
mod bench;

#[cfg(target_arch = "wasm32")]
pub use crate::api::{Instance, Link};
#[cfg(all(target_arch = "wasm32", feature = "bench"))]
pub use crate::bench::Bench;
