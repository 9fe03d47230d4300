//! Storage servers that die, freeze or rot: reads fail over to the next
//! replica, creates fail cleanly and never hang past their timeout.

use std::fs;
use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cluster::{Answer, Cluster, Spec, test_bytes, wait_until};

/// A generous bound that still tells "bounded by the timeout" from "hung".
fn hang_bound(spec: &Spec) -> Duration {
    Duration::from_millis(4 * spec.storage_timeout_ms + 5000)
}

#[test]
fn reads_fail_over_when_a_storage_server_is_killed() {
    let mut cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(2 * 1024 * 1024 + 3, 1);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    cluster.storage(0).kill();
    assert!(cluster.get("f").body == bytes);
    wait_until(
        Duration::from_secs(10),
        "the dead server to show in status",
        || cluster.status_json()["servers"][0]["alive"] == false,
    );
    // Re-replication then restores full replication (tests/it/replication.rs).
    assert!(cluster.get("f").body == bytes);
}

#[test]
fn reads_fail_over_past_a_frozen_storage_server_within_the_timeout() {
    let mut cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(1024 * 1024, 2);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    cluster.storage(1).freeze();
    let started = Instant::now();
    let read = cluster.get("f");
    let elapsed = started.elapsed();
    eprintln!("read past a frozen replica took {elapsed:?}");
    assert!(read.body == bytes);
    assert!(elapsed < hang_bound(&cluster.spec), "{elapsed:?}");
    cluster.storage(1).thaw();
}

#[test]
fn reads_skip_a_replica_whose_bytes_rotted_on_disk() {
    let cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(600 * 1024, 3);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    // Flip bytes all over storage 0's segments: every chunk there is corrupt.
    for entry in fs::read_dir(cluster.storage_dir(0)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "hseg") {
            let mut data = fs::read(&path).unwrap();
            for idx in (100..data.len()).step_by(97) {
                data[idx] ^= 0x5a;
            }
            fs::write(&path, data).unwrap();
        }
    }
    assert!(
        cluster.get("f").body == bytes,
        "a corrupt replica must never be served"
    );
    assert!(cluster.metric("harbour_replica_read_failures_total") > 0);
}

/// Creates `name` of `size_bytes` with storage server 1 frozen (death
/// detection slow, so the create meets the frozen server itself and, with
/// two servers at replication 2, nothing can replace it), then thaws it
/// and checks the create left nothing: no name, no chunk. Returns the
/// cluster, the create's answer and how long it took.
fn create_against_a_frozen_server(name: &str, size_bytes: usize) -> (Cluster, Answer, Duration) {
    let spec = Spec {
        storage: 2,
        dead_after_ms: 60_000,
        ..Spec::default()
    };
    let mut cluster = Cluster::start(spec);
    cluster.storage(1).freeze();
    let started = Instant::now();
    let answer = cluster.put(name, &test_bytes(size_bytes, size_bytes as u64));
    let elapsed = started.elapsed();
    eprintln!("a {size_bytes}-byte create against a frozen server failed after {elapsed:?}");
    cluster.storage(1).thaw();
    cluster.wait_healthy();
    assert_eq!(cluster.get(name).status, 404);
    wait_until(
        Duration::from_secs(15),
        "the partial batches to be deleted",
        || cluster.stored_chunks() == 0,
    );
    (cluster, answer, elapsed)
}

#[test]
fn a_create_against_a_frozen_storage_server_fails_within_the_timeout_and_leaves_nothing() {
    let (cluster, answer, elapsed) = create_against_a_frozen_server("f", 100 * 1024);
    // 503, saying which server failed how.
    assert_eq!(answer.status, 503);
    let error = answer.error();
    assert!(
        error.contains(&format!(
            "{} timed out after 2000 ms",
            cluster.storage_url(1)
        )),
        "{error}"
    );
    assert!(error.contains("no other live storage server"), "{error}");
    assert!(elapsed < hang_bound(&cluster.spec), "{elapsed:?}");
    assert_eq!(cluster.put("f", b"works again").status, 201);
}

/// A body that stops after `pause_at` bytes until the test says go on.
struct PausingBody {
    remaining: u64,
    sent: u64,
    pause_at: u64,
    paused: mpsc::Sender<()>,
    resume: mpsc::Receiver<()>,
}

