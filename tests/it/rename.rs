//! SPEC "Namespace", rename: `POST /rename?from=A&to=B[&overwrite=true]`
//! is atomic and moves no data; 404 without A, 409 when B exists; a `from`
//! ending in `/` renames the whole directory in one journaled change (409
//! if any target exists); `harbour mv`; a reader of the old name finishes
//! its read; an acknowledged rename survives `kill -9` and checkpoints.

use std::io::Read;
use std::time::Duration;

use crate::cluster::{Cluster, Spec, test_bytes, wait_until};

fn rename(cluster: &Cluster, query: &str) -> (u16, serde_json::Value) {
    let answer = cluster.request("POST", &format!("/rename?{query}"), &[]);
    let body = serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null);
    (answer.status, body)
}

fn names(cluster: &Cluster) -> Vec<String> {
    cluster
        .request("GET", "/files", &[])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_rename_moves_the_name_not_the_data() {
    let cluster = Cluster::start(Spec::default());
    let bytes = test_bytes(5000, 1);
    assert_eq!(cluster.put("a", &bytes).status, 201);
    assert_eq!(cluster.put("b", &test_bytes(3000, 2)).status, 201);
    let stored = cluster.stored_chunks();
    let (status, body) = rename(&cluster, "from=a&to=c");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"from": "a", "to": "c", "renamed": 1})
    );
    assert_eq!(cluster.get("a").status, 404);
    assert_eq!(cluster.get("c").body, bytes);
    assert_eq!(cluster.stored_chunks(), stored, "a rename copies nothing");
    // The refusals.
    assert_eq!(rename(&cluster, "from=a&to=d").0, 404);
    let (status, body) = rename(&cluster, "from=c&to=b");
    assert_eq!(status, 409, "{body}");
    assert_eq!(rename(&cluster, "from=c").0, 400);
    assert_eq!(rename(&cluster, "from=c&to=%2Fabs").0, 400);
    assert_eq!(rename(&cluster, "from=c&to=b&overwrite=maybe").0, 400);
    // Overwriting: b's old chunks become garbage and are deleted.
    assert_eq!(rename(&cluster, "from=c&to=b&overwrite=true").0, 200);
    assert_eq!(cluster.get("b").body, bytes);
    assert_eq!(names(&cluster), ["b"]);
    wait_until(
        Duration::from_secs(10),
        "the replaced chunks deleted",
        || cluster.stored_chunks() == 5 * 2,
    );
}

#[test]
fn a_directory_rename_moves_everything_under_it_at_once() {
    let cluster = Cluster::start(Spec::default());
    for (idx, name) in [
        "photos/1.jpg",
        "photos/2025/2.jpg",
        "photos/2025/3.jpg",
        "photosx",
    ]
    .iter()
    .enumerate()
    {
        let path = name.replace('/', "%2F");
        assert_eq!(
            cluster.put(&path, &test_bytes(1500, idx as u64)).status,
            201
        );
    }
    assert_eq!(cluster.put("archive%2F2025%2F3.jpg", b"taken").status, 201);
    let (status, body) = rename(&cluster, "from=photos%2F2025%2F&to=archive%2F2025%2F");
    assert_eq!(status, 409, "{body}");
    assert!(
        names(&cluster).contains(&"photos/2025/2.jpg".to_owned()),
        "nothing moved"
    );
    assert_eq!(rename(&cluster, "from=none%2F&to=x%2F").0, 404);
    assert_eq!(rename(&cluster, "from=photos%2F&to=photos%2Fold%2F").0, 400);
    let (status, body) = rename(&cluster, "from=photos%2F&to=pictures%2F");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["renamed"], 3);
    assert_eq!(
        names(&cluster),
        [
            "archive/2025/3.jpg",
            "photosx",
            "pictures/1.jpg",
            "pictures/2025/2.jpg",
            "pictures/2025/3.jpg"
        ]
    );
    assert_eq!(
        cluster.get("pictures%2F2025%2F2.jpg").body,
        test_bytes(1500, 1)
    );
}

#[test]
fn harbour_mv_renames_files_and_directories() {
    let cluster = Cluster::start(Spec::default());
    cluster
        .cli(&["create", "notes/draft", "-"])
        .stdin(b"text")
        .assert_ok();
    cluster
        .cli(&["create", "notes/final", "-"])
        .stdin(b"old")
        .assert_ok();
    cluster
        .cli(&["mv", "notes/draft", "notes/final"])
        .assert_fails(1, "notes/final: already exists (use --overwrite)");
    let run = cluster
        .cli(&["mv", "notes/draft", "notes/final", "--overwrite"])
        .assert_ok();
    assert_eq!(run.stderr, "renamed notes/draft to notes/final\n");
    let run = cluster.cli(&["mv", "notes/", "kept/"]).assert_ok();
    assert_eq!(run.stderr, "renamed notes/ to kept/ (1 files)\n");
    assert_eq!(
        cluster.cli(&["read", "kept/final", "-"]).assert_ok().stdout,
        b"text"
    );
    cluster
        .cli(&["mv", "notes/draft", "x"])
        .assert_fails(1, "notes/draft: no such file");
    cluster
        .cli(&["mv", "only-one"])
        .assert_fails(2, "mv takes FROM TO");
}

#[test]
fn a_reader_of_the_old_name_finishes_and_renames_survive_kill_9_and_checkpoints() {
    let mut cluster = Cluster::start(Spec {
        checkpoint_bytes: 1024,
        ..Spec::default()
    });
    let bytes = test_bytes(3 << 20, 4);
    assert_eq!(cluster.put("big", &bytes).status, 201);
    // Half the file read, the name moves, the rest still arrives.
    let mut response = cluster
        .agent
        .get(&format!("{}/files/big", cluster.url()))
        .call()
        .unwrap();
    let mut reader = response.body_mut().as_reader();
    let mut read = vec![0u8; bytes.len() / 2];
    reader.read_exact(&mut read).unwrap();
    assert_eq!(rename(&cluster, "from=big&to=moved").0, 200);
    reader.read_to_end(&mut read).unwrap();
    assert!(read == bytes, "the read under the old name broke");
    drop(response);
    for idx in 0..40 {
        assert_eq!(cluster.put(&format!("d%2F{idx}"), b"x").status, 201);
    }
    assert_eq!(rename(&cluster, "from=d%2F&to=e%2F").0, 200);
    if !cluster.on_etcd {
        wait_until(Duration::from_secs(10), "a checkpoint", || {
            cluster.naming_ref().log_text().contains("checkpoint ")
        });
    }
    assert_eq!(rename(&cluster, "from=e%2F0&to=last").0, 200);
    cluster.kill_all_and_restart();
    let mut expected: Vec<String> = (1..40).map(|idx| format!("e/{idx}")).collect();
    expected.sort();
    expected.extend(["last".to_owned(), "moved".to_owned()]);
    assert_eq!(names(&cluster), expected);
    assert_eq!(cluster.get("moved").body, bytes);
}
