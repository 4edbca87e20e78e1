//! One loopback port for everything: the renderer's files (`GET /`, `/app.js`, `/app.css`,
//! `/sw.js`, `/pkg/…`), the pairing endpoint (`POST /pair`), main's settings (`POST /api/settings`,
//! `POST /api/status`) and CHUM over WebSocket (`/chum`).
//!
//! Every request must name the app's own host (`Host: 127.0.0.1:PORT` or `localhost:PORT`):
//! a page of another site that rebinds its DNS name to 127.0.0.1 still sends its own name, and
//! is refused. The `POST` endpoints also need the app's own `Origin` (browsers send it with
//! every `POST`), and a WebSocket upgrade from a browser must come from the app's origin (a
//! native peer sends none). Responses close the connection; request heads are at most 16 KiB
//! and bodies 64 KiB; a client has 10 s to send its request.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{App, enhancer, pairing, settings};

const MAX_HEAD: usize = 16 << 10;
const MAX_BODY: usize = 64 << 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections being read or upgraded at once; more wait for the listener.
const MAX_PENDING: usize = 64;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const SERVICE_WORKER: &str = include_str!("../web/sw.js");
/// The package files the page may load.
const PKG_FILES: [&str; 4] = [
    "chum_web.js",
    "chum_web_bg.wasm",
    "worker.js",
    "chum_worker.js",
];

/// A parsed request head.
#[derive(Debug)]
struct Head {
    method: String,
    path: String,
    host: Option<String>,
    origin: Option<String>,
    upgrade: bool,
    content_length: usize,
    /// Bytes of the head (up to and including the blank line).
    length: usize,
}

/// Serves connections until the listener fails.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> io::Result<()> {
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING));
    loop {
        let permit = Arc::clone(&pending)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            handle(app, stream, remote, permit).await;
        });
    }
}

/// Peeks at the request head without consuming it (a WebSocket upgrade is then read again by
/// the WebSocket handshake).
async fn peek_head(stream: &TcpStream) -> io::Result<Option<Head>> {
    let mut buffer = vec![0_u8; MAX_HEAD];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buffer).await?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(end) = buffer[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return parse_head(&buffer[..end + 4]).map(Some);
        }
        // Bare line feeds (which HTTP parsers accept) end a head too.
        if let Some(end) = buffer[..n].windows(2).position(|w| w == b"\n\n") {
            return parse_head(&buffer[..end + 2]).map(Some);
        }
        if n == buffer.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request head is too long",
            ));
        }
        if n == seen {
            // Nothing new yet: wait a little for the rest of the head.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen = n;
    }
}

fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        _ => return Err(invalid("not an HTTP request")),
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .and_then(|header| std::str::from_utf8(header.value).ok())
            .map(str::to_owned)
    };
    let content_length = match header("content-length") {
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| invalid("a bad Content-Length"))?,
        None => 0,
    };
    if header("transfer-encoding").is_some() {
        return Err(invalid(
            "a chunked (Transfer-Encoding) body; send a Content-Length",
        ));
    }
    let upgrade = header("upgrade").is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    Ok(Head {
        method: request.method.unwrap_or_default().to_owned(),
        path: request.path.unwrap_or_default().to_owned(),
        host: header("host"),
        origin: header("origin"),
        upgrade,
        content_length,
        length,
    })
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    extra: &str,
) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
    // Read what the client still sends (an unread body after a refusal) until it closes, for
    // at most half a second: closing with unread bytes would reset the connection, and the
    // client could lose the answer.
    let mut sink = [0_u8; 8 << 10];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn respond_json(stream: &mut TcpStream, status: &str, json: &serde_json::Value) {
    respond(
        stream,
        status,
        "application/json",
        json.to_string().as_bytes(),
        "",
    )
    .await;
}

async fn refuse(stream: &mut TcpStream, status: &str, message: &str) {
    respond_json(stream, status, &serde_json::json!({ "error": message })).await;
}

