// Harbour: this file is Harbour's addition to tiny_http.

use std::io::{BufWriter, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::util::RefinedTcpStream;
use crate::ConnectionLimits;

/// What a client connection shares with the requests read from it.
///
/// A request body that is dropped unread tells the connection how many of its bytes are still
/// on the socket (`leave_unread_body`), right before the connection may read again: the
/// connection then throws them away, at most `limits.unread_body_drain_bytes_max` of them, or
/// closes, so that they are never parsed as the next request.
///
/// A response that must be the last one on the connection (it says `Connection: close`, or the
/// request body it leaves unread is too big to drain) calls `close`, then `shutdown` once it has
/// been written: no further request is read from the connection and the client gets a FIN at
/// once, whatever the connection's thread was blocked on.
pub struct ConnectionState {
    limits: ConnectionLimits,
    closing: AtomicBool,
    // bytes of the previous request's body still on the socket; `usize::MAX` when unknown
    unread_body: AtomicUsize,
    // the connection's socket (its writing half, shared by the responses), if any
    socket: Option<Arc<Mutex<BufWriter<RefinedTcpStream>>>>,
}

impl ConnectionState {
    pub fn new(
        limits: ConnectionLimits,
        socket: Option<Arc<Mutex<BufWriter<RefinedTcpStream>>>>,
    ) -> ConnectionState {
        ConnectionState {
            limits,
            closing: AtomicBool::new(false),
            unread_body: AtomicUsize::new(0),
            socket,
        }
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// No further request is to be read from the connection.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Closes the connection and shuts its socket down both ways: the client gets a FIN after
    /// what has been written, and a read blocked on the socket returns.
    pub fn shutdown(&self) {
        self.close();
        if let Some(socket) = &self.socket {
            if let Ok(mut socket) = socket.lock() {
                socket.flush().ok();
                socket.get_mut().shutdown(Shutdown::Both).ok();
            }
        }
    }

    /// Called by a request body reader when it is dropped with `len` bytes of the body still
    /// on the socket (`usize::MAX` if unknown).
    pub fn leave_unread_body(&self, len: usize) {
        self.unread_body.store(len, Ordering::SeqCst);
    }

    /// The bytes the previous request left on the socket, reset to 0.
    pub fn take_unread_body(&self) -> usize {
        self.unread_body.swap(0, Ordering::SeqCst)
    }
}

impl Default for ConnectionState {
    /// The state of a request that has no connection (`TestRequest`).
    fn default() -> ConnectionState {
        ConnectionState::new(ConnectionLimits::default(), None)
    }
}
