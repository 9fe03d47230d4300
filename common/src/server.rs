//! The server loop both servers run: tiny_http's accept thread feeds a
//! bounded queue, a fixed pool of workers takes requests from it, a full
//! queue is answered 503 at once, and a panicking handler costs its request
//! a 500, never the worker. Bodies are read through caps; every answer to an
//! error carries `{"error": "..."}`.

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use serde::Serialize;
use tiny_http::{Header, Request, Response, Server, StatusCode};

use crate::api::ErrorBody;
use crate::limits::{HEADER_LINE_BYTES_MAX, HEADERS_COUNT_MAX, UNREAD_BODY_DRAIN_BYTES_MAX};
use crate::metrics::{Page, RequestMetrics};
use crate::tls::ServerIdentity;

/// Status codes of successful answers, shared by both servers; each
/// server's error statuses are in its `error.rs` table.
pub const STATUS_OK: u16 = 200;
pub const STATUS_CREATED: u16 = 201;
pub const STATUS_NO_CONTENT: u16 = 204;
pub const STATUS_PARTIAL_CONTENT: u16 = 206;
pub const STATUS_RANGE_NOT_SATISFIABLE: u16 = 416;

pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers_count: usize,
    pub queue_depth: usize,
    /// How long a connection may stall, reading or writing, before it is cut.
    pub io_timeout: Duration,
    /// Connections served at once; past it new ones are refused (503).
    pub connections_max: usize,
    /// Serve HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<ServerIdentity>,
}

impl ServerConfig {
    /// `http` or `https`, as the server's URLs start.
    pub fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }
}

/// What a handler answers.
pub struct Reply {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
    /// Who asked (an API token's label), for the request's log line.
    principal: Option<String>,
}

enum Body {
    Bytes(Vec<u8>),
    /// A streamed body; `len: None` is sent chunked.
    Stream {
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    },
    /// A streamed body of `len` bytes whose next piece is produced while
    /// the current one is sent (see `prefetch`).
    Prefetched {
        pieces: Box<dyn Pieces>,
        len: u64,
    },
}

/// An error a handler answers with: a status and the user's sentence.
pub trait HttpError: fmt::Display {
    fn status(&self) -> u16;
}

/// The reply for a handler's outcome; a server-side error is also logged
/// with the request it failed.
pub fn reply_for<E: HttpError>(request: &Request, outcome: Result<Reply, E>) -> Reply {
    match outcome {
        Ok(reply) => reply,
        Err(err) => {
            if err.status() >= 500 {
                log::error!("{} {}: {err}", request.method(), request.url());
            }
            Reply::error(err.status(), err.to_string())
        }
    }
}

/// Handles one request; runs on a worker thread.
pub trait Handler: Sync {
    fn handle(&self, request: &mut Request) -> Reply;

    /// The name of the route `request` takes, such as `/files/{name}`,
    /// for the metrics' `endpoint` label (from a fixed set: never a raw
    /// path).
    fn endpoint(&self, request: &Request) -> &'static str;
}

/// Counters of the server loop, for `/metrics`.
#[derive(Default)]
pub struct ServerStats {
    pub requests_total: AtomicU64,
    pub errors_4xx_total: AtomicU64,
    pub errors_5xx_total: AtomicU64,
    pub busy_rejections_total: AtomicU64,
    pub panics_total: AtomicU64,
    /// Requests queued or being answered.
    pub in_flight: AtomicUsize,
    /// Requests a worker is answering.
    pub running: AtomicUsize,
    /// By endpoint, method and status.
    pub requests: RequestMetrics,
}

impl ServerStats {
    /// The server loop's part of a `/metrics` page.
    pub fn render(&self, page: &mut Page) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        page.counter(
            "harbour_http_requests_total",
            "HTTP requests received.",
            load(&self.requests_total),
        );
        page.counter(
            "harbour_http_client_errors_total",
            "Requests answered 4xx.",
            load(&self.errors_4xx_total),
        );
        page.counter(
            "harbour_http_server_errors_total",
            "Requests answered 5xx.",
            load(&self.errors_5xx_total),
        );
        page.counter(
            "harbour_http_busy_rejections_total",
            "Requests answered 503 at once because the workers' queue was full.",
            load(&self.busy_rejections_total),
        );
        page.counter(
            "harbour_http_handler_panics_total",
            "Handler panics answered 500.",
            load(&self.panics_total),
        );
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let running = self.running.load(Ordering::Relaxed);
        page.gauge(
            "harbour_http_requests_running",
            "Requests a worker is answering now.",
            running as f64,
        );
        page.gauge(
            "harbour_http_requests_queued",
            "Requests waiting in the workers' queue.",
            in_flight.saturating_sub(running) as f64,
        );
        self.requests.render(page);
    }
}

