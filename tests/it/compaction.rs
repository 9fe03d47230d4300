//! Storage compaction and the blob listing: deleted data gives its disk
//! space back without losing a live byte, across restarts, and `GET /blobs`
//! lists exactly what a server holds.

use std::collections::BTreeMap;
use std::time::Duration;

use common::chunk::{BlobId, ChunkId};
use common::wire::{Chunk, encode_batch};

use crate::cluster::{Cluster, Spec, request_to, test_bytes, wait_until};

const FILE_BYTES: usize = 512 * 1024;

/// A storage server's `GET /status`.
fn storage_status(cluster: &Cluster, idx: usize) -> serde_json::Value {
    let url = format!("{}/status", cluster.storage_url(idx));
    request_to(&cluster.agent, &url, "GET", &[]).unwrap().json()
}

/// A storage server's `GET /blobs`, decoded: blob id to chunk count.
fn blob_listing(cluster: &Cluster, idx: usize) -> BTreeMap<u64, u32> {
    let url = format!("{}/blobs", cluster.storage_url(idx));
    let mut response = cluster.agent.get(&url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").unwrap();
    assert_eq!(content_type.to_str().unwrap(), "application/octet-stream");
    let body = response.body_mut().read_to_vec().unwrap();
    assert_eq!(body.len() % 12, 0, "12-byte records");
    let records: Vec<(u64, u32)> = body
        .chunks(12)
        .map(|record| {
            (
                u64::from_be_bytes(record[..8].try_into().unwrap()),
                u32::from_be_bytes(record[8..].try_into().unwrap()),
            )
        })
        .collect();
    assert!(
        records.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "sorted by blob id, each once: {records:?}"
    );
    records.into_iter().collect()
}

fn put_chunks(cluster: &Cluster, idx: usize, blob: u64, count: u32) -> u16 {
    let chunks: Vec<Chunk> = (0..count)
        .map(|index| {
            let id = ChunkId {
                blob: BlobId(blob),
                index,
            };
            Chunk::new(id, test_bytes(1024, blob.wrapping_add(u64::from(index))))
        })
        .collect();
    let url = format!("{}/chunks", cluster.storage_url(idx));
    request_to(&cluster.agent, &url, "PUT", &encode_batch(&chunks))
        .unwrap()
        .status
}

fn delete_blob(cluster: &Cluster, idx: usize, blob: u64) -> u16 {
    let url = format!("{}/blobs/{}", cluster.storage_url(idx), BlobId(blob));
    request_to(&cluster.agent, &url, "DELETE", &[])
        .unwrap()
        .status
}

#[test]
fn deleted_files_give_their_disk_space_back_and_live_files_survive_restarts() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        replication: 2,
        ..Spec::default()
    });
    // 6 MiB on each server, past the size at which the background
    // compaction closes a sparse active segment.
    let files: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|seed| (format!("f{seed}"), test_bytes(FILE_BYTES, seed)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    let full_bytes = storage_status(&cluster, 0)["used_bytes"].as_u64().unwrap();
    assert!(full_bytes > 12 * FILE_BYTES as u64, "{full_bytes}");
    let (kept, deleted) = files.split_at(2);
    for (name, _) in deleted {
        assert_eq!(cluster.delete(name).status, 204);
    }

    let live_bytes = (kept.len() * FILE_BYTES) as u64;
    // Record headers are 28 bytes a KiB; allow them, magics and tombstones.
    let close_bytes = live_bytes + live_bytes / 30 + 16 * 1024;
    for idx in 0..2 {
        wait_until(
            Duration::from_secs(30),
            "compaction to give the deleted files' space back",
            || {
                let status = storage_status(&cluster, idx);
                status["live_bytes"] == live_bytes
                    && status["used_bytes"].as_u64().unwrap() <= close_bytes
            },
        );
        let status = storage_status(&cluster, idx);
        assert_eq!(status["used_bytes"], status["disk_bytes"]);
        assert_eq!(status["chunks"], 2 * FILE_BYTES as u64 / 1024);
    }
    let compacted: Vec<u64> = (0..2)
        .map(|idx| {
            storage_status(&cluster, idx)["used_bytes"]
                .as_u64()
                .unwrap()
        })
        .collect();

    for idx in 0..2 {
        cluster.storage(idx).restart();
    }
    cluster.wait_healthy();
    for (idx, &used_bytes) in compacted.iter().enumerate() {
        let status = storage_status(&cluster, idx);
        assert_eq!(status["live_bytes"], live_bytes);
        assert!(status["used_bytes"].as_u64().unwrap() <= used_bytes);
    }
    for (name, bytes) in kept {
        let answer = cluster.get(name);
        assert_eq!(answer.status, 200, "{name}");
        assert!(answer.body == *bytes, "{name} must read back byte-exact");
    }
    for (name, _) in deleted {
        assert_eq!(cluster.get(name).status, 404);
    }
    // Each server holds both live files, and nothing of the deleted ones.
    for idx in 0..2 {
        let counts: Vec<u32> = blob_listing(&cluster, idx).into_values().collect();
        assert_eq!(counts, vec![512, 512]);
    }
}

