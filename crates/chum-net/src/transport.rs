//! Frame transports: each moves whole CHUM frames, one message each, and knows nothing else
//! of the protocol.
//!
//! - [`memory_pair`]: two connected ends in one process (bounded channels).
//! - TCP ([`tcp`]): each frame behind a 4-byte big-endian length; a length above the limit is
//!   refused before anything is allocated for it.
//! - WebSocket: one binary message per frame (see `docs/protocol.md`): `ws` natively,
//!   `browser` (the browser's `WebSocket`) on wasm32.

use std::io;

use tokio::sync::mpsc;

use crate::rt::MaybeSend;

/// A frame over the receiver's limit (the error inside an `InvalidData` I/O error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a frame of {length} bytes exceeds the limit of {limit}")]
pub struct FrameTooLarge {
    /// The frame's length.
    pub length: usize,
    /// The limit.
    pub limit: usize,
}

impl FrameTooLarge {
    /// As an I/O error of kind `InvalidData`.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// Whether a transport error is a frame over the limit.
pub fn is_too_large(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<FrameTooLarge>().is_some())
}

/// Reads whole frames. Bytes that are not a frame (over the limit, a message of the wrong
/// kind) are an error of kind `InvalidData`. (`Send` natively; not on wasm32.)
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait FrameReader: MaybeSend + 'static {
    /// The next frame; `Ok(None)` when the other side closed cleanly.
    async fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>>;
}

/// Writes whole frames. (`Send` natively; not on wasm32.)
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait FrameWriter: MaybeSend + 'static {
    /// Queues a frame (it may sit in a buffer until [`FrameWriter::flush`]).
    async fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<()>;
    /// Sends everything queued.
    async fn flush(&mut self) -> io::Result<()>;
    /// Flushes and closes the sending side.
    async fn close(&mut self) -> io::Result<()>;
}

/// One connection: its two directions and a name for the remote end (for logs and limits).
pub struct Connection {
    /// Frames from the peer.
    pub reader: Box<dyn FrameReader>,
    /// Frames to the peer.
    pub writer: Box<dyn FrameWriter>,
    /// The remote end, e.g. `127.0.0.1:4711` or `memory`.
    pub remote: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

struct ChannelReader(mpsc::Receiver<Vec<u8>>);
struct ChannelWriter(Option<mpsc::Sender<Vec<u8>>>);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl FrameReader for ChannelReader {
    async fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.0.recv().await)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl FrameWriter for ChannelWriter {
    async fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
        match &self.0 {
            Some(sender) => sender
                .send(frame)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the other end is gone")),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }
    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    async fn close(&mut self) -> io::Result<()> {
        self.0 = None;
        Ok(())
    }
}

/// Two connected in-memory ends; each direction holds at most `capacity` frames in flight.
pub fn memory_pair(capacity: usize) -> (Connection, Connection) {
    let (a_to_b, b_from_a) = mpsc::channel(capacity.max(1));
    let (b_to_a, a_from_b) = mpsc::channel(capacity.max(1));
    (
        Connection {
            reader: Box::new(ChannelReader(a_from_b)),
            writer: Box::new(ChannelWriter(Some(a_to_b))),
            remote: "memory".into(),
        },
        Connection {
            reader: Box::new(ChannelReader(b_from_a)),
            writer: Box::new(ChannelWriter(Some(b_to_a))),
            remote: "memory".into(),
        },
    )
}

/// A simulated network path for tests and benchmarks (not on wasm32): two connected ends in
/// one process whose frames each take the path's one-way delay plus their length over its
/// bandwidth, one after another in each direction, like a link with a bottleneck. A writer
/// more than `buffer` bytes ahead of the link waits, as on a full socket buffer.
#[cfg(not(target_arch = "wasm32"))]
pub mod simulated {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    /// A path's properties, the same both ways.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Path {
        /// The one-way delay (half the round trip).
        pub one_way: Duration,
        /// Bytes per second each way.
        pub bytes_per_second: u64,
        /// Bytes a writer may be ahead of the link.
        pub buffer: u64,
    }

    impl Path {
        /// A path of round trip `rtt` and `bits_per_second`, with a 4 MiB send buffer.
        pub fn new(rtt: Duration, bits_per_second: u64) -> Path {
            Path {
                one_way: rtt / 2,
                bytes_per_second: (bits_per_second / 8).max(1),
                buffer: 4 << 20,
            }
        }

        fn transmission(&self, bytes: usize) -> Duration {
            Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64)
        }
    }

    struct Reader(mpsc::UnboundedReceiver<(Instant, Vec<u8>)>);

