//! SPEC "Security": storage servers answer only members of the cluster.
//! Calls without, with a wrong, an expired, a future, a replayed or a
//! misapplied credential are refused with 401 and change nothing; the
//! servers refuse to start without a secret unless `--insecure`; the
//! secret never shows in logs, `--help` or `/status`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::chunk::{BlobId, ChunkId};
use common::cluster_auth::{ClusterKey, Signer, unix_ms};
use common::limits::CLUSTER_CLOCK_SKEW_MS;
use common::wire::{BLOB_ENTRY_BYTES, Chunk, decode_blob_entry, encode_batch};

use crate::cluster::{
    Answer, Cluster, Server, Spec, TEST_CLUSTER_SECRET, bin_path, call, test_bytes, test_dir,
    wait_until,
};

fn test_key() -> ClusterKey {
    ClusterKey::new(TEST_CLUSTER_SECRET).unwrap()
}

/// Every blob a storage server holds, from its listing.
fn blobs_on(cluster: &Cluster, idx: usize) -> Vec<u64> {
    let answer = call(
        &format!("{}/blobs", cluster.storage_url(idx)),
        "GET",
        Some(&Signer::new(test_key()).authorization("GET", "/blobs")),
        &[],
    );
    assert_eq!(answer.status, 200);
    answer
        .body
        .chunks_exact(BLOB_ENTRY_BYTES)
        .map(|entry| decode_blob_entry(entry.try_into().unwrap()).0.0)
        .collect()
}

fn assert_refused(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        401,
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let error = answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("cluster credentials"), "{what}: {error}");
}

#[test]
fn storage_refuses_every_call_without_valid_credentials_and_changes_nothing() {
    let cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(5000, 1);
    assert_eq!(cluster.put("kept", &bytes).status, 201);
    let stored = cluster.stored_chunks();
    let other_key = ClusterKey::new("some other secret, long enough").unwrap();
    let now = unix_ms();
    let stale = now - 2 * CLUSTER_CLOCK_SKEW_MS;
    let future = now + 2 * CLUSTER_CLOCK_SKEW_MS;
    let attack_chunk = Chunk::new(
        ChunkId {
            blob: BlobId(1),
            index: 0,
        },
        vec![0xEE; 1024],
    );
    for idx in 0..2 {
        let base = cluster.storage_url(idx);
        for blob in blobs_on(&cluster, idx) {
            let target = format!("/blobs/{}", BlobId(blob));
            let url = format!("{base}{target}");
            let wrong = [
                ("no credentials", None),
                ("a bearer token", Some("Bearer anything".to_owned())),
                ("garbage", Some("Harbour-Cluster t=1,n=2,s=3".to_owned())),
                (
                    "another secret",
                    Some(other_key.authorization("DELETE", &target, now, 1)),
                ),
                (
                    "an expired credential",
                    Some(test_key().authorization("DELETE", &target, stale, 2)),
                ),
                (
                    "a credential from the future",
                    Some(test_key().authorization("DELETE", &target, future, 3)),
                ),
                (
                    "a credential for GET",
                    Some(test_key().authorization("GET", &target, now, 4)),
                ),
                (
                    "a credential for another path",
                    Some(test_key().authorization("DELETE", "/blobs/ffffffffffffffff", now, 5)),
                ),
            ];
            for (what, authorization) in &wrong {
                assert_refused(&call(&url, "DELETE", authorization.as_deref(), &[]), what);
            }
        }
        // Overwriting and reading chunks, and the status, are closed too.
        let batch = encode_batch(std::slice::from_ref(&attack_chunk));
        assert_refused(&call(&format!("{base}/chunks"), "PUT", None, &batch), "PUT");
        assert_refused(
            &call(
                &format!("{base}/chunks/0000000000000001?first=0&count=1"),
                "GET",
                None,
                &[],
            ),
            "GET chunks",
        );
        assert_refused(&call(&format!("{base}/status"), "GET", None, &[]), "status");
        assert_refused(
            &call(&format!("{base}/blobs/delete"), "POST", None, &[0; 8]),
            "POST",
        );
        // The health check stays open.
        assert_eq!(
            call(&format!("{base}/health"), "GET", None, &[]).status,
            200
        );
    }
    assert_eq!(cluster.stored_chunks(), stored, "nothing changed on disk");
    let read = cluster.get("kept");
    assert_eq!(read.status, 200);
    assert!(read.body == bytes, "the file reads back intact");
}

