//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
#[cfg(test)]
mod harbour_tests; // Harbour: tests of Harbour's changes against a real server
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // Harbour: connections being served, and the most that may be (`usize::MAX`: no limit),
    // shared with the accept thread; see `set_connections_max`
    live_connections: Arc<AtomicUsize>,
    connections_max: Arc<AtomicUsize>,

    // Harbour: where connection threads hand requests once set (see `set_request_sink`)
    request_sink: Arc<OnceLock<RequestSink>>,
}

/// Where connection threads hand each request, instead of the queue `recv` pops.
// Harbour: added, see `Server::set_request_sink`
pub type RequestSink = Box<dyn Fn(Request) + Send + Sync>;

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
// Harbour: the impl below is the check; rustc's `dead_code` doesn't count it as a use
#[allow(dead_code)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Limits on what a client connection may make the server hold.
///
/// `Server::http`, `Server::new` and the other constructors use `ConnectionLimits::default()`;
/// `Server::http_with_limits`, `Server::new_with_limits` and `Server::from_listener_with_limits`
/// take other limits. Change some of them with
/// `ConnectionLimits { read_timeout: Some(Duration::from_secs(5)), ..Default::default() }`.
/// The number of connections served at once is capped separately, with
/// `Server::set_connections_max`.
// Harbour: this type is Harbour's addition to tiny_http (`ServerConfig` can't get a new field:
// it is built with struct literals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Socket read timeout of each connection (default 30 s; `None`: none). A client that sends
    /// nothing more of a request for this long is answered 408 and the connection closed; an
    /// idle keep-alive connection is closed after it; the request line and headers must all
    /// arrive within it from their first byte; a handler's read of a request body fails with
    /// `ErrorKind::TimedOut` after it.
    pub read_timeout: Option<Duration>,

    /// Socket write timeout of each connection (default 30 s; `None`: none): writing a
    /// response to a client that doesn't read it fails with `ErrorKind::TimedOut` after it,
    /// and the connection is closed.
    pub write_timeout: Option<Duration>,

    /// Longest request line or header line, in bytes without the CRLF (default 8 KiB); a
    /// longer one is answered 431 and the connection closed. Also caps the chunk-size lines of
    /// a chunked request body.
    pub header_line_bytes_max: usize,

    /// Most headers in a request (default 100); more are answered 431 and the connection closed.
    pub headers_count_max: usize,

    /// Most bytes of a request body left unread by its handler that are read and thrown away so
    /// that the connection can carry the next request (default 64 KiB). If more are left (or
    /// the body is chunked and its size unknown, or the handler didn't ask for a body announced
    /// with `Expect: 100-continue`), none is read: the response says `Connection: close` and
    /// the connection is shut down once it is written.
    pub unread_body_drain_bytes_max: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            read_timeout: Some(Duration::from_secs(30)),
            write_timeout: Some(Duration::from_secs(30)),
            header_line_bytes_max: 8 * 1024,
            headers_count_max: 100,
            unread_body_drain_bytes_max: 64 * 1024,
        }
    }
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Same as `http`, with other limits than `ConnectionLimits::default()`.
    // Harbour: added
    #[inline]
    pub fn http_with_limits<A>(
        addr: A,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new_with_limits(
            ServerConfig {
                addr: ConfigListenAddr::from_socket_addrs(addr)?,
                ssl: None,
            },
            limits,
        )
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::new_with_limits(config, ConnectionLimits::default())
    }

    /// Same as `new`, with other limits than `ConnectionLimits::default()`.
    // Harbour: added
    pub fn new_with_limits(
        config: ServerConfig,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener_with_limits(listener, config.ssl, limits)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_limits(listener, ssl_config, ConnectionLimits::default())
    }

    /// Same as `from_listener`, with other limits than `ConnectionLimits::default()`.
    ///
    /// Fails if a timeout in `limits` is zero (the socket API refuses it).
    // Harbour: added; upstream's `from_listener` with the limits applied to each connection
    pub fn from_listener_with_limits<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if limits.read_timeout == Some(Duration::from_secs(0))
            || limits.write_timeout == Some(Duration::from_secs(0))
        {
            return Err("a zero socket timeout is not allowed; use None for no timeout".into());
        }

        let listener = listener.into();
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        // Harbour: see `Server::set_connections_max`
        let live_connections = Arc::new(AtomicUsize::new(0));
        let connections_max = Arc::new(AtomicUsize::new(usize::MAX));
        let inside_live_connections = live_connections.clone();
        let inside_connections_max = connections_max.clone();
        let request_sink: Arc<OnceLock<RequestSink>> = Arc::new(OnceLock::new());
        let inside_request_sink = request_sink.clone();
        thread::spawn(move || {
            // a tasks pool is used to dispatch the connections into threads
            let tasks_pool = util::TaskPool::new();

            // Harbour: pause after a transient accept error, see `is_transient_accept_error`
            let mut accept_backoff = ACCEPT_BACKOFF_MIN;

            log::debug!("Running accept thread");
            while !inside_close_trigger.load(Relaxed) {
                let new_client = match server.accept() {
                    Ok((sock, _)) => {
                        use util::RefinedTcpStream;

                        accept_backoff = ACCEPT_BACKOFF_MIN;

                        // Harbour: over `connections_max`: refused without reading from it
                        let max = inside_connections_max.load(Relaxed);
                        if inside_live_connections.load(Relaxed) >= max {
                            log::warn!("Refusing a connection: {} are being served", max);
                            refuse_connection(sock, ssl.is_none());
                            continue;
                        }

                        // Harbour: per-connection socket timeouts, before anything is read
                        // (the TLS handshake included); see `Connection::set_timeouts`
                        if let Err(e) = sock.set_timeouts(limits.read_timeout, limits.write_timeout)
                        {
                            log::error!("Error setting the timeouts of a connection: {}", e);
                            continue;
                        }

                        // Harbour: `RefinedTcpStream::new` is fallible (EMFILE): its error goes
                        // to the accept errors below
                        let streams = match ssl {
                            None => RefinedTcpStream::new(sock),
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        streams.map(|(read_closable, write_closable)| {
                            ClientConnection::new(write_closable, read_closable, limits)
                        })
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok(client) => {
                        let messages = inside_messages.clone();
                        // Harbour: counted as live until its thread is done with it
                        let live = LiveConnection::new(&inside_live_connections);
                        let mut client = Some((client, live));
                        let request_sink = inside_request_sink.clone();
                        tasks_pool.spawn(Box::new(move || {
                            // Harbour: a request goes to the sink when one is set, saving the
                            // hop through the queue and the thread that pops it
                            let deliver = |rq: Request| match request_sink.get() {
                                Some(sink) => sink(rq),
                                None => messages.push(rq.into()),
                            };
                            if let Some((client, _live)) = client.take() {
                                // Synchronization is needed for HTTPS requests to avoid a deadlock
                                if client.secure() {
                                    let (sender, receiver) = mpsc::channel();
                                    for rq in client {
                                        deliver(rq.with_notify_sender(sender.clone()));
                                        receiver.recv().unwrap();
                                    }
                                } else {
                                    for rq in client {
                                        deliver(rq);
                                    }
                                }
                            }
                        }));
                    }

                    // Harbour: upstream stopped accepting for good on any error (EMFILE...)
                    Err(ref e) if is_transient_accept_error(e) => {
                        log::warn!(
                            "Error accepting new client: {}; retrying in {:?}",
                            e,
                            accept_backoff
                        );
                        thread::sleep(accept_backoff);
                        accept_backoff = (accept_backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }

                    Err(e) => {
                        log::error!("Error accepting new client: {}", e);
                        inside_messages.push(e.into());
                        break;
                    }
                }
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            messages,
            request_sink,
            close: close_trigger,
            listening_addr: local_addr,
            live_connections,
            connections_max,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    // Harbour: was `unimplemented!()`; counts the connections being served (see
    // `set_connections_max`)
    pub fn num_connections(&self) -> usize {
        self.live_connections.load(Relaxed)
    }

    /// Caps the number of connections served at once (`None`, the default: no cap). Each one
    /// has its own thread; a connection accepted past the cap is answered 503 with a JSON body
    /// and `Connection: close` (or, for HTTPS, just closed), without reading from it, and with a
    /// short write timeout so that the accept loop can't be held up.
    // Harbour: added; not a field of `ConnectionLimits`, which is built with struct literals
    pub fn set_connections_max(&self, max: Option<usize>) {
        self.connections_max
            .store(max.unwrap_or(usize::MAX), Relaxed);
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    /// From now on, connection threads hand every request to `sink` (on their own thread)
    /// instead of queueing it for `recv`, which then only returns the accept thread's fatal
    /// error (or a request queued before). Can be set once; returns `false` after that.
    // Harbour: added; a server that feeds its own worker pool saves a thread hop per request
    pub fn set_request_sink(&self, sink: RequestSink) -> bool {
        self.request_sink.set(sink).is_ok()
    }

    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

// Harbour: the pause after a transient accept error doubles from this...
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
// ...up to this, and is reset by an accepted connection.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

// Harbour: accept() errors that mean "not now" (out of file descriptors or memory, a connection
// aborted while queued, a signal...), after which the accept loop pauses and retries; upstream
// stopped accepting for good on any error, so a burst of connections hitting EMFILE silently
// turned the server off. Other errors (EBADF, EINVAL...) still stop it.
fn is_transient_accept_error(err: &IoError) -> bool {
    match err.kind() {
        IoErrorKind::Interrupted
        | IoErrorKind::WouldBlock
        | IoErrorKind::TimedOut
        | IoErrorKind::ConnectionAborted
        | IoErrorKind::OutOfMemory => return true,
        _ => (),
    }
    #[cfg(unix)]
    {
        match err.raw_os_error() {
            Some(code) => [
                libc::EMFILE,
                libc::ENFILE,
                libc::ENOBUFS,
                libc::ENOMEM,
                libc::ECONNABORTED,
                libc::EINTR,
                // errors of the connection itself that Linux passes on to accept(), which its
                // manual says to retry, and EPERM (firewall rules)
                libc::ENETDOWN,
                libc::EPROTO,
                libc::ENOPROTOOPT,
                libc::EHOSTDOWN,
                libc::EHOSTUNREACH,
                libc::EOPNOTSUPP,
                libc::ENETUNREACH,
                libc::EPERM,
            ]
            .contains(&code),
            None => false,
        }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

// Harbour: answers a connection accepted past `Server::set_connections_max` a 503 (if it
// is plain HTTP) with `Connection: close`, without reading from it, and closes it. The write
// timeout is short so that a client can't block the accept loop.
fn refuse_connection(mut sock: Connection, plain_http: bool) {
    let timeout = Some(Duration::from_millis(100));
    if plain_http && sock.set_timeouts(timeout, timeout).is_ok() {
        let response = Response::json_error(503, "too many connections")
            .with_header(response::connection_close_header());
        let _ = response.raw_print(&mut sock, HTTPVersion(1, 1), &[], false, None);
    }
    let _ = sock.shutdown(Shutdown::Both);
}

// Harbour: counts a connection in `Server::num_connections` until dropped.
struct LiveConnection(Arc<AtomicUsize>);

impl LiveConnection {
    fn new(count: &Arc<AtomicUsize>) -> LiveConnection {
        count.fetch_add(1, Relaxed);
        LiveConnection(count.clone())
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
