// Harbour: this file is Harbour's addition to tiny_http: its changes, pinned against a real
// server on a loopback socket.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{ConnectionLimits, Header, Method, Response, Server};

const READ_TIMEOUT: Duration = Duration::from_millis(500);

/// A server with a worker that answers `PUT /reject` 413 without reading the body, `/close`
/// 503 with `Connection: close` without reading the body, `PUT /read` 200 with the body's size
/// after reading it (or the error kind of the read), and anything else 200.
fn server() -> SocketAddr {
    let limits = ConnectionLimits {
        read_timeout: Some(READ_TIMEOUT),
        write_timeout: Some(READ_TIMEOUT),
        ..ConnectionLimits::default()
    };
    let server = Arc::new(Server::http_with_limits("127.0.0.1:0", limits).unwrap());
    let addr = server.server_addr().to_ip().unwrap();
    thread::spawn(move || loop {
        let mut rq = match server.recv() {
            Ok(rq) => rq,
            Err(_) => return,
        };
        thread::spawn(move || {
            let json = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).unwrap();
            let response = match (rq.method(), rq.url()) {
                (Method::Put, "/reject") => {
                    Response::from_string(r#"{"error":"too big"}"#).with_status_code(413)
                }
                (_, "/close") => Response::from_string(r#"{"error":"busy"}"#)
                    .with_status_code(503)
                    .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap()),
                (Method::Put, "/read") => {
                    let mut body = Vec::new();
                    match rq.as_reader().read_to_end(&mut body) {
                        Ok(len) => Response::from_string(len.to_string()),
                        Err(e) => Response::from_string(format!("{:?}", e.kind())),
                    }
                }
                _ => Response::from_string("ok"),
            };
            let _ = rq.respond(response.with_header(json));
        });
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Reads one response: (status, head, body); the body by its Content-Length.
fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut data = Vec::new();
    let mut byte = [0];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            other => panic!(
                "no response: {:?}, got {:?}",
                other,
                String::from_utf8_lossy(&data)
            ),
        }
    }
    let head = String::from_utf8(data).unwrap();
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-length:"))
        .map(|l| l[15..].trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

/// True if the server closes the connection within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(ref e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn health(addr: SocketAddr) {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
}

#[test]
fn huge_unread_body_answered_at_once_and_closed() {
    let addr = server();
    let mut stream = connect(addr);
    let started = Instant::now();
    stream
        .write_all(b"PUT /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n")
        .unwrap();
    stream.write_all(&[b'x'; 4096]).unwrap();
    let (status, head, body) = read_response(&mut stream);
    assert_eq!(status, 413);
    assert!(head.contains("Connection: close"), "{}", head);
    assert_eq!(body, r#"{"error":"too big"}"#);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));
    assert!(started.elapsed() < READ_TIMEOUT);
    health(addr);
}

#[test]
fn small_unread_body_drained_and_connection_kept() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(b"PUT /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        .unwrap();
    stream.write_all(&[b'x'; 60000]).unwrap();
    let (status, head, _) = read_response(&mut stream);
    assert_eq!(status, 413);
    assert!(!head.contains("Connection: close"), "{}", head);
    // the same connection carries the next request: the body was thrown away, not parsed
    stream
        .write_all(b"PUT /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!((status, body.as_str()), (200, "5"));
}

#[test]
fn connection_close_answer_reads_nothing_and_closes() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(b"PUT /close HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        .unwrap();
    stream.write_all(&[b'x'; 1000]).unwrap();
    let (status, head, body) = read_response(&mut stream);
    assert_eq!(status, 503);
    assert!(head.contains("Connection: close"), "{}", head);
    assert_eq!(body, r#"{"error":"busy"}"#);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));
}

#[test]
fn connection_close_answer_to_get_closes() {
    // the connection's thread is already reading the next request: it must be woken up
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, head, _) = read_response(&mut stream);
    assert_eq!(status, 503);
    assert!(head.contains("Connection: close"), "{}", head);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));
}

#[test]
fn unanswered_expect_continue_closes_without_waiting_for_the_body() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(
            b"PUT /reject HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let (status, head, _) = read_response(&mut stream);
    assert_eq!(status, 413);
    assert!(head.contains("Connection: close"), "{}", head);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));
}