impl Read for PausingBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == self.pause_at {
            let _ = self.paused.send(());
            let _ = self.resume.recv();
        }
        let limit = if self.sent < self.pause_at {
            self.pause_at - self.sent
        } else {
            self.remaining
        };
        let len = (out.len() as u64).min(limit).min(self.remaining) as usize;
        out[..len].fill(0xab);
        self.remaining -= len as u64;
        self.sent += len as u64;
        Ok(len)
    }
}

#[test]
fn a_storage_server_killed_mid_create_fails_the_create_and_leaves_nothing() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    // Far more than socket buffers and tiny_http's own drain hold after the
    // kill: the client is still sending when the create fails, and must
    // still hear why.
    let total = 64 * 1024 * 1024u64;
    let body = PausingBody {
        remaining: total,
        sent: 0,
        pause_at: 1024 * 1024,
        paused: paused_tx,
        resume: resume_rx,
    };
    let url = format!("{}/files/f", cluster.url());
    let agent = cluster.agent.clone();
    let upload = std::thread::spawn(move || {
        let response = agent
            .put(&url)
            .header("Content-Length", total.to_string())
            .send(ureq::SendBody::from_owned_reader(body));
        response.map(|response| response.status().as_u16())
    });
    paused_rx.recv().unwrap();
    // Let the first batches land, then kill a replica holder.
    wait_until(
        Duration::from_secs(10),
        "the first batches to be stored",
        || cluster.stored_chunks() > 0,
    );
    cluster.storage(1).kill();
    resume_tx.send(()).unwrap();
    let status = upload.join().unwrap();
    // No server can replace the dead one: the batch has too few replicas.
    assert!(matches!(status, Ok(503)), "{status:?}");
    assert_eq!(cluster.get("f").status, 404);
    wait_until(
        Duration::from_secs(15),
        "the surviving replica's chunks to be deleted",
        || cluster.stored_chunks_on(&[0]) == 0,
    );
}

#[test]
fn restarted_storage_servers_serve_every_chunk_they_acknowledged() {
    let mut cluster = Cluster::start(Spec::default());
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|idx| (format!("f{idx}"), test_bytes(idx * 70_000 + 1, idx as u64)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    assert_eq!(cluster.delete("f0").status, 204);
    for idx in 0..3 {
        cluster.storage(idx).restart();
    }
    cluster.wait_healthy();
    for (name, bytes) in &files[1..] {
        assert!(cluster.get(name).body == *bytes, "{name}");
    }
}

#[test]
fn with_fewer_live_servers_than_the_replication_factor_creates_fail_503() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    assert_eq!(cluster.put("before", b"kept").status, 201);
    cluster.storage(1).kill();
    wait_until(
        Duration::from_secs(10),
        "the dead server to be noticed",
        || cluster.status_json()["servers"][1]["alive"] == false,
    );
    let answer = cluster.put("f", b"needs two servers");
    assert_eq!(answer.status, 503);
    assert!(
        answer
            .error()
            .contains("1 storage servers are available, 2 are needed"),
        "{}",
        answer.error()
    );
    cluster
        .cli(&["create", "g", "-"])
        .stdin(b"x")
        .assert_fails(1, "g: not enough storage servers available (HTTP 503)");
    assert_eq!(
        cluster.get("before").body,
        b"kept",
        "one live replica is enough to read"
    );
    cluster.storage(0).kill();
    let answer = cluster.get("before");
    assert_eq!(answer.status, 502);
    assert!(
        answer.error().contains("no replica could serve the data"),
        "{}",
        answer.error()
    );
}

#[test]
fn a_create_routes_around_a_frozen_storage_server_when_another_can_take_its_place() {
    let spec = Spec {
        dead_after_ms: 60_000,
        ..Spec::default()
    };
    let mut cluster = Cluster::start(spec);
    cluster.storage(2).freeze();
    let bytes = test_bytes(1024 * 1024 + 3, 8);
    let started = Instant::now();
    let answer = cluster.put("f", &bytes);
    eprintln!("create around a frozen server took {:?}", started.elapsed());
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let frozen = cluster.storage_url(2);
    for (index, replicas) in cluster.chunk_replicas("f").iter().enumerate() {
        assert!(
            !replicas.contains(&frozen),
            "chunk {index} placed on the frozen server"
        );
    }
    assert!(cluster.get("f").body == bytes);
    cluster.storage(2).thaw();
}