#[derive(Debug)]
pub enum ServeError {
    Bind { listen: SocketAddr, message: String },
    Accept(io::Error),
}

#[derive(Debug)]
pub enum BodyError {
    TooLarge { limit_bytes: u64 },
    Io(io::Error),
}

impl Reply {
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            principal: None,
        }
    }

    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        let bytes = serde_json::to_vec(value).expect("our reply types always serialise");
        Reply::empty(status)
            .with_header("Content-Type", "application/json")
            .with_bytes(bytes)
    }

    pub fn error(status: u16, message: String) -> Reply {
        assert!(status >= 400);
        Reply::json(status, &ErrorBody { error: message })
    }

    pub fn bytes(status: u16, content_type: &'static str, bytes: Vec<u8>) -> Reply {
        Reply::empty(status)
            .with_header("Content-Type", content_type)
            .with_bytes(bytes)
    }

    /// A body streamed from `reader`, of exactly `len` bytes when known.
    pub fn stream(
        status: u16,
        content_type: &'static str,
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    ) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: Body::Stream { reader, len },
            principal: None,
        }
    }

    /// A body of exactly `len` bytes made of `pieces`, the next produced
    /// while the current one is sent.
    pub fn prefetched(
        status: u16,
        content_type: &'static str,
        pieces: Box<dyn Pieces>,
        len: u64,
    ) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: Body::Prefetched { pieces, len },
            principal: None,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn with_bytes(mut self, bytes: Vec<u8>) -> Reply {
        self.body = Body::Bytes(bytes);
        self
    }

    /// Names who asked (an API token's label) in the request's log line.
    pub fn with_principal(mut self, label: Option<&str>) -> Reply {
        self.principal = label.map(str::to_owned);
        self
    }

    /// The body's length, when known before it is sent.
    fn body_len(&self) -> Option<u64> {
        match &self.body {
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::Stream { len, .. } => *len,
            Body::Prefetched { len, .. } => Some(*len),
        }
    }
}

/// Binds `config.listen`, prints `listening on SCHEME://ADDR` (the test
/// harness and `make run-cluster` wait for that line) and serves until
/// `stop` (see `serve_on`).
pub fn serve(
    config: &ServerConfig,
    handler: &dyn Handler,
    stats: &Arc<ServerStats>,
    stop: &AtomicBool,
) -> Result<(), ServeError> {
    serve_on(bind(config)?, config, handler, stats, stop)
}

/// A bound listener, ready for `serve_on`: binding first lets a caller
/// learn the real address (port 0 picks one) before serving.
pub struct Listener {
    server: Server,
    pub addr: SocketAddr,
}

/// Binds `config.listen` and prints `listening on SCHEME://ADDR` (the
/// test harness and `make run-cluster` wait for that line). With TLS, the
/// handshake happens on the connection's thread at its first read, so a
/// client that never finishes one holds up nobody else.
pub fn bind(config: &ServerConfig) -> Result<Listener, ServeError> {
    let limits = tiny_http::ConnectionLimits {
        read_timeout: Some(config.io_timeout),
        write_timeout: Some(config.io_timeout),
        header_line_bytes_max: HEADER_LINE_BYTES_MAX,
        headers_count_max: HEADERS_COUNT_MAX,
        unread_body_drain_bytes_max: UNREAD_BODY_DRAIN_BYTES_MAX,
    };
    let server_config = tiny_http::ServerConfig {
        addr: tiny_http::ConfigListenAddr::IP(vec![config.listen]),
        ssl: config.tls.as_ref().map(ServerIdentity::for_tiny_http),
    };
    let server =
        Server::new_with_limits(server_config, limits).map_err(|err| ServeError::Bind {
            listen: config.listen,
            message: err.to_string(),
        })?;
    server.set_connections_max(Some(config.connections_max));
    let addr = server.server_addr().to_ip().unwrap_or(config.listen);
    crate::log::announce(&format!("listening on {}://{addr}", config.scheme()));
    Ok(Listener { server, addr })
}

