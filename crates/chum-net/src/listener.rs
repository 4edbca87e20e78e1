//! Accepting connections: a cap on concurrent sessions, a per-address rate limit, and a
//! per-address share of the transport handshakes in progress (8 of 256).
//!
//! The rate limit is a token bucket per remote IP address: `burst` connections at once, then
//! `per_second` more each second. A refused connection gets a close frame saying when to
//! retry; nothing is ever banned — the bucket refills with time whatever the refused attempts
//! were, so a peer that sent garbage is treated exactly like any other once it slows down.
//! The defaults let a well-behaved client connect several times a second indefinitely.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chum_sync::{CloseCode, Message, Role};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::node::{Node, SessionOptions};
use crate::transport::{Connection, tcp};
use crate::ws::{self, ServerTls};

/// A listener's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListenerLimits {
    /// Sessions served at once; more are refused until one ends.
    pub max_sessions: usize,
    /// Connections one address may open at once.
    pub burst: u32,
    /// Connections one address may open per second, sustained.
    pub per_second: f64,
    /// Addresses tracked at once (full buckets are forgotten first).
    pub max_addresses: usize,
    /// Transport handshakes (TLS, WebSocket) in progress at once from one address: half-open
    /// connections from one place cannot take the slots everyone else needs. Raise it with
    /// `burst` when many peers share an address.
    pub handshakes_per_address: usize,
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            max_sessions: 512,
            burst: 32,
            per_second: 16.0,
            max_addresses: 16_384,
            handshakes_per_address: 8,
        }
    }
}

/// Token buckets per address.
#[derive(Debug)]
pub struct RateLimiter {
    limits: ListenerLimits,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: ListenerLimits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: HashMap::new(),
        }
    }

    fn tokens(&self, tokens: f64, since: Instant, now: Instant) -> f64 {
        let refill = now.saturating_duration_since(since).as_secs_f64() * self.limits.per_second;
        (tokens + refill).min(f64::from(self.limits.burst))
    }

    /// Admits one connection from `address` at `now`, or says how long until one would be.
    pub fn admit(&mut self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= self.limits.max_addresses && !self.buckets.contains_key(&address) {
            let full = f64::from(self.limits.burst);
            let limiter = RateLimiter {
                limits: self.limits,
                buckets: HashMap::new(),
            };
            self.buckets
                .retain(|_, (tokens, since)| limiter.tokens(*tokens, *since, now) < full);
            if self.buckets.len() >= self.limits.max_addresses {
                // Every tracked address is mid-burst: refuse newcomers briefly rather than
                // grow without bound.
                return Err(Duration::from_millis(100));
            }
        }
        let burst = f64::from(self.limits.burst);
        let (tokens, since) = self.buckets.get(&address).copied().unwrap_or((burst, now));
        let tokens = self.tokens(tokens, since, now);
        if tokens >= 1.0 {
            self.buckets.insert(address, (tokens - 1.0, now));
            Ok(())
        } else {
            let wait = (1.0 - tokens) / self.limits.per_second.max(f64::MIN_POSITIVE);
            self.buckets.insert(address, (tokens, now));
            Err(Duration::from_secs_f64(wait.min(3_600.0)))
        }
    }
}

/// A listener's admission rules — the per-address rate limit and the cap on sessions at once
/// — for connections an app accepts itself (its own listener, e.g. a WebSocket upgrade on the
/// port of its HTTP server): [`Admission::serve`] serves or refuses each one exactly as
/// [`serve_ws`] and [`serve_tcp`] do theirs.
#[derive(Debug)]
pub struct Admission {
    sessions: Arc<Semaphore>,
    rate: std::sync::Mutex<RateLimiter>,
}

impl Admission {
    /// Rules with `limits`.
    pub fn new(limits: ListenerLimits) -> Admission {
        Admission {
            sessions: Arc::new(Semaphore::new(limits.max_sessions)),
            rate: std::sync::Mutex::new(RateLimiter::new(limits)),
        }
    }

    /// Serves `connection` (from `address`) for `node` as the responder until the session
    /// ends — or refuses it with a close frame saying when to retry (too many connections
    /// from `address`) or that the node is at its session limit.
    pub async fn serve(&self, node: &Node, connection: Connection, address: IpAddr) {
        let admitted = self
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(address, Instant::now());
        let permit = Arc::clone(&self.sessions).try_acquire_owned();
        run_admitted(node, connection, admitted, permit).await;
    }
}

/// Runs a session for an admitted connection, or refuses it saying why.
async fn run_admitted(
    node: &Node,
    connection: Connection,
    admitted: Result<(), Duration>,
    permit: Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::TryAcquireError>,
) {
    match (admitted, permit) {
        (Err(wait), _) => {
            let reason = format!(
                "too many connections from this address; retry in {} ms",
                wait.as_millis().max(1)
            );
            refuse(connection, reason).await;
        }
        (Ok(()), Err(_)) => {
            refuse(
                connection,
                "the server is busy: at its session limit; retry later".into(),
            )
            .await;
        }
        (Ok(()), Ok(permit)) => {
            node.run(Role::Responder, connection, SessionOptions::default())
                .await;
            drop(permit);
        }
    }
}