#[test]
fn pooled_connections_to_a_restarted_storage_server_are_not_reused_dead() {
    // Connections to storage are kept alive between calls; a restart
    // closes every one of them. With two servers at replication 2 nothing
    // can replace a server whose call fails, so a create that met a dead
    // pooled connection would fail.
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        dead_after_ms: 60_000,
        ..Spec::default()
    });
    for idx in 0..20 {
        assert_eq!(
            cluster
                .put(&format!("before/{idx}"), &test_bytes(3000, idx))
                .status,
            201
        );
    }
    cluster.storage(0).restart();
    cluster.storage(1).restart();
    for idx in 0..20 {
        let bytes = test_bytes(3000, 100 + idx);
        let answer = cluster.put(&format!("after/{idx}"), &bytes);
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(cluster.get(&format!("after/{idx}")).body == bytes);
        assert!(cluster.get(&format!("before/{idx}")).body == test_bytes(3000, idx));
    }
}

#[test]
fn a_large_create_against_a_frozen_storage_server_fails_within_the_timeout_and_leaves_nothing() {
    // Several batches are in flight at once: the frozen server holds every
    // one of them until its timeout; none may be acknowledged, or left.
    let (cluster, answer, elapsed) = create_against_a_frozen_server("big", 8 * 1024 * 1024);
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(elapsed < hang_bound(&cluster.spec), "{elapsed:?}");
}

#[test]
fn a_create_whose_client_breaks_off_mid_body_leaves_nothing() {
    let cluster = Cluster::start(Spec::default());
    // 16 MiB announced, 5 MiB sent (several batches stored, more in flight
    // and being read), then the connection drops.
    let mut stream = std::net::TcpStream::connect(cluster.naming_ref().addr).unwrap();
    use std::io::Write;
    stream
        .write_all(b"PUT /files/cut HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n")
        .unwrap();
    let piece = test_bytes(1024 * 1024, 6);
    for _ in 0..5 {
        stream.write_all(&piece).unwrap();
    }
    wait_until(
        Duration::from_secs(10),
        "the first batches to be stored",
        || cluster.stored_chunks() > 0,
    );
    drop(stream);
    wait_until(
        Duration::from_secs(15),
        "the chunks of the broken create to be deleted",
        || cluster.stored_chunks() == 0,
    );
    assert_eq!(cluster.get("cut").status, 404);
    assert_eq!(cluster.status_json()["files"], 0);
    assert_eq!(cluster.put("cut", b"whole this time").status, 201);
}

#[test]
fn a_read_fails_over_when_a_storage_server_is_killed_mid_stream() {
    let mut cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(12 * 1024 * 1024 + 5, 8);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    let response = cluster
        .agent
        .get(&format!("{}/files/f", cluster.url()))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut reader = response.into_body().into_reader();
    // The first batches are sent and the next one is being fetched when
    // a server holding replicas of every later batch dies.
    let mut head = vec![0u8; 1536 * 1024];
    reader.read_exact(&mut head).unwrap();
    cluster.storage(0).kill();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    head.extend_from_slice(&rest);
    assert!(
        head == bytes,
        "every byte, in order, from the live replicas"
    );
}

#[test]
fn reads_whose_clients_break_off_free_their_workers_every_time() {
    let cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(8 * 1024 * 1024, 9);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    // More abandoned reads than the naming server has workers (32): one
    // that kept its worker, or its batch fetcher, would starve the rest.
    for _ in 0..40 {
        let mut stream = std::net::TcpStream::connect(cluster.naming_ref().addr).unwrap();
        stream
            .set_read_timeout(Some(hang_bound(&cluster.spec)))
            .unwrap();
        use std::io::Write;
        stream
            .write_all(b"GET /files/f HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = vec![0u8; 64 * 1024];
        stream.read_exact(&mut first).unwrap();
        drop(stream);
    }
    let started = Instant::now();
    assert!(cluster.get("f").body == bytes);
    assert!(
        started.elapsed() < hang_bound(&cluster.spec),
        "{:?}",
        started.elapsed()
    );
}