/// Serves on `listener` until `stop` is set (SIGTERM or SIGINT, see
/// `shutdown::watch_stop_signals`), then shuts down cleanly (see
/// `shutdown`): Ok once every request in flight is answered. Err if
/// tiny_http's accept thread dies.
pub fn serve_on(
    listener: Listener,
    config: &ServerConfig,
    handler: &dyn Handler,
    stats: &Arc<ServerStats>,
    stop: &AtomicBool,
) -> Result<(), ServeError> {
    let server = listener.server;
    assert!(config.workers_count >= 1);
    assert!(config.queue_depth >= 1);
    let draining = Arc::new(AtomicBool::new(false));
    thread::scope(|scope| {
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(config.queue_depth);
        for _ in 0..config.workers_count {
            let receiver = receiver.clone();
            // A plain receive: a `select!` over a second, stop channel cost
            // every request its registration on both (measured: reads 30%
            // slower). The sink keeps a sender alive past the scope, so the
            // queue never disconnects: workers end on `Job::Stop`.
            scope.spawn(move || {
                for job in receiver.iter() {
                    match job {
                        Job::Request(request) => run_one(handler, stats, request),
                        Job::Stop => return,
                    }
                }
            });
        }
        let workers_stop = sender.clone();
        // Connection threads put each request in the bounded queue
        // themselves (a full queue is answered 503 on the spot), instead of
        // queueing it for a dispatcher thread: one thread hop less per
        // request. Once shutting down, the sink only refuses.
        let dispatcher = Dispatcher {
            sender: sender.clone(),
            stats: Arc::clone(stats),
            draining: Arc::clone(&draining),
        };
        server.set_request_sink(Box::new(move |request| dispatcher.dispatch(request)));
        let direct = Dispatcher {
            sender,
            stats: Arc::clone(stats),
            draining: Arc::clone(&draining),
        };
        let served = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            // Only the accept thread's end (an error) or a request queued
            // before the sink was set come this way; the timeout is how
            // often `stop` is looked at.
            match server.recv_timeout(shutdown::STOP_POLL_INTERVAL) {
                Ok(Some(request)) => direct.dispatch(request),
                Ok(None) => {}
                Err(err) => break Err(ServeError::Accept(err)),
            }
        };
        draining.store(true, Ordering::Relaxed);
        // The accept thread stops and the listener closes: new connections
        // are refused by the kernel.
        drop(server);
        if served.is_ok() {
            shutdown::finish_in_flight(stats);
        }
        // Nothing is queued any more (the sink refuses): one stop each.
        for _ in 0..config.workers_count {
            let _ = workers_stop.send(Job::Stop);
        }
        served
    })
}

/// What a worker takes from its queue.
enum Job {
    Request(Request),
    /// Shutting down: the worker ends.
    Stop,
}

/// Puts requests in the workers' bounded queue, or answers 503 at once.
struct Dispatcher {
    sender: crossbeam_channel::Sender<Job>,
    stats: Arc<ServerStats>,
    /// Shutting down: every new request is refused.
    draining: Arc<AtomicBool>,
}

impl Dispatcher {
    fn dispatch(&self, request: Request) {
        self.stats.requests_total.fetch_add(1, Ordering::Relaxed);
        if self.draining.load(Ordering::Relaxed) {
            let reply = Reply::error(503, "shutting down, retry on another server".to_owned())
                .with_header("Connection", "close");
            respond(request, reply);
            return;
        }
        // Counted before it is queued, so a shutdown waits for it.
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        match self.sender.try_send(Job::Request(request)) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                let Job::Request(request) = job else {
                    unreachable!("only requests are dispatched")
                };
                self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.stats
                    .busy_rejections_total
                    .fetch_add(1, Ordering::Relaxed);
                reject_busy(request);
            }
        }
    }
}

/// Reads a whole body of at most `limit_bytes`; one byte more is an error,
/// so a lying or huge body costs at most `limit_bytes + 1` of memory.
pub fn read_body_capped(request: &mut Request, limit_bytes: u64) -> Result<Vec<u8>, BodyError> {
    if request
        .body_length()
        .is_some_and(|len| len as u64 > limit_bytes)
    {
        return Err(BodyError::TooLarge { limit_bytes });
    }
    // Sized by the announced length (bounded above), so a batch is read
    // in a few large reads, not through doublings of a growing buffer.
    let announced = request.body_length().unwrap_or(0) as u64;
    let mut body = Vec::with_capacity(usize::try_from(announced.min(limit_bytes) + 1).unwrap_or(0));
    request
        .as_reader()
        .take(limit_bytes + 1)
        .read_to_end(&mut body)
        .map_err(BodyError::Io)?;
    if body.len() as u64 > limit_bytes {
        return Err(BodyError::TooLarge { limit_bytes });
    }
    Ok(body)
}

/// The value of the request's header `name` (the first, if repeated).
pub fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.equiv(name))
        .map(|header| header.value.as_str())
}

/// Whether the request body is sent with `Transfer-Encoding: chunked`.
pub fn is_chunked(request: &Request) -> bool {
    request.headers().iter().any(|header| {
        header.field.equiv("Transfer-Encoding")
            && header
                .value
                .as_str()
                .to_ascii_lowercase()
                .contains("chunked")
    })
}

/// The path of the request URL, without its query.
pub fn url_path(request: &Request) -> &str {
    request.url().split('?').next().unwrap_or("")
}

/// The raw (still percent-encoded) value of query parameter `key`.
pub fn query_param<'a>(request: &'a Request, key: &str) -> Option<&'a str> {
    let (_, query) = request.url().split_once('?')?;
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if pair == key => Some(""),
            _ => None,
        })
}

