//! SPEC promise 8: hostile input gets a 4xx with a JSON error, and the
//! server keeps serving everyone else. The tiny_http traps closed in
//! vendor/tiny_http are pinned here, each by the attack that hit it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::chunk::{BlobId, ChunkId};
use common::limits::BLOB_DELETES_PER_CALL_MAX;
use common::wire::{Chunk, encode_batch};

use crate::cluster::{Cluster, Server, Spec, raw_exchange, request_to, test_dir, test_signer};

fn naming_addr(cluster: &mut Cluster) -> SocketAddr {
    cluster.naming().addr
}

/// The status code and JSON error of a raw HTTP answer.
fn parse_answer(answer: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let json = serde_json::from_str(body)
        .unwrap_or_else(|err| panic!("body is not JSON ({err}): {text:?}"));
    (status, json)
}

fn check_status(addr: SocketAddr, request: &str, expected: u16) {
    let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5));
    let (status, json) = parse_answer(&answer);
    assert_eq!(
        status,
        expected,
        "{request:?} -> {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(json["error"].is_string(), "{json}");
}

fn assert_healthy(addr: SocketAddr) {
    let answer = raw_exchange(
        addr,
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn bad_names_paths_and_methods_get_json_4xx() {
    let mut cluster = Cluster::start(Spec::default());
    let addr = naming_addr(&mut cluster);
    let put = |path: &str| {
        format!("PUT {path} HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
    };
    for path in [
        "/files/",
        "/files/%2Fetc%2Fpasswd",
        "/files/a/../b",
        "/files/a/./b",
        "/files/a//b",
        "/files/a%0Ab",
        "/files/%zz",
        "/files/%FF",
    ] {
        check_status(addr, &put(path), 400);
    }
    check_status(addr, &put(&format!("/files/{}", "n".repeat(1025))), 400);
    check_status(
        addr,
        "POST /files/a HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        405,
    );
    check_status(
        addr,
        "PUT /status HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        405,
    );
    check_status(
        addr,
        "GET /nothing/here HTTP/1.1\r\nConnection: close\r\n\r\n",
        404,
    );
    check_status(
        addr,
        "GET /files/missing HTTP/1.1\r\nConnection: close\r\n\r\n",
        404,
    );
    check_status(
        addr,
        "PUT /files/a HTTP/1.1\r\nConnection: close\r\n\r\n",
        411,
    );
    check_status(
        addr,
        "GET /files?prefix=%zz HTTP/1.1\r\nConnection: close\r\n\r\n",
        400,
    );
    assert_eq!(
        cluster.request("GET", "/files", &[]).json(),
        serde_json::json!([])
    );
}

#[test]
fn a_lying_100_gb_content_length_gets_413_at_once_and_the_server_lives() {
    let mut cluster = Cluster::start(Spec::default());
    let addr = naming_addr(&mut cluster);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"PUT /files/huge HTTP/1.1\r\nContent-Length: 100000000000\r\n\r\n")
        .unwrap();
    stream.write_all(&[0u8; 4096]).unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).unwrap();
    let (status, _) = parse_answer(&answer[..read]);
    assert_eq!(status, 413);
    assert_healthy(addr);
    assert_eq!(cluster.get("huge").status, 404);
}

#[test]
fn a_refused_upload_that_keeps_its_socket_open_gets_its_answer_promptly() {
    let mut cluster = Cluster::start(Spec::default());
    assert_eq!(cluster.put("taken", b"x").status, 201);
    let addr = naming_addr(&mut cluster);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Announces 1 GB, sends 4 KiB, then waits: the 409 must not wait for the rest.
    stream
        .write_all(b"PUT /files/taken HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n")
        .unwrap();
    stream.write_all(&[0u8; 4096]).unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream
        .read(&mut answer)
        .expect("the answer arrives before the body is sent");
    let (status, json) = parse_answer(&answer[..read]);
    assert_eq!(status, 409, "{json}");
    assert_healthy(addr);
}

#[test]
fn slow_and_silent_clients_are_cut_off_and_others_are_served() {
    let spec = Spec {
        io_timeout_ms: 1000,
        ..Spec::default()
    };
    let mut cluster = Cluster::start(spec);
    let addr = naming_addr(&mut cluster);
    let silent: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET /heal").unwrap();
            stream
        })
        .collect();
    assert_healthy(addr);
    let started = Instant::now();
    for mut stream in silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
    let elapsed = started.elapsed();
    eprintln!("50 half-sent requests were closed after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(9),
        "silent connections were not cut off: {elapsed:?}"
    );
    assert_healthy(addr);
}

#[test]
fn huge_header_lines_and_header_floods_are_refused() {
    let mut cluster = Cluster::start(Spec::default());
    let addr = naming_addr(&mut cluster);
    let long_line = format!(
        "GET /health HTTP/1.1\r\nX-Long: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let (status, _) = parse_answer(&raw_exchange(
        addr,
        long_line.as_bytes(),
        Duration::from_secs(10),
    ));
    assert!(matches!(status, 400 | 431), "{status}");
    let long_url = format!("GET /files/{} HTTP/1.1\r\n\r\n", "a".repeat(1024 * 1024));
    let (status, _) = parse_answer(&raw_exchange(
        addr,
        long_url.as_bytes(),
        Duration::from_secs(10),
    ));
    assert!(matches!(status, 400 | 414 | 431), "{status}");
    let mut flood = String::from("GET /health HTTP/1.1\r\n");
    for idx in 0..5000 {
        flood.push_str(&format!("X-{idx}: y\r\n"));
    }
    flood.push_str("\r\n");
    let (status, _) = parse_answer(&raw_exchange(
        addr,
        flood.as_bytes(),
        Duration::from_secs(10),
    ));
    assert!(matches!(status, 400 | 431), "{status}");
    assert_healthy(addr);
    assert!(cluster.naming().peak_rss_bytes() < 64 * 1024 * 1024);
}

