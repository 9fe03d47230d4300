//! `make test-docker`, the highly available compose file
//! (`docker-compose.ha.yml`: three etcd members, two naming servers, three
//! storage servers) for real: files written through both naming servers,
//! then `docker kill` of one, and the client goes on through the other
//! without losing a file. Runs only with HARBOUR_DOCKER_TESTS=1; removes
//! everything it started, also when it fails.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{Cli, opted_in, test_bytes, test_dir, wait_until};
use crate::docker::Compose;

const PROJECT: &str = "harbourha";
const BOTH: &str = "http://localhost:8000,http://localhost:8010";

fn cli(server: &str, args: &[&str]) -> Cli {
    Cli::new(args).env("NAME_SERVER", server)
}

/// Both naming servers answer, and see the three storage servers alive.
fn wait_healthy(within: Duration) {
    for server in ["http://localhost:8000", "http://localhost:8010"] {
        wait_until(within, &format!("{server} to be healthy"), || {
            let run = cli(server, &["status", "--json", "--timeout-ms", "2000"]).run();
            let status: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
            let servers = status["servers"].as_array().cloned().unwrap_or_default();
            run.code == 0 && servers.iter().filter(|s| s["alive"] == true).count() == 3
        });
    }
}

#[test]
fn docker_compose_ha_loses_no_file_when_a_naming_server_is_killed() {
    if !opted_in(
        "HARBOUR_DOCKER_TESTS",
        "the highly available compose cluster (make test-docker)",
    ) {
        return;
    }
    let dir = test_dir();
    let compose = Compose::of(PROJECT, "docker-compose.ha.yml", &[]);
    let started = Instant::now();
    compose.ok(&["up", "-d", "--build"]);
    wait_healthy(Duration::from_secs(240));
    println!(
        "compose ha: up --build to healthy in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut files = Vec::new();
    for idx in 0..20usize {
        let name = format!("ha/{idx}");
        let bytes = test_bytes(idx * 700, idx as u64);
        let local = dir.join("upload");
        fs::write(&local, &bytes).expect("write the upload");
        // Half through each naming server.
        let server = match idx % 2 {
            0 => "http://localhost:8000",
            _ => "http://localhost:8010",
        };
        cli(server, &["create", &name, local.to_str().expect("utf-8")]).assert_ok();
        files.push((name, bytes));
    }
    let victim = compose.container("naming1");
    Command::new("docker")
        .args(["kill", &victim])
        .output()
        .expect("docker kill");
    let killed = Instant::now();
    let out = dir.join("download");
    for (name, bytes) in &files {
        cli(BOTH, &["read", name, out.to_str().expect("utf-8")]).assert_ok();
        assert!(fs::read(&out).expect("read back") == *bytes, "{name}");
    }
    let local = dir.join("after");
    fs::write(&local, b"after the kill").expect("write");
    cli(
        BOTH,
        &["create", "ha/after", local.to_str().expect("utf-8")],
    )
    .assert_ok();
    println!(
        "compose ha: naming1 killed, every file read and a new one created through naming2 in {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    // An etcd member may go too: two of three keep the quorum.
    let member = compose.container("etcd3");
    Command::new("docker")
        .args(["kill", &member])
        .output()
        .expect("docker kill");
    cli(
        BOTH,
        &["create", "ha/quorum", local.to_str().expect("utf-8")],
    )
    .assert_ok();
    cli(BOTH, &["read", "ha/0", out.to_str().expect("utf-8")]).assert_ok();
}