async fn handle(
    app: Arc<App>,
    mut stream: TcpStream,
    remote: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    if !remote.ip().is_loopback() {
        return;
    }
    // One deadline for the whole request: head, body or WebSocket handshake.
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let head = match tokio::time::timeout_at(deadline, peek_head(&stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Err(error)) if error.kind() == io::ErrorKind::InvalidData => {
            refuse(&mut stream, "400 Bad Request", &error.to_string()).await;
            return;
        }
        _ => return,
    };
    let own_hosts = [
        format!("127.0.0.1:{}", app.port),
        format!("localhost:{}", app.port),
    ];
    let own_origins = own_hosts.clone().map(|host| format!("http://{host}"));
    if !head
        .host
        .as_deref()
        .is_some_and(|host| own_hosts.iter().any(|own| own.eq_ignore_ascii_case(host)))
    {
        refuse(
            &mut stream,
            "403 Forbidden",
            "this app answers only its own host (127.0.0.1 or localhost on its port)",
        )
        .await;
        return;
    }
    let own_origin = head.origin.as_deref().is_some_and(|origin| {
        own_origins
            .iter()
            .any(|own| own.eq_ignore_ascii_case(origin))
    });
    if head.upgrade {
        if head.path != "/chum" {
            refuse(&mut stream, "404 Not Found", "CHUM is at /chum").await;
            return;
        }
        // A browser page of another site may not connect; a native peer sends no Origin.
        if head.origin.is_some() && !own_origin {
            refuse(
                &mut stream,
                "403 Forbidden",
                "WebSocket connections from other sites are refused",
            )
            .await;
            return;
        }
        let max_frame = chum_sync::Limits::default().max_frame;
        let Ok(Ok(connection)) =
            tokio::time::timeout_at(deadline, chum_net::ws::accept(stream, None, max_frame)).await
        else {
            return;
        };
        drop(permit);
        app.instance.accept(connection).await;
        return;
    }
    // A plain request: read its head and body off the stream.
    let mut consumed = vec![0_u8; head.length];
    if stream.read_exact(&mut consumed).await.is_err() {
        return;
    }
    if head.content_length > MAX_BODY {
        refuse(
            &mut stream,
            "413 Content Too Large",
            "the body is over 64 KiB",
        )
        .await;
        return;
    }
    let mut body = vec![0_u8; head.content_length];
    match tokio::time::timeout_at(deadline, stream.read_exact(&mut body)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    drop(permit);
    let path = head.path.split('?').next().unwrap_or_default().to_owned();
    match (head.method.as_str(), path.as_str()) {
        ("GET", "/" | "/index.html") => {
            let csp = format!(
                "Content-Security-Policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws://127.0.0.1:{port} ws://localhost:{port}; worker-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'\r\nX-Frame-Options: DENY\r\n",
                port = app.port
            );
            respond(
                &mut stream,
                "200 OK",
                "text/html; charset=utf-8",
                INDEX.as_bytes(),
                &csp,
            )
            .await;
        }
        ("GET", "/app.js") => {
            respond(
                &mut stream,
                "200 OK",
                "text/javascript",
                APP_JS.as_bytes(),
                "",
            )
            .await;
        }
        ("GET", "/sw.js") => {
            respond(
                &mut stream,
                "200 OK",
                "text/javascript",
                SERVICE_WORKER.as_bytes(),
                "",
            )
            .await;
        }
        ("GET", "/app.css") => {
            respond(&mut stream, "200 OK", "text/css", APP_CSS.as_bytes(), "").await;
        }
        ("GET", file) if file.starts_with("/pkg/") => {
            let name = &file["/pkg/".len()..];
            if !PKG_FILES.contains(&name) {
                refuse(&mut stream, "404 Not Found", "no such file").await;
                return;
            }
            let content_type = if name.ends_with(".wasm") {
                "application/wasm"
            } else {
                "text/javascript"
            };
            match tokio::fs::read(app.pkg.join(name)).await {
                Ok(bytes) => respond(&mut stream, "200 OK", content_type, &bytes, "").await,
                Err(error) => {
                    refuse(
                        &mut stream,
                        "500 Internal Server Error",
                        &format!("cannot read {name}: {error}"),
                    )
                    .await;
                }
            }
        }
        ("POST", "/pair" | "/api/settings" | "/api/status") if !own_origin => {
            refuse(
                &mut stream,
                "403 Forbidden",
                "only the app's own page may ask this",
            )
            .await;
        }
        ("POST", "/pair") => match pairing::invitation(&app).await {
            Ok(invitation) => {
                respond_json(
                    &mut stream,
                    "200 OK",
                    &serde_json::json!({ "invitation": invitation, "url": app.chum_url() }),
                )
                .await;
            }
            Err(refused @ pairing::Refused::AlreadyPaired(..)) => {
                refuse(&mut stream, "409 Conflict", &refused.to_string()).await;
            }
            Err(error) => {
                refuse(&mut stream, "500 Internal Server Error", &error.to_string()).await
            }
        },
        ("POST", "/api/status") => {
            let enhancer = enhancer::configured(&app.instance).await;
            respond_json(
                &mut stream,
                "200 OK",
                &serde_json::json!({
                    "person": app.instance.person().to_string(),
                    "instance": app.instance.instance_id().to_string(),
                    "url": app.chum_url(),
                    "enhancer": enhancer.describe(),
                }),
            )
            .await;
        }
        ("POST", "/api/settings") => settings_api(&app, &mut stream, &body).await,
        _ => refuse(&mut stream, "404 Not Found", "no such page").await,
    }
}

/// `POST /api/settings` with `{}` reads main's AI settings; with some of `endpoint`, `model`,
/// `key` (texts; empty unsets) writes them first. The key is never sent back, only whether
/// one is set.
async fn settings_api(app: &App, stream: &mut TcpStream, body: &[u8]) {
    let request: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => {
                refuse(stream, "400 Bad Request", &format!("not JSON: {error}")).await;
                return;
            }
        }
    };
    if let Some(serde_json::Value::String(endpoint)) = request.get("endpoint")
        && !endpoint.trim().is_empty()
        && !endpoint.trim().starts_with("http://")
        && !endpoint.trim().starts_with("https://")
    {
        refuse(
            stream,
            "400 Bad Request",
            "the endpoint is an http:// address of an OpenAI-compatible server (e.g. http://127.0.0.1:8080), or empty for the local enhancer",
        )
        .await;
        return;
    }
    // A key belongs to its endpoint: a new endpoint without a key in the same request unsets
    // the saved one (it is never sent to another server).
    if let Some(serde_json::Value::String(endpoint)) = request.get("endpoint") {
        let current = settings::text(&app.instance, "ai.endpoint")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        if endpoint.trim() != current
            && request.get("key").is_none()
            && let Err(error) = settings::set(&app.instance, "ai.key", chum::Value::from("")).await
        {
            refuse(stream, "500 Internal Server Error", &error.to_string()).await;
            return;
        }
    }
    for (field, key) in [
        ("endpoint", "ai.endpoint"),
        ("model", "ai.model"),
        ("key", "ai.key"),
    ] {
        match request.get(field) {
            None => {}
            Some(serde_json::Value::String(text)) => {
                if let Err(error) =
                    settings::set(&app.instance, key, chum::Value::from(text.trim())).await
                {
                    refuse(stream, "500 Internal Server Error", &error.to_string()).await;
                    return;
                }
            }
            Some(_) => {
                refuse(
                    stream,
                    "400 Bad Request",
                    &format!("{field} must be a string"),
                )
                .await;
                return;
            }
        }
    }
    let read =
        |key: &'static str| async move { settings::text(&app.instance, key).await.ok().flatten() };
    let enhancer = enhancer::configured(&app.instance).await;
    respond_json(
        stream,
        "200 OK",
        &serde_json::json!({
            "endpoint": read("ai.endpoint").await.unwrap_or_default(),
            "model": read("ai.model").await.unwrap_or_default(),
            "keySet": read("ai.key").await.is_some(),
            "enhancer": enhancer.describe(),
        }),
    )
    .await;
}
