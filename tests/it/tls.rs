//! SPEC "Security", TLS: with `--tls-cert-file` and `--tls-key-file`
//! every server serves HTTPS; the naming server, storage servers joining
//! and the CLI verify their peers against `--ca-file` (or the system's
//! roots). A certificate from another CA, or none, is refused; plain HTTP
//! to a TLS port is not served; bad TLS settings stop a server at start.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::ClientTls;

use crate::cluster::{
    Cli, Cluster, Server, Spec, bin_path, call, clear_env, raw_exchange, request_to, test_bytes,
    test_dir, wait_until,
};
use crate::config::check_server_refused;
use crate::pki::{TestPki, write_private};

fn tls_cluster(storage: usize, replication: usize) -> Cluster {
    Cluster::start(Spec {
        storage,
        replication,
        tls: true,
        ..Spec::default()
    })
}

fn pki(cluster: &Cluster) -> &TestPki {
    cluster.pki.as_ref().expect("a TLS cluster")
}

#[test]
fn files_round_trip_byte_exact_over_https_end_to_end() {
    let cluster = tls_cluster(3, 2);
    assert!(cluster.url().starts_with("https://127.0.0.1:"));
    let sizes = [0, 1, 1023, 1024, 1025, 3 * 1024 + 7, 64 * 1024 + 1];
    for (seed, &size) in sizes.iter().enumerate() {
        let bytes = test_bytes(size, seed as u64);
        let name = format!("tls/{size}");
        cluster
            .cli(&["create", &name, "-"])
            .stdin(&bytes)
            .assert_ok();
        let read = cluster.cli(&["read", &name, "-"]).assert_ok();
        assert!(
            read.stdout == bytes,
            "{name}: bytes differ after a round trip"
        );
        // The test agent over HTTPS sees the same bytes.
        assert_eq!(cluster.get(&name.replace('/', "%2F")).body, bytes);
    }
    // Every chunk went to storage servers over HTTPS, where it is.
    let replicas = cluster.chunk_replicas("tls%2F1025");
    assert!(
        replicas
            .iter()
            .flatten()
            .all(|url| url.starts_with("https://")),
        "{replicas:?}"
    );
    let chunks: u64 = sizes.iter().map(|&size| size.div_ceil(1024) as u64).sum();
    assert_eq!(cluster.stored_chunks(), chunks * 2);
    let status = cluster.cli(&["status"]).assert_ok().stdout_text();
    assert_eq!(status.matches("https://127.0.0.1:").count(), 3, "{status}");
    for &size in &sizes {
        cluster.cli(&["delete", &format!("tls/{size}")]).assert_ok();
    }
    assert_eq!(cluster.cli(&["list"]).assert_ok().stdout_text(), "");
}

#[test]
fn plain_http_to_a_tls_port_is_not_served_and_changes_nothing() {
    let cluster = tls_cluster(2, 2);
    assert_eq!(cluster.put("kept", &test_bytes(3000, 1)).status, 201);
    let before = cluster.stored_chunks();
    let storage = cluster.storage_ref(0).addr;
    let plain = raw_exchange(
        storage,
        b"DELETE /blobs/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(2),
    );
    assert!(
        !plain.starts_with(b"HTTP/"),
        "a plain HTTP answer from a TLS port: {:?}",
        String::from_utf8_lossy(&plain)
    );
    let naming = cluster.naming_ref().addr;
    let plain = raw_exchange(
        naming,
        b"GET /files/kept HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    );
    assert!(!plain.starts_with(b"HTTP/"), "{plain:?}");
    // The CLI pointed at the http:// URL of an HTTPS server says so.
    Cli::new(&["status"])
        .env("NAME_SERVER", &format!("http://{naming}"))
        .assert_fails(1, "does not answer plain HTTP");
    assert_eq!(cluster.stored_chunks(), before);
    assert_eq!(cluster.get("kept").body, test_bytes(3000, 1));
}

#[test]
fn a_certificate_from_another_ca_is_refused_by_the_cli_and_the_naming_server() {
    let cluster = tls_cluster(2, 2);
    let dir = test_dir();
    let stranger_ca = TestPki::new(&dir, "stranger");
    // The CLI trusting another CA, or only the system's roots.
    Cli::new(&["status"])
        .env("NAME_SERVER", &cluster.url())
        .env("TLS_CA_FILE", &stranger_ca.ca_arg())
        .assert_fails(1, "certificate is not trusted");
    Cli::new(&["list"])
        .env("NAME_SERVER", &cluster.url())
        .assert_fails(1, "certificate is not trusted");
    // A CA file that holds no certificate is a usage error.
    Cli::new(&["list"])
        .env("NAME_SERVER", &cluster.url())
        .env("TLS_CA_FILE", &pki(&cluster).key_file.display().to_string())
        .assert_fails(2, "holds no PEM certificate");

    // A naming server trusting another CA finds every storage server dead,
    // and says why, once per server.
    let urls = format!("{},{}", cluster.storage_url(0), cluster.storage_url(1));
    let meta_dir = dir.join("meta");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--storage-servers",
        &urls,
        "--meta-dir",
        meta_dir.to_str().unwrap(),
        "--heartbeat-ms",
        "200",
        "--dead-after-ms",
        "1000",
        "--ca-file",
        &stranger_ca.ca_arg(),
    ];
    let mut stranger = Server::start(
        "harbour-naming",
        args.iter().map(|arg| arg.to_string()).collect(),
        dir.join("stranger.log"),
    );
    let answer = call(
        &format!("{}/files/nope", stranger.url()),
        "PUT",
        None,
        b"no storage server is trusted",
    );
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let said = "certificate is not trusted";
    wait_until(Duration::from_secs(5), "a few heartbeats", || {
        stranger.log_text().matches(said).count() == 2
    });
    let counted = Instant::now();
    wait_until(Duration::from_secs(5), "five more heartbeat rounds", || {
        counted.elapsed() > Duration::from_millis(1000)
    });
    let log = stranger.log_text();
    assert_eq!(log.matches(said).count(), 2, "{log}");
    stranger.kill();
    assert_eq!(cluster.stored_chunks(), 0);
}

