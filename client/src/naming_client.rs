//! Calls to the naming server's public API. Transfers are bounded by stall
//! timeouts (per read, per write) rather than a total budget, so a 4 GiB
//! file is fine and a silent server still fails within `--timeout-ms`.
//!
//! Several naming servers may serve one cluster (the etcd store): given
//! several URLs, a call that cannot reach one (refused, unresolvable, or
//! no connection within the timeout: nothing was sent, so nothing can
//! have happened) goes to the next, in order, and later calls start from
//! the one that answered. A read (GET, HEAD) also moves on when its
//! server breaks off or goes silent before answering: reading again
//! changes nothing.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::limits::UNREAD_BODY_DRAIN_BYTES_MAX;
use common::percent;
use common::tls::ClientTls;
use ureq::http::header::AUTHORIZATION;
use ureq::http::{HeaderValue, Request, Response};
use ureq::middleware::MiddlewareNext;
use ureq::{Agent, SendBody};

use crate::error::ClientError;

pub struct NamingClient {
    agent: Agent,
    /// The naming servers, in the order they are tried.
    servers: Vec<String>,
    /// The one calls go to first: the last that answered.
    current: AtomicUsize,
    timeout_ms: u128,
}

/// A non-success answer: its status and the server's `{"error"}` message.
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

pub type Answer = Result<Response<ureq::Body>, Refusal>;

