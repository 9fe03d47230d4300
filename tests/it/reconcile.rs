//! Reconciliation of storage servers with the metadata: chunks no file
//! references (a crash mid-create, a delete whose storage call failed) are
//! reclaimed after a grace period; replicas a server lost are found and
//! copied back.

use std::time::Duration;

use common::limits::BATCH_CHUNKS_MAX;

use crate::cluster::{Cluster, Spec, request_to, test_bytes, wait_until};

/// The blobs a storage server lists at `GET /blobs`.
fn listed_blobs(cluster: &Cluster, idx: usize) -> Vec<(u64, u32)> {
    let answer = request_to(
        &cluster.agent,
        &format!("{}/blobs", cluster.storage_url(idx)),
        "GET",
        &[],
    )
    .unwrap();
    assert_eq!(answer.status, 200);
    answer
        .body
        .chunks(12)
        .map(|record| {
            (
                u64::from_be_bytes(record[..8].try_into().unwrap()),
                u32::from_be_bytes(record[8..].try_into().unwrap()),
            )
        })
        .collect()
}

#[test]
fn orphaned_chunks_are_reclaimed_and_lost_replicas_counted() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        reconcile_ms: 300,
        ..Spec::default()
    });
    let bytes = test_bytes(3000, 1);
    assert_eq!(cluster.put("kept", &bytes).status, 201);
    // Chunks of a blob no file references, as a crash mid-create leaves them.
    assert_eq!(
        cluster.put_chunks_directly(0, 0xfeed_0000, 0..3).status,
        201
    );
    assert_eq!(listed_blobs(&cluster, 0).len(), 2);
    wait_until(
        Duration::from_secs(15),
        "the orphan to be reclaimed",
        || listed_blobs(&cluster, 0).len() == 1,
    );
    assert_eq!(cluster.get("kept").body, bytes);
    assert_eq!(cluster.status_json()["under_replicated"], 0);

    // A server that lost a replica behind the naming server's back.
    let (blob, _) = listed_blobs(&cluster, 1)[0];
    let deleted = request_to(
        &cluster.agent,
        &format!("{}/blobs/{blob:016x}", cluster.storage_url(1)),
        "DELETE",
        &[],
    )
    .unwrap();
    assert_eq!(deleted.status, 204);
    // Reconciliation finds it missing, and re-replication gives the server
    // its copy back from the other replica.
    wait_until(
        Duration::from_secs(15),
        "the lost replica to be restored",
        || {
            listed_blobs(&cluster, 1)
                .iter()
                .any(|&(listed, chunks)| listed == blob && chunks == 3)
                && cluster.status_json()["under_replicated"] == 0
        },
    );
    assert_eq!(cluster.metric("harbour_chunks_re_replicated_total"), 3);
    assert_eq!(
        cluster.get("kept").body,
        bytes,
        "the other replica still serves it"
    );
}

#[test]
fn surplus_replicas_of_a_live_file_are_dropped() {
    let cluster = Cluster::start(Spec {
        reconcile_ms: 300,
        ..Spec::default()
    });
    // Two batches, so two runs placed on different pairs of servers.
    let chunks_count = BATCH_CHUNKS_MAX + 44;
    let bytes = test_bytes(chunks_count * 1024, 3);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    let stat = cluster.request("GET", "/stat/f", &[]).json();
    let replicas_of = |index: usize| -> Vec<String> {
        stat["chunks"][index]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let (first_run, second_run) = (replicas_of(0), replicas_of(chunks_count - 1));
    // A server that holds the second run but not the first.
    let idx = (0..3)
        .find(|&idx| {
            let url = cluster.storage_url(idx);
            second_run.contains(&url) && !first_run.contains(&url)
        })
        .expect("rotation puts the two runs on different pairs");
    let (blob, held) = listed_blobs(&cluster, idx)[0];
    assert_eq!(held as usize, chunks_count - BATCH_CHUNKS_MAX);
    // Give it copies of the first run too, as a server that was dead while
    // they moved away would still have them.
    let url = format!(
        "{}/chunks/{blob:016x}?first=0&count={BATCH_CHUNKS_MAX}",
        first_run[0]
    );
    let first_run_batch = request_to(&cluster.agent, &url, "GET", &[]).unwrap();
    assert_eq!(first_run_batch.status, 200);
    let put = request_to(
        &cluster.agent,
        &format!("{}/chunks", cluster.storage_url(idx)),
        "PUT",
        &first_run_batch.body,
    )
    .unwrap();
    assert_eq!(put.status, 201);
    assert_eq!(listed_blobs(&cluster, idx)[0].1 as usize, chunks_count);
    wait_until(Duration::from_secs(15), "the surplus to be dropped", || {
        listed_blobs(&cluster, idx)[0].1 as usize == chunks_count - BATCH_CHUNKS_MAX
    });
    assert!(cluster.get("f").body == bytes);
    assert_eq!(cluster.status_json()["under_replicated"], 0);
}
