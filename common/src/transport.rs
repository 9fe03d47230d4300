//! The TCP transport under every outgoing ureq call (naming to storage,
//! the CLI to naming), in place of ureq's own `TcpConnector`, for three
//! costs it pays on every call that a small request feels:
//! - it sends a request's head and its body in two writes: two TCP segments,
//!   and a server that wakes for the head must block again for the body.
//!   Here writes up to `COALESCE_BYTES_MAX` are held and leave together,
//!   at the latest when the answer is awaited;
//! - it checks a pooled connection is still open by switching the socket to
//!   non-blocking, reading and switching back (three syscalls, twice a
//!   call). Here one `recv(MSG_PEEK | MSG_DONTWAIT)` does it;
//! - it sets the socket's timeout to the budget left before every read and
//!   write (a syscall each). Here the timeout is set again only when the
//!   budget left differs from it by more than `1/TIMEOUT_SLACK_DIVISOR`, so
//!   an I/O step may overrun its budget by that much at most.
//!
//! TLS chains after this connector, as after ureq's (`connector`): an
//! `https://` call is wrapped by ureq's `RustlsConnector` (see `tls`).

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::time::Duration;

use socket2::SockRef;
#[cfg(feature = "tls")]
use ureq::unversioned::transport::RustlsConnector;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};
use ureq::{Agent, Error};

use crate::resolver::QuickResolver;

/// Writes up to this many bytes are held to leave with the next ones; a
/// request with a small body goes out as one segment. Larger writes go at
/// once (with what is held, in one `writev`).
pub const COALESCE_BYTES_MAX: usize = 16 * 1024;

/// A socket timeout within `1/TIMEOUT_SLACK_DIVISOR` of the budget left is
/// kept (a 5 s budget: within 78 ms).
const TIMEOUT_SLACK_DIVISOR: u32 = 64;

/// An agent with `config` over Harbour's transport and resolver: the one
/// way every process builds its HTTP clients. Its connector is TCP by
/// `QuickConnector`, then TLS for an `https://` URL (whom it trusts is
/// `config`'s, see `tls::ClientTls::configure`).
pub fn agent(config: ureq::config::Config) -> Agent {
    #[cfg(feature = "tls")]
    let connector = QuickConnector.chain(RustlsConnector::default());
    #[cfg(not(feature = "tls"))]
    let connector = QuickConnector;
    Agent::with_parts(config, connector, QuickResolver::default())
}

/// Opens plain TCP connections (see the module comment).
#[derive(Debug, Default)]
pub struct QuickConnector;

impl Connector<()> for QuickConnector {
    type Out = QuickTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<QuickTransport>, Error> {
        let budget = details.timeout.not_zero().map(|left| *left);
        let mut last_err = None;
        for addr in details.addrs.iter() {
            match connect_one(*addr, budget) {
                Ok(stream) => {
                    let config = details.config;
                    if config.no_delay() {
                        stream.set_nodelay(true)?;
                    }
                    let transport = QuickTransport {
                        stream: Arc::new(stream),
                        buffers: LazyBuffers::new(
                            config.input_buffer_size(),
                            config.output_buffer_size(),
                        ),
                        held: Vec::new(),
                        read_timeout: None,
                        write_timeout: None,
                    };
                    let handle = Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>;
                    (details.register_shutdown)(handle)?;
                    return Ok(Some(transport));
                }
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            Error::Io(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "no address to connect to",
            ))
        }))
    }
}

fn connect_one(addr: SocketAddr, budget: Option<Duration>) -> Result<TcpStream, Error> {
    let connected = match budget {
        Some(budget) => TcpStream::connect_timeout(&addr, budget),
        None => TcpStream::connect(addr),
    };
    connected.map_err(|err| match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Error::Timeout(ureq::Timeout::Connect)
        }
        _ => Error::Io(err),
    })
}

