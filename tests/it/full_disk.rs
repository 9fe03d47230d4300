//! SPEC promise 7: a full storage server answers 507, the create fails with
//! 507 and a clear message, and nothing of it remains.

use std::time::Duration;

use crate::cluster::{Cluster, Spec, test_bytes, wait_until};

#[test]
fn a_create_larger_than_the_cluster_fails_507_and_leaves_nothing() {
    let cluster = Cluster::start(Spec {
        capacity_bytes: Some(300 * 1024),
        ..Spec::default()
    });
    let answer = cluster.put("big", &test_bytes(1024 * 1024, 1));
    assert_eq!(answer.status, 507);
    assert!(
        answer.error().contains("insufficient storage"),
        "{}",
        answer.error()
    );
    assert_eq!(cluster.get("big").status, 404);
    wait_until(
        Duration::from_secs(10),
        "partial chunks to be deleted",
        || cluster.stored_chunks() == 0,
    );
    // What fits still fits, and the CLI says what happened.
    assert_eq!(cluster.put("small", &test_bytes(100 * 1024, 2)).status, 201);
    let local = cluster.dir.join("big.bin");
    std::fs::write(&local, test_bytes(2 * 1024 * 1024, 3)).unwrap();
    cluster
        .cli(&["create", "big", local.to_str().unwrap()])
        .assert_fails(1, "big: insufficient storage on the cluster (HTTP 507)");
    let status = cluster.status_json();
    assert_eq!(status["files"], 1);
    assert_eq!(status["servers"][0]["capacity_bytes"], 300 * 1024);
}

#[test]
fn a_storage_server_over_capacity_answers_507_and_the_create_fails_507() {
    // Heartbeats so rare that the naming server cannot know the server filled up.
    let spec = Spec {
        storage: 2,
        capacity_bytes: Some(64 * 1024),
        heartbeat_ms: 60_000,
        dead_after_ms: 180_000,
        ..Spec::default()
    };
    let cluster = Cluster::start(spec);
    // Fill storage 0 behind the naming server's back.
    assert_eq!(cluster.put_chunks_directly(0, 0xdead, 0..60).status, 201);
    let refused = cluster.put_chunks_directly(0, 0xdead, 60..70);
    assert_eq!(refused.status, 507);
    assert!(refused.error().contains("insufficient storage"));

    let answer = cluster.put("f", &test_bytes(10 * 1024, 1));
    assert_eq!(answer.status, 507, "{}", answer.error());
    assert!(
        answer.error().contains(&cluster.storage_url(0)),
        "{}",
        answer.error()
    );
    assert_eq!(cluster.get("f").status, 404);
    wait_until(
        Duration::from_secs(10),
        "the other replica's chunks to be deleted",
        || cluster.stored_chunks() == 60,
    );
}
