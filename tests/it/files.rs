//! SPEC promises 1 and 2 through the HTTP API: byte-exact round trips,
//! names, listing, stat, status, overwrite and concurrent creates.

use std::thread;

use common::limits::BATCH_CHUNKS_MAX;

use crate::cluster::{Cluster, Spec, test_bytes};

#[test]
fn round_trips_are_byte_exact_at_every_chunk_boundary() {
    let cluster = Cluster::start(Spec::default());
    for (idx, len) in [
        0usize,
        1,
        1023,
        1024,
        1025,
        2047,
        2048,
        2049,
        256 * 1024 + 1,
        // One batch whole (answered at once), and one chunk past it
        // (the second batch fetched while the first is sent).
        BATCH_CHUNKS_MAX * 1024,
        BATCH_CHUNKS_MAX * 1024 + 1,
        3 * 1024 * 1024 + 7,
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = test_bytes(len, idx as u64);
        let name = format!("f{len}");
        let created = cluster.put(&name, &bytes);
        assert_eq!(
            created.status,
            201,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        let created = created.json();
        assert_eq!(created["size"], len as u64);
        assert_eq!(created["chunks"], len.div_ceil(1024) as u64);
        let read = cluster.get(&name);
        assert_eq!(read.status, 200);
        assert_eq!(read.content_length, Some(len as u64));
        assert!(read.body == bytes, "bytes of a {len}-byte file differ");
        let head = cluster.request("HEAD", &format!("/files/{name}"), &[]);
        assert_eq!((head.status, head.content_length), (200, Some(len as u64)));
    }
}

#[test]
fn names_with_folders_spaces_unicode_and_escapes_round_trip() {
    let cluster = Cluster::start(Spec::default());
    let names = [
        ("a/b/c.txt", "a/b/c.txt"),
        ("with%20space", "with space"),
        ("%E6%96%87%E4%BB%B6/%C3%BC.bin", "文件/ü.bin"),
        ("100%25%3Fq%23x", "100%?q#x"),
        ("..not-a-segment%2Fx..", "..not-a-segment/x.."),
    ];
    for (idx, (encoded, decoded)) in names.iter().enumerate() {
        let bytes = test_bytes(100 + idx, idx as u64);
        assert_eq!(cluster.put(encoded, &bytes).status, 201, "{decoded}");
        assert_eq!(cluster.get(encoded).body, bytes, "{decoded}");
    }
    let listed = cluster.request("GET", "/files", &[]).json();
    let mut expected: Vec<&str> = names.iter().map(|(_, decoded)| *decoded).collect();
    expected.sort();
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn list_filters_by_prefix_and_reports_sizes() {
    let cluster = Cluster::start(Spec::default());
    for (name, len) in [("logs/b", 2), ("logs/a", 1), ("other", 3), ("logsx", 4)] {
        assert_eq!(cluster.put(name, &vec![7; len]).status, 201);
    }
    let mut listed = cluster.request("GET", "/files?prefix=logs%2F", &[]).json();
    for entry in listed.as_array_mut().unwrap() {
        // The times are checked in mtimes.rs.
        assert!(entry.as_object_mut().unwrap().remove("mtime").is_some());
    }
    assert_eq!(
        listed,
        serde_json::json!([{"name": "logs/a", "size": 1}, {"name": "logs/b", "size": 2}])
    );
    let all = cluster.request("GET", "/files", &[]).json();
    assert_eq!(all.as_array().unwrap().len(), 4);
}

#[test]
fn stat_shows_each_chunk_on_distinct_replicas() {
    let cluster = Cluster::start(Spec::default());
    // Three batches, the last one chunk of 5 bytes: rotation puts them on
    // three different pairs of the three servers.
    let chunks_count = 2 * BATCH_CHUNKS_MAX + 1;
    let bytes = test_bytes((chunks_count - 1) * 1024 + 5, 1);
    assert_eq!(cluster.put("s.bin", &bytes).status, 201);
    let stat = cluster.request("GET", "/stat/s.bin", &[]).json();
    assert_eq!(stat["name"], "s.bin");
    assert_eq!(stat["size"], bytes.len() as u64);
    assert_eq!(stat["chunk_count"], chunks_count as u64);
    let chunks = stat["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), chunks_count);
    let urls: Vec<String> = (0..3).map(|idx| cluster.storage_url(idx)).collect();
    let mut servers_used = std::collections::BTreeSet::new();
    for (idx, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["index"], idx as u64);
        assert_eq!(
            chunk["size"],
            if idx == chunks_count - 1 { 5 } else { 1024 }
        );
        let replicas: Vec<&str> = chunk["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(replicas.len(), 2);
        assert_ne!(replicas[0], replicas[1]);
        for replica in replicas {
            assert!(urls.iter().any(|url| url == replica), "{replica}");
            servers_used.insert(replica.to_owned());
        }
    }
    assert_eq!(
        servers_used.len(),
        3,
        "placement spreads chunks over every server"
    );
    let empty = cluster.put("empty", b"");
    assert_eq!(empty.status, 201);
    let mut stat = cluster.request("GET", "/stat/empty", &[]).json();
    assert!(stat.as_object_mut().unwrap().remove("mtime").is_some());
    assert_eq!(
        stat,
        serde_json::json!({"name": "empty", "size": 0, "chunk_count": 0, "chunks": []})
    );
    assert_eq!(cluster.request("GET", "/stat/missing", &[]).status, 404);
}

#[test]
fn status_counts_files_chunks_and_space() {
    let cluster = Cluster::start(Spec::default());
    assert_eq!(cluster.put("a", &vec![1; 2048]).status, 201);
    assert_eq!(cluster.put("b", &[1; 1]).status, 201);
    let status = cluster.status_json();
    assert_eq!(status["files"], 2);
    assert_eq!(status["chunks"], 3);
    assert_eq!(status["under_replicated"], 0);
    let servers = status["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    for server in servers {
        assert_eq!(server["alive"], true);
        assert!(server["capacity_bytes"].is_null());
        assert!(
            server["url"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:")
        );
    }
    // used_bytes is what the segment files take on disk, as the next
    // heartbeat reports it: every file byte twice, plus a 28-byte record
    // header per chunk and an 8-byte header per segment.
    let expected_used = 2 * (2049 + 3 * 28) + 3 * 8;
    let used = || -> u64 {
        let status = cluster.status_json();
        status["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|server| server["used_bytes"].as_u64().unwrap())
            .sum()
    };
    crate::cluster::wait_until(
        std::time::Duration::from_secs(10),
        "used bytes to be reported",
        || used() == expected_used,
    );
    assert_eq!(cluster.request("GET", "/health", &[]).status, 200);
    assert_eq!(cluster.metric("harbour_files"), 2);
}

#[test]
fn create_refuses_an_existing_name_unless_overwrite() {
    let cluster = Cluster::start(Spec::default());
    assert_eq!(cluster.put("a", b"first").status, 201);
    let again = cluster.put("a", b"second");
    assert_eq!(again.status, 409);
    assert!(again.error().contains("already exists"));
    assert_eq!(cluster.get("a").body, b"first");
    assert_eq!(
        cluster.put("a?overwrite=true", b"second, longer").status,
        201
    );
    assert_eq!(cluster.get("a").body, b"second, longer");
    assert_eq!(cluster.put("a?overwrite=maybe", b"x").status, 400);
}

#[test]
fn delete_removes_the_name_and_reclaims_the_chunks() {
    let cluster = Cluster::start(Spec::default());
    assert_eq!(cluster.put("a", &test_bytes(5000, 1)).status, 201);
    assert_eq!(cluster.stored_chunks(), 10);
    assert_eq!(cluster.delete("a").status, 204);
    assert_eq!(cluster.get("a").status, 404);
    assert_eq!(cluster.delete("a").status, 404);
    crate::cluster::wait_until(
        std::time::Duration::from_secs(10),
        "chunks to be deleted",
        || cluster.stored_chunks() == 0,
    );
}

#[test]
fn overwrite_is_atomic_for_concurrent_readers_and_reclaims_the_old_version() {
    let cluster = Cluster::start(Spec::default());
    let old = test_bytes(600 * 1024, 1);
    let new = test_bytes(700 * 1024, 2);
    assert_eq!(cluster.put("f", &old).status, 201);
    thread::scope(|scope| {
        let reader = scope.spawn(|| {
            for _ in 0..20 {
                let body = cluster.get("f").body;
                assert!(body == old || body == new, "a reader saw a mix of versions");
            }
        });
        for _ in 0..5 {
            assert_eq!(cluster.put("f?overwrite=true", &new).status, 201);
            assert_eq!(cluster.put("f?overwrite=true", &old).status, 201);
        }
        reader.join().unwrap();
    });
    crate::cluster::wait_until(
        std::time::Duration::from_secs(10),
        "old versions to be deleted",
        || cluster.stored_chunks() == 2 * 600,
    );
}

#[test]
fn of_concurrent_creates_of_one_name_exactly_one_wins() {
    let cluster = Cluster::start(Spec::default());
    let contenders = 8;
    let outcomes: Vec<(u16, Vec<u8>)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..contenders)
            .map(|idx| {
                let cluster = &cluster;
                scope.spawn(move || {
                    let bytes = test_bytes(200 * 1024, idx);
                    (cluster.put("contested", &bytes).status, bytes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let winners: Vec<&Vec<u8>> = outcomes
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, bytes)| bytes)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "statuses {:?}",
        outcomes
            .iter()
            .map(|(status, _)| status)
            .collect::<Vec<_>>()
    );
    assert!(
        outcomes
            .iter()
            .all(|(status, _)| *status == 201 || *status == 409)
    );
    assert!(cluster.get("contested").body == *winners[0]);
    crate::cluster::wait_until(
        std::time::Duration::from_secs(10),
        "losers' chunks to be deleted",
        || cluster.stored_chunks() == 2 * 200,
    );
}
