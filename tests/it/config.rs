//! Configuration: flag beats env beats default, the effective values are
//! printed, and bad configuration stops a binary at start-up with one line.

use std::process::Command;

use crate::cluster::{Cluster, Spec, bin_path, clear_env, test_dir};

/// Runs `binary` with `args` and `env`, expecting it to refuse to start.
pub fn check_refused(binary: &str, args: &[&str], env: &[(&str, &str)], fragment: &str) {
    let dir = test_dir();
    let mut command = Command::new(bin_path(binary));
    command.args(args).current_dir(&dir);
    clear_env(&mut command);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{binary} {args:?} should refuse to start"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(fragment),
        "{:?} should contain {fragment:?}",
        lines[0]
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `check_refused` for `binary` started with enough settings to get past
/// the ones every start needs (a naming server its storage servers), and
/// `extra`.
pub fn check_server_refused(binary: &str, extra: &[&str], env: &[(&str, &str)], fragment: &str) {
    let dir = test_dir();
    let dir = dir.to_str().unwrap();
    let mut args = vec!["--listen", "127.0.0.1:0"];
    match binary {
        "harbour-naming" => args.extend([
            "--meta-dir",
            dir,
            "--storage-servers",
            "http://127.0.0.1:1",
            "--replication",
            "1",
        ]),
        _ => args.extend(["--data-dir", dir]),
    }
    args.extend(extra);
    check_refused(binary, &args, env, fragment);
}

const SERVERS: &str = "http://127.0.0.1:1,http://127.0.0.1:2";

#[test]
fn bad_naming_configuration_is_refused_with_one_line() {
    let listen = ["--listen", "127.0.0.1:0"];
    let with = |extra: &[&'static str]| [&listen[..], extra].concat();
    check_refused(
        "harbour-naming",
        &with(&["--storage-servers", SERVERS, "--replication", "0"]),
        &[],
        "--replication / REPLICATION_FACTOR",
    );
    check_refused(
        "harbour-naming",
        &with(&["--storage-servers", SERVERS, "--replication", "3"]),
        &[],
        "3 exceeds the 2 storage servers",
    );
    check_refused(
        "harbour-naming",
        &with(&[]),
        &[("STORAGE_SERVERS", SERVERS), ("REPLICATION_FACTOR", "two")],
        "REPLICATION_FACTOR",
    );
    check_refused(
        "harbour-naming",
        &with(&[]),
        &[],
        "exceeds the 0 storage servers",
    );
    check_refused(
        "harbour-naming",
        &with(&["--storage-servers", "127.0.0.1:8001"]),
        &[],
        "must start with http://",
    );
    check_refused(
        "harbour-naming",
        &with(&["--storage-servers", SERVERS, "--timeout-ms", "5s"]),
        &[],
        "--timeout-ms / REQUEST_TIMEOUT_MS",
    );
    check_refused(
        "harbour-naming",
        &with(&[
            "--storage-servers",
            SERVERS,
            "--meta-dir",
            "/proc/harbour-cannot",
        ]),
        &[],
        "--meta-dir / META_DIR",
    );
    check_refused(
        "harbour-naming",
        &["--listen", "nowhere", "--storage-servers", SERVERS],
        &[],
        "--listen / LISTEN_ADDR",
    );
    check_refused(
        "harbour-naming",
        &with(&["--storage-servers", SERVERS, "--bogus"]),
        &[],
        "--bogus",
    );
}

#[test]
fn bad_storage_configuration_is_refused_with_one_line() {
    check_refused(
        "harbour-storage",
        &["--listen", "127.0.0.1:0", "--capacity", "lots"],
        &[],
        "--capacity / CAPACITY_BYTES",
    );
    check_refused(
        "harbour-storage",
        &["--listen", "127.0.0.1:0"],
        &[("CAPACITY_BYTES", "-5")],
        "CAPACITY_BYTES",
    );
    check_refused(
        "harbour-storage",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/proc/harbour-cannot",
        ],
        &[],
        "--data-dir / DATA_DIR",
    );
    let file = test_dir().join("a-file");
    std::fs::write(&file, b"").unwrap();
    check_refused(
        "harbour-storage",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            file.to_str().unwrap(),
        ],
        &[],
        "DATA_DIR",
    );
}

#[test]
fn a_port_in_use_or_a_data_dir_in_use_is_refused() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let taken = cluster.storage(0).addr.to_string();
    check_refused(
        "harbour-storage",
        &["--listen", &taken],
        &[],
        "cannot listen on",
    );
    let data_dir = cluster.storage_dir(0);
    check_refused(
        "harbour-storage",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
        "in use by another harbour-storage",
    );
}

#[test]
fn flags_beat_env_which_beats_defaults_and_the_result_is_printed() {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let log = cluster.naming().log_text();
    assert!(log.contains("config: replication = 2 (flag)"), "{log}");
    assert!(log.contains("config: workers = 32 (default)"), "{log}");
    let dir = test_dir();
    let output = Command::new(bin_path("harbour-storage"))
        .args(["--listen", "127.0.0.1:0", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for word in [
        "--listen",
        "LISTEN_ADDR",
        "--data-dir",
        "DATA_DIR",
        "--capacity",
        "CAPACITY_BYTES",
    ] {
        assert!(help.contains(word), "storage --help mentions {word}");
    }
    // The environment gives the data dir, the flag overrides its listen address.
    let data_dir = dir.join("from-env");
    let server = crate::cluster::Server::start_with_env(
        "harbour-storage",
        vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()],
        &[
            ("DATA_DIR", data_dir.to_str().unwrap()),
            ("LISTEN_ADDR", "127.0.0.1:1"),
        ],
        dir.join("storage.log"),
    );
    let log = server.log_text();
    assert!(log.contains("config: listen = 127.0.0.1:0 (flag)"), "{log}");
    assert!(
        log.contains(&format!("config: data-dir = {} (env)", data_dir.display())),
        "{log}"
    );
    assert!(data_dir.is_dir());
    drop(server);
}
