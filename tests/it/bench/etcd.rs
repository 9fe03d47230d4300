//! `make bench`: the metadata on etcd beside the local journal, in the
//! same run: 1 KiB creates and reads (per second, p99, naming CPU per
//! operation), the etcd database's bytes per file, and failover times (the
//! upkeep leader killed until the other leads and has re-replicated; a
//! client whose first naming server is dead).

use std::time::{Duration, Instant};

use super::{bench_spec, bounds, enabled, row, small_files};
use crate::cluster::{Cli, Cluster, Spec, wait_until};
use crate::etcd::Etcd;

const FILES: u64 = 3000;

fn db_size(etcd: &Etcd) -> u64 {
    let status = etcd.call("/v3/maintenance/status", "{}");
    status["dbSize"]
        .as_str()
        .and_then(|size| size.parse().ok())
        .unwrap_or(0)
}

fn leads(log: &str) -> bool {
    log.rfind("this server leads upkeep")
        .is_some_and(|at| !log[at..].contains("no longer leads"))
}

#[test]
fn bench_metadata_on_etcd_beside_the_local_journal() {
    if !enabled() {
        return;
    }
    let local = Cluster::start(Spec {
        local_journal: true,
        ..bench_spec()
    });
    let bounds = bounds::measure(&local.dir, 64 << 20, local.spec.replication);
    println!(
        "{:<34} {:>22} {:>28} {:>6}  CPU per operation",
        "workload", "figure", "bound", "ratio"
    );
    small_files(&local, &bounds, "journal 1 KiB", FILES, "1KiB", 16);
    small_files(&local, &bounds, "journal 1 KiB", FILES, "1KiB", 1);
    drop(local);

    let dir = crate::cluster::test_dir();
    let etcd = Etcd::start(&dir, 3);
    let cluster = Cluster::start(Spec {
        etcd: Some(etcd.endpoints()),
        storage: 3,
        ..bench_spec()
    });
    small_files(&cluster, &bounds, "etcd x3 1 KiB", FILES, "1KiB", 16);
    small_files(&cluster, &bounds, "etcd x3 1 KiB", FILES, "1KiB", 1);
    // What FILES more files take in etcd's database (their revisions
    // included: the leader compacts a minute later).
    let prefix = "bench-etcd-size/";
    let before = db_size(&etcd);
    super::phase(&cluster, "create", prefix, FILES, "1KiB", 16);
    let after = db_size(&etcd);
    row(
        "etcd database per 1 KiB file",
        format!(
            "{:.0} B",
            after.saturating_sub(before) as f64 / FILES as f64
        ),
        None,
        None,
    );

    // A client whose first naming server is dead.
    let peer = cluster.start_naming_peer("b");
    let dead = "http://127.0.0.1:9";
    let both = format!("{dead},{}", peer.url());
    assert_eq!(cluster.put("probe", b"probe").status, 201);
    let started = Instant::now();
    Cli::new(&["read", "probe", "-"])
        .env("NAME_SERVER", &both)
        .assert_ok();
    row(
        "client read, first server dead",
        format!("{:.1} ms", started.elapsed().as_secs_f64() * 1e3),
        None,
        None,
    );

    // The upkeep leader killed: how long until the other leads, and until
    // it has re-replicated the chunks of a storage server killed with it.
    wait_until(Duration::from_secs(20), "an upkeep leader", || {
        leads(&cluster.naming_ref().log_text()) || leads(&peer.log_text())
    });
    let (leader, follower) = match leads(&cluster.naming_ref().log_text()) {
        true => (cluster.naming_ref(), &peer),
        false => (&peer, cluster.naming_ref()),
    };
    let agent = &cluster.agent;
    leader.kill_now();
    cluster.storage_ref(2).kill_now();
    let killed = Instant::now();
    wait_until(Duration::from_secs(60), "the follower to lead", || {
        leads(&follower.log_text())
    });
    let led = killed.elapsed();
    wait_until(Duration::from_secs(300), "re-replication", || {
        crate::cluster::request_to(agent, &format!("{}/status", follower.url()), "GET", &[])
            .is_ok_and(|answer| answer.json()["under_replicated"] == 0)
    });
    row(
        "leader killed -> other leads",
        format!("{:.1} s", led.as_secs_f64()),
        None,
        None,
    );
    row(
        "  -> re-replication done",
        format!("{:.1} s", killed.elapsed().as_secs_f64()),
        None,
        None,
    );
}
