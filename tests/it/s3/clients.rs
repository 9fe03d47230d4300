//! The aws CLI, rclone and s3cmd against the S3 API, as their users run
//! them (endpoint and keys given the way each documents), and the same
//! bytes seen through S3 and through the native API, both ways.

use std::fs;
use std::path::Path;

use super::{KEY_ID, SECRET, run, run_ok, start};
use crate::cluster::{Cluster, test_bytes};

/// A tree of files at chunk boundaries, nested folders and an empty one.
fn make_tree(root: &Path) {
    for (idx, size) in [0usize, 1, 1023, 1024, 1025, 70_000, 1 << 20]
        .iter()
        .enumerate()
    {
        let dir = root.join(format!("level{}/inner{}", idx % 2, idx % 3));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("file-{size}.bin")),
            test_bytes(*size, idx as u64),
        )
        .unwrap();
    }
    fs::write(root.join("top file.txt"), b"at the top\n").unwrap();
    fs::create_dir_all(root.join("empty folder")).unwrap();
}

/// `diff -r` finds the trees the same, but for the empty folder, which
/// has no object to come back from (rclone 1.60 and the aws CLI make none).
fn assert_same_tree(cwd: &Path, left: &str, right: &str) {
    let diff = std::process::Command::new("diff")
        .args(["-r", left, right])
        .current_dir(cwd)
        .output()
        .expect("run diff");
    let differences = String::from_utf8_lossy(&diff.stdout).into_owned();
    let expected = format!("Only in {left}: empty folder");
    assert!(
        differences.trim().is_empty() || differences.trim() == expected,
        "{differences}"
    );
}

fn aws(cluster: &Cluster, cwd: &Path, args: &[&str]) -> String {
    let url = cluster.s3_url();
    let mut all = vec!["--endpoint-url", url.as_str()];
    all.extend(args);
    run_ok(cluster, cwd, "aws", &all, &[])
}

#[test]
fn the_aws_cli_copies_syncs_lists_and_removes() {
    let cluster = start();
    let work = cluster.dir.join("aws");
    make_tree(&work.join("tree"));
    aws(&cluster, &work, &["s3", "mb", "s3://cli"]);
    aws(
        &cluster,
        &work,
        &["s3api", "head-bucket", "--bucket", "cli"],
    );
    let location = aws(
        &cluster,
        &work,
        &["s3api", "get-bucket-location", "--bucket", "cli"],
    );
    assert!(location.contains("LocationConstraint"), "{location}");
    aws(
        &cluster,
        &work,
        &["s3", "cp", "tree/top file.txt", "s3://cli/one/top file.txt"],
    );
    aws(&cluster, &work, &["s3", "sync", "tree", "s3://cli/synced"]);
    let listed = aws(
        &cluster,
        &work,
        &["s3", "ls", "--recursive", "s3://cli/synced/"],
    );
    assert_eq!(listed.lines().count(), 8, "{listed}");
    assert!(
        listed.contains("synced/level0/inner0/file-0.bin"),
        "{listed}"
    );
    // A second sync has nothing to do.
    let again = aws(&cluster, &work, &["s3", "sync", "tree", "s3://cli/synced"]);
    assert!(!again.contains("upload:"), "{again}");
    aws(&cluster, &work, &["s3", "sync", "s3://cli/synced", "back"]);
    assert_same_tree(&work, "tree", "back");
    let top = aws(&cluster, &work, &["s3", "ls", "s3://cli/"]);
    assert!(
        top.contains("PRE one/") && top.contains("PRE synced/"),
        "{top}"
    );
    let presigned = aws(
        &cluster,
        &work,
        &[
            "s3",
            "presign",
            "s3://cli/one/top file.txt",
            "--expires-in",
            "60",
        ],
    );
    let fetched = run_ok(&cluster, &work, "curl", &["-sf", presigned.trim()], &[]);
    assert_eq!(fetched, "at the top\n");
    let objects = aws(
        &cluster,
        &work,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "cli",
            "--prefix",
            "synced/level1/",
        ],
    );
    assert!(
        objects.contains("\"Key\": \"synced/level1/inner1/file-1.bin\""),
        "{objects}"
    );
    aws(
        &cluster,
        &work,
        &["s3", "rm", "--recursive", "s3://cli/synced"],
    );
    aws(&cluster, &work, &["s3", "rm", "s3://cli/one/top file.txt"]);
    assert_eq!(
        aws(&cluster, &work, &["s3", "ls", "--recursive", "s3://cli/"]),
        ""
    );
    aws(&cluster, &work, &["s3", "rb", "s3://cli"]);
    aws_fails(
        &cluster,
        &work,
        &["s3api", "head-bucket", "--bucket", "cli"],
    );
}

