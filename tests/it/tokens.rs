//! SPEC "Security": API tokens on the public API. With a tokens file every
//! endpoint but `/health` needs `Authorization: Bearer TOKEN`; none or an
//! unknown one is 401, one without the permission 403, both JSON errors
//! logged by label, never by token. The CLI sends `HARBOUR_TOKEN` or
//! `--token-file`; SIGHUP reloads the file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::cluster_auth::ClusterKey;
use common::cluster_auth::Signer;

use crate::cluster::{
    Answer, Cluster, Spec, TEST_CLUSTER_SECRET, test_dir, test_signer, wait_until,
};

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const ADMIN: &str = "admin-token-01234567890";
const UNKNOWN: &str = "unknown-token-0123456789";
const TOKENS: &str = "# the test cluster's tokens\n\
    reader-token-0123456789 read dashboards\n\
    writer-token-0123456789 write ci bot\n\
    admin-token-01234567890 admin\n";

fn cluster() -> Cluster {
    Cluster::start(Spec {
        api_tokens: Some(TOKENS),
        token: Some(ADMIN),
        ..Spec::default()
    })
}

/// A call to the naming server with exactly this `Authorization`.
fn call(cluster: &Cluster, method: &str, path: &str, authorization: Option<&str>) -> Answer {
    let url = format!("{}{path}", cluster.url());
    crate::cluster::call(&url, method, authorization, b"token test")
}

fn with(cluster: &Cluster, method: &str, path: &str, token: &str) -> Answer {
    call(cluster, method, path, Some(&format!("Bearer {token}")))
}

#[test]
fn every_endpoint_but_health_needs_a_token_with_its_permission() {
    let cluster = cluster();
    assert_eq!(cluster.put("a", b"the file").status, 201);
    // Each request with the least permission it needs; `{n}` makes the
    // names of creates unique.
    let table: [(&str, &str, usize); 16] = [
        ("GET", "/files/a", 0),
        ("HEAD", "/files/a", 0),
        ("GET", "/files", 0),
        ("GET", "/stat/a", 0),
        ("GET", "/dirs/a", 0),
        ("HEAD", "/dirs/a", 0),
        ("GET", "/status", 0),
        ("GET", "/metrics", 0),
        ("GET", "/no/such/endpoint", 0),
        ("PUT", "/files/new-{n}", 1),
        ("DELETE", "/files/gone-{n}", 1),
        ("POST", "/dirs/new-{n}", 1),
        ("DELETE", "/dirs/gone-{n}", 1),
        ("POST", "/rename?from=x-{n}&to=y-{n}", 1),
        ("POST", "/drain?url=http%3A%2F%2F127.0.0.1%3A9", 2),
        ("POST", "/servers?url=http%3A%2F%2F127.0.0.1%3A{port}", 2),
    ];
    let tokens = [READER, WRITER, ADMIN];
    let mut n = 0;
    for (method, path, least) in table {
        let mut path_for = || {
            n += 1;
            path.replace("{n}", &n.to_string())
                .replace("{port}", &(9000 + n).to_string())
        };
        for (what, authorization) in [
            ("no token", None),
            ("an unknown token", Some(format!("Bearer {UNKNOWN}"))),
            ("basic auth", Some(format!("Basic {READER}"))),
            (
                "cluster credentials",
                Some(test_signer().authorization(method, path)),
            ),
        ] {
            let answer = call(&cluster, method, &path_for(), authorization.as_deref());
            assert_eq!(answer.status, 401, "{method} {path} with {what}");
            if method != "HEAD" {
                assert!(
                    answer.json()["error"].is_string(),
                    "{method} {path}: JSON error"
                );
            }
        }
        for (rank, token) in tokens.iter().enumerate() {
            let answer = with(&cluster, method, &path_for(), token);
            if rank < least {
                assert_eq!(answer.status, 403, "{method} {path} with {token}");
                if method != "HEAD" {
                    let error = answer.json()["error"].as_str().unwrap().to_owned();
                    assert!(error.contains("permission"), "{error}");
                }
            } else {
                assert!(
                    answer.status != 401 && answer.status != 403,
                    "{method} {path} with {token}: {}",
                    answer.status
                );
            }
        }
    }
    assert_eq!(call(&cluster, "GET", "/health", None).status, 200);
    let log = cluster.naming_ref().log_text();
    assert!(log.contains("api tokens: 3 in force"), "{log}");
    assert!(
        log.contains("token \"dashboards\" has read permission; this needs write"),
        "{log}"
    );
    for token in [READER, WRITER, ADMIN, UNKNOWN] {
        assert!(!log.contains(token), "the log holds no token");
    }
}