#[test]
fn chunked_unread_body_closes() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(
            b"PUT /reject HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .unwrap();
    let (status, head, _) = read_response(&mut stream);
    assert_eq!(status, 413);
    assert!(head.contains("Connection: close"), "{}", head);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));
}

#[test]
fn chunked_body_read_keeps_connection() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(b"PUT /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!((status, body.as_str()), (200, "5"));
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
}

#[test]
fn long_header_line_431() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nX-Long: ")
        .unwrap();
    // the server stops reading after 8 KiB: the rest may not be accepted
    let _ = stream.write_all(&[b'a'; 64 * 1024]);
    let (status, head, body) = read_response(&mut stream);
    assert_eq!(status, 431);
    assert!(head.contains("Content-Type: application/json"), "{}", head);
    assert!(head.contains("Connection: close"), "{}", head);
    assert_eq!(body, r#"{"error":"request header too large"}"#);
    health(addr);
}

#[test]
fn too_many_headers_431() {
    let addr = server();
    let mut stream = connect(addr);
    let mut request = b"GET /health HTTP/1.1\r\n".to_vec();
    for i in 0..101 {
        request.extend_from_slice(format!("X-H{}: v\r\n", i).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    assert_eq!(read_response(&mut stream).0, 431);
}

#[test]
fn silent_client_408_idle_client_closed() {
    let addr = server();

    let mut stream = connect(addr);
    let started = Instant::now();
    stream.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!(status, 408);
    assert_eq!(body, r#"{"error":"timed out reading the request"}"#);
    assert!(started.elapsed() < READ_TIMEOUT * 3);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));

    // an idle keep-alive connection: closed after the read timeout, without an answer
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
    let started = Instant::now();
    assert!(closed_within(&mut stream, READ_TIMEOUT * 3));
    assert!(started.elapsed() >= READ_TIMEOUT - Duration::from_millis(50));
}

#[test]
fn stalled_body_read_fails_in_handler() {
    let addr = server();
    let mut stream = connect(addr);
    stream
        .write_all(b"PUT /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    stream.write_all(&[b'x'; 4096]).unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!((status, body.as_str()), (200, "TimedOut"));
}

#[test]
fn malformed_requests_get_json_400() {
    let addr = server();
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"hello\r\n\r\n",
    ] {
        let mut stream = connect(addr);
        stream.write_all(garbage).unwrap();
        let (status, head, body) = read_response(&mut stream);
        assert_eq!(status, 400);
        assert!(head.contains("Content-Type: application/json"), "{}", head);
        assert_eq!(body, r#"{"error":"malformed request line"}"#);
    }
}

#[test]
fn http2_request_line_505_without_hanging() {
    let addr = server();
    let mut stream = connect(addr);
    stream.write_all(b"GET / HTTP/2.0\r\n\r\n").unwrap();
    let (status, _, body) = read_response(&mut stream);
    assert_eq!(status, 505);
    assert_eq!(body, r#"{"error":"HTTP version not supported"}"#);
    assert!(closed_within(&mut stream, Duration::from_millis(200)));
}

#[test]
fn connections_over_the_cap_503() {
    let server = Server::http("127.0.0.1:0").unwrap();
    server.set_connections_max(Some(2));
    let addr = server.server_addr().to_ip().unwrap();
    let _held: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.num_connections(), 2);
    let mut stream = connect(addr);
    let (status, head, body) = read_response(&mut stream);
    assert_eq!(status, 503);
    assert!(head.contains("Connection: close"), "{}", head);
    assert_eq!(body, r#"{"error":"too many connections"}"#);
}

// the five fields of `ConnectionLimits`, as Harbour builds it
#[test]
fn limits_as_a_struct_literal() {
    let limits = ConnectionLimits {
        read_timeout: Some(Duration::from_secs(30)),
        write_timeout: Some(Duration::from_secs(30)),
        header_line_bytes_max: 8 * 1024,
        headers_count_max: 100,
        unread_body_drain_bytes_max: 64 * 1024,
    };
    assert_eq!(limits, ConnectionLimits::default());
}

#[test]
fn zero_timeout_refused() {
    let limits = ConnectionLimits {
        read_timeout: Some(Duration::from_secs(0)),
        ..ConnectionLimits::default()
    };
    assert!(Server::http_with_limits("127.0.0.1:0", limits).is_err());
}