#[test]
fn random_bytes_get_a_json_4xx() {
    let mut cluster = Cluster::start(Spec::default());
    let addr = naming_addr(&mut cluster);
    for seed in 0..5 {
        let mut garbage = crate::cluster::test_bytes(300, seed);
        garbage.extend_from_slice(b"\r\n\r\n");
        let answer = raw_exchange(addr, &garbage, Duration::from_secs(5));
        let (status, _) = parse_answer(&answer);
        assert!((400..500).contains(&status), "{status}");
    }
    let (status, _) = parse_answer(&raw_exchange(
        addr,
        b"GET / HTTP/9.9\r\n\r\n",
        Duration::from_secs(5),
    ));
    assert!((400..=505).contains(&status), "{status}");
    assert_healthy(addr);
}

#[test]
fn storage_refuses_malformed_ids_bad_checksums_and_garbage() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let base = cluster.storage_url(0);
    let call = |method: &str, path: &str, body: &[u8]| {
        request_to(&cluster.agent, &format!("{base}{path}"), method, body).unwrap()
    };
    for path in [
        "/chunks/..%2F..%2Fetc%2Fpasswd?first=0&count=1",
        "/chunks/ZZZZ?first=0&count=1",
        "/chunks/0123456789ABCDEF?first=0&count=1",
        "/chunks/0000000000000001?first=0&count=0",
        "/chunks/0000000000000001?first=x&count=1",
    ] {
        let answer = call("GET", path, &[]);
        assert_eq!(answer.status, 400, "{path}");
        assert!(answer.error().len() > 3);
    }
    assert_eq!(call("DELETE", "/blobs/..", &[]).status, 400);
    assert_eq!(call("POST", "/blobs/delete", b"seven b").status, 400);
    let too_many = vec![0u8; (BLOB_DELETES_PER_CALL_MAX + 1) * 8];
    assert_eq!(call("POST", "/blobs/delete", &too_many).status, 413);
    assert_eq!(call("POST", "/blobs/delete", &[]).status, 204);
    assert_eq!(
        call("GET", "/chunks/0000000000000001?first=0&count=1", &[]).status,
        404
    );

    let chunk = Chunk::new(
        ChunkId {
            blob: BlobId(7),
            index: 0,
        },
        b"hello".to_vec(),
    );
    let mut batch = encode_batch(&[chunk]);
    let last = batch.len() - 1;
    batch[last] ^= 1;
    let answer = call("PUT", "/chunks", &batch);
    assert_eq!(answer.status, 400);
    assert!(answer.error().contains("CRC32C"), "{}", answer.error());
    assert_eq!(call("PUT", "/chunks", b"not a batch at all").status, 400);
    assert_eq!(
        call("GET", "/status", &[]).json()["chunks"],
        0,
        "nothing bad was stored"
    );
    assert_eq!(call("POST", "/chunks", &[]).status, 405);
}

/// A storage server of its own, on a fresh folder (returned too), with
/// `extra` settings.
fn lone_storage(extra: &[&str]) -> (Server, std::path::PathBuf) {
    let dir = test_dir();
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--data-dir"]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
    args.push(dir.join("data").to_str().unwrap().to_owned());
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let server = Server::start("harbour-storage", args, dir.join("storage.log"));
    (server, dir)
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_recovers() {
    let (mut server, dir) = lone_storage(&["--workers", "1", "--io-timeout-ms", "2000"]);
    let addr = server.addr;
    // One stalled upload holds the only worker; 64 more fill the queue.
    // They carry credentials: a request without any is refused at once and
    // holds no worker.
    let signer = test_signer();
    let stalled: Vec<TcpStream> = (0..70)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            let head = format!(
                "PUT /chunks HTTP/1.1\r\nAuthorization: {}\r\nContent-Length: 100000\r\n\r\nHRBT",
                signer.authorization("PUT", "/chunks")
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Probes that find the queue not yet full wait in it too (and are given
    // up on after 300 ms), so the queue fills either way.
    let mut saw_busy = false;
    for _ in 0..50 {
        let answer = raw_exchange(
            addr,
            b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_millis(300),
        );
        let text = String::from_utf8_lossy(&answer);
        if text.starts_with("HTTP/1.1 503") {
            assert!(text.contains("Retry-After: 1"), "{text}");
            parse_answer(&answer);
            saw_busy = true;
            break;
        }
    }
    assert!(saw_busy, "a full queue must answer 503");
    drop(stalled);
    crate::cluster::wait_until(Duration::from_secs(10), "the server to recover", || {
        raw_exchange(
            addr,
            b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .starts_with(b"HTTP/1.1 200")
    });
    server.kill();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn past_the_connection_bound_new_connections_are_refused_not_queued() {
    let (server, _dir) = lone_storage(&["--connections-max", "8"]);
    let addr = server.addr;
    let health = || {
        let answer = raw_exchange(
            addr,
            b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
            Duration::from_millis(2000),
        );
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(health().starts_with("HTTP/1.1 200"));
    // Eight idle connections hold every place.
    let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    crate::cluster::wait_until(Duration::from_secs(5), "the ninth to be refused", || {
        let text = health();
        text.starts_with("HTTP/1.1 503") && text.contains("too many connections")
    });
    drop(idle);
    crate::cluster::wait_until(Duration::from_secs(5), "places to free up", || {
        health().starts_with("HTTP/1.1 200")
    });
}
