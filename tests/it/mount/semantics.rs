//! The mount's POSIX behaviour, each case with the errno a program sees.

use std::fs;
use std::time::Duration;

use super::{Mounted, python_ok, sh_ok, write_through};
use crate::cluster::{Cluster, Spec, test_bytes};

#[test]
fn writes_anywhere_truncation_append_and_their_errors() {
    let cluster = Cluster::start(Spec::default());
    let mount = Mounted::start(&cluster, &[]);
    let out = python_ok(
        &mount.dir,
        r#"
import errno, os
def fails(code, fn, *args):
    try:
        fn(*args)
    except OSError as err:
        assert err.errno == code, (fn.__name__, args, err)
        return
    raise AssertionError(f"{fn.__name__}{args} did not fail")

# A new file, then a write into its middle, an append and a truncation,
# each on a file reopened (so the server's copy is the base).
data = bytes(range(256)) * 20            # 5120 bytes: five chunks
with open("f", "wb") as f: f.write(data)
with open("f", "r+b") as f:
    f.seek(1020); f.write(b"MIDDLE")     # across a chunk boundary
with open("f", "ab") as f: f.write(b"tail")
expect = data[:1020] + b"MIDDLE" + data[1026:] + b"tail"
assert open("f", "rb").read() == expect
os.truncate("f", 1025)
assert open("f", "rb").read() == expect[:1025]
with open("f", "r+b") as f: f.truncate(3000)      # extends with zeros
assert open("f", "rb").read() == expect[:1025] + bytes(1975)
with open("f", "wb") as f: pass                   # O_TRUNC to nothing
assert os.path.getsize("f") == 0
# Reads of what is still being written, through a second descriptor.
with open("g", "wb") as w:
    w.write(b"abc"); w.flush()
    assert open("g", "rb").read() == b"abc"
# Directories.
os.mkdir("d")
fails(errno.EEXIST, os.mkdir, "d")
open("d/x", "wb").write(b"x")
fails(errno.ENOTEMPTY, os.rmdir, "d")
fails(errno.ENOENT, os.rmdir, "nothing")
fails(errno.ENOENT, os.unlink, "nothing")
fails(errno.ENOENT, open, "nothing", "rb")
fails(errno.ENOENT, open, "no-dir/file", "wb")
fails(errno.EEXIST, os.open, "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
fails(errno.EISDIR, open, "d", "wb")
fails(errno.EPERM, os.link, "f", "hard")
fails(errno.EPERM, os.symlink, "f", "soft")
# Renames: a file over another, a directory with what is under it.
open("h", "wb").write(b"new")
os.rename("h", "g")
assert open("g", "rb").read() == b"new" and not os.path.exists("h")
os.rename("d", "e")
assert open("e/x", "rb").read() == b"x" and not os.path.exists("d")
os.mkdir("empty")
os.rename("e", "empty")                  # onto an empty directory
assert os.listdir("empty") == ["x"]
os.mkdir("full"); open("full/y", "wb").write(b"y")
fails(errno.ENOTEMPTY, os.rename, "empty", "full")
os.unlink("empty/x"); os.rmdir("empty")
assert sorted(os.listdir(".")) == ["f", "full", "g"], os.listdir(".")
# chmod and utime succeed (Harbour keeps neither).
os.chmod("g", 0o600); os.utime("g", (0, 0))
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    // The server agrees.
    let g = cluster.cli(&["read", "g", "-"]).assert_ok();
    assert_eq!(g.stdout, b"new");
    let listed = cluster.cli(&["list"]).assert_ok().stdout_text();
    assert!(
        listed.contains("full/y") && !listed.contains("e/x"),
        "{listed}"
    );
}

#[test]
fn an_editor_save_replaces_the_file_at_once_for_readers_elsewhere() {
    let cluster = Cluster::start(Spec::default());
    let mount = Mounted::start(&cluster, &[]);
    let old = test_bytes(40_000, 1);
    write_through(&mount.path("doc.txt"), &old).unwrap();
    let new = test_bytes(50_000, 2);
    fs::write(cluster.dir.join("new"), &new).unwrap();
    fs::write(cluster.dir.join("old"), &old).unwrap();
    // vim's and most editors' save: write a temporary file, fsync it,
    // rename it over the original. Until the rename the server's doc.txt
    // is the old one, whole; after it, the new one, whole.
    let out = python_ok(
        &mount.dir,
        &format!(
            r#"
import os
new = open("{new}", "rb").read()
old = open("{old}", "rb").read()
with open(".doc.txt.swp", "wb") as tmp:
    tmp.write(new[:20000])
    tmp.flush(); os.fsync(tmp.fileno())
    assert open("doc.txt", "rb").read() == old
    tmp.write(new[20000:])
    tmp.flush(); os.fsync(tmp.fileno())
    assert open("doc.txt", "rb").read() == old
os.rename(".doc.txt.swp", "doc.txt")
assert open("doc.txt", "rb").read() == new
print("saved")
"#,
            new = cluster.dir.join("new").display(),
            old = cluster.dir.join("old").display(),
        ),
    );
    assert!(out.contains("saved"), "{out}");
    let read = cluster.cli(&["read", "doc.txt", "-"]).assert_ok();
    assert_eq!(read.stdout, new);
    let listed = cluster.cli(&["list"]).assert_ok().stdout_text();
    assert!(!listed.contains("swp"), "{listed}");
}

#[test]
fn a_directory_of_thousands_lists_whole_through_pages() {
    let cluster = Cluster::start(Spec::default());
    let names = 2500;
    for idx in 0..names {
        let answer = cluster.put(&format!("big/n{idx:05}"), b"x");
        assert_eq!(answer.status, 201);
    }
    cluster.put("big/sub/inner", b"y");
    let mount = Mounted::start(&cluster, &[]);
    let listed = sh_ok(&mount.dir, "ls big | wc -l");
    assert_eq!(listed.trim(), (names + 1).to_string());
    let files = sh_ok(&mount.dir, "find big -type f | wc -l");
    assert_eq!(files.trim(), (names + 1).to_string());
}

#[test]
fn a_prefix_mounts_one_directory_and_read_only_refuses_changes() {
    let cluster = Cluster::start(Spec::default());
    cluster.put("photos/2026/a.jpg", b"jpeg");
    cluster.put("other/b.txt", b"other");
    let mount = Mounted::start(&cluster, &["--prefix", "photos/", "--read-only"]);
    assert_eq!(sh_ok(&mount.dir, "ls -R . | grep -c a.jpg").trim(), "1");
    assert!(!mount.path("other").exists());
    assert_eq!(fs::read(mount.path("2026/a.jpg")).unwrap(), b"jpeg");
    let out = python_ok(
        &mount.dir,
        r#"
import errno, os
for fn, args in [(open, ("new", "wb")), (os.mkdir, ("d",)), (os.unlink, ("2026/a.jpg",)),
                 (os.rename, ("2026", "2027")), (open, ("2026/a.jpg", "r+b"))]:
    try:
        fn(*args)
    except OSError as err:
        assert err.errno == errno.EROFS, (fn.__name__, err)
        continue
    raise AssertionError(f"{fn.__name__}{args} was allowed")
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    let listed = cluster.cli(&["list"]).assert_ok().stdout_text();
    assert!(
        listed.contains("photos/2026/a.jpg") && listed.lines().count() == 2,
        "{listed}"
    );
}

#[test]
fn sigterm_uploads_what_is_open_then_unmounts_once_it_is_closed() {
    let cluster = Cluster::start(Spec::default());
    let mut mount = Mounted::start(&cluster, &[]);
    // A program holds a file open with unflushed writes.
    let mut writer = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, time\n\
             f = open(sys.argv[1], 'wb'); f.write(b'held open'); f.flush()\n\
             sys.stdout.write('written\\n'); sys.stdout.flush()\n\
             sys.stdin.read(); f.close()",
            mount.path("held.txt").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "written\n");
    assert_eq!(
        cluster.get("held.txt").status,
        404,
        "not uploaded before close"
    );
    mount.signal("TERM");
    crate::cluster::wait_until(Duration::from_secs(10), "the open file is uploaded", || {
        cluster.get("held.txt").status == 200
    });
    assert_eq!(cluster.get("held.txt").body, b"held open");
    // The program closes its file; the detached mount then ends, cleanly.
    drop(writer.stdin.take());
    assert!(writer.wait().unwrap().success());
    assert_eq!(
        mount.wait_exit(Duration::from_secs(10)),
        0,
        "{}",
        mount.log_text()
    );
    assert!(!mount.is_mounted());
    assert!(
        mount.log_text().contains("unmounted"),
        "{}",
        mount.log_text()
    );
}

#[test]
fn fusermount_unmounts_and_the_mount_exits_cleanly() {
    let cluster = Cluster::start(Spec::default());
    let mut mount = Mounted::start(&cluster, &[]);
    write_through(&mount.path("x"), b"x").unwrap();
    sh_ok(
        &cluster.dir,
        &format!("fusermount3 -u {}", mount.dir.display()),
    );
    assert_eq!(
        mount.wait_exit(Duration::from_secs(10)),
        0,
        "{}",
        mount.log_text()
    );
    assert!(!mount.is_mounted());
}

#[test]
fn large_writes_stream_as_written_and_fall_back_when_out_of_order() {
    let cluster = Cluster::start(Spec::default());
    let mount = Mounted::start(&cluster, &[]);
    let metrics = format!("{}/metrics", cluster.url());
    let program = r#"
import os, sys, urllib.request
MIB = 1 << 20
def running():
    page = urllib.request.urlopen(sys.argv[1]).read().decode()
    line = next(l for l in page.splitlines() if l.startswith("harbour_http_requests_running"))
    return int(float(line.split()[-1]))
# Below the threshold nothing streams: the only request running is ours.
with open("small", "wb") as f:
    f.write(bytes(2 * MIB)); f.flush()
    assert running() == 1, running()
def pattern(seed, size):
    return bytes((seed * 7 + i) % 251 for i in range(256)) * (size // 256)
# Sequential past the write-behind threshold: streamed, whole at close.
seq = pattern(1, 20 * MIB)
with open("seq", "wb") as f:
    for at in range(0, len(seq), MIB): f.write(seq[at:at + MIB])
assert open("seq", "rb").read() == seq
# Streaming, then a write back at the start: the stream is dropped and
# the close uploads the whole file.
back = bytearray(pattern(2, 12 * MIB))
with open("back", "wb") as f:
    f.write(back[:10 * MIB]); f.write(back[10 * MIB:])
    f.seek(0); f.write(b"HEAD")
back[:4] = b"HEAD"
assert open("back", "rb").read() == back
# Streaming, then renamed while open, then more written: both parts land
# under the new name.
with open("moving", "wb") as f:
    f.write(pattern(3, 10 * MIB)); f.flush()
    assert running() == 2, "the upload streams while the file is open"
    os.rename("moving", "moved")
    f.write(b"tail")
assert open("moved", "rb").read() == pattern(3, 10 * MIB) + b"tail"
# Streaming, then unlinked while open: nothing reaches the server.
with open("gone", "wb") as f:
    f.write(pattern(4, 10 * MIB)); f.flush()
    os.unlink("gone")
    f.write(b"more")
assert not os.path.exists("gone")
# An fsync mid-stream makes what was written so far the file.
with open("synced", "wb") as f:
    f.write(pattern(5, 9 * MIB)); f.flush(); os.fsync(f.fileno())
    assert os.path.getsize("synced") == 9 * MIB
    f.write(b"after")
assert open("synced", "rb").read() == pattern(5, 9 * MIB) + b"after"
print("ok")
"#;
    let script = common::testing::fresh_dir("mount-stream").join("stream.py");
    fs::write(&script, program).unwrap();
    let out = sh_ok(
        &mount.dir,
        &format!("python3 {} {metrics}", script.display()),
    );
    assert_eq!(out.trim(), "ok");
    assert_eq!(cluster.get("seq").content_length, Some(20 << 20));
    assert_eq!(cluster.get("back").body[..4], *b"HEAD");
    assert_eq!(cluster.get("moved").content_length, Some((10 << 20) + 4));
    assert_eq!(cluster.get("moving").status, 404);
    assert_eq!(cluster.get("gone").status, 404);
    assert_eq!(cluster.get("synced").content_length, Some((9 << 20) + 5));
}
