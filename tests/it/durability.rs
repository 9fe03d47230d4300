//! SPEC promises 2 and 3 across crashes: an acknowledged create, overwrite
//! or delete survives `kill -9` of any process and a restart of the whole
//! cluster; a torn journal tail is cut, never replayed; no name is ever
//! visible with partial or foreign bytes.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Spec, slow_tests, test_bytes, wait_until};

fn check_files(cluster: &Cluster, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let read = cluster.get(name);
        assert_eq!(read.status, 200, "{name} after restart");
        assert!(read.body == *bytes, "{name} is byte-exact after restart");
    }
}

#[test]
fn acknowledged_changes_survive_kill_9_of_the_naming_server() {
    let mut cluster = Cluster::start(Spec::default());
    let mut files: Vec<(String, Vec<u8>)> = [0usize, 1, 1023, 1024, 1025, 300 * 1024 + 7]
        .iter()
        .map(|&len| (format!("f{len}"), test_bytes(len, len as u64)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    let replaced = test_bytes(5000, 99);
    assert_eq!(cluster.put("f1?overwrite=true", &replaced).status, 201);
    files[1].1 = replaced;
    assert_eq!(cluster.put("gone", b"deleted before the crash").status, 201);
    assert_eq!(cluster.delete("gone").status, 204);

    cluster.naming().kill();
    cluster.naming().restart();
    cluster.wait_healthy();
    check_files(&cluster, &files);
    assert_eq!(cluster.get("gone").status, 404);
    assert_eq!(cluster.status_json()["files"], files.len());
    // A create after the restart gets a fresh blob: nothing collides.
    assert_eq!(cluster.put("after", b"new").status, 201);
    assert_eq!(cluster.get("after").body, b"new");
    check_files(&cluster, &files);
}

#[test]
fn acknowledged_changes_survive_a_restart_of_the_whole_cluster_across_checkpoints() {
    // Checkpoints every few records, so restarts go through checkpoint + journal.
    let mut cluster = Cluster::start(Spec {
        checkpoint_bytes: 300,
        ..Spec::default()
    });
    let mut files = Vec::new();
    for round in 0..3 {
        for idx in 0..10 {
            let name = format!("r{round}/{idx}");
            let bytes = test_bytes(idx * 700, (round * 100 + idx) as u64);
            assert_eq!(cluster.put(&name, &bytes).status, 201);
            files.push((name, bytes));
        }
        assert_eq!(cluster.delete(&files.remove(0).0).status, 204);
        if !cluster.on_etcd {
            wait_until(Duration::from_secs(10), "a checkpoint", || {
                cluster.meta_dir().join("checkpoint").exists()
            });
        }
        cluster.kill_all_and_restart();
        check_files(&cluster, &files);
    }
    assert_eq!(cluster.status_json()["files"], files.len());
    if cluster.on_etcd {
        return;
    }
    let journals = fs::read_dir(cluster.meta_dir())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("journal-")
        })
        .count();
    assert!(
        journals <= 2,
        "old journals are dropped after a checkpoint ({journals} left)"
    );
}

#[test]
fn a_torn_journal_tail_is_cut_and_everything_before_it_is_served() {
    let mut cluster = Cluster::start(Spec {
        local_journal: true,
        ..Spec::default()
    });
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|idx| (format!("f{idx}"), test_bytes(idx * 1000 + 1, idx as u64)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    cluster.naming().kill();
    // A crash mid-append leaves half a record: here, a frame header
    // announcing 200 bytes followed by 3 of them.
    let journal = fs::read_dir(cluster.meta_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".log"))
        .max()
        .unwrap();
    let end = journal_records_end(&journal);
    let file = OpenOptions::new().write(true).open(&journal).unwrap();
    file.write_all_at(&[0, 0, 0, 200, 1, 2, 3, 4, 9, 9, 9], end)
        .unwrap();
    drop(file);
    cluster.naming().restart();
    cluster.wait_healthy();
    check_files(&cluster, &files);
    let log = cluster.naming().log_text();
    assert!(
        log.contains(&format!("cut a torn tail at offset {end}")),
        "{log}"
    );
    assert_eq!(cluster.put("next", b"appends after the cut").status, 201);
    cluster.naming().restart();
    cluster.wait_healthy();
    assert_eq!(cluster.get("next").body, b"appends after the cut");
}

/// Where the records of a journal end: past its 16-byte header, frames
/// `length u32 | crc u32 | payload` (big-endian, ARCHITECTURE.md) up to
/// the file's end or the zeros written ahead of the appends.
fn journal_records_end(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    let mut at = 16;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        at += 8 + len;
    }
    assert!(at <= bytes.len(), "whole frames only");
    at as u64
}

/// What a name may hold after a crash: every state that was acknowledged
/// last, or attempted since (`None` = absent).
type Allowed = Vec<Option<(usize, u64)>>;

