//! How commands reach a store that a running `chum serve` holds open: the server listens on a
//! loopback port and writes `api` (the port and a random token, readable only by the owner)
//! into the store directory; a command that finds the store locked sends its command there
//! and relays what comes back. A server killed with SIGKILL leaves a stale `api` file, which
//! the next command ignores (the store's lock died with the process) and removes.
//!
//! Frames: a 4-byte big-endian length and a DAG-CBOR map. The client first sends `{"nonce":
//! <32 bytes>}` (at most 1 KiB) and the server answers `{"proof": BLAKE3-keyed(token, nonce)}`,
//! so the client sends its command and input only to the server that wrote the `api` file (not
//! to whatever process holds that port after a crash). Then the client proves itself in a
//! small frame, `{"token": <32 bytes>}` (at most 1 KiB, compared in constant time): only after
//! it does the server read a large frame. Then the request: `{"command": [<words>], "input":
//! <bytes, optional>}`. Replies, in order: any number of `{"out": <bytes>}` and `{"err":
//! <text>}`, then `{"exit": <code>}`. At most [`MAX_CONNECTIONS`] connections are served at
//! once; a connection that does not prove itself within 5 s is closed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chum::Instance;
use chum::{Limits, Map, Value, dagcbor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::store_commands::{Sink, StoreCommand, execute};

/// Largest request or reply frame.
const MAX_FRAME: usize = 128 << 20;

/// Largest frame before the client proved it holds the token.
const MAX_HELLO: usize = 1_024;

/// Connections served at once (each proving itself within [`PROOF_TIMEOUT`]).
pub const MAX_CONNECTIONS: usize = 64;

/// How long a connection may take to prove itself.
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

fn api_path(dir: &Path) -> PathBuf {
    dir.join("api")
}

fn frame_limits() -> Limits {
    Limits {
        max_size: MAX_FRAME,
        ..Limits::default()
    }
}

/// Output is relayed in chunks of at most this many bytes.
const CHUNK: usize = 256 << 10;

async fn write_frame(stream: &mut TcpStream, map: Map) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    dagcbor::encode_into(&Value::Map(map), &frame_limits(), &mut bytes)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()))?;
    let length = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"))?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Map> {
    read_frame_limited(stream, MAX_FRAME).await
}

async fn read_frame_limited(stream: &mut TcpStream, max: usize) -> std::io::Result<Map> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut bytes = vec![0u8; length];
    stream.read_exact(&mut bytes).await?;
    match dagcbor::decode_with_limits(&bytes, &frame_limits()) {
        Ok(Value::Map(map)) => Ok(map),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an API frame",
        )),
    }
}

/// The server side: started by `chum serve` once it holds the store.
pub struct ApiServer {
    path: PathBuf,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens for commands for `instance` and writes the `api` file into `dir`.
pub async fn serve(instance: Instance, dir: &Path) -> std::io::Result<ApiServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let token = random_32().map_err(|error| std::io::Error::other(error.to_string()))?;
    let path = api_path(dir);
    let temporary = dir.join("api.tmp");
    {
        // Created new (O_EXCL: never through a link someone placed there) with the owner's
        // mode from the start, not tightened afterwards.
        let _ = std::fs::remove_file(&temporary);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        use std::io::Write;
        writeln!(file, "{address} {}", hex::encode(token))?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file handles or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            // Beyond the bound a connection is closed at once.
            let Ok(slot) = std::sync::Arc::clone(&slots).try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let instance = instance.clone();
            tokio::spawn(async move {
                let _ = handle(instance, stream, token).await;
                drop(slot);
            });
        }
    });
    Ok(ApiServer { path })
}

/// Sends output chunks to the client as they come.
struct Relay(mpsc::UnboundedSender<Map>);

impl Sink for Relay {
    fn out(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(CHUNK) {
            let mut map = Map::new();
            map.insert("out", chunk.to_vec());
            let _ = self.0.send(map);
        }
    }
    fn err(&mut self, text: &str) {
        let mut map = Map::new();
        map.insert("err", text);
        let _ = self.0.send(map);
    }
}