/// `aws` with `args`, expected to fail.
fn aws_fails(cluster: &Cluster, cwd: &Path, args: &[&str]) {
    let url = cluster.s3_url();
    let mut all = vec!["--endpoint-url", url.as_str()];
    all.extend(args);
    let ran = run(cluster, cwd, "aws", &all, &[]);
    assert_ne!(ran.code, 0, "aws {args:?} succeeded: {}", ran.stdout);
}

fn rclone(cluster: &Cluster, cwd: &Path, args: &[&str]) -> String {
    let url = cluster.s3_url();
    let env = [
        ("RCLONE_CONFIG_HARBOUR_TYPE", "s3"),
        ("RCLONE_CONFIG_HARBOUR_PROVIDER", "Other"),
        ("RCLONE_CONFIG_HARBOUR_ENDPOINT", url.as_str()),
        ("RCLONE_CONFIG_HARBOUR_ACCESS_KEY_ID", KEY_ID),
        ("RCLONE_CONFIG_HARBOUR_SECRET_ACCESS_KEY", SECRET),
        ("RCLONE_CONFIG_HARBOUR_FORCE_PATH_STYLE", "true"),
    ];
    let mut all = vec![
        "--config",
        "/dev/null",
        "--low-level-retries",
        "1",
        "--retries",
        "1",
    ];
    all.extend(args);
    run_ok(cluster, cwd, "rclone", &all, &env)
}

#[test]
fn rclone_copies_syncs_checks_and_purges() {
    let cluster = start();
    let work = cluster.dir.join("rclone");
    make_tree(&work.join("tree"));
    rclone(&cluster, &work, &["mkdir", "harbour:rclone-test"]);
    rclone(
        &cluster,
        &work,
        &["copy", "tree", "harbour:rclone-test/copied"],
    );
    rclone(
        &cluster,
        &work,
        &[
            "sync",
            "--create-empty-src-dirs",
            "tree",
            "harbour:rclone-test/synced",
        ],
    );
    // Sizes and MD5s (rclone reads them from the ETags) agree.
    rclone(
        &cluster,
        &work,
        &["check", "tree", "harbour:rclone-test/synced"],
    );
    rclone(
        &cluster,
        &work,
        &["check", "--download", "tree", "harbour:rclone-test/copied"],
    );
    let listed = rclone(&cluster, &work, &["ls", "harbour:rclone-test/synced"]);
    assert_eq!(listed.lines().count(), 8, "{listed}");
    let dirs = rclone(&cluster, &work, &["lsd", "harbour:rclone-test"]);
    assert!(dirs.contains("copied") && dirs.contains("synced"), "{dirs}");
    // Modification times survive the round trip (rclone keeps them in
    // x-amz-meta-mtime).
    rclone(
        &cluster,
        &work,
        &["sync", "harbour:rclone-test/synced", "back"],
    );
    let again = rclone(
        &cluster,
        &work,
        &["sync", "-v", "tree", "harbour:rclone-test/synced"],
    );
    assert!(!again.contains("Copied"), "{again}");
    assert_same_tree(&work, "tree", "back");
    // A change is found and synced.
    fs::write(work.join("tree/top file.txt"), b"changed\n").unwrap();
    rclone(
        &cluster,
        &work,
        &["sync", "tree", "harbour:rclone-test/synced"],
    );
    rclone(
        &cluster,
        &work,
        &["check", "tree", "harbour:rclone-test/synced"],
    );
    rclone(&cluster, &work, &["delete", "harbour:rclone-test/copied"]);
    assert_eq!(
        rclone(&cluster, &work, &["ls", "harbour:rclone-test/copied"]),
        ""
    );
    rclone(&cluster, &work, &["purge", "harbour:rclone-test"]);
    let buckets = rclone(&cluster, &work, &["lsd", "harbour:"]);
    assert!(!buckets.contains(" rclone-test"), "{buckets}");
}