impl NamingClient {
    /// A client keeping up to `connections` idle connections to the
    /// `servers` for reuse, sending `token` (if any) as `Authorization:
    /// Bearer`.
    pub fn new(
        servers: &[String],
        timeout: Duration,
        connections: usize,
        token: Option<&str>,
        tls: &ClientTls,
    ) -> NamingClient {
        let mut config = tls.configure(Agent::config_builder());
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).ok();
            config = config.middleware(
                move |mut request: Request<SendBody>, next: MiddlewareNext| {
                    let value = value.clone().ok_or_else(|| {
                        ureq::Error::BadUri("the API token is not a header value".to_owned())
                    })?;
                    request.headers_mut().insert(AUTHORIZATION, value);
                    next.handle(request)
                },
            );
        }
        let config = config
            .timeout_connect(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .max_idle_connections(connections.max(1))
            .max_idle_connections_per_host(connections.max(1))
            .build();
        let agent = common::transport::agent(config);
        assert!(!servers.is_empty(), "a client needs a naming server");
        NamingClient {
            agent,
            servers: servers.to_vec(),
            current: AtomicUsize::new(0),
            timeout_ms: timeout.as_millis(),
        }
    }

    /// The naming server calls go to now.
    pub fn server(&self) -> &str {
        &self.servers[self.current.load(Ordering::Relaxed) % self.servers.len()]
    }

    pub fn file_url(&self, name: &str) -> String {
        format!("{}/files/{}", self.server(), percent::encode(name, true))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server())
    }

    /// Sends with `send` to `url`, and while the naming server it names
    /// cannot be reached, to the same path on the next one.
    fn failing_over(
        &self,
        url: &str,
        read_only: bool,
        mut send: impl FnMut(&str) -> Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ClientError> {
        let mut url = url.to_owned();
        for _ in 1..self.servers.len() {
            let sent = send(&url);
            let Err(err) = &sent else {
                return self.answer(sent);
            };
            let tried = self.current.load(Ordering::Relaxed) % self.servers.len();
            if !(read_only || unreachable(err)) || !url.starts_with(self.servers[tried].as_str()) {
                return self.answer(sent);
            }
            let next = (tried + 1) % self.servers.len();
            url = format!(
                "{}{}",
                self.servers[next],
                &url[self.servers[tried].len()..]
            );
            self.current.store(next, Ordering::Relaxed);
        }
        self.answer(send(&url))
    }

    /// PUT of a body of `len` bytes (or chunked when unknown). The naming
    /// server reads on after refusing a create (up to a bound), so the
    /// refusal arrives while the body is still being sent.
    pub fn put(
        &self,
        url: &str,
        body: &mut dyn Read,
        len: Option<u64>,
    ) -> Result<Answer, ClientError> {
        let mut request = self
            .agent
            .put(url)
            .header("Content-Type", "application/octet-stream");
        if let Some(len) = len {
            request = request.header("Content-Length", len.to_string());
        }
        // A refusal before the body (409, 413) comes after the server read
        // and dropped up to UNREAD_BODY_DRAIN_BYTES_MAX of it: a body that
        // small is simply sent, sparing a round trip; a larger one waits for
        // `100 Continue`, so a refusal does not cost its upload.
        if len.is_none_or(|len| len > UNREAD_BODY_DRAIN_BYTES_MAX as u64) {
            request = request.header("Expect", "100-continue");
        }
        // A server that cannot be reached read nothing of the body: the
        // next one gets all of it.
        let headers = request.headers_ref().cloned().unwrap_or_default();
        self.failing_over(url, false, |url| {
            let mut request = self.agent.put(url);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            request.send(ureq::SendBody::from_reader(&mut *body))
        })
    }

    pub fn get(&self, url: &str) -> Result<Answer, ClientError> {
        self.failing_over(url, true, |url| self.agent.get(url).call())
    }

    /// GET of the bytes `Range` names (`bytes=A-B` or `bytes=A-`).
    pub fn get_range(&self, url: &str, range: &str) -> Result<Answer, ClientError> {
        self.failing_over(url, true, |url| {
            self.agent.get(url).header("Range", range).call()
        })
    }

    pub fn post(&self, url: &str) -> Result<Answer, ClientError> {
        self.failing_over(url, false, |url| self.agent.post(url).send_empty())
    }

    pub fn head(&self, url: &str) -> Result<Answer, ClientError> {
        self.failing_over(url, true, |url| self.agent.head(url).call())
    }

    pub fn delete(&self, url: &str) -> Result<Answer, ClientError> {
        self.failing_over(url, false, |url| self.agent.delete(url).call())
    }

    /// Turns a transport failure into the user's sentence, and a 4xx/5xx
    /// into a `Refusal` with the server's message.
    fn answer(
        &self,
        sent: Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, ClientError> {
        let mut response = sent.map_err(|err| self.transport_error(err))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(Ok(response));
        }
        let message =
            common::api::error_message(response.body_mut().as_reader()).unwrap_or_default();
        Ok(Err(Refusal { status, message }))
    }

    pub fn transport_error(&self, err: ureq::Error) -> ClientError {
        let server = self.server();
        if let Some(why) = common::tls::failure(&err) {
            return ClientError::Failed(format!("naming server at {server}: {why}"));
        }
        let message = match err {
            ureq::Error::Timeout(_) => {
                format!(
                    "naming server at {server} did not answer within {} ms",
                    self.timeout_ms
                )
            }
            ureq::Error::Io(err) => match err.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    format!("cannot reach naming server at {server}: connection refused")
                }
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    format!(
                        "naming server at {server} did not answer within {} ms",
                        self.timeout_ms
                    )
                }
                _ => format!("connection to naming server at {server} failed: {err}"),
            },
            ureq::Error::HostNotFound => {
                format!("cannot reach naming server at {server}: host not found")
            }
            ureq::Error::ConnectionFailed => {
                format!("cannot reach naming server at {server}: connection failed")
            }
            ureq::Error::Protocol(_) if !common::tls::is_https(server) => format!(
                "naming server at {server} does not answer plain HTTP ({err}); does it serve https://?"
            ),
            other => format!("talking to naming server at {server} failed: {other}"),
        };
        ClientError::Failed(message)
    }
}

/// Whether `err` says the naming server was not reached at all: nothing of
/// the request can have been done, so another server may be asked.
fn unreachable(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => true,
        ureq::Error::Io(err) => matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable
        ),
        _ => false,
    }
}
