//! `harbour bench`, the load generator: it runs its phases against a real
//! cluster, verifies what it reads, reports each phase, and leaves nothing
//! behind, also when interrupted.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cluster::{Cluster, Spec, bin_path, clear_env, wait_until};

fn files_count(cluster: &Cluster) -> u64 {
    cluster.status_json()["files"].as_u64().unwrap()
}

#[test]
fn a_bench_creates_reads_every_byte_deletes_and_reports_each_phase() {
    let cluster = Cluster::start(Spec::default());
    let run = cluster
        .cli(&[
            "bench",
            "--files",
            "30",
            "--size",
            "3000",
            "--workers",
            "4",
            "--json",
        ])
        .assert_ok();
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let phases = report["phases"].as_array().unwrap();
    let names: Vec<&str> = phases
        .iter()
        .map(|phase| phase["phase"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["create", "read", "delete"]);
    for phase in phases {
        assert_eq!(phase["ops"], 30, "{phase}");
        assert!(phase["ops_per_sec"].as_f64().unwrap() > 0.0);
        let latency = &phase["latency_ms"];
        assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
        assert!(latency["p99"].as_f64().unwrap() <= latency["max"].as_f64().unwrap());
    }
    assert_eq!(report["size_bytes"], 3000);
    assert_eq!(files_count(&cluster), 0);
    let table = cluster
        .cli(&["bench", "--files", "5", "--size", "1KiB"])
        .assert_ok()
        .stdout_text();
    assert!(
        table.contains("PHASE") && table.contains("create") && table.contains("delete"),
        "{table}"
    );
}

#[test]
fn a_bench_without_its_delete_phase_still_removes_what_it_wrote() {
    let cluster = Cluster::start(Spec::default());
    let run = cluster
        .cli(&[
            "bench",
            "--files",
            "12",
            "--size",
            "0",
            "--phases",
            "create,read",
            "--json",
        ])
        .assert_ok();
    assert!(
        run.stderr.contains("deleting the 12 files it left"),
        "{}",
        run.stderr
    );
    assert_eq!(files_count(&cluster), 0);
}

#[test]
fn an_interrupted_bench_removes_what_it_wrote() {
    let cluster = Cluster::start(Spec::default());
    let mut command = Command::new(bin_path("harbour"));
    clear_env(&mut command);
    let bench = command
        .args([
            "bench",
            "--files",
            "1000000",
            "--size",
            "1KiB",
            "--workers",
            "2",
        ])
        .env("NAME_SERVER", cluster.url())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "the bench to create files", || {
        files_count(&cluster) >= 20
    });
    let signalled = Command::new("kill")
        .args(["-INT", &bench.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let output = bench.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(files_count(&cluster), 0, "{stderr}");
}

#[test]
fn bench_options_are_checked() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    cluster
        .cli(&["bench", "--files", "0"])
        .assert_fails(2, "--files must be 1");
    cluster
        .cli(&["bench", "--size", "1.5M"])
        .assert_fails(2, "is not a size");
    cluster
        .cli(&["bench", "--phases", "create,upload"])
        .assert_fails(2, "\"upload\" is not create, read or delete");
    cluster
        .cli(&["bench", "extra"])
        .assert_fails(2, "bench takes no arguments");
}

#[test]
fn a_kept_run_leaves_its_files_for_a_later_run_of_the_same_prefix() {
    let cluster = Cluster::start(Spec::default());
    let common = [
        "--files", "7", "--size", "2500", "--prefix", "kept/", "--json",
    ];
    let create = [&["bench", "--phases", "create", "--keep"][..], &common[..]].concat();
    cluster.cli(&create).assert_ok();
    assert_eq!(files_count(&cluster), 7);
    let list = cluster.cli(&["list", "kept/"]).assert_ok().stdout_text();
    assert_eq!(list.lines().count(), 7, "{list}");
    // The read verifies the bytes the earlier run wrote; then they go.
    let rest = [&["bench", "--phases", "read,delete"][..], &common[..]].concat();
    let run = cluster.cli(&rest).assert_ok();
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["phases"][0]["ops"], 7);
    assert_eq!(files_count(&cluster), 0);
}
