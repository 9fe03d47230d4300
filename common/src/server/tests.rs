#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::Request;

use super::{Handler, Reply, ServerConfig, ServerStats, serve};

struct Panicky;

impl Handler for Panicky {
    fn handle(&self, request: &mut Request) -> Reply {
        assert!(request.url() != "/panic", "handler bug");
        Reply::bytes(200, "text/plain", b"ok".to_vec())
    }

    fn endpoint(&self, _request: &Request) -> &'static str {
        "/"
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_panicking_handler_answers_500_and_the_only_worker_lives_on() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = ServerConfig {
        listen: addr,
        workers_count: 1,
        queue_depth: 4,
        io_timeout: Duration::from_secs(5),
        connections_max: 64,
        tls: None,
    };
    // The server runs until the test process ends: nothing sets its stop.
    let stats = Arc::new(ServerStats::default());
    let served = Arc::clone(&stats);
    static NEVER: AtomicBool = AtomicBool::new(false);
    thread::spawn(move || serve(&config, &Panicky, &served, &NEVER));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the server never listened");
        thread::yield_now();
    }
    let answer = get(addr, "/panic");
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"internal error: handler bug"}"#),
        "{answer}"
    );
    for _ in 0..3 {
        assert!(get(addr, "/ok").starts_with("HTTP/1.1 200"));
    }
    assert_eq!(
        stats
            .panics_total
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
