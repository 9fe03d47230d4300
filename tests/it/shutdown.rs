//! SPEC "Operators", clean shutdown: on SIGTERM or SIGINT a server stops
//! accepting, answers what is in flight, leaves its files tidy and exits 0
//! within a few seconds; nothing acknowledged is lost, no create is half
//! visible, and the restart finds nothing torn. A request still running
//! after the grace period is cut (it was never acknowledged).

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::chunk::{BlobId, ChunkId};
use common::wire::{Chunk, encode_batch};

use crate::cluster::{Cluster, Spec, test_bytes, test_signer, wait_until};

/// Longer than the server's grace period (8 s) with room to spare.
const EXIT_LIMIT: Duration = Duration::from_secs(15);

fn bytes_of(idx: usize) -> Vec<u8> {
    test_bytes(1000 + idx * 37 % 3000, idx as u64)
}

/// Creates `s0`, `s1`, ... until a create fails `fails_max` times or 3000
/// are made; `progress` counts the acknowledged ones. Returns them.
fn stream_of_creates(cluster: &Cluster, progress: &AtomicUsize, fails_max: usize) -> Vec<usize> {
    let mut acked = Vec::new();
    let mut fails = 0;
    for idx in 0..3000 {
        match cluster.try_request("PUT", &format!("/files/s{idx}"), &bytes_of(idx)) {
            Ok(answer) if answer.status == 201 => {
                acked.push(idx);
                progress.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                fails += 1;
                if fails >= fails_max {
                    break;
                }
            }
        }
    }
    acked
}

/// Every acknowledged file reads back whole, and every file listed (an
/// unacknowledged create may have committed) is whole too.
fn check_files(cluster: &Cluster, acked: &[usize]) {
    for &idx in acked {
        let answer = cluster.get(&format!("s{idx}"));
        assert_eq!(answer.status, 200, "acknowledged s{idx} is gone");
        assert!(answer.body == bytes_of(idx), "s{idx} differs");
    }
    let listing = cluster.request("GET", "/files", &[]).json();
    for file in listing.as_array().expect("a list of files") {
        let name = file["name"].as_str().expect("a name");
        let idx: usize = name[1..].parse().expect("one of ours");
        assert!(
            cluster.get(name).body == bytes_of(idx),
            "{name} is listed but not whole"
        );
    }
}

#[test]
fn sigterm_during_a_stream_of_creates_loses_nothing_and_exits_0() {
    let mut cluster = Cluster::start(Spec::default());
    let progress = AtomicUsize::new(0);
    let acked = std::thread::scope(|scope| {
        let writer = scope.spawn(|| stream_of_creates(&cluster, &progress, 1));
        wait_until(Duration::from_secs(20), "50 creates", || {
            progress.load(Ordering::Relaxed) >= 50
        });
        cluster.naming_ref().signal("-TERM");
        writer.join().expect("the writer")
    });
    let code = cluster.naming().wait_for_exit(EXIT_LIMIT);
    let log = cluster.naming_ref().log_text();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    cluster.naming().restart();
    cluster.wait_healthy();
    let log = cluster.naming_ref().log_text();
    assert!(
        !log.contains("torn"),
        "the restart found something torn:\n{log}"
    );
    check_files(&cluster, &acked);
    assert!(acked.len() >= 50);
}

#[test]
fn sigint_to_a_storage_server_mid_stream_loses_nothing_and_exits_0() {
    let mut cluster = Cluster::start(Spec::default());
    let progress = AtomicUsize::new(0);
    let acked = std::thread::scope(|scope| {
        // Creates route around the stopped server: the stream goes on.
        let writer = scope.spawn(|| {
            let acked = stream_of_creates(&cluster, &progress, 5);
            (acked, progress.load(Ordering::Relaxed))
        });
        wait_until(Duration::from_secs(20), "50 creates", || {
            progress.load(Ordering::Relaxed) >= 50
        });
        cluster.storage_ref(0).signal("-INT");
        writer.join().expect("the writer").0
    });
    let code = cluster.storage(0).wait_for_exit(EXIT_LIMIT);
    let log = cluster.storage_ref(0).log_text();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    cluster.storage(0).restart();
    cluster.wait_healthy();
    let log = cluster.storage_ref(0).log_text();
    assert!(
        !log.contains("torn"),
        "the restart found something torn:\n{log}"
    );
    check_files(&cluster, &acked);
}

#[test]
fn a_request_still_running_after_the_grace_period_is_cut_and_the_exit_is_0() {
    let mut cluster = Cluster::start(Spec {
        storage: 1,
        replication: 1,
        io_timeout_ms: 60_000,
        ..Spec::default()
    });
    // A valid batch of 100 chunks of which a tenth is sent, then nothing.
    let chunks: Vec<Chunk> = (0..100)
        .map(|index| {
            let id = ChunkId {
                blob: BlobId(7),
                index,
            };
            Chunk::new(id, vec![1; 1024])
        })
        .collect();
    let batch = encode_batch(&chunks);
    let storage = cluster.storage_ref(0).addr;
    let mut stalled = TcpStream::connect(storage).unwrap();
    let head = format!(
        "PUT /chunks HTTP/1.1\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        test_signer().authorization("PUT", "/chunks"),
        batch.len()
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(&batch[..batch.len() / 10]).unwrap();
    // The server is reading it (it did not answer, and holds on).
    stalled
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answer = [0u8; 1];
    assert!(
        std::io::Read::read(&mut stalled, &mut answer).is_err(),
        "the partial upload was answered"
    );
    cluster.storage_ref(0).signal("-TERM");
    // New connections are refused once the listener is closed.
    wait_until(Duration::from_secs(5), "the listener closed", || {
        TcpStream::connect(storage).is_err()
    });
    let code = cluster.storage(0).wait_for_exit(EXIT_LIMIT);
    let log = cluster.storage_ref(0).log_text();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("are cut (none was acknowledged)"), "{log}");
    drop(stalled);
}

#[test]
fn a_storage_server_that_joined_stops_at_once_too() {
    let cluster = Cluster::start(Spec {
        storage: 1,
        replication: 1,
        ..Spec::default()
    });
    let dir = crate::cluster::test_dir();
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--join",
        &cluster.url(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let mut joined = crate::cluster::Server::start("harbour-storage", args, dir.join("joined.log"));
    wait_until(Duration::from_secs(10), "the join", || {
        joined.log_text().contains("joined the cluster")
    });
    joined.signal("-TERM");
    // Its registration loop waits 30 s between refreshes: not the exit.
    let code = joined.wait_for_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{}", joined.log_text());
}
