//! The `harbour` client: every command, `--json`, exit codes, `error:`
//! lines, stdin and stdout, and no partial output file on failure.

use std::collections::HashSet;
use std::fs;

use common::limits::CHUNK_SIZE_BYTES;

use crate::cluster::{Cli, Cluster, Spec, test_bytes};

/// Temporary files `read` left in `dir` (there must never be any).
fn partial_files(dir: &std::path::Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .contains("harbour-partial")
        })
        .count()
}

#[test]
fn every_command_works_end_to_end() {
    let cluster = Cluster::start(Spec::default());
    let local = cluster.dir.join("local.bin");
    let bytes = test_bytes(5000, 9);
    fs::write(&local, &bytes).unwrap();
    let local = local.to_str().unwrap();

    cluster.cli(&["create", "docs/a.bin", local]).assert_ok();
    let out = cluster.dir.join("out.bin");
    cluster
        .cli(&["read", "docs/a.bin", out.to_str().unwrap()])
        .assert_ok();
    assert_eq!(fs::read(&out).unwrap(), bytes);

    let size = cluster
        .cli(&["size", "docs/a.bin"])
        .assert_ok()
        .stdout_text();
    assert_eq!(size.split_whitespace().next(), Some("5000"));
    let size = cluster
        .cli(&["size", "docs/a.bin", "--json"])
        .assert_ok()
        .stdout_text();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&size).unwrap(),
        serde_json::json!({"name": "docs/a.bin", "size": 5000})
    );

    cluster
        .cli(&["create", "b c", "-"])
        .stdin(b"hello")
        .assert_ok();
    let list = cluster.cli(&["list"]).assert_ok().stdout_text();
    assert_eq!(list, "b c\t5\ndocs/a.bin\t5000\n");
    let list = cluster
        .cli(&["list", "docs/", "--json"])
        .assert_ok()
        .stdout_text();
    let mut list = serde_json::from_str::<serde_json::Value>(&list).unwrap();
    // The modification time is checked in mtimes.rs.
    let mtime = list[0]
        .as_object_mut()
        .unwrap()
        .remove("mtime")
        .expect("an mtime");
    assert_eq!(mtime.as_str().map(str::len), Some(24));
    assert_eq!(
        list,
        serde_json::json!([{"name": "docs/a.bin", "size": 5000}])
    );

    let stat = cluster
        .cli(&["stat", "docs/a.bin"])
        .assert_ok()
        .stdout_text();
    assert!(stat.contains("chunks: 5"), "{stat}");
    assert!(
        stat.contains(&cluster.storage_url(0)) || stat.contains(&cluster.storage_url(1)),
        "{stat}"
    );
    let stat = cluster
        .cli(&["stat", "--json", "docs/a.bin"])
        .assert_ok()
        .stdout_text();
    let stat: serde_json::Value = serde_json::from_str(&stat).unwrap();
    assert_eq!(stat["chunk_count"], 5);
    assert_eq!(stat["chunks"][4]["size"], 5000 - 4 * 1024);

    let status = cluster.cli(&["status"]).assert_ok().stdout_text();
    assert!(status.contains(&cluster.storage_url(2)), "{status}");
    let status = cluster.cli(&["status", "--json"]).assert_ok().stdout_text();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["files"], 2);
    assert_eq!(status["servers"].as_array().unwrap().len(), 3);

    let read = cluster.cli(&["read", "b c", "-"]).assert_ok();
    assert_eq!(read.stdout, b"hello");
    cluster.cli(&["delete", "b c"]).assert_ok();
    cluster
        .cli(&["read", "b c", "-"])
        .assert_fails(1, "b c: no such file");
}

#[test]
fn create_refuses_an_existing_name_and_overwrite_replaces_it() {
    let cluster = Cluster::start(Spec::default());
    cluster
        .cli(&["create", "n.txt", "-"])
        .stdin(b"one")
        .assert_ok();
    cluster
        .cli(&["create", "n.txt", "-"])
        .stdin(b"two")
        .assert_fails(1, "n.txt: already exists (use --overwrite)");
    // A large body refused as a duplicate still gets its answer.
    let big = test_bytes(8 * 1024 * 1024, 3);
    cluster
        .cli(&["create", "n.txt", "-"])
        .stdin(&big)
        .assert_fails(1, "already exists");
    cluster
        .cli(&["create", "n.txt", "-", "--overwrite"])
        .stdin(&big)
        .assert_ok();
    assert!(cluster.cli(&["read", "n.txt", "-"]).assert_ok().stdout == big);
}

#[test]
fn failures_name_the_file_and_the_reason() {
    let cluster = Cluster::start(Spec::default());
    cluster
        .cli(&["size", "nope"])
        .assert_fails(1, "nope: no such file");
    cluster
        .cli(&["delete", "nope"])
        .assert_fails(1, "nope: no such file");
    cluster
        .cli(&["stat", "nope"])
        .assert_fails(1, "nope: no such file");
    cluster
        .cli(&["create", "x", "/definitely/not/here"])
        .assert_fails(1, "/definitely/not/here");
    cluster
        .cli(&["create", "a//b", "-"])
        .stdin(b"x")
        .assert_fails(1, "empty segment");
}

