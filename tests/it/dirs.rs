//! SPEC "Namespace", directories: implicit while a name lies under them,
//! explicit once made (`POST /dirs/NAME` 201, 409 exists; `DELETE
//! /dirs/NAME` 204, 409 not empty, 404); `GET /files?prefix=P&delimiter=/`
//! lists one level, paged by `limit` and `after`; `harbour mkdir` and
//! `rmdir`; made and removed directories survive `kill -9`.

use crate::cluster::{Cluster, Spec};

fn level(cluster: &Cluster, query: &str) -> serde_json::Value {
    let answer = cluster.request("GET", &format!("/files?delimiter=%2F&{query}"), &[]);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()
}

#[test]
fn directories_are_made_removed_and_listed_one_level_at_a_time() {
    let mut cluster = Cluster::start(Spec::default());
    for name in [
        "top.txt",
        "docs%2Fa.txt",
        "docs%2Fsub%2Fb.txt",
        "docs%2Fsub%2Fc.txt",
    ] {
        assert_eq!(cluster.put(name, b"x").status, 201);
    }
    assert_eq!(cluster.request("POST", "/dirs/empty", &[]).status, 201);
    assert_eq!(cluster.request("POST", "/dirs/empty", &[]).status, 409);
    assert_eq!(
        cluster.request("POST", "/dirs/docs", &[]).status,
        409,
        "implicit"
    );
    assert_eq!(cluster.request("POST", "/dirs/docs%2Fnew", &[]).status, 201);
    let top = level(&cluster, "prefix=");
    assert_eq!(top["dirs"], serde_json::json!(["docs/", "empty/"]));
    assert_eq!(top["files"][0]["name"], "top.txt");
    assert_eq!(top["next"], serde_json::Value::Null);
    let docs = level(&cluster, "prefix=docs%2F");
    assert_eq!(docs["dirs"], serde_json::json!(["docs/new/", "docs/sub/"]));
    assert_eq!(docs["files"].as_array().unwrap().len(), 1);
    assert_eq!(docs["files"][0]["size"], 1);
    // Without a delimiter the list keeps its shape: every name under P.
    let flat = cluster.request("GET", "/files?prefix=docs%2F", &[]).json();
    assert_eq!(flat.as_array().unwrap().len(), 3);
    assert_eq!(
        cluster.request("GET", "/files?delimiter=x", &[]).status,
        400
    );
    assert_eq!(
        cluster
            .request("GET", "/files?delimiter=%2F&limit=0", &[])
            .status,
        400
    );

    // Whether a directory exists, explicitly or implicitly (a mount's lookup).
    for (path, status) in [
        ("/dirs/empty", 200),
        ("/dirs/docs", 200),
        ("/dirs/docs%2Fsub", 200),
        ("/dirs/docs%2Fsub%2F", 200),
        ("/dirs/nothing", 404),
        ("/dirs/top.txt", 404),
        ("/dirs/docs%2Fa.txt", 404),
    ] {
        assert_eq!(
            cluster.request("GET", path, &[]).status,
            status,
            "GET {path}"
        );
        assert_eq!(
            cluster.request("HEAD", path, &[]).status,
            status,
            "HEAD {path}"
        );
    }
    assert_eq!(
        cluster.request("GET", "/dirs/docs", &[]).json()["dir"],
        "docs/"
    );

    assert_eq!(cluster.request("DELETE", "/dirs/docs", &[]).status, 409);
    assert_eq!(cluster.request("DELETE", "/dirs/nothing", &[]).status, 404);
    assert_eq!(cluster.request("DELETE", "/dirs/empty", &[]).status, 204);
    // Acknowledged directory changes survive kill -9.
    cluster.kill_all_and_restart();
    let top = level(&cluster, "prefix=");
    assert_eq!(top["dirs"], serde_json::json!(["docs/"]));
    assert_eq!(
        level(&cluster, "prefix=docs%2F")["dirs"],
        serde_json::json!(["docs/new/", "docs/sub/"])
    );
}

#[test]
fn a_large_directory_pages_through_every_entry_once() {
    let cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    for idx in 0..300 {
        assert_eq!(cluster.put(&format!("big%2Ff{idx:04}"), b"").status, 201);
    }
    for idx in 0..20 {
        assert_eq!(
            cluster.put(&format!("big%2Fd{idx:02}%2Finner"), b"").status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let query = match &after {
            Some(after) => format!("prefix=big%2F&limit=64&after={}", after.replace('/', "%2F")),
            None => "prefix=big%2F&limit=64".to_owned(),
        };
        let page = level(&cluster, &query);
        let entries =
            page["files"].as_array().unwrap().len() + page["dirs"].as_array().unwrap().len();
        assert!(entries <= 64);
        for dir in page["dirs"].as_array().unwrap() {
            seen.push(dir.as_str().unwrap().to_owned());
        }
        for file in page["files"].as_array().unwrap() {
            seen.push(file["name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..20).map(|idx| format!("big/d{idx:02}/")).collect();
    expected.extend((0..300).map(|idx| format!("big/f{idx:04}")));
    seen.sort();
    assert_eq!(seen, expected);
}

#[test]
fn harbour_mkdir_and_rmdir() {
    let cluster = Cluster::start(Spec::default());
    let run = cluster.cli(&["mkdir", "photos/2026"]).assert_ok();
    assert_eq!(run.stderr, "made photos/2026/\n");
    cluster
        .cli(&["mkdir", "photos/2026"])
        .assert_fails(1, "photos/2026/: already exists");
    cluster
        .cli(&["create", "photos/2026/a.jpg", "-"])
        .stdin(b"jpg")
        .assert_ok();
    cluster
        .cli(&["rmdir", "photos/2026"])
        .assert_fails(1, "photos/2026/: the directory is not empty");
    cluster.cli(&["delete", "photos/2026/a.jpg"]).assert_ok();
    let run = cluster.cli(&["rmdir", "photos/2026/"]).assert_ok();
    assert_eq!(run.stderr, "removed photos/2026/\n");
    cluster
        .cli(&["rmdir", "photos/2026"])
        .assert_fails(1, "photos/2026/: no such directory");
}
