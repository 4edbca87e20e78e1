//! WebSocket framing: one binary message per CHUM frame, over `ws://` or `wss://` (TLS by
//! rustls). Text messages are refused; pings and pongs of the WebSocket layer are answered by
//! it and never reach the session.

use std::io;
use std::sync::Arc;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, WebSocketStream};

use crate::transport::{Connection, FrameReader, FrameTooLarge, FrameWriter};

/// WebSocket limits for frames of at most `max_frame` bytes.
fn config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
        // Each read zeroes this much of its buffer first: at tungstenite's default (128 KiB)
        // a hub with thousands of sessions spends more time clearing memory than reading
        // frames. Larger frames still arrive whole (the buffer grows for them).
        .read_buffer_size(READ_BUFFER)
}

/// Bytes one read of a WebSocket takes at most.
const READ_BUFFER: usize = 16 << 10;

fn other(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

struct Reader<S>(SplitStream<WebSocketStream<S>>);
struct Writer<S>(SplitSink<WebSocketStream<S>, WsMessage>);

#[async_trait::async_trait]
impl<S> FrameReader for Reader<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            match self.0.next().await {
                None | Some(Ok(WsMessage::Close(_))) => return Ok(None),
                Some(Ok(WsMessage::Binary(bytes))) => return Ok(Some(bytes.to_vec())),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                Some(Ok(WsMessage::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text message where CHUM sends binary frames",
                    ));
                }
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(
                    tokio_tungstenite::tungstenite::error::CapacityError::MessageTooLong {
                        size,
                        max_size,
                    },
                ))) => {
                    return Err(FrameTooLarge {
                        length: size,
                        limit: max_size,
                    }
                    .into_io());
                }
                Some(Err(error)) => return Err(other(error)),
            }
        }
    }
}

#[async_trait::async_trait]
impl<S> FrameWriter for Writer<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
        self.0
            .feed(WsMessage::Binary(frame.into()))
            .await
            .map_err(other)
    }
    async fn flush(&mut self) -> io::Result<()> {
        self.0.flush().await.map_err(other)
    }
    async fn close(&mut self) -> io::Result<()> {
        self.0.close().await.map_err(other)
    }
}

fn connection<S>(stream: WebSocketStream<S>, remote: String) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, source) = stream.split();
    Connection {
        reader: Box::new(Reader(source)),
        writer: Box::new(Writer(sink)),
        remote,
    }
}

/// TLS settings for `wss://` clients: the roots to trust.
#[derive(Debug, Clone)]
pub struct ClientTls(pub Arc<rustls::ClientConfig>);

impl ClientTls {
    /// Trusts the public web PKI (Mozilla's roots, as shipped by `webpki-roots`).
    pub fn web_pki() -> io::Result<ClientTls> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        ClientTls::with_roots(roots)
    }

    /// Trusts exactly `roots` (e.g. a self-signed certificate of your own server).
    pub fn with_roots(roots: rustls::RootCertStore) -> io::Result<ClientTls> {
        let provider = Arc::new(ring_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls(Arc::new(config)))
    }
}

/// Connects to a `ws://` or `wss://` URL; `tls` chooses the roots for `wss://` (default: the
/// public web PKI). Incoming frames above `max_frame` end the connection.
pub async fn connect(
    url: &str,
    max_frame: usize,
    tls: Option<ClientTls>,
) -> io::Result<Connection> {
    let connector = if url.starts_with("wss://") {
        let tls = match tls {
            Some(tls) => tls,
            None => ClientTls::web_pki()?,
        };
        Some(Connector::Rustls(tls.0))
    } else {
        Some(Connector::Plain)
    };
    let (stream, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(config(max_frame)),
        true,
        connector,
    )
    .await
    .map_err(other)?;
    Ok(connection(stream, url.to_owned()))
}

/// A certificate chain and key for `wss://` servers.
#[derive(Clone)]
pub struct ServerTls(pub tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// From a certificate chain (leaf first) and its private key, all DER.
    pub fn new(
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> io::Result<ServerTls> {
        let provider = Arc::new(ring_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(other)?;
        Ok(ServerTls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// Completes the server side of a WebSocket handshake (after TLS, with `tls`) on an accepted
/// TCP stream.
pub async fn accept(
    stream: TcpStream,
    tls: Option<&ServerTls>,
    max_frame: usize,
) -> io::Result<Connection> {
    stream.set_nodelay(true)?;
    let remote = stream.peer_addr()?.to_string();
    match tls {
        Some(tls) => {
            let stream = tls.0.accept(stream).await?;
            let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config(max_frame)))
                .await
                .map_err(other)?;
            Ok(connection(ws, remote))
        }
        None => {
            let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config(max_frame)))
                .await
                .map_err(other)?;
            Ok(connection(ws, remote))
        }
    }
}

/// rustls over *ring*, chosen over aws-lc-rs so that building needs no C toolchain beyond
/// the one *ring* brings. Newer rustls releases mark it deprecated for lacking post-quantum
/// key exchange; that is the known trade-off (WSS carries Noise sessions, which authenticate
/// and encrypt on their own), not a warning for every app that builds this crate.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
