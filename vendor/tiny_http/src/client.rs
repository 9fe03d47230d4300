use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::response::connection_close_header;
use crate::util::{ConnectionState, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{ConnectionLimits, Request};

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // Harbour: shared with the requests: the caps and timeouts, what the previous request left
    // unread of its body, and whether a response closed the connection
    connection: Arc<ConnectionState>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// Harbour: a request or header line longer than `header_line_bytes_max` bytes, or more
    /// than `headers_count_max` headers
    HeaderTooLarge,
    /// Harbour: not a byte of a new request within the read timeout: an idle keep-alive
    /// connection, closed without an answer
    Idle,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        // Harbour: the server's caps and timeouts
        limits: ConnectionLimits,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        // Harbour: 16 KiB instead of 1 KiB, so a request's line, headers and a small body
        // come in one read instead of several
        let mut source =
            SequentialReaderBuilder::new(BufReader::with_capacity(16 * 1024, read_socket));
        let first_header = source.next().unwrap();
        let sink = SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket));
        // Harbour: shared with the requests, with the socket to shut down when closing
        let connection = Arc::new(ConnectionState::new(limits, Some(sink.shared_writer())));

        ClientConnection {
            source,
            sink,
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            connection,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    // Harbour: see `read_line`; `started` is when the first byte of the request arrived
    fn read_next_line(&mut self, started: &mut Option<Instant>) -> Result<AsciiString, ReadError> {
        let limits = self.connection.limits();
        read_line(
            &mut self.next_header_source,
            limits.header_line_bytes_max,
            limits.read_timeout,
            started,
        )
    }

    // Harbour: reads and throws away what the previous request left of its body, so that it is
    // not parsed as the next request; see `drain`.
    fn drain_unread_body(&mut self, len: usize) -> bool {
        let limits = self.connection.limits();
        drain(
            &mut self.next_header_source,
            len,
            limits.unread_body_drain_bytes_max,
            limits.read_timeout,
        )
    }

    // Harbour: tiny_http's own answers carry a JSON body, and `Connection: close` since the
    // connection is closed after them.
    fn answer_error(&mut self, status_code: u16, reason: &str, version: HTTPVersion) {
        use crate::Response;

        let mut writer = self.sink.next().unwrap();
        let response =
            Response::json_error(status_code, reason).with_header(connection_close_header());
        response
            .raw_print(writer.by_ref(), version, &[], false, None)
            .ok();
        writer.flush().ok();
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // Harbour: when the first byte of this request arrived, see `read_line`
        let mut started = None;

        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line(&mut started)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut started).map_err(|e| match e {
                        // Harbour: a header line that is not ASCII is a malformed header
                        ReadError::WrongRequestLine => ReadError::WrongHeader(version.clone()),
                        e => e,
                    })?;

                    if line.is_empty() {
                        break;
                    };
                    // Harbour: a cap on the number of headers
                    if headers.len() >= self.connection.limits().headers_count_max {
                        return Err(ReadError::HeaderTooLarge);
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // Harbour: upstream unwrapped the peer address here, so a client that reset the
        // connection right after connecting (ENOTCONN) panicked the connection's thread
        let remote_addr = match self.remote_addr {
            Ok(addr) => addr,
            Err(ref e) => {
                return Err(ReadError::ReadIoError(IoError::new(
                    e.kind(),
                    e.to_string(),
                )))
            }
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            remote_addr,
            data_source,
            writer,
            self.connection.clone(), // Harbour: see `ConnectionState`
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::Response;

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        // Harbour: wait until the previous request is done with its body; stop if its response
        // closed the connection; else throw away what it left unread of its body (or close if
        // that is too much) so that it is not parsed as a request.
        self.next_header_source.wait_turn();
        let unread_body = self.connection.take_unread_body();
        if self.connection.is_closing() || !self.drain_unread_body(unread_body) {
            return None;
        }

        // Harbour: no `loop` any more: its only `continue` (after a 505) is gone
        let rq = match self.read() {
            Err(ReadError::WrongRequestLine) => {
                self.answer_error(400, "malformed request line", HTTPVersion(1, 1));
                return None; // we don't know where the next request would start,
                             // se we have to close
            }

            Err(ReadError::WrongHeader(ver)) => {
                self.answer_error(400, "malformed header", ver);
                return None; // we don't know where the next request would start,
                             // se we have to close
            }

            // Harbour: the rest of the oversized head is not read
            Err(ReadError::HeaderTooLarge) => {
                self.answer_error(431, "request header too large", HTTPVersion(1, 1));
                return None;
            }

            // Harbour: on Linux an expired read timeout is `WouldBlock`, not `TimedOut`
            Err(ReadError::ReadIoError(ref err)) if is_timeout(err) => {
                // request timeout
                self.answer_error(408, "timed out reading the request", HTTPVersion(1, 1));
                return None; // closing the connection
            }

            Err(ReadError::ExpectationFailed(ver)) => {
                self.answer_error(417, "unsupported expectation", ver);
                return None; // TODO: should be recoverable, but needs handling in case of body
            }

            // Harbour: an idle keep-alive connection is closed without an answer
            Err(ReadError::Idle) => return None,

            Err(ReadError::ReadIoError(_)) => return None,

            Ok(rq) => rq,
        };

        // checking HTTP version
        if *rq.http_version() > (1, 1) {
            // Harbour: answered through `rq`'s own writer: upstream took a new writer from
            // the sink, which waits for `rq`'s writer to be dropped first, and so blocked
            // this thread for ever; and the connection is closed, as what follows can't be
            // parsed
            let mut writer = rq.into_writer();
            let response = Response::json_error(505, "HTTP version not supported")
                .with_header(connection_close_header());
            response
                .raw_print(writer.by_ref(), HTTPVersion(1, 1), &[], false, None)
                .ok();
            writer.flush().ok();
            return None;
        }

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // Harbour: a response already closed the connection while this (pipelined)
        // request was being read: it is not handed out
        if self.connection.is_closing() {
            return None;
        }

        // returning the request
        Some(rq)
    }
}

// Harbour: an expired socket timeout is `WouldBlock` (EAGAIN) on Linux, `TimedOut` elsewhere
fn is_timeout(err: &IoError) -> bool {
    match err.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => true,
        _ => false,
    }
}

