//! SPEC promise 4: when a storage server dies, its chunks are copied from
//! their surviving replicas until every chunk has `replication` replicas
//! again, so a second death loses nothing either.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Spec, test_bytes, wait_until};

#[test]
fn a_dead_server_is_re_replicated_back_to_full_then_a_second_death_loses_nothing() {
    let mut cluster = Cluster::start(Spec::default());
    let files: Vec<(String, Vec<u8>)> = [0usize, 1, 1025, 600 * 1024 + 1, 2 * 1024 * 1024]
        .iter()
        .map(|&len| (format!("f{len}"), test_bytes(len, len as u64)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    cluster.storage(0).kill();
    let started = Instant::now();
    wait_until(Duration::from_secs(10), "the death to be noticed", || {
        cluster.status_json()["servers"][0]["alive"] == false
    });
    wait_until(
        Duration::from_secs(30),
        "re-replication back to full",
        || cluster.status_json()["under_replicated"] == 0,
    );
    eprintln!(
        "back to full replication {:?} after the kill",
        started.elapsed()
    );
    let dead = cluster.storage_url(0);
    for (name, bytes) in &files {
        let stat = cluster.request("GET", &format!("/stat/{name}"), &[]).json();
        for chunk in stat["chunks"].as_array().unwrap() {
            let replicas: Vec<&str> = chunk["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(replicas.len(), 2, "{name}");
            assert_ne!(replicas[0], replicas[1]);
            assert!(
                !replicas.contains(&dead.as_str()),
                "{name} still placed on the dead server"
            );
        }
        assert!(
            cluster.get(name).body == *bytes,
            "{name} after the first death"
        );
    }
    let metrics = String::from_utf8(cluster.request("GET", "/metrics", &[]).body).unwrap();
    assert!(
        !metrics.contains("harbour_chunks_re_replicated_total 0\n"),
        "{metrics}"
    );

    cluster.storage(1).kill();
    for (name, bytes) in &files {
        assert!(
            cluster.get(name).body == *bytes,
            "{name} after the second death"
        );
    }
    // The namespace survives a restart with the moves journaled.
    cluster.naming().restart();
    wait_until(
        Duration::from_secs(10),
        "the naming server to answer",
        || {
            cluster
                .try_request("GET", "/health", &[])
                .is_ok_and(|answer| answer.status == 200)
        },
    );
    for (name, bytes) in &files {
        assert!(
            cluster.get(name).body == *bytes,
            "{name} after a naming restart"
        );
    }
}
