//! Benchmarks of scale: the naming server restarted with a million files
//! (restart time, memory per file and per chunk), a storage server with a
//! million chunks (restart, space, compaction), and recovery after a
//! storage server's death.

use std::fs::{self, File};
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use super::{MIB, enabled};
use crate::cluster::Server;
use crate::cluster::{Spec, test_bytes, test_dir};

/// A frame of the naming journal format (ARCHITECTURE.md): len | crc | payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&common::chunk::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Writes a checkpoint of `files` files of `chunks_per_file` full chunks in
/// `runs_per_file` runs (alternating replica sets, as rotation places
/// them), straight in the documented format.
fn write_checkpoint(
    meta_dir: &std::path::Path,
    urls: &[String],
    files: u64,
    chunks_per_file: u32,
    runs_per_file: u32,
) {
    fs::create_dir_all(meta_dir).unwrap();
    let mut out = std::io::BufWriter::new(File::create(meta_dir.join("checkpoint")).unwrap());
    out.write_all(b"HRBCKPT1").unwrap();
    out.write_all(&1u64.to_be_bytes()).unwrap();
    let mut records = 0u64;
    for (id, url) in urls.iter().enumerate() {
        let mut payload = vec![4u8];
        payload.extend_from_slice(&(id as u16).to_be_bytes());
        put_str(&mut payload, url);
        out.write_all(&frame(&payload)).unwrap();
        records += 1;
    }
    let mut reserve = vec![3u8];
    reserve.extend_from_slice(&(files + 1).to_be_bytes());
    out.write_all(&frame(&reserve)).unwrap();
    records += 1;
    for idx in 0..files {
        let mut payload = vec![1u8];
        put_str(&mut payload, &format!("bench/{idx:08}"));
        payload.extend_from_slice(&(idx + 1).to_be_bytes());
        payload.extend_from_slice(&(u64::from(chunks_per_file) * 1024).to_be_bytes());
        payload.extend_from_slice(&runs_per_file.to_be_bytes());
        let run_chunks = chunks_per_file / runs_per_file;
        for run in 0..runs_per_file {
            payload.extend_from_slice(&(run * run_chunks).to_be_bytes());
            payload.extend_from_slice(&run_chunks.to_be_bytes());
            let (first, second) = if run % 2 == 0 { (0u16, 1u16) } else { (1, 0) };
            payload.push(2);
            payload.extend_from_slice(&first.to_be_bytes());
            payload.extend_from_slice(&second.to_be_bytes());
        }
        out.write_all(&frame(&payload)).unwrap();
        records += 1;
    }
    let mut end = vec![5u8];
    end.extend_from_slice(&records.to_be_bytes());
    out.write_all(&frame(&end)).unwrap();
    out.flush().unwrap();
}

fn rss_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// What a naming server restarted on a synthetic namespace showed.
pub struct NamingScale {
    pub files: u64,
    pub chunks: u64,
    pub restart: Duration,
    /// Resident memory beyond an empty naming server's.
    pub extra_rss_bytes: u64,
}

fn start_naming(urls: &[String], meta_dir: &std::path::Path, log: std::path::PathBuf) -> Server {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--storage-servers",
        &urls.join(","),
        "--meta-dir",
    ];
    let args = args
        .iter()
        .map(|arg| arg.to_string())
        .chain([meta_dir.to_string_lossy().into_owned()])
        .collect();
    Server::start("harbour-naming", args, log)
}

/// Restarts a naming server on a checkpoint of `files` files of
/// `chunks_per_file` chunks in `runs_per_file` runs, written in the
/// documented format, and measures it against an empty one.
pub fn naming_restart(files: u64, chunks_per_file: u32, runs_per_file: u32) -> NamingScale {
    let dir = test_dir();
    let urls = [
        "http://127.0.0.1:9".to_owned(),
        "http://127.0.0.1:10".to_owned(),
    ];
    // Baseline: the same process shape with an empty namespace.
    let empty = start_naming(&urls, &dir.join("empty-meta"), dir.join("empty.log"));
    let empty_rss = rss_bytes(empty.pid());
    drop(empty);
    let meta_dir = dir.join("meta");
    write_checkpoint(&meta_dir, &urls, files, chunks_per_file, runs_per_file);
    let started = Instant::now();
    let naming = start_naming(&urls, &meta_dir, dir.join("naming.log"));
    let restart = started.elapsed();
    let rss = rss_bytes(naming.pid());
    drop(naming);
    let _ = fs::remove_dir_all(dir);
    NamingScale {
        files,
        chunks: files * u64::from(chunks_per_file),
        restart,
        extra_rss_bytes: rss.saturating_sub(empty_rss),
    }
}

