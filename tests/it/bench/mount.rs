//! `make bench`, the mount (issue "mount", point 9): 1,000 small files and
//! one 256 MiB file copied into and out of a mount with `cp`, beside the
//! same copies through the CLI (one `harbour create`/`read` per file, as a
//! script would). Each row: wall time, rate, and the CPU the copy cost on
//! the client side (cp and the mount process, or the CLI processes) and on
//! the servers.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use super::{CpuMeter, MIB, bench_spec, clock_ticks_per_sec, cpu_ticks, enabled};
use crate::cluster::{Cluster, bin_path, test_bytes};
use crate::mount::Mounted;

const SMALL_FILES: usize = 1000;
const SMALL_FILE_BYTES: usize = 4096;
const BIG_FILE_BYTES: usize = 256 << 20;

/// Runs `script` under bash, returning wall seconds and the CPU seconds
/// (user + system) of everything it started.
fn timed(cwd: &Path, script: &str) -> (f64, f64) {
    let started = Instant::now();
    let output = Command::new("bash")
        .args([
            "-c",
            &format!("TIMEFORMAT='%U %S'; time ( {script} ) >/dev/null"),
        ])
        .current_dir(cwd)
        .output()
        .unwrap();
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`{script}` failed: {stderr}");
    let cpu: f64 = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|secs| secs.parse::<f64>().unwrap_or(0.0))
        .sum();
    (wall, cpu)
}

struct Copy<'a> {
    cluster: &'a Cluster,
    /// The mount process, whose CPU counts as the client's.
    mount_pid: Option<u32>,
}

impl Copy<'_> {
    fn run(&self, what: &str, script: &str, files: usize, bytes: usize) {
        let servers = CpuMeter::start(self.cluster);
        let mount_start = self.mount_pid.map(cpu_ticks);
        let (wall, mut client_cpu) = timed(&self.cluster.dir, script);
        let cpu = servers.stop();
        if let (Some(pid), Some(start)) = (self.mount_pid, mount_start) {
            client_cpu += (cpu_ticks(pid) - start) as f64 / clock_ticks_per_sec();
        }
        println!(
            "{what:<34} {wall:>7.2} s {:>8.0} files/s {:>7.1} MiB/s   client {:>6.0} µs  naming {:>6.0} µs  storage {:>6.0} µs  /file",
            files as f64 / wall,
            bytes as f64 / MIB / wall,
            client_cpu * 1e6 / files as f64,
            cpu.naming_us / files as f64,
            cpu.storage_us / files as f64,
        );
    }
}

#[test]
fn bench_mount_copies_beside_the_cli() {
    if !enabled() {
        return;
    }
    let cluster = Cluster::start(bench_spec());
    let dir = &cluster.dir;
    fs::create_dir_all(dir.join("small")).unwrap();
    for idx in 0..SMALL_FILES {
        fs::write(
            dir.join(format!("small/f{idx:04}")),
            test_bytes(SMALL_FILE_BYTES, idx as u64),
        )
        .unwrap();
    }
    fs::write(dir.join("big"), test_bytes(BIG_FILE_BYTES, 7)).unwrap();
    let small_bytes = SMALL_FILES * SMALL_FILE_BYTES;
    let harbour = bin_path("harbour");
    let cli = format!("NAME_SERVER={} {}", cluster.url(), harbour.display());
    println!("\n== mount: cp through `harbour mount` beside the CLI (1 naming, 2 storage, R=2)");
    let mount = Mounted::start(&cluster, &[]);
    let mnt = mount.dir.display().to_string();
    let copy = Copy {
        cluster: &cluster,
        mount_pid: Some(mount.pid()),
    };
    copy.run(
        "mount: 1000 × 4 KiB in (cp -r)",
        &format!("cp -r small {mnt}/small"),
        SMALL_FILES,
        small_bytes,
    );
    copy.run(
        "mount: 256 MiB in (cp)",
        &format!("cp big {mnt}/big"),
        1,
        BIG_FILE_BYTES,
    );
    drop(mount);
    // A fresh mount: nothing in the kernel's page cache.
    let mount = Mounted::start(&cluster, &[]);
    let mnt = mount.dir.display().to_string();
    let copy = Copy {
        cluster: &cluster,
        mount_pid: Some(mount.pid()),
    };
    copy.run(
        "mount: 1000 × 4 KiB out (cp -r)",
        &format!("cp -r {mnt}/small out-small"),
        SMALL_FILES,
        small_bytes,
    );
    copy.run(
        "mount: 256 MiB out (cp)",
        &format!("cp {mnt}/big out-big"),
        1,
        BIG_FILE_BYTES,
    );
    assert_eq!(
        fs::read(dir.join("out-big")).unwrap(),
        fs::read(dir.join("big")).unwrap()
    );
    drop(mount);
    let copy = Copy {
        cluster: &cluster,
        mount_pid: None,
    };
    copy.run(
        "CLI: 1000 × 4 KiB in (create)",
        &format!("for f in small/*; do {cli} create -q cli/$f $f; done"),
        SMALL_FILES,
        small_bytes,
    );
    copy.run(
        "CLI: 256 MiB in (create)",
        &format!("{cli} create -q cli/big big"),
        1,
        BIG_FILE_BYTES,
    );
    copy.run(
        "CLI: 1000 × 4 KiB out (read)",
        &format!("mkdir -p cli-out && for f in small/*; do {cli} read -q cli/$f cli-out/${{f#small/}}; done"),
        SMALL_FILES,
        small_bytes,
    );
    copy.run(
        "CLI: 256 MiB out (read)",
        &format!("{cli} read -q cli/big cli-out-big"),
        1,
        BIG_FILE_BYTES,
    );
}