#[test]
fn a_captured_credential_cannot_be_replayed() {
    let cluster = Cluster::start(Spec::default());
    let base = cluster.storage_url(0);
    let signer = Signer::new(test_key());
    let put = |blob: u64| {
        let chunk = Chunk::new(
            ChunkId {
                blob: BlobId(blob),
                index: 0,
            },
            vec![9; 1024],
        );
        let batch = encode_batch(&[chunk]);
        let authorization = signer.authorization("PUT", "/chunks");
        call(
            &format!("{base}/chunks"),
            "PUT",
            Some(&authorization),
            &batch,
        )
    };
    assert_eq!(put(0xfeed).status, 201);
    let target = format!("/blobs/{}", BlobId(0xfeed));
    let captured = signer.authorization("DELETE", &target);
    let url = format!("{base}{target}");
    assert_eq!(call(&url, "DELETE", Some(&captured), &[]).status, 204);
    assert_eq!(cluster.stored_chunks_on(&[0]), 0);
    // Stored again; the captured delete, sent again, is refused.
    assert_eq!(put(0xfeed).status, 201);
    let replayed = call(&url, "DELETE", Some(&captured), &[]);
    assert_refused(&replayed, "a replayed delete");
    assert!(String::from_utf8_lossy(&replayed.body).contains("already used"));
    assert_eq!(
        cluster.stored_chunks_on(&[0]),
        1,
        "the chunk is still there"
    );
}

#[test]
fn registering_a_storage_server_needs_cluster_credentials() {
    let cluster = Cluster::start(Spec::default());
    let target = "/servers?url=http%3A%2F%2F127.0.0.1%3A9";
    let url = format!("{}{target}", cluster.url());
    let servers = || cluster.status_json()["servers"].as_array().unwrap().len();
    let before = servers();
    assert_refused(&call(&url, "POST", None, &[]), "an anonymous registration");
    let other_key = ClusterKey::new("some other secret, long enough").unwrap();
    let forged = other_key.authorization("POST", target, unix_ms(), 1);
    assert_refused(
        &call(&url, "POST", Some(&forged), &[]),
        "a forged registration",
    );
    assert_eq!(servers(), before, "nothing registered");
    let signed = Signer::new(test_key()).authorization("POST", target);
    assert_eq!(call(&url, "POST", Some(&signed), &[]).status, 200);
    assert_eq!(servers(), before + 1);
}

#[test]
fn a_naming_server_with_another_secret_cannot_use_the_storage_servers() {
    let cluster = Cluster::start(Spec::default());
    let dir = test_dir();
    let urls = format!("{},{}", cluster.storage_url(0), cluster.storage_url(1));
    let meta_dir = dir.join("meta");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--storage-servers",
        &urls,
        "--meta-dir",
        meta_dir.to_str().unwrap(),
    ];
    let mut stranger = Server::start_with_env(
        "harbour-naming",
        args.iter().map(|arg| arg.to_string()).collect(),
        &[("CLUSTER_SECRET", "not the cluster's secret at all")],
        dir.join("stranger.log"),
    );
    let answer = call(
        &format!("http://{}/files/nope", stranger.addr),
        "PUT",
        None,
        b"refused by every storage server",
    );
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let status: serde_json::Value = serde_json::from_slice(
        &call(
            &format!("http://{}/status", stranger.addr),
            "GET",
            None,
            &[],
        )
        .body,
    )
    .unwrap();
    assert!(
        status["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|server| server["alive"] == false),
        "{status}"
    );
    // The log says why, once per server, not every heartbeat.
    wait_until(Duration::from_secs(5), "a few heartbeats", || {
        stranger
            .log_text()
            .matches("refuses this server's cluster credentials")
            .count()
            == 2
    });
    // Two more heartbeat rounds (one a second) say nothing new.
    let counted = std::time::Instant::now();
    wait_until(Duration::from_secs(5), "two more heartbeat rounds", || {
        counted.elapsed() > Duration::from_millis(2500)
    });
    let log = stranger.log_text();
    assert_eq!(
        log.matches("refuses this server's cluster credentials")
            .count(),
        2,
        "{log}"
    );
    assert!(!log.contains(TEST_CLUSTER_SECRET) && !log.contains("not the cluster's secret at all"));
    stranger.kill();
    assert_eq!(cluster.stored_chunks(), 0);
}