pub struct QuickTransport {
    /// Shared (weakly) with the agent, which may shut it down to cancel.
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// Output written by ureq but not yet sent (at most `COALESCE_BYTES_MAX`).
    held: Vec<u8>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for QuickTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuickTransport")
            .field("peer", &self.stream.peer_addr().ok())
            .field("held", &self.held.len())
            .finish()
    }
}

/// Whether a socket timeout of `current` may serve for a budget of `wanted`.
fn timeout_close_enough(current: Option<Duration>, wanted: Option<Duration>) -> bool {
    match (current, wanted) {
        (Some(current), Some(wanted)) => {
            let slack = wanted / TIMEOUT_SLACK_DIVISOR;
            current.abs_diff(wanted) <= slack
        }
        (None, None) => true,
        _ => false,
    }
}

/// The budget of the next I/O step, or the timeout error when none is left.
fn budget(timeout: NextTimeout) -> Result<Option<Duration>, Error> {
    if timeout.after.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    Ok(timeout.not_zero().map(|left| *left))
}

fn timed_out(err: io::Error, timeout: NextTimeout) -> Error {
    match err.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(timeout.reason),
        _ => Error::Io(err),
    }
}

impl QuickTransport {
    fn set_write_budget(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        let wanted = budget(timeout)?;
        if !timeout_close_enough(self.write_timeout, wanted) {
            self.stream.set_write_timeout(wanted)?;
            self.write_timeout = wanted;
        }
        Ok(())
    }
}

/// Sends `held`, then `more`, in as few writes as the socket takes; `held`
/// is empty afterwards, sent or not.
fn send(
    stream: &TcpStream,
    held: &mut Vec<u8>,
    more: &[u8],
    timeout: NextTimeout,
) -> Result<(), Error> {
    let (mut first, mut second) = (0usize, 0usize);
    let outcome = loop {
        if first == held.len() && second == more.len() {
            break Ok(());
        }
        let slices = [IoSlice::new(&held[first..]), IoSlice::new(&more[second..])];
        match (&*stream).write_vectored(&slices) {
            Ok(0) => break Err(Error::Io(io::ErrorKind::WriteZero.into())),
            Ok(written) => {
                let from_held = written.min(held.len() - first);
                first += from_held;
                second += written - from_held;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => break Err(timed_out(err, timeout)),
        }
    };
    held.clear();
    outcome
}

impl Transport for QuickTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        if self.held.len() + amount <= COALESCE_BYTES_MAX {
            let output = &self.buffers.output()[..amount];
            self.held.extend_from_slice(output);
            return Ok(());
        }
        self.set_write_budget(timeout)?;
        send(
            &self.stream,
            &mut self.held,
            &self.buffers.output()[..amount],
            timeout,
        )
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        if !self.held.is_empty() {
            let for_write = timeout.for_write();
            self.set_write_budget(for_write)?;
            send(&self.stream, &mut self.held, &[], for_write)?;
        }
        let timeout = timeout.for_read();
        let wanted = budget(timeout)?;
        if !timeout_close_enough(self.read_timeout, wanted) {
            self.stream.set_read_timeout(wanted)?;
            self.read_timeout = wanted;
        }
        let input = self.buffers.input_append_buf();
        let read = loop {
            match (&*self.stream).read(input) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let amount = read.map_err(|err| timed_out(err, timeout))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Pooled connections have sent all they were given; one that has
        // not is mid-request and must not be reused.
        self.held.is_empty() && peer_kept_quiet(&self.stream)
    }
}