#[test]
fn a_read_into_a_device_or_a_named_pipe_streams_into_it_and_leaves_it_be() {
    use std::os::unix::fs::FileTypeExt;

    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let bytes = test_bytes(3 * 1024 * 1024 + 1, 11);
    cluster
        .cli(&["create", "f.bin", "-"])
        .stdin(&bytes)
        .assert_ok();
    // Renaming a finished download over OUT_PATH would replace the device
    // itself (CI runs as root, where that succeeds).
    cluster.cli(&["read", "f.bin", "/dev/null"]).assert_ok();
    let null = fs::metadata("/dev/null").unwrap();
    assert!(
        null.file_type().is_char_device(),
        "/dev/null is still a device"
    );

    let fifo = cluster.dir.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| fs::read(&fifo).unwrap());
        cluster
            .cli(&["read", "f.bin", fifo.to_str().unwrap()])
            .assert_ok();
        assert!(
            reader.join().unwrap() == bytes,
            "every byte through the pipe"
        );
    });
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(partial_files(&cluster.dir), 0);
}

#[test]
fn a_failed_read_leaves_no_partial_output() {
    let cluster = Cluster::start(Spec::default());
    let out = cluster.dir.join("never.bin");
    cluster
        .cli(&["read", "missing", out.to_str().unwrap()])
        .assert_fails(1, "missing: no such file");
    assert!(!out.exists());
    assert_eq!(partial_files(&cluster.dir), 0);
}

#[test]
fn usage_errors_exit_2() {
    Cli::new(&[]).assert_fails(2, "missing command");
    Cli::new(&["frobnicate"]).assert_fails(2, "unknown command");
    Cli::new(&["read", "only-one"]).assert_fails(2, "read takes NAME OUT_PATH");
    Cli::new(&["size", "a", "b"]).assert_fails(2, "size takes NAME");
    Cli::new(&["size", "a", "--bogus"]).assert_fails(2, "--bogus");
    Cli::new(&["delete", "a", "--overwrite"]).assert_fails(2, "--overwrite");
    Cli::new(&["status", "--timeout-ms", "soon"])
        .assert_fails(2, "--timeout-ms / REQUEST_TIMEOUT_MS");
    Cli::new(&["status", "--server", "ftp://x"]).assert_fails(2, "--server / NAME_SERVER");
    let help = Cli::new(&["--help"]).assert_ok().stdout_text();
    for command in [
        "create",
        "read",
        "size",
        "delete",
        "list",
        "stat",
        "status",
        "NAME_SERVER",
        "--json",
    ] {
        assert!(help.contains(command), "help mentions {command}");
    }
}

#[test]
fn an_unreachable_naming_server_is_one_clear_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    Cli::new(&["status"])
        .env("NAME_SERVER", &server)
        .assert_fails(
            1,
            &format!("cannot reach naming server at {server}: connection refused"),
        );
    Cli::new(&["list", "--server", &server]).assert_fails(1, "connection refused");
}

#[test]
fn a_frozen_naming_server_fails_the_client_within_its_timeout() {
    let mut cluster = Cluster::start(Spec::default());
    cluster.naming().freeze();
    let started = std::time::Instant::now();
    cluster
        .cli(&["status", "--timeout-ms", "500"])
        .assert_fails(1, "did not answer within 500 ms");
    eprintln!(
        "frozen naming server: client gave up after {:?}",
        started.elapsed()
    );
    cluster.naming().thaw();
}

#[test]
fn a_read_that_breaks_off_mid_file_leaves_no_partial_output() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let bytes = test_bytes(2 * 1024 * 1024, 5);
    cluster
        .cli(&["create", "f.bin", "-"])
        .stdin(&bytes)
        .assert_ok();
    // Rot every replica of the file's last quarter (chunks 1536..2048, in
    // its second batch): the first batch is served, then no replica can
    // serve the rest. Chunks are found by their bytes, since batches in
    // flight together may land on disk in either order.
    let last_quarter: HashSet<&[u8]> = bytes[bytes.len() * 3 / 4..]
        .chunks(CHUNK_SIZE_BYTES)
        .map(|chunk| &chunk[..16])
        .collect();
    let mut rotted = 0;
    for idx in 0..2 {
        for entry in fs::read_dir(cluster.storage_dir(idx)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "hseg") {
                let mut data = fs::read(&path).unwrap();
                let starts: Vec<usize> = (0..data.len().saturating_sub(16))
                    .filter(|&at| last_quarter.contains(&data[at..at + 16]))
                    .collect();
                for at in &starts {
                    data[at + 8] ^= 0xff;
                }
                rotted += starts.len();
                fs::write(&path, data).unwrap();
            }
        }
    }
    assert_eq!(
        rotted,
        2 * last_quarter.len(),
        "each chunk on both replicas"
    );
    let out = cluster.dir.join("out.bin");
    cluster
        .cli(&["read", "f.bin", out.to_str().unwrap()])
        .assert_fails(1, "f.bin: the transfer broke off");
    assert!(!out.exists(), "no partial OUT_PATH");
    assert_eq!(partial_files(&cluster.dir), 0);
    let to_stdout = cluster
        .cli(&["read", "f.bin", "-"])
        .assert_fails(1, "f.bin: the transfer broke off");
    assert!(to_stdout.stdout.len() < bytes.len());
}
