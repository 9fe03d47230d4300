//! `make test-docker`: the compose cluster for real, across containers,
//! driven from the host with the `harbour` binary against
//! http://localhost:8000. Runs only with HARBOUR_DOCKER_TESTS=1 (the
//! target builds the images first). Everything it starts is removed at the
//! end, also when it fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::cluster::{Cli, opted_in, test_bytes, test_dir, wait_until};

const PROJECT: &str = "harbourtest";
const NAMING_URL: &str = "http://localhost:8000";

/// A compose project; `down -v` in `Drop`, whatever happened.
pub struct Compose {
    root: PathBuf,
    project: &'static str,
    file: &'static str,
    /// More files, for what a test starts after `file`'s services.
    overrides: Vec<&'static str>,
    /// The files `down` also names, so that it removes their volumes too.
    down_overrides: &'static [&'static str],
}

impl Compose {
    fn new() -> Compose {
        Compose::of(
            PROJECT,
            "docker-compose.yml",
            &["tests/compose/third-storage.yml"],
        )
    }

    /// Project `project` of the compose file `file`, emptied of what an
    /// earlier, killed run left (it would hold the ports).
    pub fn of(
        project: &'static str,
        file: &'static str,
        down_overrides: &'static [&'static str],
    ) -> Compose {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let compose = Compose {
            root,
            project,
            file,
            overrides: Vec::new(),
            down_overrides,
        };
        compose.down();
        compose
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_with(&self.overrides, args)
    }

    /// `docker-compose` on `file` and `overrides`.
    fn command_with(&self, overrides: &[&str], args: &[&str]) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .current_dir(&self.root)
            .args(["-p", self.project, "-f", self.file]);
        for file in overrides {
            command.args(["-f", file]);
        }
        command.args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run docker-compose")
    }

    pub fn ok(&self, args: &[&str]) {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "docker-compose {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn container(&self, service: &str) -> String {
        let output = self.run(&["ps", "-q", service]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn down(&self) {
        let _ = self
            .command_with(self.down_overrides, &["down", "-v", "--remove-orphans"])
            .output();
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        // A paused container would hold up `down`.
        let output = self.run(&["ps", "-q"]);
        for id in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            let _ = Command::new("docker").args(["unpause", id]).output();
        }
        self.down();
    }
}

fn cli(args: &[&str]) -> Cli {
    Cli::new(args).env("NAME_SERVER", NAMING_URL)
}

