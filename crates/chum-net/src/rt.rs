//! What the driver needs of its runtime — tasks, time, a place for blocking commits — on tokio
//! natively and on the browser's event loop on wasm32 (`spawn_local`, `setTimeout`,
//! `Date.now()`, `performance.now()`).

use std::future::Future;
use std::time::Duration;

/// `Send` natively; nothing on wasm32, where tasks stay on the page's thread.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` natively; nothing on wasm32, where tasks stay on the page's thread.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// A boxed future: `Send` natively.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;
/// A boxed future: `Send` natively.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = futures::future::LocalBoxFuture<'a, T>;

/// A boxed stream: `Send` natively.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxStream<'a, T> = futures::stream::BoxStream<'a, T>;
/// A boxed stream: `Send` natively.
#[cfg(target_arch = "wasm32")]
pub type BoxStream<'a, T> = futures::stream::LocalBoxStream<'a, T>;

/// Boxes a future as [`BoxFuture`].
pub fn boxed<'a, T>(future: impl Future<Output = T> + MaybeSend + 'a) -> BoxFuture<'a, T> {
    Box::pin(future)
}

/// Runs a task in the background; the handle cancels it (dropping the handle does not).
pub fn spawn(task: impl Future<Output = ()> + MaybeSend + 'static) -> TaskHandle {
    let (abortable, handle) = futures::future::abortable(task);
    #[cfg(not(target_arch = "wasm32"))]
    drop(tokio::spawn(abortable));
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(async move {
        let _ = abortable.await;
    });
    TaskHandle(handle)
}

/// Cancels a task started by [`spawn`].
#[derive(Debug, Clone)]
pub struct TaskHandle(futures::future::AbortHandle);

impl TaskHandle {
    /// Cancels the task at its next await.
    pub fn abort(&self) {
        self.0.abort();
    }
}

/// Runs `work` (a store commit) where it may block: the blocking pool natively; on wasm32,
/// where stores are asynchronous, as a task of its own.
pub fn spawn_blocking(work: impl FnOnce() -> BoxFuture<'static, ()> + MaybeSend + 'static) {
    #[cfg(not(target_arch = "wasm32"))]
    drop(tokio::task::spawn_blocking(move || {
        futures::executor::block_on(work());
    }));
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(work());
}

/// A point on a monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Instant(
    #[cfg(not(target_arch = "wasm32"))] tokio::time::Instant,
    /// Milliseconds of `performance.now()` (or `Date.now()` where there is no `performance`).
    #[cfg(target_arch = "wasm32")]
    f64,
);

impl Instant {
    /// Now.
    pub fn now() -> Instant {
        #[cfg(not(target_arch = "wasm32"))]
        return Instant(tokio::time::Instant::now());
        #[cfg(target_arch = "wasm32")]
        return Instant(web::monotonic_ms());
    }

    /// The time since this instant (zero if it is in the future).
    pub fn elapsed(&self) -> Duration {
        Instant::now().since(*self)
    }

    /// The time from `earlier` to this instant (zero if `earlier` is later).
    pub fn since(&self, earlier: Instant) -> Duration {
        #[cfg(not(target_arch = "wasm32"))]
        return self.0.saturating_duration_since(earlier.0);
        #[cfg(target_arch = "wasm32")]
        return Duration::from_secs_f64(((self.0 - earlier.0) / 1_000.0).max(0.0));
    }

    /// This instant plus `duration`.
    pub fn add(&self, duration: Duration) -> Instant {
        #[cfg(not(target_arch = "wasm32"))]
        return Instant(self.0 + duration);
        #[cfg(target_arch = "wasm32")]
        return Instant(self.0 + duration.as_secs_f64() * 1_000.0);
    }
}

/// Waits until `deadline`.
pub async fn sleep_until(deadline: Instant) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::time::sleep_until(deadline.0).await;
    #[cfg(target_arch = "wasm32")]
    web::sleep(deadline.since(Instant::now())).await;
}

/// Waits for `duration`.
pub async fn sleep(duration: Duration) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::time::sleep(duration).await;
    #[cfg(target_arch = "wasm32")]
    web::sleep(duration).await;
}

/// `future`'s output, or `Err(Elapsed)` when `duration` passes first.
pub async fn timeout<T>(duration: Duration, future: impl Future<Output = T>) -> Result<T, Elapsed> {
    #[cfg(not(target_arch = "wasm32"))]
    return tokio::time::timeout(duration, future)
        .await
        .map_err(|_| Elapsed);
    #[cfg(target_arch = "wasm32")]
    {
        use futures::FutureExt;
        let future = std::pin::pin!(future.fuse());
        let sleep = std::pin::pin!(web::sleep(duration).fuse());
        match futures::future::select(future, sleep).await {
            futures::future::Either::Left((output, _)) => Ok(output),
            futures::future::Either::Right(((), _)) => Err(Elapsed),
        }
    }
}

/// A [`timeout`] passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// Milliseconds since the Unix epoch (the wall clock).
pub fn unix_ms() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    return std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    #[cfg(target_arch = "wasm32")]
    return js_sys::Date::now() as u64;
}

#[cfg(target_arch = "wasm32")]
mod web {
    use std::time::Duration;

    use wasm_bindgen::{JsCast, JsValue};

    /// `performance.now()` of the global scope (window or worker), else `Date.now()`.
    pub fn monotonic_ms() -> f64 {
        let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .unwrap_or(JsValue::UNDEFINED);
        js_sys::Reflect::get(&performance, &"now".into())
            .ok()
            .and_then(|now| now.dyn_into::<js_sys::Function>().ok())
            .and_then(|now| now.call0(&performance).ok())
            .and_then(|ms| ms.as_f64())
            .unwrap_or_else(js_sys::Date::now)
    }

    /// Resolves after `duration` (`setTimeout`; browsers clamp to their own minimum).
    pub async fn sleep(duration: Duration) {
        let ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            let global = js_sys::global();
            if let Ok(set_timeout) = js_sys::Reflect::get(&global, &"setTimeout".into())
                .and_then(|f| f.dyn_into::<js_sys::Function>())
            {
                let _ = set_timeout.call2(&global, &resolve, &JsValue::from(ms));
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}