#[test]
fn s3cmd_puts_gets_lists_syncs_and_removes() {
    let cluster = start();
    let work = cluster.dir.join("s3cmd");
    make_tree(&work.join("tree"));
    let host = cluster.s3_url().trim_start_matches("http://").to_owned();
    let config = work.join("s3cfg");
    fs::write(
        &config,
        format!(
            "[default]\naccess_key = {KEY_ID}\nsecret_key = {SECRET}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let s3cmd = |args: &[&str]| {
        let mut all = vec!["-c", config.as_str()];
        all.extend(args);
        run_ok(&cluster, &work, "s3cmd", &all, &[])
    };
    s3cmd(&["mb", "s3://cmd"]);
    s3cmd(&["put", "tree/top file.txt", "s3://cmd/top.txt"]);
    s3cmd(&["get", "s3://cmd/top.txt", "got.txt"]);
    assert_eq!(fs::read(work.join("got.txt")).unwrap(), b"at the top\n");
    s3cmd(&["sync", "tree/", "s3://cmd/tree/"]);
    let listed = s3cmd(&["ls", "--recursive", "s3://cmd/tree/"]);
    assert_eq!(listed.lines().count(), 8, "{listed}");
    let all = s3cmd(&["la"]);
    assert!(all.contains("s3://cmd/top.txt"), "{all}");
    let info = s3cmd(&["info", "s3://cmd/top.txt"]);
    assert!(info.contains("File size: 11"), "{info}");
    s3cmd(&["del", "s3://cmd/top.txt"]);
    s3cmd(&["del", "--recursive", "--force", "s3://cmd/tree/"]);
    s3cmd(&["rb", "s3://cmd"]);
    assert!(!s3cmd(&["ls"]).contains("s3://cmd"));
}

#[test]
fn s3_and_the_native_api_see_the_same_bytes_both_ways() {
    let cluster = start();
    let work = cluster.dir.join("both");
    fs::create_dir_all(&work).unwrap();
    aws(&cluster, &work, &["s3", "mb", "s3://both"]);
    // Native in, S3 out.
    let native = test_bytes(3 * 1024 * 1024 + 17, 11);
    assert_eq!(cluster.put("both/native.bin", &native).status, 201);
    aws(
        &cluster,
        &work,
        &["s3", "cp", "s3://both/native.bin", "native.bin"],
    );
    assert_eq!(fs::read(work.join("native.bin")).unwrap(), native);
    // S3 in, native (and the CLI) out.
    let through_s3 = test_bytes(2 * 1024 * 1024 + 5, 12);
    fs::write(work.join("s3.bin"), &through_s3).unwrap();
    aws(
        &cluster,
        &work,
        &["s3", "cp", "s3.bin", "s3://both/dir/s3.bin"],
    );
    let answer = cluster.get("both/dir/s3.bin");
    assert_eq!((answer.status, answer.body == through_s3), (200, true));
    cluster
        .cli(&["read", "both/dir/s3.bin", "cli.bin"])
        .assert_ok();
    // Listed by both, deleted by one, gone for both.
    let listing = cluster.request("GET", "/files?prefix=both/", &[]);
    let text = String::from_utf8_lossy(&listing.body).into_owned();
    assert!(
        text.contains("both/dir/s3.bin") && text.contains("both/native.bin"),
        "{text}"
    );
    assert_eq!(cluster.delete("both/dir/s3.bin").status, 204);
    aws_fails(
        &cluster,
        &work,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "both",
            "--key",
            "dir/s3.bin",
        ],
    );
}