fn wait_for_servers(alive: usize, within: Duration) {
    wait_until(within, "the compose cluster to be healthy", || {
        let run = cli(&["status", "--json", "--timeout-ms", "2000"]).run();
        if run.code != 0 {
            return false;
        }
        let status: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
        let servers = status["servers"].as_array().cloned().unwrap_or_default();
        servers
            .iter()
            .filter(|server| server["alive"] == true)
            .count()
            == alive
    });
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn docker_compose_cluster_works_across_containers() {
    if !opted_in(
        "HARBOUR_DOCKER_TESTS",
        "the compose cluster (make test-docker)",
    ) {
        return;
    }
    let dir = test_dir();
    let mut compose = Compose::new();
    let started = Instant::now();
    compose.ok(&["up", "-d", "--build"]);
    wait_for_servers(2, Duration::from_secs(180));
    println!(
        "compose: up --build to healthy in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "image: {}",
        docker(&[
            "images",
            "harbour:local",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.Size}}"
        ])
        .trim()
    );

    // Every operation, text and binary, 0 B to several MiB.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (idx, len) in [0usize, 1, 1023, 1024, 1025, 3 * 1024 * 1024 + 5]
        .into_iter()
        .enumerate()
    {
        files.push((format!("bin/{len}.bin"), test_bytes(len, idx as u64)));
    }
    files.push(("text/hello.txt".to_owned(), b"hello, harbour\n".to_vec()));
    for (name, bytes) in &files {
        let local = dir.join("upload");
        fs::write(&local, bytes).unwrap();
        cli(&["create", name, local.to_str().unwrap()]).assert_ok();
        let out = dir.join("download");
        cli(&["read", name, out.to_str().unwrap()]).assert_ok();
        assert!(fs::read(&out).unwrap() == *bytes, "{name} byte-exact");
        let size = cli(&["size", name]).assert_ok().stdout_text();
        assert_eq!(
            size.split_whitespace().next(),
            Some(bytes.len().to_string().as_str())
        );
    }
    let list = cli(&["list", "--json"]).assert_ok().stdout_text();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        files.len()
    );
    let stat = cli(&["stat", "--json", "bin/1025.bin"])
        .assert_ok()
        .stdout_text();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stat).unwrap()["chunk_count"],
        2
    );
    cli(&["status"]).assert_ok();
    // The published storage ports answer only the cluster: the secret the
    // compose file made is not the host's to know.
    for port in [8001, 8002] {
        let url = format!("http://127.0.0.1:{port}/blobs/0000000000000001");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let answer = agent.delete(&url).call().unwrap();
        assert_eq!(answer.status().as_u16(), 401, "{url} without credentials");
    }
    // The S3 API on the published port 9000, with the secret the compose
    // file made, as the README tells users to fetch it.
    let secret = compose.run(&["exec", "-T", "naming", "cat", "/secrets/s3-secret"]);
    let secret = String::from_utf8_lossy(&secret.stdout).into_owned();
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', aws_access_key_id='harbour', aws_secret_access_key='{}', region_name='us-east-1')\ns3.create_bucket(Bucket='compose')\ns3.put_object(Bucket='compose', Key='k/v.txt', Body=b'through s3')\nassert s3.get_object(Bucket='compose', Key='k/v.txt')['Body'].read() == b'through s3'\nprint('s3 ok')\n",
        secret.trim()
    );
    let s3 = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(
        String::from_utf8_lossy(&s3.stdout).contains("s3 ok"),
        "{}",
        String::from_utf8_lossy(&s3.stderr)
    );
    let through_cli = cli(&["read", "compose/k/v.txt", "-"])
        .assert_ok()
        .stdout_text();
    assert_eq!(through_cli, "through s3");
    cli(&["delete", "compose/k/v.txt"]).assert_ok();
    cli(&["create", "doomed", "-"]).stdin(b"x").assert_ok();
    cli(&["delete", "doomed"]).assert_ok();
    cli(&["read", "doomed", "-"]).assert_fails(1, "doomed: no such file");

    for service in ["naming", "storage1", "storage2"] {
        let stats = docker(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}",
            &compose.container(service),
        ]);
        println!("idle memory of {service}: {}", stats.trim());
    }
    let big = test_bytes(64 * 1024 * 1024, 64);
    let local = dir.join("big");
    fs::write(&local, &big).unwrap();
    let started = Instant::now();
    cli(&["create", "big.bin", local.to_str().unwrap()]).assert_ok();
    let up = started.elapsed().as_secs_f64();
    let started = Instant::now();
    cli(&["read", "big.bin", dir.join("big.out").to_str().unwrap()]).assert_ok();
    let down = started.elapsed().as_secs_f64();
    assert!(fs::read(dir.join("big.out")).unwrap() == big);
    println!(
        "compose: 64 MiB up {:.1} MiB/s, down {:.1} MiB/s",
        64.0 / up,
        64.0 / down
    );
    files.push(("big.bin".to_owned(), big));

    // down and up again, volumes kept: every file is still there.
    compose.ok(&["down"]);
    compose.ok(&["up", "-d"]);
    wait_for_servers(2, Duration::from_secs(120));
    for (name, bytes) in &files {
        let read = cli(&["read", name, "-"]).assert_ok();
        assert!(read.stdout == *bytes, "{name} survives down/up");
    }

    // One storage container stopped: reads still succeed from the other.
    compose.ok(&["stop", "storage2"]);
    for (name, bytes) in &files {
        assert!(
            cli(&["read", name, "-"]).assert_ok().stdout == *bytes,
            "{name} with storage2 stopped"
        );
    }
    compose.ok(&["start", "storage2"]);
    wait_for_servers(2, Duration::from_secs(60));

    // One paused: no request hangs past its timeout; reads fail over.
    let paused = compose.container("storage1");
    docker(&["pause", &paused]);
    let started = Instant::now();
    let read = cli(&["read", "bin/3145733.bin", "-"]).assert_ok();
    let elapsed = started.elapsed();
    docker(&["unpause", &paused]);
    println!(
        "read past a paused storage container: {:.1} s",
        elapsed.as_secs_f64()
    );
    assert!(read.stdout == files[5].1);
    assert!(
        elapsed < Duration::from_secs(30),
        "a paused replica delayed a read by {elapsed:?}"
    );
    wait_for_servers(2, Duration::from_secs(60));

    // A storage container with a small CAPACITY_BYTES: a clear 507, nothing left.
    compose.overrides.push("tests/compose/small-capacity.yml");
    compose.ok(&["up", "-d", "storage2"]);
    wait_for_servers(2, Duration::from_secs(60));
    let too_big = dir.join("too-big");
    fs::write(&too_big, test_bytes(2 * 1024 * 1024, 7)).unwrap();
    cli(&["create", "too-big.bin", too_big.to_str().unwrap()]).assert_fails(
        1,
        "too-big.bin: insufficient storage on the cluster (HTTP 507)",
    );
    cli(&["read", "too-big.bin", "-"]).assert_fails(1, "no such file");
    let list = cli(&["list", "--json"]).assert_ok().stdout_text();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        files.len()
    );
    drop(compose);
    let _ = fs::remove_dir_all(dir);
}

/// Creates a file while a fault is on; the create routes around it.
fn create_during(files: &mut Vec<(String, Vec<u8>)>, name: &str, when: &str) {
    let bytes = test_bytes(400 * 1024 + files.len(), files.len() as u64);
    let started = Instant::now();
    cli(&["create", name, "-", "--timeout-ms", "60000"])
        .stdin(&bytes)
        .assert_ok();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a create {when} took {:?}",
        started.elapsed()
    );
    files.push((name.to_owned(), bytes));
}

