//! Faults under a mount: a naming server that freezes or dies, a storage
//! server killed mid-copy, a full cluster, a token that may not write.
//! Each fails with the SPEC's errno within the timeout, never a hang, and
//! the mount works again once the fault is gone.

use std::fs;
use std::time::{Duration, Instant};

use super::{Mounted, python_ok, sh, sh_ok, write_through};
use crate::cluster::{Cluster, Spec, test_bytes, wait_until};

/// The mount's `--timeout-ms` in these tests.
const MOUNT_TIMEOUT_MS: u64 = 1500;

/// A Python check that `path` fails to stat with `errno`, printing the
/// seconds it took.
fn stat_fails_with(errno: &str, path: &str) -> String {
    format!(
        r#"
import errno, os, time
started = time.monotonic()
try:
    os.stat("{path}")
    raise AssertionError("stat succeeded")
except OSError as err:
    assert err.errno == errno.{errno}, err
print(round(time.monotonic() - started, 2))
"#
    )
}

#[test]
fn a_frozen_or_dead_naming_server_gives_eio_in_bounded_time_then_works_again() {
    let mut cluster = Cluster::start(Spec::default());
    let timeout = MOUNT_TIMEOUT_MS.to_string();
    let mount = Mounted::start(&cluster, &["--timeout-ms", &timeout]);
    write_through(&mount.path("before"), b"before").unwrap();
    cluster.naming().freeze();
    // A name never seen (nothing cached): a lookup must ask, and times out.
    let started = Instant::now();
    let took = python_ok(&mount.dir, &stat_fails_with("EIO", "unseen-1"));
    assert!(started.elapsed() < Duration::from_secs(15), "took {took}");
    let write = sh(&mount.dir, "echo x > unseen-2");
    assert_ne!(write.code, 0, "a create needs the server");
    cluster.naming().thaw();
    // Frozen past DEAD_AFTER_MS, it counts its storage servers dead (503,
    // so EIO) until its next heartbeat hears them.
    cluster.wait_healthy();
    write_through(&mount.path("after-thaw"), b"thawed").unwrap();
    assert_eq!(fs::read(mount.path("before")).unwrap(), b"before");
    // Killed: refused at once; restarted on its port, it serves again.
    cluster.naming().kill();
    python_ok(&mount.dir, &stat_fails_with("EIO", "unseen-3"));
    cluster.naming().restart();
    cluster.wait_healthy();
    assert_eq!(fs::read(mount.path("after-thaw")).unwrap(), b"thawed");
    write_through(&mount.path("after-restart"), b"restarted").unwrap();
    assert_eq!(cluster.get("after-restart").body, b"restarted");
    assert!(
        mount.log_text().contains("answers again"),
        "{}",
        mount.log_text()
    );
}

#[test]
fn a_storage_server_killed_mid_copy_leaves_the_copy_whole_or_failed() {
    let mut cluster = Cluster::start(Spec {
        storage: 3,
        replication: 2,
        ..Spec::default()
    });
    let mount = Mounted::start(&cluster, &[]);
    let bytes = test_bytes(24 << 20, 9);
    fs::write(cluster.dir.join("big"), &bytes).unwrap();
    let mut copy = std::process::Command::new("timeout")
        .args(["120", "cp", "big"])
        .arg(mount.path("big"))
        .current_dir(&cluster.dir)
        .spawn()
        .unwrap();
    // Mid-copy: cp has begun writing (the upload follows at its close).
    wait_until(Duration::from_secs(30), "cp begins", || {
        fs::metadata(mount.path("big")).is_ok_and(|meta| meta.len() > 0)
    });
    cluster.storage(0).kill();
    let mut status = None;
    wait_until(Duration::from_secs(120), "cp ends", || {
        status = copy.try_wait().unwrap();
        status.is_some()
    });
    let answer = cluster.get("big");
    match status.unwrap().success() {
        // Replication 2 on 3 servers: the upload goes on without the dead one.
        true => assert!(answer.status == 200 && answer.body == bytes, "whole"),
        false => assert_eq!(answer.status, 404, "a failed copy leaves nothing"),
    }
    // The mount goes on with the servers left.
    sh_ok(
        &cluster.dir,
        &format!(
            "cp big {}/again && cmp big {}/again",
            mount.dir.display(),
            mount.dir.display()
        ),
    );
}

#[test]
fn a_full_cluster_is_enospc_and_a_read_token_is_eacces() {
    let cluster = Cluster::start(Spec {
        capacity_bytes: Some(256 * 1024),
        ..Spec::default()
    });
    let mount = Mounted::start(&cluster, &[]);
    let out = python_ok(
        &mount.dir,
        r#"
import errno
f = open("too-big", "wb")
f.write(bytes(1 << 20))
try:
    f.close()
    raise AssertionError("close succeeded")
except OSError as err:
    assert err.errno == errno.ENOSPC, err
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    assert_eq!(cluster.get("too-big").status, 404, "nothing partial");
    drop(mount);
    let tokens = Cluster::start(Spec {
        api_tokens: Some("reader-token-0123456789 read\nwriter-token-0123456789 write\n"),
        token: Some("writer-token-0123456789"),
        ..Spec::default()
    });
    tokens.put("readable", b"yes");
    let mount = Mounted::start_with(&tokens, &[], Some("reader-token-0123456789"));
    assert_eq!(fs::read(mount.path("readable")).unwrap(), b"yes");
    let out = python_ok(
        &mount.dir,
        r#"
import errno, os
for fn, args in [(os.mkdir, ("d",)), (os.unlink, ("readable",))]:
    try:
        fn(*args)
        raise AssertionError(f"{fn.__name__} succeeded")
    except OSError as err:
        assert err.errno == errno.EACCES, err
f = open("new", "wb"); f.write(b"x")
try:
    f.close()
    raise AssertionError("close succeeded")
except OSError as err:
    assert err.errno == errno.EACCES, err
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    // Without a token at all the mount does not start.
    let refused = sh_ok(
        &tokens.dir,
        &format!(
            "mkdir -p no-token && NAME_SERVER={} {} mount no-token 2>&1; echo exit=$?",
            tokens.url(),
            crate::cluster::bin_path("harbour").display()
        ),
    );
    assert!(
        refused.contains("exit=1") && refused.contains("refuses the token"),
        "{refused}"
    );
}
