//! What this machine can do at best, measured in the same run as the
//! workloads: the bounds each figure of `make bench` is shown beside.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::MIB;
use crate::cluster::test_bytes;

pub struct Bounds {
    /// One file written sequentially, then fsynced.
    pub disk_write_mib_per_sec: f64,
    /// `copies` files written at once, each fsynced: what storing a file
    /// on `copies` replicas of this one disk costs at best.
    pub copies_write_mib_per_sec: f64,
    pub copies: usize,
    /// 1 KiB appends each followed by fdatasync, one at a time.
    pub fsyncs_per_sec: f64,
    pub fsync_p50_ms: f64,
    /// One TCP connection on loopback, 256 KiB writes.
    pub loopback_mib_per_sec: f64,
    /// 1 KiB request, 1 KiB answer, one at a time on loopback.
    pub round_trips_per_sec: f64,
}

/// Measures every bound, in `dir` (on the disk the cluster uses).
pub fn measure(dir: &Path, file_bytes: usize, copies: usize) -> Bounds {
    let disk_write_mib_per_sec = copies_write_mib_per_sec(dir, file_bytes, 1);
    let copies_write_mib_per_sec = copies_write_mib_per_sec(dir, file_bytes, copies);
    let (fsyncs_per_sec, fsync_p50_ms) = fsyncs(dir, Duration::from_secs(2));
    Bounds {
        disk_write_mib_per_sec,
        copies_write_mib_per_sec,
        copies,
        fsyncs_per_sec,
        fsync_p50_ms,
        loopback_mib_per_sec: loopback_mib_per_sec(1024 * 1024 * 1024),
        round_trips_per_sec: round_trips_per_sec(Duration::from_secs(1)),
    }
}

impl Bounds {
    pub fn print(&self) {
        println!("bounds of this machine, measured in this run:");
        println!(
            "  disk: one file written and fsynced          {:>9.0} MiB/s",
            self.disk_write_mib_per_sec
        );
        println!(
            "  disk: {} files at once, each fsynced          {:>9.0} MiB/s of file",
            self.copies, self.copies_write_mib_per_sec
        );
        println!(
            "  disk: 1 KiB append + fdatasync, one at a time {:>8.0} /s (p50 {:.2} ms)",
            self.fsyncs_per_sec, self.fsync_p50_ms
        );
        println!(
            "  loopback TCP, one connection                {:>9.0} MiB/s",
            self.loopback_mib_per_sec
        );
        println!(
            "  loopback 1 KiB round trips, one at a time   {:>9.0} /s",
            self.round_trips_per_sec
        );
    }
}

/// `copies` files of `file_bytes` written at once and fsynced; MiB/s of
/// one file's bytes (the rate at which a file gets all its copies).
fn copies_write_mib_per_sec(dir: &Path, file_bytes: usize, copies: usize) -> f64 {
    let block = test_bytes(1024 * 1024, 1);
    let started = Instant::now();
    thread::scope(|scope| {
        for copy in 0..copies {
            let block = &block;
            scope.spawn(move || {
                let path = dir.join(format!("bound-copy-{copy}.bin"));
                let mut file = File::create(&path).unwrap();
                for _ in 0..file_bytes / block.len() {
                    file.write_all(block).unwrap();
                }
                file.sync_all().unwrap();
            });
        }
    });
    let rate = file_bytes as f64 / MIB / started.elapsed().as_secs_f64();
    for copy in 0..copies {
        let _ = fs::remove_file(dir.join(format!("bound-copy-{copy}.bin")));
    }
    rate
}

/// 1 KiB appends each followed by fdatasync for `duration`: the rate and
/// the median latency of one durable write at a time.
fn fsyncs(dir: &Path, duration: Duration) -> (f64, f64) {
    let path = dir.join("bound-fsync.bin");
    let mut file = File::create(&path).unwrap();
    let block = [7u8; 1024];
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < duration {
        let one = Instant::now();
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        latencies.push(one.elapsed());
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2].as_secs_f64() * 1e3;
    fs::remove_file(path).unwrap();
    (rate, p50)
}

/// Bytes through one loopback TCP connection, 256 KiB writes.
fn loopback_mib_per_sec(bytes: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::scope(|scope| {
        scope.spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            let block = vec![1u8; 256 * 1024];
            for _ in 0..bytes / block.len() {
                stream.write_all(&block).unwrap();
            }
        });
        let (mut stream, _) = listener.accept().unwrap();
        let started = Instant::now();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut received = 0;
        while received < bytes {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0);
            received += read;
        }
        bytes as f64 / MIB / started.elapsed().as_secs_f64()
    })
}

/// 1 KiB there and back over loopback, one exchange at a time.
fn round_trips_per_sec(duration: Duration) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::scope(|scope| {
        scope.spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_nodelay(true).unwrap();
            let mut message = [0u8; 1024];
            while stream.read_exact(&mut message).is_ok() {
                if stream.write_all(&message).is_err() {
                    return;
                }
            }
        });
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut message = [3u8; 1024];
        let started = Instant::now();
        let mut exchanges = 0u64;
        while started.elapsed() < duration {
            stream.write_all(&message).unwrap();
            stream.read_exact(&mut message).unwrap();
            exchanges += 1;
        }
        let rate = exchanges as f64 / started.elapsed().as_secs_f64();
        drop(stream);
        rate
    })
}