fn run_one(handler: &dyn Handler, stats: &ServerStats, mut request: Request) {
    stats.running.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let endpoint = handler.endpoint(&request);
    let bytes_in = request.body_length().map_or(0, |len| len as u64);
    // At `info` (the default) this is all a request costs the log.
    let logged = crate::log::requests_enabled().then(|| RequestSeen::of(&request));
    let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&mut request)));
    let reply = match outcome {
        Ok(reply) => reply,
        Err(panic) => {
            stats.panics_total.fetch_add(1, Ordering::Relaxed);
            let what = panic_message(panic.as_ref());
            log::error!(
                "panic while handling {} {}: {what}",
                request.method(),
                request.url()
            );
            Reply::error(500, format!("internal error: {what}"))
        }
    };
    match reply.status {
        400..=499 => stats.errors_4xx_total.fetch_add(1, Ordering::Relaxed),
        500..=599 => stats.errors_5xx_total.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    let status = reply.status;
    let bytes_out = reply.body_len();
    let principal = reply.principal.clone();
    let method = request.method().clone();
    respond(request, reply);
    stats.requests.record(
        endpoint,
        method.as_str(),
        status,
        started.elapsed(),
        bytes_in,
        bytes_out.unwrap_or(0),
    );
    stats.running.fetch_sub(1, Ordering::Relaxed);
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    if let Some(seen) = logged {
        crate::log::request(&crate::log::RequestLine {
            method: &seen.method,
            target: &seen.target,
            status,
            duration: seen.at.elapsed(),
            bytes_in: seen.bytes_in,
            bytes_out,
            principal: principal.as_deref(),
        });
    }
}

/// What a request's log line needs, taken before it is answered.
struct RequestSeen {
    method: String,
    target: String,
    bytes_in: Option<u64>,
    at: Instant,
}

impl RequestSeen {
    fn of(request: &Request) -> RequestSeen {
        RequestSeen {
            method: request.method().to_string(),
            target: request.url().to_owned(),
            bytes_in: request.body_length().map(|len| len as u64),
            at: Instant::now(),
        }
    }
}

/// Answers a request the workers have no room for. Reads no body: the
/// `Connection: close` header makes the patched tiny_http skip its drain.
fn reject_busy(request: Request) {
    let reply = Reply::error(503, "server busy, retry shortly".to_owned())
        .with_header("Retry-After", "1")
        .with_header("Connection", "close");
    respond(request, reply);
}

fn respond(request: Request, reply: Reply) {
    let mut headers = Vec::with_capacity(reply.headers.len());
    for (name, value) in &reply.headers {
        match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => headers.push(header),
            Err(()) => log::warn!("dropping a malformed response header {name}"),
        }
    }
    let status = StatusCode(reply.status);
    // A client that went away mid-answer is its own business; nothing to do.
    let _ = match reply.body {
        Body::Bytes(bytes) => {
            let len = bytes.len();
            // A known length always goes as Content-Length (see below).
            let response = Response::new(status, headers, io::Cursor::new(bytes), Some(len), None)
                .with_chunked_threshold(usize::MAX);
            request.respond(response)
        }
        Body::Stream {
            reader,
            len: Some(len),
        } => {
            let len = usize::try_from(len).expect("a 64-bit target");
            // tiny_http switches to chunked encoding past 32 KiB by default;
            // a known length is always sent as Content-Length (HEAD too).
            let response = Response::new(status, headers, reader, Some(len), None)
                .with_chunked_threshold(usize::MAX);
            request.respond(response)
        }
        Body::Stream { reader, len: None } => {
            request.respond(Response::new(status, headers, reader, None, None))
        }
        Body::Prefetched { pieces, len } => {
            let len = usize::try_from(len).expect("a 64-bit target");
            prefetch::with_prefetch(pieces, |reader| {
                let response = Response::new(status, headers, reader, Some(len), None)
                    .with_chunked_threshold(usize::MAX);
                request.respond(response)
            })
        }
    };
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_owned(),
        (None, Some(message)) => message.clone(),
        (None, None) => "unknown panic".to_owned(),
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Bind { listen, message } => {
                write!(f, "cannot listen on {listen}: {message}")
            }
            ServeError::Accept(err) => {
                write!(f, "the listener stopped accepting connections: {err}")
            }
        }
    }
}

impl std::error::Error for ServeError {}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit_bytes } => {
                write!(f, "request body larger than {limit_bytes} bytes")
            }
            BodyError::Io(err) => write!(f, "reading the request body failed: {err}"),
        }
    }
}

impl std::error::Error for BodyError {}

mod prefetch;
pub mod shutdown;
pub use prefetch::Pieces;

#[cfg(test)]
mod tests;