#[test]
fn bench_storage_restart_and_space_with_a_million_chunks() {
    if !enabled() {
        return;
    }
    use common::chunk::{BlobId, ChunkId};
    use common::wire::{Chunk, encode_batch};

    let blobs = 4096u64;
    let chunks_per_blob = 256u32;
    let dir = test_dir();
    let args = |data: &std::path::Path| -> Vec<String> {
        vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.to_string_lossy().into_owned(),
        ]
    };
    let data_dir = dir.join("data");
    let mut storage =
        crate::cluster::Server::start("harbour-storage", args(&data_dir), dir.join("storage.log"));
    let agent = crate::cluster::Cluster::test_agent();
    let base = format!("http://{}", storage.addr);
    let started = Instant::now();
    let payload = test_bytes(1024, 3);
    for blob in 0..blobs {
        let batch: Vec<Chunk> = (0..chunks_per_blob)
            .map(|index| {
                Chunk::new(
                    ChunkId {
                        blob: BlobId(blob + 1),
                        index,
                    },
                    payload.clone(),
                )
            })
            .collect();
        let answer = crate::cluster::request_to(
            &agent,
            &format!("{base}/chunks"),
            "PUT",
            &encode_batch(&batch),
        )
        .unwrap();
        assert_eq!(answer.status, 201);
    }
    let chunks = blobs * u64::from(chunks_per_blob);
    let put_secs = started.elapsed().as_secs_f64();
    println!(
        "storage: {chunks} chunks stored in {put_secs:.1} s ({:.0} chunks/s, batches of {chunks_per_blob})",
        chunks as f64 / put_secs
    );
    let status = |agent: &ureq::Agent, addr: std::net::SocketAddr| {
        crate::cluster::request_to(agent, &format!("http://{addr}/status"), "GET", &[])
            .unwrap()
            .json()
    };
    let before = status(&agent, storage.addr);
    println!(
        "storage: {:.1} MiB on disk for {:.1} MiB of chunks ({:.3}x)",
        before["used_bytes"].as_f64().unwrap() / MIB,
        before["live_bytes"].as_f64().unwrap() / MIB,
        before["used_bytes"].as_f64().unwrap() / before["live_bytes"].as_f64().unwrap()
    );
    let started = Instant::now();
    storage.restart();
    println!(
        "storage restart with {chunks} chunks: {:.2} s to listening, RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        rss_bytes(storage.pid()) as f64 / MIB
    );

    // Delete three blobs of every four, then let compaction reclaim the space.
    let base = format!("http://{}", storage.addr);
    for blob in (0..blobs).filter(|blob| blob % 4 != 0) {
        let answer = crate::cluster::request_to(
            &agent,
            &format!("{base}/blobs/{:016x}", blob + 1),
            "DELETE",
            &[],
        )
        .unwrap();
        assert_eq!(answer.status, 204);
    }
    let started = Instant::now();
    let mut ratio = f64::MAX;
    crate::cluster::wait_until(Duration::from_secs(300), "compaction", || {
        let now = status(&agent, storage.addr);
        ratio = now["used_bytes"].as_f64().unwrap() / now["live_bytes"].as_f64().unwrap();
        ratio < 1.1
    });
    let after = status(&agent, storage.addr);
    println!(
        "storage after deleting 3/4 and compaction ({:.1} s): {:.1} MiB on disk for {:.1} MiB of chunks ({ratio:.3}x)",
        started.elapsed().as_secs_f64(),
        after["used_bytes"].as_f64().unwrap() / MIB,
        after["live_bytes"].as_f64().unwrap() / MIB,
    );
    drop(storage);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn bench_recovery_after_a_storage_death() {
    if !enabled() {
        return;
    }
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let mut cluster = crate::cluster::Cluster::start(Spec::default());
    let files = 16;
    let file_bytes = 64 * 1024 * 1024;
    let contents: Vec<Vec<u8>> = (0..files)
        .map(|idx| test_bytes(file_bytes, idx as u64))
        .collect();
    for (idx, bytes) in contents.iter().enumerate() {
        assert_eq!(cluster.put(&format!("r/{idx}"), bytes).status, 201);
    }
    let total_mib = (files * file_bytes) as f64 / MIB;
    cluster.storage(0).kill();
    let killed = Instant::now();
    let done = AtomicBool::new(false);
    let read_bytes = AtomicU64::new(0);
    let recovery = thread::scope(|scope| {
        let cluster = &cluster;
        let (done, read_bytes, contents) = (&done, &read_bytes, &contents);
        scope.spawn(move || {
            let mut idx = 0;
            while !done.load(Ordering::Relaxed) {
                let read = cluster.get(&format!("r/{}", idx % files));
                assert!(read.body == contents[idx % files]);
                read_bytes.fetch_add(read.body.len() as u64, Ordering::Relaxed);
                idx += 1;
            }
        });
        let mut saw_under_replicated = false;
        crate::cluster::wait_until(Duration::from_secs(600), "full replication again", || {
            let under = cluster.status_json()["under_replicated"].as_u64().unwrap();
            saw_under_replicated |= under > 0;
            saw_under_replicated && under == 0
        });
        let recovery = killed.elapsed();
        done.store(true, Ordering::Relaxed);
        recovery
    });
    let copied = cluster.metric("harbour_chunks_re_replicated_total");
    println!(
        "recovery: {total_mib:.0} MiB at R=2 on 3 servers, one killed: under-replicated back to 0 after {:.1} s ({copied} chunks copied, {:.1} MiB/s)",
        recovery.as_secs_f64(),
        copied as f64 / 1024.0 / recovery.as_secs_f64()
    );
    println!(
        "recovery: client reads meanwhile {:.1} MiB/s",
        read_bytes.load(Ordering::Relaxed) as f64 / MIB / recovery.as_secs_f64()
    );
}