async fn handle(instance: Instance, mut stream: TcpStream, token: [u8; 32]) -> std::io::Result<()> {
    // Prove to the client that this server wrote the `api` file.
    let deadline = tokio::time::Instant::now() + PROOF_TIMEOUT;
    let hello = tokio::time::timeout_at(deadline, read_frame_limited(&mut stream, MAX_HELLO))
        .await
        .map_err(|_| std::io::Error::other("no hello"))??;
    let Some(Value::Bytes(nonce)) = hello.get("nonce") else {
        return Ok(());
    };
    let mut proof = Map::new();
    proof.insert(
        "proof",
        blake3::keyed_hash(&token, nonce).as_bytes().to_vec(),
    );
    write_frame(&mut stream, proof).await?;
    // The client proves itself in a small frame before anything large is read.
    let auth = tokio::time::timeout_at(deadline, read_frame_limited(&mut stream, MAX_HELLO))
        .await
        .map_err(|_| std::io::Error::other("no token"))??;
    let given: Option<[u8; 32]> = match auth.get("token") {
        Some(Value::Bytes(bytes)) => bytes.as_slice().try_into().ok(),
        _ => None,
    };
    // blake3::Hash compares in constant time.
    if given.map(blake3::Hash::from_bytes) != Some(blake3::Hash::from_bytes(token)) {
        return Ok(()); // not ours: say nothing
    }
    let request = tokio::time::timeout(Duration::from_secs(30), read_frame(&mut stream))
        .await
        .map_err(|_| std::io::Error::other("no request"))??;
    let words: Vec<String> = request
        .get("command")
        .and_then(Value::as_list)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_text)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let input = match request.get("input") {
        Some(Value::Bytes(bytes)) => Some(bytes.clone()),
        _ => None,
    };
    let (sender, mut replies) = mpsc::unbounded_channel();
    let run = async move {
        let mut relay = Relay(sender);
        match StoreCommand::from_words(&words) {
            Some(command) => execute(&instance, command, input, &mut relay).await,
            None => {
                relay.err("chum: error: the server does not know this command");
                2
            }
        }
    };
    let run = tokio::spawn(run);
    while let Some(reply) = replies.recv().await {
        write_frame(&mut stream, reply).await?;
    }
    let code = run.await.unwrap_or(1);
    let mut done = Map::new();
    done.insert("exit", u64::from(code));
    write_frame(&mut stream, done).await
}

/// The client side: forwards `command` to the server holding `dir`, relaying its output.
/// `None` when no server answers there (no `api` file, or a stale one).
pub async fn forward(
    dir: &Path,
    command: &StoreCommand,
    input: Option<Vec<u8>>,
    sink: &mut dyn Sink,
) -> Option<u8> {
    let text = std::fs::read_to_string(api_path(dir)).ok()?;
    let (address, token) = text.trim().split_once(' ')?;
    let token = hex::decode(token).ok()?;
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address))
        .await
        .ok()?
        .ok()?;
    // The server proves it knows the token before the token or the input leave this process.
    let nonce = random_32().ok()?;
    let mut hello = Map::new();
    hello.insert("nonce", nonce.to_vec());
    write_frame(&mut stream, hello).await.ok()?;
    let proof = tokio::time::timeout(
        Duration::from_secs(5),
        read_frame_limited(&mut stream, 1_024),
    )
    .await
    .ok()?
    .ok()?;
    let key: [u8; 32] = token.as_slice().try_into().ok()?;
    let expected = blake3::keyed_hash(&key, &nonce);
    if proof.get("proof") != Some(&Value::Bytes(expected.as_bytes().to_vec())) {
        return None; // not the server that wrote the file
    }
    let mut auth = Map::new();
    auth.insert("token", token);
    write_frame(&mut stream, auth).await.ok()?;
    let mut request = Map::new();
    request.insert(
        "command",
        command
            .to_words()
            .into_iter()
            .map(|word| Value::Text(word.into()))
            .collect::<Vec<_>>(),
    );
    if let Some(input) = input {
        request.insert("input", input);
    }
    write_frame(&mut stream, request).await.ok()?;
    loop {
        let Ok(reply) = read_frame(&mut stream).await else {
            sink.err("chum: error: the server closed the connection before the command finished");
            return Some(1);
        };
        if let Some(Value::Bytes(bytes)) = reply.get("out") {
            sink.out(bytes);
        } else if let Some(text) = reply.get("err").and_then(Value::as_text) {
            sink.err(text);
        } else if let Some(code) = reply.get("exit").and_then(Value::as_int) {
            return Some(
                code.to_u64()
                    .and_then(|c| u8::try_from(c).ok())
                    .unwrap_or(1),
            );
        }
    }
}

/// Removes a stale `api` file (its server is gone: the store was not locked).
pub fn remove_stale(dir: &Path) {
    let _ = std::fs::remove_file(api_path(dir));
}

/// 32 bytes from the operating system's random source.
fn random_32() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}
