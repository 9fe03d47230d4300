//! SPEC "Operators", logs: `LOG_LEVEL` and `LOG_FORMAT` on both servers;
//! one line per request at `debug` (method, target, status, duration,
//! bytes, the token's label) and none at `info`; the events an operator
//! needs (a storage server dead or alive again, re-replication, a
//! checkpoint) at `info` or `warn`; JSON lines that parse, each with a
//! timestamp.

use std::time::Duration;

use crate::cluster::{Cluster, Spec, test_bytes, wait_until};
use crate::config::check_server_refused;

const TOKEN: &str = "logged-token-0123456789";

fn request_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(" request: "))
        .collect()
}

#[test]
fn at_debug_each_request_is_one_line_and_at_info_none() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        api_tokens: Some("logged-token-0123456789 write nightly backup\n"),
        token: Some(TOKEN),
        env: vec![("LOG_LEVEL", "debug")],
        ..Spec::default()
    });
    let bytes = test_bytes(3000, 1);
    assert_eq!(cluster.put("logged", &bytes).status, 201);
    assert_eq!(cluster.get("logged").body, bytes);
    assert_eq!(cluster.get("missing").status, 404);
    // A request's line is written once its answer is sent: after the
    // client has it.
    wait_until(Duration::from_secs(5), "the 404's line", || {
        cluster
            .naming_ref()
            .log_text()
            .contains("GET /files/missing 404")
    });
    let log = cluster.naming_ref().log_text();
    let lines = request_lines(&log);
    let put = lines
        .iter()
        .find(|line| line.contains("PUT /files/logged 201"))
        .unwrap_or_else(|| panic!("no line for the PUT in:\n{log}"));
    assert!(put.starts_with("20") && put.contains(" DEBUG "), "{put}");
    assert!(put.contains(" ms in=3000 "), "{put}");
    assert!(put.contains("token=\"nightly backup\""), "{put}");
    assert!(!put.contains(TOKEN), "a token in the log: {put}");
    let get = lines
        .iter()
        .find(|line| line.contains("GET /files/logged 200"))
        .expect("a line for the GET");
    assert!(get.contains(" out=3000 "), "{get}");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("GET /files/missing 404"))
    );
    // The storage servers log the naming server's calls.
    let storage_log = cluster.storage_ref(0).log_text();
    assert!(
        request_lines(&storage_log)
            .iter()
            .any(|line| line.contains("PUT /chunks 201")),
        "{storage_log}"
    );

    // The default level writes nothing per request.
    let quiet = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    assert_eq!(quiet.put("quiet", &bytes).status, 201);
    assert_eq!(quiet.get("quiet").body, bytes);
    let log = quiet.naming_ref().log_text();
    assert!(request_lines(&log).is_empty(), "{log}");
    assert!(log.contains(" INFO  common: listening on http://"), "{log}");
}

#[test]
fn json_logs_are_one_object_per_line_with_a_timestamp() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        env: vec![("LOG_FORMAT", "json"), ("LOG_LEVEL", "debug")],
        ..Spec::default()
    });
    // The harness found the listening line in JSON too: it is in `msg`.
    assert_eq!(cluster.put("json\"name", &test_bytes(10, 2)).status, 201);
    wait_until(Duration::from_secs(5), "the PUT's line", || {
        cluster
            .naming_ref()
            .log_text()
            .contains(r#""path":"/files/json\"name""#)
    });
    for server in [cluster.naming_ref(), cluster.storage_ref(1)] {
        let log = server.log_text();
        let mut requests = 0;
        assert!(log.lines().count() > 10, "{log}");
        for line in log.lines() {
            let object: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
            let ts = object["ts"].as_str().expect("a timestamp");
            assert!(
                ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{ts}"
            );
            let level = object["level"].as_str().expect("a level");
            assert!(
                ["error", "warn", "info", "debug"].contains(&level),
                "{line}"
            );
            if object["target"] == "request" {
                requests += 1;
                assert!(object["status"].as_u64().is_some(), "{line}");
                assert!(object["duration_ms"].as_f64().is_some(), "{line}");
                assert!(object["method"].as_str().is_some(), "{line}");
            } else {
                assert!(object["msg"].as_str().is_some(), "{line}");
            }
        }
        assert!(requests > 0, "no request lines in {log}");
    }
    let log = cluster.naming_ref().log_text();
    // A quote in a path is escaped, so the line still parses (above).
    assert!(log.contains(r#""path":"/files/json\"name""#), "{log}");
}

#[test]
fn a_dead_server_a_return_re_replication_and_checkpoints_are_logged() {
    let mut cluster = Cluster::start(Spec {
        storage: 3,
        replication: 2,
        checkpoint_bytes: 1024,
        ..Spec::default()
    });
    for idx in 0..20 {
        assert_eq!(
            cluster
                .put(&format!("f{idx}"), &test_bytes(2048, idx))
                .status,
            201
        );
    }
    let victim = cluster.storage_url(2);
    cluster.storage(2).kill();
    let naming_log = |cluster: &Cluster| cluster.naming_ref().log_text();
    wait_until(Duration::from_secs(10), "the death logged", || {
        naming_log(&cluster).contains(&format!("WARN  naming: storage server {victim} is dead"))
    });
    wait_until(Duration::from_secs(20), "re-replication to finish", || {
        let log = naming_log(&cluster);
        log.contains("re-replication started") && log.contains("re-replication done")
    });
    cluster.storage(2).restart();
    wait_until(Duration::from_secs(10), "the return logged", || {
        naming_log(&cluster)
            .matches(&format!("storage server {victim} is alive"))
            .count()
            == 2
    });
    if !cluster.on_etcd {
        wait_until(Duration::from_secs(10), "a checkpoint logged", || {
            naming_log(&cluster).contains("INFO  naming: checkpoint ")
        });
    }
}

#[test]
fn log_settings_are_checked_and_warn_hides_info() {
    for binary in ["harbour-naming", "harbour-storage"] {
        check_server_refused(
            binary,
            &["--log-level", "loud"],
            &[],
            "--log-level / LOG_LEVEL",
        );
        check_server_refused(
            binary,
            &[],
            &[("LOG_FORMAT", "xml")],
            "--log-format / LOG_FORMAT",
        );
    }
    let cluster = Cluster::start(Spec {
        storage: 1,
        replication: 1,
        env: vec![("LOG_LEVEL", "warn")],
        ..Spec::default()
    });
    assert_eq!(cluster.put("x", b"x").status, 201);
    let log = cluster.storage_ref(0).log_text();
    // Only the line saying where it listens, which every level shows.
    assert!(!log.contains("config: "), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
}
