//! `harbour mount` (SPEC "Mount"), tested with the programs people run on
//! a mount: cp, diff, rsync, tar, git, fio, find, du, df, an editor's save,
//! and Python for the exact errno of each failure. Every mount a test makes
//! is unmounted by `Mounted`'s drop, and every program runs under
//! `timeout`, so a hung mount fails the test instead of hanging it.

mod faults;
mod programs;
mod semantics;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::{Cluster, bin_path, clear_env, wait_until};

/// The longest one program may run on a mount.
const PROGRAM_SECONDS_MAX: u64 = 120;

/// A running `harbour mount` of a test cluster.
pub struct Mounted {
    child: Child,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Mounted {
    /// Mounts `cluster` on a fresh folder of its test folder, with `extra`
    /// flags, and waits until the kernel shows the mount.
    pub fn start(cluster: &Cluster, extra: &[&str]) -> Mounted {
        Mounted::start_with(cluster, extra, None)
    }

    pub fn start_with(cluster: &Cluster, extra: &[&str], token: Option<&str>) -> Mounted {
        let serial = fs::read_dir(&cluster.dir).map_or(0, Iterator::count);
        let dir = cluster.dir.join(format!("mnt{serial}"));
        fs::create_dir_all(&dir).unwrap();
        let log = cluster.dir.join(format!("mount{serial}.log"));
        let mut command = Command::new(bin_path("harbour"));
        clear_env(&mut command);
        command
            .arg("mount")
            .arg(&dir)
            .args(["--cache-dir", cluster.dir.to_str().unwrap()])
            .args(extra)
            .env("NAME_SERVER", cluster.url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        if let Some(pki) = &cluster.pki {
            command.env("TLS_CA_FILE", pki.ca_arg());
        }
        if let Some(token) = token.or(cluster.spec.token) {
            command.env("HARBOUR_TOKEN", token);
        }
        let child = command.spawn().expect("start harbour mount");
        let mut mounted = Mounted { child, dir, log };
        wait_until(Duration::from_secs(10), "the mount appears", || {
            mounted.is_mounted() || mounted.exited().is_some()
        });
        assert!(
            mounted.is_mounted(),
            "harbour mount did not mount: {}",
            mounted.log_text()
        );
        mounted
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub fn is_mounted(&self) -> bool {
        is_mount_point(&self.dir)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.code().unwrap_or(-1))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` to the mount process.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits (bounded) for the mount process to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let mut code = None;
        wait_until(limit, "harbour mount exits", || {
            code = self.exited();
            code.is_some()
        });
        code.unwrap()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.is_mounted() {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.dir)
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `dir` is a mount point now (`/proc/self/mountinfo`'s 5th field).
fn is_mount_point(dir: &Path) -> bool {
    let wanted = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted))
}

/// Writes a file through the mount and fsyncs it: its upload's error
/// (which a plain close would drop) fails the test.
pub fn write_through(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

/// The outcome of a program run on the mount.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `script` with `sh -c` in `cwd`, bounded by `PROGRAM_SECONDS_MAX`.
pub fn sh(cwd: &Path, script: &str) -> Ran {
    let output = Command::new("timeout")
        .args([
            "-k",
            "5",
            &PROGRAM_SECONDS_MAX.to_string(),
            "sh",
            "-c",
            script,
        ])
        .current_dir(cwd)
        .output()
        .expect("run sh");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `script` and asserts it succeeds; its stdout.
pub fn sh_ok(cwd: &Path, script: &str) -> String {
    let ran = sh(cwd, script);
    assert_eq!(
        ran.code, 0,
        "`{script}` failed ({}):\nstdout: {}\nstderr: {}",
        ran.code, ran.stdout, ran.stderr
    );
    ran.stdout
}

/// Runs a Python program (errno checks need the exact error).
pub fn python_ok(cwd: &Path, program: &str) -> String {
    // The program lives outside the mount, so it is not one of its files.
    let path = common::testing::fresh_dir("mount-checks").join("check.py");
    fs::write(&path, program).unwrap();
    sh_ok(cwd, &format!("python3 {}", path.display()))
}

/// A tree of files at chunk boundaries and odd names, with an empty folder.
pub fn make_tree(root: &Path) {
    let sizes = [
        0usize,
        1,
        1023,
        1024,
        1025,
        3 * 1024,
        (1 << 20) + 1,
        200_000,
    ];
    for (idx, size) in sizes.iter().enumerate() {
        let dir = root.join(format!("level{}/inner", idx % 3));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("file-{size}.bin")),
            crate::cluster::test_bytes(*size, idx as u64),
        )
        .unwrap();
    }
    let odd = root.join("odd names");
    fs::create_dir_all(&odd).unwrap();
    for name in [
        "spaces in it",
        "ünïcødé ✓",
        "#hash%percent?query&amp",
        "-leading-dash",
        "a'quote\"s",
    ] {
        fs::write(odd.join(name), name.as_bytes()).unwrap();
    }
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
}