/// Reads a line ending in `CRLF` from `source`, without the `CRLF`.
// Harbour: upstream buffered the line whole, however long; now a line longer than `max_len`
// bytes is refused as soon as that is known (431). `started` is set when the first byte of the
// request arrives; the request line and headers must all arrive within `timeout` of it (a
// client dribbling them would hold the thread for ever otherwise: the socket timeout only bounds
// each read). A timeout before that byte means the connection is idle, not that a request is late.
fn read_line<R: Read>(
    source: &mut R,
    max_len: usize,
    timeout: Option<Duration>,
    started: &mut Option<Instant>,
) -> Result<AsciiString, ReadError> {
    let mut buf = Vec::new();
    let mut prev_byte_was_cr = false;

    loop {
        let byte = source.by_ref().bytes().next();

        let byte = match byte {
            Some(Ok(b)) => b,
            Some(Err(ref err)) if started.is_none() && is_timeout(err) => {
                return Err(ReadError::Idle)
            }
            Some(Err(err)) => return Err(ReadError::ReadIoError(err)),
            None => {
                return Err(ReadError::ReadIoError(IoError::new(
                    ErrorKind::ConnectionAborted,
                    "Unexpected EOF",
                )))
            }
        };

        let start = *started.get_or_insert_with(Instant::now);
        if timeout.map_or(false, |timeout| start.elapsed() > timeout) {
            return Err(ReadError::ReadIoError(IoError::new(
                ErrorKind::TimedOut,
                "the request head took too long",
            )));
        }

        if byte == b'\n' && prev_byte_was_cr {
            buf.pop(); // removing the '\r'

            // a line that is not ASCII is malformed (upstream closed silently)
            return AsciiString::from_ascii(buf).map_err(|_| ReadError::WrongRequestLine);
        }

        // `buf` may hold `max_len` bytes and the '\r' of the CRLF
        if buf.len() > max_len {
            return Err(ReadError::HeaderTooLarge);
        }

        prev_byte_was_cr = byte == b'\r';

        buf.push(byte);
    }
}