#[test]
fn the_blob_listing_holds_exactly_the_blobs_of_live_files() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        replication: 2,
        ..Spec::default()
    });
    let sizes = [1usize, 1024, 1025, 300_000, 5000];
    for (seed, &size) in sizes.iter().enumerate() {
        let name = format!("f{seed}");
        assert_eq!(
            cluster.put(&name, &test_bytes(size, seed as u64)).status,
            201
        );
    }
    assert_eq!(cluster.delete("f4").status, 204);
    // Deleting reaches the storage servers asynchronously.
    let mut expected = vec![1u32, 1, 2, 293];
    expected.sort_unstable();
    for idx in 0..2 {
        wait_until(
            Duration::from_secs(10),
            "the deleted file's blob to leave the listing",
            || blob_listing(&cluster, idx).len() == 4,
        );
        let mut counts: Vec<u32> = blob_listing(&cluster, idx).into_values().collect();
        counts.sort_unstable();
        assert_eq!(counts, expected);
    }
}

#[test]
fn the_blob_listing_names_each_blob_a_server_holds() {
    let cluster = Cluster::start(Spec {
        storage: 1,
        replication: 1,
        ..Spec::default()
    });
    assert!(blob_listing(&cluster, 0).is_empty());
    for (blob, count) in [(0x5000_0000_0000_0001u64, 3u32), (3, 1), (9, 256)] {
        assert_eq!(put_chunks(&cluster, 0, blob, count), 201);
    }
    assert_eq!(delete_blob(&cluster, 0, 3), 204);
    assert_eq!(
        blob_listing(&cluster, 0),
        BTreeMap::from([(9, 256), (0x5000_0000_0000_0001, 3)])
    );
    let url = format!("{}/blobs", cluster.storage_url(0));
    let refused = request_to(&cluster.agent, &url, "POST", b"").unwrap();
    assert_eq!(refused.status, 405);
}

#[test]
fn under_a_capacity_a_delete_makes_room_for_the_next_put() {
    let cluster = Cluster::start(Spec {
        storage: 1,
        replication: 1,
        capacity_bytes: Some(200 * 1024),
        ..Spec::default()
    });
    // 150 chunks take 150 * 1052 bytes on disk: two such puts do not fit
    // together, and the second fits only once the first is compacted away.
    assert_eq!(put_chunks(&cluster, 0, 1, 150), 201);
    assert_eq!(put_chunks(&cluster, 0, 2, 150), 507);
    assert_eq!(delete_blob(&cluster, 0, 1), 204);
    let status = storage_status(&cluster, 0);
    assert!(
        status["used_bytes"].as_u64().unwrap() < 1024,
        "the delete answers once its room is back: {status}"
    );
    assert_eq!(put_chunks(&cluster, 0, 2, 150), 201);
    let status = storage_status(&cluster, 0);
    assert_eq!(status["live_bytes"], 150 * 1024);
    assert_eq!(status["used_bytes"], status["disk_bytes"]);
    assert_eq!(status["capacity_bytes"], 200 * 1024);
    assert_eq!(blob_listing(&cluster, 0), BTreeMap::from([(2, 150)]));
}
