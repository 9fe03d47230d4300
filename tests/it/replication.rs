//! SPEC promise 4: when a storage server dies, its chunks are copied from
//! their surviving replicas until every chunk has `replication` replicas
//! again, so a second death loses nothing either.

use std::time::{Duration, Instant};

use common::limits::BATCH_CHUNKS_MAX;

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
        for replicas in cluster.chunk_replicas(name) {
            assert!(
                !replicas.contains(&dead),
                "{name} still placed on the dead server"
            );
        }
        assert!(
            cluster.get(name).body == *bytes,
            "{name} after the first death"
        );
    }
    assert!(cluster.metric("harbour_chunks_re_replicated_total") > 0);

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

#[test]
fn scrubbing_finds_rotten_chunks_and_they_are_repaired_from_a_good_replica() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        reconcile_ms: 300,
        ..Spec::default()
    });
    let bytes = test_bytes(600 * 1024 + 9, 12);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    let chunks = bytes.len().div_ceil(1024);
    // Rot some records of storage 0, behind everyone's back.
    for entry in std::fs::read_dir(cluster.storage_dir(0)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "hseg") {
            let mut data = std::fs::read(&path).unwrap();
            for at in (5000..data.len()).step_by(50_000) {
                data[at] ^= 0x40;
            }
            std::fs::write(&path, data).unwrap();
        }
    }
    let storage_status = |idx: usize| {
        crate::cluster::request_to(
            &cluster.agent,
            &format!("{}/status", cluster.storage_url(idx)),
            "GET",
            &[],
        )
        .unwrap()
        .json()
    };
    wait_until(Duration::from_secs(20), "the scrub to find the rot", || {
        storage_status(0)["corrupt_chunks_found"].as_u64().unwrap() > 0
    });
    // Both replicas serve every chunk intact again.
    let listing = crate::cluster::request_to(
        &cluster.agent,
        &format!("{}/blobs", cluster.storage_url(1)),
        "GET",
        &[],
    )
    .unwrap();
    let blob = u64::from_be_bytes(listing.body[..8].try_into().unwrap());
    wait_until(
        Duration::from_secs(30),
        "the rotten chunks to be repaired",
        || {
            (0..2).all(|idx| {
                (0..chunks).step_by(BATCH_CHUNKS_MAX).all(|first| {
                    let count = (chunks - first).min(BATCH_CHUNKS_MAX);
                    let url = format!(
                        "{}/chunks/{blob:016x}?first={first}&count={count}",
                        cluster.storage_url(idx)
                    );
                    crate::cluster::request_to(&cluster.agent, &url, "GET", &[])
                        .is_ok_and(|answer| answer.status == 200)
                })
            })
        },
    );
    assert!(cluster.get("f").body == bytes);
    assert_eq!(cluster.status_json()["under_replicated"], 0);
}

#[test]
fn a_drained_server_holds_nothing_and_can_be_removed_without_loss() {
    let mut cluster = Cluster::start(Spec::default());
    let files: Vec<(String, Vec<u8>)> = [1usize, 5000, 700 * 1024]
        .iter()
        .map(|&len| (format!("d{len}"), test_bytes(len, len as u64)))
        .collect();
    for (name, bytes) in &files {
        assert_eq!(cluster.put(name, bytes).status, 201);
    }
    let drained = cluster.storage_url(0);
    assert!(
        cluster.status_json()["servers"][0]["placed_chunks"]
            .as_u64()
            .unwrap()
            > 0
    );
    let answer = cluster.cli(&["drain", &drained]).assert_ok();
    assert!(
        answer.stdout_text().contains("draining"),
        "{}",
        answer.stdout_text()
    );
    cluster
        .cli(&["drain", "http://127.0.0.1:1"])
        .assert_fails(1, "not a storage server of this cluster");
    wait_until(Duration::from_secs(30), "the drain to finish", || {
        let status = cluster.status_json();
        status["servers"][0]["placed_chunks"] == 0 && status["under_replicated"] == 0
    });
    assert_eq!(cluster.status_json()["servers"][0]["draining"], true);
    // New files avoid it too.
    assert_eq!(cluster.put("after", b"placed elsewhere").status, 201);
    assert_eq!(cluster.status_json()["servers"][0]["placed_chunks"], 0);
    cluster.storage(0).kill();
    for (name, bytes) in &files {
        assert_eq!(
            cluster.chunk_replicas(name).len(),
            bytes.len().div_ceil(1024),
            "{name}"
        );
        assert!(
            cluster.get(name).body == *bytes,
            "{name} after removing the drained server"
        );
    }
    // The drain survives a restart of the naming server.
    cluster.naming().restart();
    wait_until(Duration::from_secs(10), "the naming server", || {
        cluster
            .try_request("GET", "/status", &[])
            .is_ok_and(|answer| answer.json()["servers"][0]["draining"] == true)
    });
}

#[test]
fn a_storage_server_started_with_join_grows_the_cluster_and_takes_replicas() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let bytes = test_bytes(300 * 1024, 21);
    assert_eq!(cluster.put("f", &bytes).status, 201);
    let dir = crate::cluster::test_dir();
    let args = vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        dir.join("joined").to_string_lossy().into_owned(),
    ];
    let joined = crate::cluster::Server::start_with_env(
        "harbour-storage",
        args,
        &[("NAMING_SERVER", &cluster.url())],
        dir.join("joined.log"),
    );
    let joined_url = format!("http://{}", joined.addr);
    wait_until(
        Duration::from_secs(15),
        "the joined server to be alive",
        || {
            let status = cluster.status_json();
            let servers = status["servers"].as_array().unwrap().clone();
            servers.len() == 3
                && servers[2]["url"] == joined_url.as_str()
                && servers[2]["alive"] == true
        },
    );
    // It takes the replicas of a dead server.
    cluster.storage(0).kill();
    wait_until(
        Duration::from_secs(30),
        "re-replication onto the joined server",
        || {
            let status = cluster.status_json();
            status["servers"][0]["alive"] == false && status["under_replicated"] == 0
        },
    );
    assert!(
        cluster.status_json()["servers"][2]["placed_chunks"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(cluster.get("f").body == bytes);
    // It is remembered across a naming restart.
    cluster.naming().restart();
    wait_until(Duration::from_secs(10), "the naming server", || {
        cluster
            .try_request("GET", "/status", &[])
            .is_ok_and(|answer| answer.json()["servers"][2]["url"] == joined_url.as_str())
    });
    assert!(cluster.get("f").body == bytes);
    drop(joined);
    let _ = std::fs::remove_dir_all(dir);
}