/// Reads and throws away `len` bytes of `source`.
// Harbour: upstream's `EqualReader` read what a handler left of a request body into
// `vec![0; len]`, on the handler's thread, to the end. Here, on the connection's thread, at
// most `max_len` bytes are read through a fixed 8 KiB buffer, and within `timeout` (the socket
// timeout bounds each read, this the whole); false, and nothing is read, if there are more, and
// false if they don't arrive in time: the connection must then be closed.
fn drain<R: Read>(source: &mut R, len: usize, max_len: usize, timeout: Option<Duration>) -> bool {
    if len > max_len {
        return false;
    }

    let start = Instant::now();
    let mut buf = [0; 8 * 1024];
    let mut left = len;
    while left > 0 {
        let chunk = left.min(buf.len());
        match source.read(&mut buf[..chunk]) {
            Ok(0) => return false,
            Ok(read) => left -= read,
            Err(ref e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
        if left > 0 && timeout.map_or(false, |timeout| start.elapsed() > timeout) {
            return false;
        }
    }
    true
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }

    // Harbour: the tests below pin Harbour's changes

    fn read_line(source: &mut &[u8], max_len: usize) -> Result<String, super::ReadError> {
        super::read_line(source, max_len, None, &mut None).map(|line| line.to_string())
    }

    #[test]
    fn test_header_line_cap() {
        let mut source: &[u8] = b"12345678\r\n123456789\r\nrest";
        assert_eq!(read_line(&mut source, 8).unwrap(), "12345678");
        match read_line(&mut source, 8) {
            Err(super::ReadError::HeaderTooLarge) => (),
            other => panic!("{:?}", other),
        }
        // the rest of the oversized line is not read (the byte past the cap is)
        assert_eq!(source, b"\nrest");
    }

    #[test]
    fn test_huge_header_line_is_not_buffered() {
        // an endless line: refused after 8 KiB + 1 bytes instead of growing without bound
        let mut source = std::io::repeat(b'a');
        match super::read_line(&mut source, 8192, None, &mut None) {
            Err(super::ReadError::HeaderTooLarge) => (),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn test_header_line_not_ascii() {
        let mut source: &[u8] = b"GET /\xff HTTP/1.1\r\n";
        match read_line(&mut source, 8192) {
            Err(super::ReadError::WrongRequestLine) => (),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn test_idle_vs_timed_out() {
        use std::io::{Error, ErrorKind, Read};
        use std::time::Instant;

        // a reader that times out like a socket with SO_RCVTIMEO on Linux
        struct Stalls<'a>(&'a [u8]);
        impl Read for Stalls<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(Error::from(ErrorKind::WouldBlock));
                }
                self.0.read(buf)
            }
        }

        let mut started = None;
        match super::read_line(&mut Stalls(b""), 100, None, &mut started) {
            Err(super::ReadError::Idle) => (),
            other => panic!("{:?}", other),
        }
        match super::read_line(&mut Stalls(b"GET / HT"), 100, None, &mut started) {
            Err(super::ReadError::ReadIoError(ref e)) if super::is_timeout(e) => (),
            other => panic!("{:?}", other),
        }
        // a request head dribbled for longer than the timeout
        let mut started = Some(Instant::now() - std::time::Duration::from_secs(2));
        let timeout = Some(std::time::Duration::from_secs(1));
        match super::read_line(
            &mut Stalls(b"GET / HTTP/1.1\r\n"),
            100,
            timeout,
            &mut started,
        ) {
            Err(super::ReadError::ReadIoError(ref e)) if e.kind() == ErrorKind::TimedOut => (),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn test_drain_bounded() {
        use std::io::Read;

        let body = vec![b'x'; 100_000];

        // up to the cap: read, and only that
        let mut source = &body[..];
        assert!(super::drain(&mut source, 65_536, 65_536, None));
        assert_eq!(source.len(), 100_000 - 65_536);

        // over the cap: nothing is read
        let mut source = &body[..];
        assert!(!super::drain(&mut source, 65_537, 65_536, None));
        assert_eq!(source.len(), 100_000);

        // a body announced far bigger than memory: nothing is allocated or read
        let mut source = &body[..];
        assert!(!super::drain(&mut source, usize::MAX, 65_536, None));
        assert_eq!(source.len(), 100_000);

        // the client closed before sending it all
        let mut source = &body[..10];
        assert!(!super::drain(&mut source, 20, 65_536, None));

        // nothing to drain
        let mut source = &body[..];
        assert!(super::drain(&mut source, 0, 0, None));
        let mut rest = Vec::new();
        source.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 100_000);
    }
}