/// Reads every file through the cluster and checks its bytes and that no
/// read took longer than a timeout-bounded delay.
fn check_all_readable(files: &[(String, Vec<u8>)], when: &str) {
    for (name, bytes) in files {
        let started = Instant::now();
        let read = cli(&["read", name, "-"]).assert_ok();
        assert!(read.stdout == *bytes, "{name} byte-exact {when}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} took {:?} {when}",
            started.elapsed()
        );
    }
}

fn wait_for_full_replication(within: Duration, what: &str) {
    wait_until(within, what, || {
        let run = cli(&["status", "--json", "--timeout-ms", "2000"]).run();
        let status: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
        run.code == 0 && status["under_replicated"] == 0
    });
}

fn server_alive(idx: usize) -> bool {
    let run = cli(&["status", "--json", "--timeout-ms", "2000"]).run();
    let status: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap_or_default();
    status["servers"][idx]["alive"] == true
}

/// The host folder behind a named volume of the project (we run as root).
fn volume_dir(volume: &str) -> PathBuf {
    PathBuf::from(
        docker(&[
            "volume",
            "inspect",
            &format!("{PROJECT}_{volume}"),
            "--format",
            "{{.Mountpoint}}",
        ])
        .trim(),
    )
}

#[test]
fn docker_compose_faults_on_separate_hosts_lose_nothing() {
    if !opted_in(
        "HARBOUR_DOCKER_TESTS",
        "the compose fault tests (make test-docker)",
    ) {
        return;
    }
    let mut compose = Compose::new();
    compose.overrides = vec![
        "tests/compose/third-storage.yml",
        "tests/compose/fast-faults.yml",
    ];
    compose.ok(&["up", "-d", "--build"]);
    wait_for_servers(3, Duration::from_secs(180));
    let mut files: Vec<(String, Vec<u8>)> = [1usize, 1025, 300 * 1024, 2 * 1024 * 1024]
        .iter()
        .map(|&len| (format!("f{len}"), test_bytes(len, len as u64)))
        .collect();
    for (name, bytes) in &files {
        cli(&["create", name, "-"]).stdin(bytes).assert_ok();
    }

    // A link cut: storage1 leaves the network.
    let network = format!("{PROJECT}_default");
    let storage1 = compose.container("storage1");
    docker(&["network", "disconnect", &network, &storage1]);
    check_all_readable(&files, "with storage1 cut off");
    create_during(&mut files, "during-cut", "with storage1 cut off");
    wait_until(Duration::from_secs(30), "storage1 to be seen dead", || {
        !server_alive(0)
    });
    wait_for_full_replication(Duration::from_secs(60), "re-replication after the link cut");
    // Back with its service name, which compose gave it and a bare connect would not.
    docker(&[
        "network", "connect", "--alias", "storage1", &network, &storage1,
    ]);
    wait_for_servers(3, Duration::from_secs(60));
    check_all_readable(&files, "after the link came back");

    // A kill.
    let storage2 = compose.container("storage2");
    docker(&["kill", &storage2]);
    check_all_readable(&files, "with storage2 killed");
    create_during(&mut files, "during-kill", "with storage2 killed");
    wait_for_full_replication(Duration::from_secs(60), "re-replication after the kill");
    compose.ok(&["start", "storage2"]);
    wait_for_servers(3, Duration::from_secs(60));

    // A frozen server: requests go around it within their timeouts.
    let storage3 = compose.container("storage3");
    docker(&["pause", &storage3]);
    check_all_readable(&files, "with storage3 paused");
    create_during(&mut files, "during-pause", "with storage3 paused");
    wait_until(Duration::from_secs(30), "storage3 to be seen dead", || {
        !server_alive(2)
    });
    wait_for_full_replication(
        Duration::from_secs(60),
        "re-replication around the paused server",
    );
    docker(&["unpause", &storage3]);
    wait_for_servers(3, Duration::from_secs(60));

    // Bytes flipped in storage3's data files: never served, found, repaired.
    for entry in fs::read_dir(volume_dir("storage3-data")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "hseg") {
            let mut data = fs::read(&path).unwrap();
            for at in (4000..data.len()).step_by(20_000) {
                data[at] ^= 0x20;
            }
            // In place, so the running server's open file sees it.
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &data, 0).unwrap();
        }
    }
    check_all_readable(&files, "with storage3's bytes flipped");
    wait_for_full_replication(Duration::from_secs(60), "repair of the flipped chunks");

    // A wiped data folder.
    compose.ok(&["stop", "storage1"]);
    let data = volume_dir("storage1-data");
    for entry in fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let _ = fs::remove_file(&path);
    }
    compose.ok(&["start", "storage1"]);
    wait_for_servers(3, Duration::from_secs(60));
    check_all_readable(&files, "with storage1's data wiped");
    wait_for_full_replication(Duration::from_secs(60), "re-replication after the wipe");
    check_all_readable(&files, "at the end");
    drop(compose);
}
