//! The server loop both servers run: tiny_http's accept thread feeds a
//! bounded queue, a fixed pool of workers takes requests from it, a full
//! queue is answered 503 at once, and a panicking handler costs its request
//! a 500, never the worker. `reply.rs` is what a handler answers and how
//! it is sent (every answer to an error carries `{"error": "..."}`),
//! `request.rs` what it reads (bodies through caps), `stats.rs` the loop's
//! counters, `shutdown.rs` the clean stop, `prefetch.rs` prefetched bodies.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use tiny_http::{Request, Server};

use crate::limits::{HEADER_LINE_BYTES_MAX, HEADERS_COUNT_MAX, UNREAD_BODY_DRAIN_BYTES_MAX};
use crate::tls::ServerIdentity;

/// Status codes of successful answers, shared by both servers; each
/// server's error statuses are in its `error.rs` table.
pub const STATUS_OK: u16 = 200;
pub const STATUS_CREATED: u16 = 201;
pub const STATUS_NO_CONTENT: u16 = 204;
pub const STATUS_PARTIAL_CONTENT: u16 = 206;
pub const STATUS_RANGE_NOT_SATISFIABLE: u16 = 416;

#[derive(Clone)]
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

#[derive(Debug)]
pub enum ServeError {
    Bind { listen: SocketAddr, message: String },
    Accept(io::Error),
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
    bind_announcing(config, "listening on")
}

/// `bind`, announcing the address after `what` instead (a second
/// listener of one process: `S3 API on`), so the `listening on` line
/// stays the main one's.
pub fn bind_announcing(config: &ServerConfig, what: &str) -> Result<Listener, ServeError> {
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
    crate::log::announce(&format!("{what} {}://{addr}", config.scheme()));
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
            target: without_signatures(request.url()),
            bytes_in: request.body_length().map(|len| len as u64),
            at: Instant::now(),
        }
    }
}

/// `target` with the value of a signature in its query (an S3 presigned
/// URL's `X-Amz-Signature`, a credential until it expires) replaced, for
/// the log.
fn without_signatures(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("X-Amz-Signature") || key == "Signature" => {
                format!("{key}=REDACTED")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
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

mod prefetch;
mod reply;
mod request;
pub mod shutdown;
mod stats;

pub use prefetch::Pieces;
pub use reply::Reply;
use reply::{reject_busy, respond};
pub use request::{BodyError, header, is_chunked, query_param, read_body_capped, url_path};
pub use stats::ServerStats;

#[cfg(test)]
mod tests;
