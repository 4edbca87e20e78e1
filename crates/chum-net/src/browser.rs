//! The browser's `WebSocket` as a CHUM transport (wasm32): one binary message per frame, as
//! the native [`ws`](https://docs.rs/chum-net) transport sends them. Text messages and frames
//! over the limit are errors of kind `InvalidData`; the socket closing ends the stream.
//!
//! The browser gives no read backpressure: messages are queued as they arrive (each at most
//! the frame limit) until the session reads them. A peer that follows the protocol's flow
//! control never has more than a few batches unread; one that sends more than
//! [`MAX_UNREAD_FRAMES`] frame limits' worth the session has not read yet is cut off (the
//! stream ends with an `InvalidData` error and the socket closes with code 1009), so a hostile
//! server cannot grow the page's memory without bound. Writes wait while more than
//! [`MAX_BUFFERED`] bytes sit in the socket's send buffer, so a slow link slows the sender
//! instead of growing the page's memory.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::transport::{Connection, FrameReader, FrameTooLarge, FrameWriter};

/// Bytes the socket may hold unsent before a write waits.
pub const MAX_BUFFERED: u32 = 4 << 20;

/// How many frame limits' worth of bytes may wait unread before the peer is cut off.
pub const MAX_UNREAD_FRAMES: usize = 16;

/// What arrived: a frame, or why the stream ended.
type Arrival = io::Result<Vec<u8>>;

/// The socket and the handlers it calls; dropping the last owner closes the socket and
/// detaches the handlers (so the browser never calls a dropped closure).
struct Socket {
    ws: WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
    _on_open: Closure<dyn FnMut(JsValue)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        self.ws.set_onopen(None);
        let _ = self.ws.close_with_code(1000);
    }
}

struct Reader {
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    /// Bytes queued in `arrivals`.
    unread: Rc<Cell<usize>>,
    _socket: Rc<Socket>,
}

struct Writer {
    socket: Rc<Socket>,
}

#[async_trait::async_trait(?Send)]
impl FrameReader for Reader {
    async fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self.arrivals.next().await {
            Some(Ok(frame)) => {
                self.unread
                    .set(self.unread.get().saturating_sub(frame.len()));
                Ok(Some(frame))
            }
            Some(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Some(Err(error)) => Err(error),
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl FrameWriter for Writer {
    async fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
        let ws = &self.socket.ws;
        while ws.buffered_amount() > MAX_BUFFERED {
            if ws.ready_state() != WebSocket::OPEN {
                break;
            }
            crate::rt::sleep(Duration::from_millis(2)).await;
        }
        if ws.ready_state() != WebSocket::OPEN {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the WebSocket is closed",
            ));
        }
        ws.send_with_u8_array(&frame)
            .map_err(|error| io::Error::other(describe(&error)))
    }
    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    async fn close(&mut self) -> io::Result<()> {
        let _ = self.socket.ws.close_with_code(1000);
        Ok(())
    }
}

fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// Connects to `url` (`ws://` or `wss://`) for frames of at most `max_frame` bytes; returns
/// once the socket is open.
pub async fn connect(url: &str, max_frame: usize) -> io::Result<Connection> {
    let ws = WebSocket::new(url).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot open a WebSocket to {url}: {}", describe(&error)),
        )
    })?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let (arrive, arrivals) = mpsc::unbounded::<Arrival>();
    let (opened_tx, opened) = oneshot::channel::<io::Result<()>>();
    let opened_tx = Rc::new(RefCell::new(Some(opened_tx)));
    let unread = Rc::new(Cell::new(0_usize));
    let max_unread = max_frame.saturating_mul(MAX_UNREAD_FRAMES);
    let on_message = {
        let arrive = arrive.clone();
        let unread = Rc::clone(&unread);
        let ws = ws.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if arrive.is_closed() {
                return; // cut off: the rest is dropped
            }
            let data = event.data();
            let arrival = if let Some(buffer) = data.dyn_ref::<js_sys::ArrayBuffer>() {
                let length = buffer.byte_length() as usize;
                if length > max_frame {
                    Err(FrameTooLarge {
                        length,
                        limit: max_frame,
                    }
                    .into_io())
                } else if unread.get().saturating_add(length) > max_unread {
                    let _ = ws.close_with_code_and_reason(1009, "too much unread");
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the peer sent more than {max_unread} bytes the session has not read \
                             yet (flow control ignored)"
                        ),
                    ))
                } else {
                    unread.set(unread.get() + length);
                    Ok(js_sys::Uint8Array::new(buffer).to_vec())
                }
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a text message where CHUM sends binary frames",
                ))
            };
            let failed = arrival.is_err();
            let _ = arrive.unbounded_send(arrival);
            if failed {
                arrive.close_channel();
            }
        })
    };
    let on_close = {
        let arrive = arrive.clone();
        let opened_tx = Rc::clone(&opened_tx);
        Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            if let Some(opened) = opened_tx.borrow_mut().take() {
                let _ = opened.send(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "the WebSocket closed before it opened (code {}{})",
                        event.code(),
                        if event.reason().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", event.reason())
                        }
                    ),
                )));
            }
            let _ =
                arrive.unbounded_send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")));
            arrive.close_channel();
        })
    };
    let on_error = {
        let opened_tx = Rc::clone(&opened_tx);
        Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            if let Some(opened) = opened_tx.borrow_mut().take() {
                let _ = opened.send(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "the WebSocket could not connect",
                )));
            }
        })
    };
    let on_open = {
        let opened_tx = Rc::clone(&opened_tx);
        Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
            if let Some(opened) = opened_tx.borrow_mut().take() {
                let _ = opened.send(Ok(()));
            }
        })
    };
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    let socket = Rc::new(Socket {
        ws,
        _on_message: on_message,
        _on_close: on_close,
        _on_error: on_error,
        _on_open: on_open,
    });
    match opened.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the WebSocket went away before it opened",
            ));
        }
    }
    Ok(Connection {
        reader: Box::new(Reader {
            arrivals,
            unread,
            _socket: Rc::clone(&socket),
        }),
        writer: Box::new(Writer { socket }),
        remote: url.to_owned(),
    })
}