/// One round of a mixed create/overwrite/delete workload, with a kill -9 of
/// the naming server (and sometimes a storage server) at a random moment,
/// then a restart and a check of every name against what was acknowledged.
fn crash_round(cluster: &mut Cluster, round: u64) {
    let mut rng = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let kill_after_ops = 5 + (next() % 40) as usize;
    // Kill no storage server, one, or all of them with the naming server.
    let storage_kills = (next() % 3) as usize;
    let model: Mutex<BTreeMap<String, Allowed>> = Mutex::new(BTreeMap::new());
    let acknowledged = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let seeds: Vec<u64> = (0..2).map(|_| next()).collect();
    let shared: &Cluster = cluster;
    thread::scope(|scope| {
        for (client, &seed) in seeds.iter().enumerate() {
            let (model, acknowledged, stop, cluster) = (&model, &acknowledged, &stop, shared);
            scope.spawn(move || {
                let mut rng = seed | 1;
                let mut op = 0u64;
                while !stop.load(Ordering::Relaxed) && op < 10_000 {
                    op += 1;
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let name = format!("r{round}/c{client}/f{}", rng % 6);
                    let attempt = if rng % 5 == 0 {
                        None
                    } else {
                        Some(((rng >> 8) % (200 * 1024)) as usize)
                    };
                    let attempt = attempt.map(|len| (len, rng ^ op));
                    let outcome = match attempt {
                        Some((len, content_seed)) => cluster
                            .try_request(
                                "PUT",
                                &format!("/files/{name}?overwrite=true"),
                                &test_bytes(len, content_seed),
                            )
                            .map(|answer| answer.status),
                        None => cluster
                            .try_request("DELETE", &format!("/files/{name}"), &[])
                            .map(|answer| answer.status),
                    };
                    let mut model = model.lock().unwrap();
                    let allowed = model.entry(name).or_insert_with(|| vec![None]);
                    match outcome {
                        Ok(201 | 204) => {
                            *allowed = vec![attempt];
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(404) if attempt.is_none() => *allowed = vec![None],
                        // Failed or cut off: it may or may not have happened.
                        _ => allowed.push(attempt),
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while acknowledged.load(Ordering::Relaxed) < kill_after_ops && Instant::now() < deadline {
            thread::yield_now();
        }
        shared.naming_ref().kill_now();
        match storage_kills {
            0 => {}
            1 => shared.storage_ref((round % 3) as usize).kill_now(),
            _ => (0..3).for_each(|idx| shared.storage_ref(idx).kill_now()),
        }
        stop.store(true, Ordering::Relaxed);
    });
    cluster.kill_all_and_restart();
    let model = model.into_inner().unwrap();
    for (name, allowed) in &model {
        let read = cluster.get(name);
        let state = match read.status {
            404 => None,
            200 => {
                let found = allowed.iter().flatten().find(|(len, seed)| {
                    read.body.len() == *len && read.body == test_bytes(*len, *seed)
                });
                assert!(
                    found.is_some(),
                    "round {round}: {name} holds bytes no create wrote ({} bytes)",
                    read.body.len()
                );
                found.copied()
            }
            status => panic!("round {round}: reading {name} answered {status}"),
        };
        assert!(
            allowed.contains(&state),
            "round {round}: {name} is {state:?}, allowed {allowed:?}"
        );
    }
    eprintln!(
        "crash round {round}: killed after {kill_after_ops} acknowledged ops (storage servers killed: {}), {} names checked",
        [0, 1, 3][storage_kills],
        model.len()
    );
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let rounds = if slow_tests("17 more crash rounds") {
        20
    } else {
        3
    };
    let started = Instant::now();
    let mut cluster = Cluster::start(Spec {
        checkpoint_bytes: 64 * 1024,
        reconcile_ms: 500,
        ..Spec::default()
    });
    for round in 0..rounds {
        crash_round(&mut cluster, round);
    }
    // What the crashes left behind (chunks of creates that never committed,
    // of versions whose deletion was cut short) is reclaimed: in the end the
    // servers hold exactly `replication` copies of every chunk of every file.
    wait_until(
        Duration::from_secs(30),
        "orphaned chunks to be reclaimed",
        || {
            let expected = cluster.status_json()["chunks"].as_u64().unwrap() * 2;
            cluster.stored_chunks() == expected
        },
    );
    eprintln!("{rounds} crash rounds took {:?}", started.elapsed());
}

#[test]
fn a_torn_segment_tail_is_cut_and_the_lost_replicas_are_restored() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        reconcile_ms: 300,
        ..Spec::default()
    });
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|idx| (format!("f{idx}"), test_bytes(3000 + idx, idx as u64)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    cluster.storage(0).kill();
    // A crash mid-write: the newest segment loses the end of its last record.
    let segment = fs::read_dir(cluster.storage_dir(0))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "hseg"))
        .max()
        .unwrap();
    // The records end where the zeros written ahead of the appends begin
    // (give or take zero bytes ending the last chunk: the cut still falls
    // inside the last record).
    let bytes = fs::read(&segment).unwrap();
    let records_end = bytes.iter().rposition(|&byte| byte != 0).unwrap() as u64 + 1;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(records_end - 100)
        .unwrap();
    cluster.storage(0).restart();
    cluster.wait_healthy();
    let log = cluster.storage(0).log_text();
    assert!(log.contains("torn or corrupt tail"), "{log}");
    check_files(&cluster, &files);
    // The cut chunks are found missing and copied back from the other replica.
    wait_until(
        Duration::from_secs(15),
        "the cut replica to be restored",
        || {
            cluster.metric("harbour_chunks_re_replicated_total") > 0
                && cluster.status_json()["under_replicated"] == 0
        },
    );
}