/// A file past every client's multipart threshold (the aws CLI's 8 MiB,
/// and rclone's and s3cmd's set to 5 MiB here) goes up in parts, comes
/// back whole, and leaves no upload behind.
#[test]
fn large_files_go_up_in_parts_with_every_client() {
    let cluster = start();
    let work = cluster.dir.join("parts");
    fs::create_dir_all(work.join("tree")).unwrap();
    let big = test_bytes((20 << 20) + 13, 21);
    fs::write(work.join("tree/big.bin"), &big).unwrap();
    fs::write(work.join("tree/small.txt"), b"small\n").unwrap();
    aws(&cluster, &work, &["s3", "mb", "s3://parts"]);
    aws(
        &cluster,
        &work,
        &["s3", "cp", "tree/big.bin", "s3://parts/aws/big.bin"],
    );
    let head = aws(
        &cluster,
        &work,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "parts",
            "--key",
            "aws/big.bin",
        ],
    );
    // 8 MiB parts: three of them, and the multipart ETag says so.
    assert!(head.contains("-3\\\""), "{head}");
    aws(
        &cluster,
        &work,
        &["s3", "sync", "tree", "s3://parts/synced"],
    );
    let again = aws(
        &cluster,
        &work,
        &["s3", "sync", "tree", "s3://parts/synced"],
    );
    assert!(!again.contains("upload:"), "{again}");
    aws(
        &cluster,
        &work,
        &["s3", "cp", "s3://parts/synced/big.bin", "aws-back.bin"],
    );
    assert!(fs::read(work.join("aws-back.bin")).unwrap() == big);
    let cutoff = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"];
    let mut copy = vec!["copy"];
    copy.extend(cutoff);
    copy.extend(["tree", "harbour:parts/rclone"]);
    rclone(&cluster, &work, &copy);
    rclone(
        &cluster,
        &work,
        &["check", "--download", "tree", "harbour:parts/rclone"],
    );
    let head = aws(
        &cluster,
        &work,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "parts",
            "--key",
            "rclone/big.bin",
        ],
    );
    assert!(head.contains("-5\\\""), "rclone sent 5 MiB parts: {head}");
    let host = cluster.s3_url().trim_start_matches("http://").to_owned();
    let config = work.join("s3cfg");
    fs::write(
        &config,
        format!(
            "[default]\naccess_key = {KEY_ID}\nsecret_key = {SECRET}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let s3cmd = |args: &[&str]| {
        let mut all = vec!["-c", config.as_str()];
        all.extend(args);
        run_ok(&cluster, &work, "s3cmd", &all, &[])
    };
    s3cmd(&[
        "put",
        "--multipart-chunk-size-mb=5",
        "tree/big.bin",
        "s3://parts/s3cmd/big.bin",
    ]);
    let head = aws(
        &cluster,
        &work,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "parts",
            "--key",
            "s3cmd/big.bin",
        ],
    );
    assert!(head.contains("-5\\\""), "s3cmd sent 5 MiB parts: {head}");
    s3cmd(&["get", "s3://parts/s3cmd/big.bin", "s3cmd-back.bin"]);
    assert!(fs::read(work.join("s3cmd-back.bin")).unwrap() == big);
    let uploads = aws(
        &cluster,
        &work,
        &["s3api", "list-multipart-uploads", "--bucket", "parts"],
    );
    assert!(!uploads.contains("UploadId"), "{uploads}");
}