/// Runs `binary --listen 127.0.0.1:0 EXTRA` with only `env`, expecting it
/// to stop at start-up; returns its stderr.
fn refused_start(binary: &str, extra: &[&str], env: &[(&str, &str)]) -> String {
    let dir = test_dir();
    let mut command = Command::new(bin_path(binary));
    command
        .env_clear()
        .current_dir(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    assert!(
        !output.status.success(),
        "{binary} {extra:?} must not start"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn without_a_secret_the_servers_refuse_to_start_unless_insecure_which_they_say_loudly() {
    let naming_extra = ["--storage-servers", "http://127.0.0.1:1,http://127.0.0.1:2"];
    for (binary, extra) in [
        ("harbour-storage", &[][..]),
        ("harbour-naming", &naming_extra[..]),
    ] {
        let stderr = refused_start(binary, extra, &[]);
        assert!(stderr.contains("no cluster secret"), "{binary}: {stderr}");
        let short = refused_start(binary, extra, &[("CLUSTER_SECRET", "short")]);
        assert!(short.contains("at least 16"), "{binary}: {short}");
        let both = [extra, &["--insecure"]].concat();
        let contradiction =
            refused_start(binary, &both, &[("CLUSTER_SECRET", TEST_CLUSTER_SECRET)]);
        assert!(
            contradiction.contains("choose one"),
            "{binary}: {contradiction}"
        );
    }
    // A secret file others can read is refused; the owner's alone is used.
    let dir = test_dir();
    let secret_file = dir.join("cluster-secret");
    fs::write(&secret_file, "the secret of the file, not the env\n").unwrap();
    fs::set_permissions(&secret_file, fs::Permissions::from_mode(0o640)).unwrap();
    let file_arg = secret_file.to_str().unwrap();
    let stderr = refused_start("harbour-storage", &["--cluster-secret-file", file_arg], &[]);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    fs::set_permissions(&secret_file, fs::Permissions::from_mode(0o600)).unwrap();
    let data_dir = dir.join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--cluster-secret-file",
        file_arg,
        "--data-dir",
    ];
    let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    args.push(data_dir.to_str().unwrap().to_owned());
    let mut storage = Server::start("harbour-storage", args, dir.join("file.log"));
    let base = format!("http://{}", storage.addr);
    let file_key = ClusterKey::new("the secret of the file, not the env").unwrap();
    let by_file = Signer::new(file_key).authorization("GET", "/status");
    assert_eq!(
        call(&format!("{base}/status"), "GET", Some(&by_file), &[]).status,
        200
    );
    let by_env = Signer::new(test_key()).authorization("GET", "/status");
    assert_refused(
        &call(&format!("{base}/status"), "GET", Some(&by_env), &[]),
        "env secret",
    );
    storage.kill();
    // --insecure: it starts, says so on stderr, and anyone may call it.
    let args = ["--listen", "127.0.0.1:0", "--insecure", "--data-dir"];
    let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    args.push(dir.join("insecure").to_str().unwrap().to_owned());
    let mut storage = Server::start_with_env(
        "harbour-storage",
        args,
        &[("CLUSTER_SECRET", "")],
        dir.join("insecure.log"),
    );
    let log = storage.log_text();
    assert!(log.contains("WARNING: running with --insecure"), "{log}");
    let base = format!("http://{}", storage.addr);
    assert_eq!(
        call(&format!("{base}/status"), "GET", None, &[]).status,
        200
    );
    storage.kill();
}

#[test]
fn the_secret_never_shows_in_logs_help_or_status() {
    // At debug, with a token: request lines are logged, and name the
    // token by its label only.
    let token = "secret-token-0123456789";
    let mut cluster = Cluster::start(Spec {
        api_tokens: Some("secret-token-0123456789 admin ops\n"),
        token: Some(token),
        env: vec![("LOG_LEVEL", "debug")],
        ..Spec::default()
    });
    assert_eq!(cluster.put("a", b"some bytes").status, 201);
    let storage_metrics = call(
        &format!("{}/metrics", cluster.storage_url(0)),
        "GET",
        None,
        &[],
    );
    assert_eq!(storage_metrics.status, 200, "open, as /health");
    wait_until(Duration::from_secs(5), "the PUT's request line", || {
        cluster.naming_ref().log_text().contains("PUT /files/a 201")
    });
    let mut seen = vec![
        String::from_utf8_lossy(&storage_metrics.body).into_owned(),
        String::from_utf8_lossy(&cluster.request("GET", "/status", &[]).body).into_owned(),
        String::from_utf8_lossy(&cluster.request("GET", "/metrics", &[]).body).into_owned(),
        cluster.naming().log_text(),
        cluster.storage(0).log_text(),
        cluster.storage(1).log_text(),
    ];
    for binary in ["harbour-naming", "harbour-storage", "harbour"] {
        let output = Command::new(bin_path(binary))
            .arg("--help")
            .env_clear()
            .env("CLUSTER_SECRET", TEST_CLUSTER_SECRET)
            .output()
            .unwrap();
        seen.push(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    assert!(seen[3].contains("bytes from CLUSTER_SECRET"), "{}", seen[3]);
    assert!(seen[3].contains("token=\"ops\""), "{}", seen[3]);
    for text in &seen {
        assert!(!text.contains(TEST_CLUSTER_SECRET), "{text}");
        assert!(!text.contains(token), "{text}");
    }
}

#[test]
fn a_link_planted_in_a_server_folder_is_never_followed() {
    let mut cluster = Cluster::start(Spec {
        checkpoint_bytes: 4096,
        local_journal: true,
        ..Spec::default()
    });
    let bytes = test_bytes(3000, 1);
    assert_eq!(cluster.put("a", &bytes).status, 201);
    let outside = cluster.dir.join("outside");
    fs::write(&outside, b"precious, and not the servers'").unwrap();
    // Storage: a segment name pointing out of the folder stops the start.
    cluster.storage(0).kill();
    let link = cluster.storage_dir(0).join("segment-00009999.hseg");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let output = Command::new(bin_path("harbour-storage"))
        .env_clear()
        .env("CLUSTER_SECRET", TEST_CLUSTER_SECRET)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(cluster.storage_dir(0))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    fs::remove_file(&link).unwrap();
    cluster.storage(0).restart();
    cluster.wait_healthy();
    // Naming: a checkpoint written while `checkpoint.tmp` is a planted link
    // replaces the link, never the file it points to.
    let planted = cluster.meta_dir().join("checkpoint.tmp");
    std::os::unix::fs::symlink(&outside, &planted).unwrap();
    let long = "n".repeat(200);
    for idx in 0..40 {
        assert_eq!(
            cluster
                .put(&format!("{long}{idx}"), b"grow the journal")
                .status,
            201
        );
    }
    wait_until(Duration::from_secs(10), "a checkpoint", || {
        cluster.meta_dir().join("checkpoint").is_file() && !planted.exists()
    });
    assert_eq!(
        fs::read(&outside).unwrap(),
        b"precious, and not the servers'"
    );
    assert!(cluster.get("a").body == bytes);
    cluster.naming().restart();
    cluster.wait_healthy();
    assert_eq!(cluster.get(&format!("{long}39")).body, b"grow the journal");
}