    struct Writer {
        sender: Option<mpsc::UnboundedSender<(Instant, Vec<u8>)>>,
        path: Path,
        /// When the link is done with what was written so far.
        free_at: Instant,
        sent: Arc<AtomicU64>,
    }

    #[async_trait::async_trait]
    impl FrameReader for Reader {
        async fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
            match self.0.recv().await {
                Some((arrives, frame)) => {
                    tokio::time::sleep_until(arrives).await;
                    Ok(Some(frame))
                }
                None => Ok(None),
            }
        }
    }

    #[async_trait::async_trait]
    impl FrameWriter for Writer {
        async fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
            let Some(sender) = &self.sender else {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "closed"));
            };
            let now = Instant::now();
            let departs = self.free_at.max(now) + self.path.transmission(frame.len());
            self.free_at = departs;
            self.sent.fetch_add(frame.len() as u64, Ordering::Relaxed);
            sender
                .send((departs + self.path.one_way, frame))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the other end is gone"))?;
            // Ahead of the link by more than the buffer: wait until it drains to it.
            let ahead = self
                .path
                .transmission(usize::try_from(self.path.buffer).unwrap_or(usize::MAX));
            if departs > now + ahead {
                tokio::time::sleep_until(departs - ahead).await;
            }
            Ok(())
        }
        async fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        async fn close(&mut self) -> io::Result<()> {
            self.sender = None;
            Ok(())
        }
    }

    /// Two connected ends over `path`, and the bytes written at each end so far (first
    /// end's, second end's).
    pub fn pair(path: Path) -> (Connection, Connection, [Arc<AtomicU64>; 2]) {
        let (a_to_b, b_from_a) = mpsc::unbounded_channel();
        let (b_to_a, a_from_b) = mpsc::unbounded_channel();
        let counters = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let now = Instant::now();
        let end = |reader, sender, sent: &Arc<AtomicU64>| Connection {
            reader: Box::new(Reader(reader)),
            writer: Box::new(Writer {
                sender: Some(sender),
                path,
                free_at: now,
                sent: Arc::clone(sent),
            }),
            remote: "simulated".into(),
        };
        (
            end(a_from_b, a_to_b, &counters[0]),
            end(b_from_a, b_to_a, &counters[1]),
            counters,
        )
    }
}

/// TCP framing: a 4-byte big-endian length, then the frame. (Not on wasm32.)
#[cfg(not(target_arch = "wasm32"))]
pub mod tcp {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
    use tokio::net::TcpStream;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    struct Reader {
        inner: BufReader<OwnedReadHalf>,
        max_frame: usize,
    }

    struct Writer(BufWriter<OwnedWriteHalf>);

    #[async_trait::async_trait]
    impl FrameReader for Reader {
        async fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
            let mut length = [0u8; 4];
            match self.inner.read_exact(&mut length).await {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(error) => return Err(error),
            }
            let length = u32::from_be_bytes(length) as usize;
            if length > self.max_frame {
                return Err(FrameTooLarge {
                    length,
                    limit: self.max_frame,
                }
                .into_io());
            }
            // Read into spare capacity: no zeroing of bytes about to be overwritten.
            let mut frame = Vec::with_capacity(length);
            while frame.len() < length {
                let rest = (length - frame.len()) as u64;
                if (&mut self.inner).take(rest).read_buf(&mut frame).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok(Some(frame))
        }
    }

    #[async_trait::async_trait]
    impl FrameWriter for Writer {
        async fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
            let length = u32::try_from(frame.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
            self.0.write_all(&length.to_be_bytes()).await?;
            self.0.write_all(&frame).await
        }
        async fn flush(&mut self) -> io::Result<()> {
            self.0.flush().await
        }
        async fn close(&mut self) -> io::Result<()> {
            self.0.flush().await?;
            self.0.shutdown().await
        }
    }

    /// Frames over an established TCP stream, refusing incoming frames above `max_frame`.
    pub fn connection(stream: TcpStream, max_frame: usize) -> io::Result<Connection> {
        stream.set_nodelay(true)?;
        let remote = stream.peer_addr()?.to_string();
        let (read, write) = stream.into_split();
        Ok(Connection {
            reader: Box::new(Reader {
                inner: BufReader::with_capacity(128 << 10, read),
                max_frame,
            }),
            writer: Box::new(Writer(BufWriter::with_capacity(128 << 10, write))),
            remote,
        })
    }

    /// Connects to `address` and frames the stream.
    pub async fn connect(address: &str, max_frame: usize) -> io::Result<Connection> {
        connection(TcpStream::connect(address).await?, max_frame)
    }
}