#[test]
fn a_storage_server_still_registers_with_cluster_credentials() {
    let cluster = cluster();
    let target = "/servers?url=http%3A%2F%2F127.0.0.1%3A9";
    let signed =
        Signer::new(ClusterKey::new(TEST_CLUSTER_SECRET).unwrap()).authorization("POST", target);
    assert_eq!(call(&cluster, "POST", target, Some(&signed)).status, 200);
    let forged = Signer::new(ClusterKey::new("not the cluster's secret").unwrap())
        .authorization("POST", target);
    assert_eq!(call(&cluster, "POST", target, Some(&forged)).status, 401);
}

#[test]
fn the_cli_sends_harbour_token_or_the_token_file() {
    let cluster = cluster();
    let bare = || crate::cluster::Cli::new(&["list"]).env("NAME_SERVER", &cluster.url());
    bare().assert_fails(1, "needs an API token");
    bare()
        .env("HARBOUR_TOKEN", UNKNOWN)
        .assert_fails(1, "unknown API token");
    bare().env("HARBOUR_TOKEN", READER).assert_ok();
    crate::cluster::Cli::new(&["create", "x", "-"])
        .env("NAME_SERVER", &cluster.url())
        .env("HARBOUR_TOKEN", READER)
        .stdin(b"no")
        .assert_fails(1, "not allowed");
    let dir = test_dir();
    let token_file = dir.join("token");
    fs::write(&token_file, format!("{WRITER}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o644)).unwrap();
    let file_arg = token_file.to_str().unwrap();
    crate::cluster::Cli::new(&["create", "x", "-", "--token-file", file_arg])
        .env("NAME_SERVER", &cluster.url())
        .stdin(b"yes")
        .assert_fails(2, "chmod 600");
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    crate::cluster::Cli::new(&["create", "x", "-", "--token-file", file_arg])
        .env("NAME_SERVER", &cluster.url())
        .stdin(b"yes")
        .assert_ok();
    assert_eq!(cluster.get("x").body, b"yes");
}

#[test]
fn sighup_reloads_the_tokens_and_a_bad_file_keeps_the_old_ones() {
    let cluster = cluster();
    let path = cluster.dir.join("api-tokens");
    assert_eq!(with(&cluster, "GET", "/status", WRITER).status, 200);
    // The writer is revoked, a new reader added.
    let fresh = "fresh-reader-0123456789";
    fs::write(&path, format!("{ADMIN} admin\n{fresh} read fresh\n")).unwrap();
    cluster.naming_ref().signal("-HUP");
    wait_until(
        Duration::from_secs(5),
        "the writer token to be revoked",
        || with(&cluster, "GET", "/status", WRITER).status == 401,
    );
    assert_eq!(with(&cluster, "GET", "/status", fresh).status, 200);
    // A broken file is refused; the tokens in force stay.
    fs::write(&path, "this is not a tokens file\n").unwrap();
    cluster.naming_ref().signal("-HUP");
    wait_until(
        Duration::from_secs(5),
        "the failed reload to be logged",
        || cluster.naming_ref().log_text().contains("reload failed"),
    );
    assert_eq!(with(&cluster, "GET", "/status", fresh).status, 200);
    assert_eq!(with(&cluster, "GET", "/status", ADMIN).status, 200);
}