async fn refuse(mut connection: Connection, reason: String) {
    let frame = Message::Close {
        code: CloseCode::LimitExceeded,
        reason,
    }
    .encode();
    let _ = connection.writer.write_frame(frame).await;
    let _ = connection.writer.close().await;
}

/// Serves sessions on `listener` for `node` (as responder) over TCP framing, until the
/// listener fails.
pub async fn serve_tcp(
    node: Arc<Node>,
    listener: TcpListener,
    limits: ListenerLimits,
) -> io::Result<()> {
    serve(node, listener, limits, |stream, max_frame| async move {
        tcp::connection(stream, max_frame)
    })
    .await
}

/// Serves sessions on `listener` for `node` (as responder) over WebSocket — `wss://` when
/// `tls` is given, `ws://` otherwise — until the listener fails.
pub async fn serve_ws(
    node: Arc<Node>,
    listener: TcpListener,
    limits: ListenerLimits,
    tls: Option<ServerTls>,
) -> io::Result<()> {
    let tls = Arc::new(tls);
    serve(node, listener, limits, move |stream, max_frame| {
        let tls = Arc::clone(&tls);
        async move { ws::accept(stream, tls.as_ref().as_ref(), max_frame).await }
    })
    .await
}

/// How long a connection may take to complete its transport handshake (TLS, WebSocket).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections are dropped unanswered.
const MAX_HANDSHAKES: usize = 256;
/// Handshakes in progress per address, at most so many each.
#[derive(Debug, Default)]
struct Upgrading(std::sync::Mutex<HashMap<IpAddr, usize>>, usize);

/// One handshake in progress from `address`; counted off when dropped.
struct UpgradeSlot {
    address: IpAddr,
    upgrading: Arc<Upgrading>,
}

impl Upgrading {
    fn claim(self: &Arc<Upgrading>, address: IpAddr) -> Option<UpgradeSlot> {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(address).or_insert(0);
        if *count >= self.1.max(1) {
            return None;
        }
        *count += 1;
        Some(UpgradeSlot {
            address,
            upgrading: Arc::clone(self),
        })
    }
}

impl Drop for UpgradeSlot {
    fn drop(&mut self) {
        let mut counts = self
            .upgrading
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

async fn serve<F, Fut>(
    node: Arc<Node>,
    listener: TcpListener,
    limits: ListenerLimits,
    upgrade: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, usize) -> Fut,
    Fut: Future<Output = io::Result<Connection>> + Send + 'static,
{
    let sessions = Arc::new(Semaphore::new(limits.max_sessions));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let upgrading = Arc::new(Upgrading(
        std::sync::Mutex::default(),
        limits.handshakes_per_address,
    ));
    let mut rate = RateLimiter::new(limits);
    let max_frame = node.config().limits.max_frame;
    loop {
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Per-connection failures (reset before accept, out of descriptors): keep going.
            Err(error) if is_transient(&error) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        // One address's share of the handshake slots first, then a slot: a flood of
        // half-open connections from one place is dropped unanswered before it can take the
        // slots of everyone else.
        let Some(per_address) = upgrading.claim(address.ip()) else {
            continue;
        };
        let Ok(handshake) = Arc::clone(&handshakes).try_acquire_owned() else {
            continue;
        };
        let admitted = rate.admit(address.ip(), Instant::now());
        let permit = Arc::clone(&sessions).try_acquire_owned();
        let upgrading = upgrade(stream, max_frame);
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrading).await {
                Ok(Ok(connection)) => connection,
                _ => return,
            };
            drop(handshake);
            drop(per_address);
            run_admitted(&node, connection, admitted, permit).await;
        });
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || error
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23) // EMFILE, ENFILE
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate_and_never_a_ban() {
        let limits = ListenerLimits {
            burst: 4,
            per_second: 2.0,
            ..ListenerLimits::default()
        };
        let mut limiter = RateLimiter::new(limits);
        let address: IpAddr = [127, 0, 0, 1].into();
        let start = Instant::now();
        for _ in 0..4 {
            assert!(limiter.admit(address, start).is_ok());
        }
        // Hammering while empty is refused but never extends the wait beyond one token.
        for _ in 0..1_000 {
            let wait = limiter.admit(address, start).unwrap_err();
            assert!(wait <= Duration::from_millis(500));
        }
        assert!(
            limiter
                .admit(address, start + Duration::from_millis(500))
                .is_ok()
        );
        // Another address is unaffected.
        assert!(limiter.admit([10, 0, 0, 1].into(), start).is_ok());
        // A client connecting twice a second forever is always admitted.
        let mut at = start + Duration::from_secs(10);
        for _ in 0..100 {
            assert!(limiter.admit(address, at).is_ok());
            at += Duration::from_millis(500);
        }
    }

    #[test]
    fn tracked_addresses_stay_bounded() {
        let limits = ListenerLimits {
            max_addresses: 16,
            burst: 1,
            per_second: 1.0,
            ..ListenerLimits::default()
        };
        let mut limiter = RateLimiter::new(limits);
        let start = Instant::now();
        for i in 0..1_000u32 {
            let _ = limiter.admit(
                IpAddr::from(i.to_be_bytes()),
                start + Duration::from_secs(u64::from(i)),
            );
            assert!(limiter.buckets.len() <= 16);
        }
    }
}