#[test]
fn a_storage_server_joins_over_https_and_answers_its_health_check() {
    let cluster = tls_cluster(1, 1);
    let pki = pki(&cluster).clone();
    let dir = test_dir();
    let mut args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--join",
        &cluster.url(),
        "--ca-file",
        &pki.ca_arg(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(pki.server_args());
    let joined = Server::start("harbour-storage", args, dir.join("joined.log"));
    let joined_url = joined.url();
    assert!(joined_url.starts_with("https://"), "{joined_url}");
    wait_until(Duration::from_secs(10), "the joined server alive", || {
        let status = cluster.status_json();
        status["servers"].as_array().is_some_and(|servers| {
            servers
                .iter()
                .any(|server| server["url"] == joined_url.as_str() && server["alive"] == true)
        })
    });
    // A file placed on both servers reads back.
    let bytes = test_bytes(4097, 9);
    cluster
        .cli(&["create", "joined", "-"])
        .stdin(&bytes)
        .assert_ok();
    assert!(cluster.cli(&["read", "joined", "-"]).assert_ok().stdout == bytes);

    // `--health-check` speaks TLS to a TLS server, and fails against one
    // when it thinks it speaks plain HTTP.
    let listen = joined.addr.to_string();
    let health = |tls: bool| {
        let mut command = Command::new(bin_path("harbour-storage"));
        clear_env(&mut command);
        command.args(["--listen", &listen, "--health-check"]);
        if tls {
            command.args(pki.server_args());
        }
        command.output().unwrap()
    };
    let healthy = health(true);
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    assert!(!health(false).status.success());
}

fn refused_tls(binary: &str, extra: &[&str], fragment: &str) {
    check_server_refused(binary, extra, &[], fragment);
}

#[test]
fn tls_settings_are_checked_at_start_up() {
    let dir = test_dir();
    let pki = TestPki::new(&dir, "start");
    let cert = pki.cert_file.to_str().unwrap();
    let key = pki.key_file.to_str().unwrap();
    refused_tls(
        "harbour-storage",
        &["--tls-cert-file", cert],
        "--tls-key-file / TLS_KEY_FILE: missing",
    );
    refused_tls(
        "harbour-naming",
        &["--tls-key-file", key],
        "--tls-cert-file / TLS_CERT_FILE: missing",
    );
    // A key others may read protects nothing.
    let open_key = dir.join("open.key");
    std::fs::copy(&pki.key_file, &open_key).unwrap();
    std::fs::set_permissions(
        &open_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let open_key = open_key.to_str().unwrap();
    refused_tls(
        "harbour-storage",
        &["--tls-cert-file", cert, "--tls-key-file", open_key],
        "readable by others",
    );
    // A key where the certificate should be, and garbage for a key.
    refused_tls(
        "harbour-storage",
        &["--tls-cert-file", key, "--tls-key-file", key],
        "holds no PEM certificate",
    );
    let no_key = dir.join("no.key");
    write_private(&no_key, "a password, not a key\n");
    refused_tls(
        "harbour-naming",
        &[
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            no_key.to_str().unwrap(),
        ],
        "--tls-key-file / TLS_KEY_FILE: holds no usable private key",
    );
    let garbage_key = dir.join("garbage.key");
    write_private(
        &garbage_key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    refused_tls(
        "harbour-naming",
        &[
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            garbage_key.to_str().unwrap(),
        ],
        "--tls-key-file / TLS_KEY_FILE: cannot serve the certificate with this key",
    );
    // The key of another certificate: the pair does not match.
    let other = TestPki::new(&dir, "other");
    refused_tls(
        "harbour-storage",
        &[
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            other.key_file.to_str().unwrap(),
        ],
        "--tls-key-file / TLS_KEY_FILE: cannot serve the certificate with this key",
    );
}

#[test]
fn silent_tls_clients_do_not_hold_up_anyone_else() {
    let cluster = tls_cluster(2, 2);
    let addrs = [
        cluster.naming_ref().addr,
        cluster.storage_ref(0).addr,
        cluster.storage_ref(1).addr,
    ];
    // Each server gets 40 connections that say nothing and 40 that stop
    // in the middle of a TLS ClientHello.
    let _held: Vec<TcpStream> = addrs
        .iter()
        .flat_map(|&addr| {
            (0..80).map(move |idx| {
                let mut stream = TcpStream::connect(addr).unwrap();
                if idx % 2 == 1 {
                    stream
                        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                        .unwrap();
                }
                stream
            })
        })
        .collect();
    // The held connections would cost their 10 s stall bound if a
    // handshake held up the accept thread; the CLI gives up after 3 s and
    // the naming server's calls to storage after 2 s.
    let bytes = test_bytes(10_000, 3);
    let cli = |args: &[&str]| cluster.cli(args).env("REQUEST_TIMEOUT_MS", "3000");
    cli(&["create", "busy", "-"]).stdin(&bytes).assert_ok();
    assert!(cli(&["read", "busy", "-"]).assert_ok().stdout == bytes);
    let storage = cluster.storage_url(1);
    let answer = request_to(&cluster.agent, &format!("{storage}/status"), "GET", &[]).unwrap();
    assert_eq!(answer.status, 200);
}

#[test]
fn the_system_roots_load_and_an_unknown_ca_file_is_an_error() {
    // The system bundle is the default without a CA file; the machines CI
    // runs on have one (Debian's ca-certificates).
    let system = ClientTls::system();
    assert!(system.source.starts_with('/'), "{}", system.source);
    assert!(ClientTls::from_ca_file(std::path::Path::new("/nonexistent/ca.pem")).is_err());
}

/// Runs curl with `args`; its exit code and stdout. `-w %{http_code}`
/// callers find the status at the end of stdout.
fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    (output.status.code().unwrap_or(-1), output.stdout)
}

#[test]
fn curl_reads_and_writes_over_https_with_a_token() {
    let token = "curl-token-0123456789";
    let cluster = Cluster::start(Spec {
        storage: 2,
        tls: true,
        api_tokens: Some("curl-token-0123456789 write curl\n"),
        token: Some(token),
        ..Spec::default()
    });
    let ca = pki(&cluster).ca_arg();
    let dir = test_dir();
    let local = dir.join("upload");
    let bytes = test_bytes(2 * 1024 + 1, 4);
    std::fs::write(&local, &bytes).unwrap();
    let url = format!("{}/files/from-curl", cluster.url());
    let bearer = format!("Authorization: Bearer {token}");
    let upload = format!("@{}", local.display());
    let (code, out) = curl(&[
        "--cacert",
        &ca,
        "-H",
        &bearer,
        "-X",
        "PUT",
        "--data-binary",
        &upload,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!((code, out.as_slice()), (0, &b"201"[..]));
    let (code, out) = curl(&["--cacert", &ca, "-H", &bearer, &url]);
    assert_eq!(code, 0);
    assert!(out == bytes, "curl read other bytes back");
    // The CLI reads what curl wrote.
    assert!(cluster.cli(&["read", "from-curl", "-"]).assert_ok().stdout == bytes);
    // No token: 401 over TLS as over HTTP.
    let (code, out) = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!((code, out.as_slice()), (0, &b"401"[..]));
    // Without the CA curl refuses the certificate (exit 60), as the CLI does.
    let (code, _) = curl(&["-H", &bearer, &url]);
    assert_eq!(code, 60, "curl should not trust the test CA by default");
    // A storage server over TLS still wants cluster credentials.
    let storage = format!("{}/blobs", cluster.storage_url(0));
    let (code, out) = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &storage,
    ]);
    assert_eq!((code, out.as_slice()), (0, &b"401"[..]));
}