/// True when the peer has neither closed the connection nor sent anything
/// unasked: a read would block.
fn peer_kept_quiet(stream: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit()];
    let peeked =
        SockRef::from(stream).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT);
    matches!(peeked, Err(err) if err.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use ureq::Agent;

    use super::{QuickConnector, timeout_close_enough};
    use crate::resolver::QuickResolver;

    fn agent(timeout: Duration) -> Agent {
        let config = Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Agent::with_parts(config, QuickConnector, QuickResolver::default())
    }

    /// Serves `requests` requests, each answered with its body's length,
    /// on as many connections as come; reports each body and the peer
    /// port it came from. `close_after_each` closes every connection
    /// after one answer (as a restarted server would).
    fn serve<'scope>(
        scope: &'scope thread::Scope<'scope, '_>,
        requests: usize,
        close_after_each: bool,
    ) -> (SocketAddr, mpsc::Receiver<(Vec<u8>, u16)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, reports) = mpsc::channel();
        scope.spawn(move || {
            let mut served = 0;
            while served < requests {
                let (stream, peer) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                while served < requests {
                    let mut length = None;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap() == 0 {
                            break;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(value) =
                            line.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = Some(value.trim().parse::<usize>().unwrap());
                        }
                    }
                    let Some(length) = length else { break };
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let answer = length.to_string();
                    write!(
                        writer,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    )
                    .unwrap();
                    served += 1;
                    if close_after_each {
                        // Closed before the report: the client's next
                        // call comes after the FIN.
                        drop((reader, writer));
                        report.send((body, peer.port())).unwrap();
                        break;
                    }
                    report.send((body, peer.port())).unwrap();
                }
            }
        });
        (addr, reports)
    }

    #[test]
    fn small_and_large_bodies_arrive_whole_over_one_reused_connection() {
        thread::scope(|scope| {
            let (addr, reports) = serve(scope, 3, false);
            let agent = agent(Duration::from_secs(5));
            let url = format!("http://{addr}/x");
            let mut ports = Vec::new();
            for size in [1024usize, 3 << 20, 10] {
                let body: Vec<u8> = (0..size).map(|at| (at * 7 % 251) as u8).collect();
                let mut response = agent.put(&url).send(&body[..]).unwrap();
                assert_eq!(
                    response.body_mut().read_to_string().unwrap(),
                    size.to_string()
                );
                let (received, port) = reports.recv().unwrap();
                assert!(received == body, "{size} bytes arrive as sent");
                ports.push(port);
            }
            assert!(ports.windows(2).all(|pair| pair[0] == pair[1]), "{ports:?}");
        });
    }

    #[test]
    fn a_connection_the_server_closed_is_not_reused() {
        thread::scope(|scope| {
            let (addr, reports) = serve(scope, 2, true);
            let agent = agent(Duration::from_secs(5));
            let url = format!("http://{addr}/x");
            let mut ports = Vec::new();
            for _ in 0..2 {
                let mut response = agent.put(&url).send(&b"hello"[..]).unwrap();
                assert_eq!(response.body_mut().read_to_string().unwrap(), "5");
                ports.push(reports.recv().unwrap().1);
            }
            assert_ne!(ports[0], ports[1], "a fresh connection after the close");
        });
    }

    #[test]
    fn a_server_that_never_answers_costs_the_timeout_not_more() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted by the kernel's backlog; read by no one.
        let started = Instant::now();
        let outcome = agent(Duration::from_millis(300))
            .put(&format!("http://{addr}/x"))
            .send(&b"hello"[..]);
        assert!(
            matches!(outcome, Err(ureq::Error::Timeout(_))),
            "{outcome:?}"
        );
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        drop(listener);
    }

    #[test]
    fn a_socket_timeout_is_kept_within_the_slack_and_reset_outside_it() {
        let five = Some(Duration::from_secs(5));
        assert!(timeout_close_enough(
            five,
            Some(Duration::from_millis(4_950))
        ));
        assert!(!timeout_close_enough(
            five,
            Some(Duration::from_millis(4_900))
        ));
        assert!(!timeout_close_enough(
            Some(Duration::from_millis(100)),
            five
        ));
        assert!(!timeout_close_enough(None, five));
        assert!(!timeout_close_enough(five, None));
        assert!(timeout_close_enough(None, None));
    }
}
