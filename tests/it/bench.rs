//! `make bench`: the standard workloads on a local release cluster (one
//! naming server, two storage servers, R=2, data on this machine's disk),
//! each figure printed beside the bound this machine set in the same run,
//! with the CPU time each server spent per operation (from /proc, the
//! steadiest figure on a shared machine). Prints, never asserts on time.
//! Runs only with HARBOUR_BENCH=1.

mod bounds;
mod etcd;
mod mount;
mod s3;
mod scale;

use std::fs;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Spec, bin_path};

const MIB: f64 = 1024.0 * 1024.0;

fn enabled() -> bool {
    crate::cluster::opted_in("HARBOUR_BENCH", "benchmarks (make bench)")
}

/// The cluster of `make run-cluster`: production timeouts and periods.
fn bench_spec() -> Spec {
    Spec {
        storage: 2,
        replication: 2,
        storage_timeout_ms: 5000,
        io_timeout_ms: 30_000,
        heartbeat_ms: 1000,
        dead_after_ms: 5000,
        checkpoint_bytes: 64 * 1024 * 1024,
        reconcile_ms: 30_000,
        ..Spec::default()
    }
}

/// CPU time (user + system) of the cluster's processes since `start`.
struct CpuMeter {
    pids: Vec<u32>,
    start: Vec<u64>,
}

/// CPU microseconds spent by the naming server and by the storage servers
/// together.
#[derive(Clone, Copy)]
struct Cpu {
    naming_us: f64,
    storage_us: f64,
}

impl CpuMeter {
    fn start(cluster: &Cluster) -> CpuMeter {
        let mut pids = vec![cluster.naming_ref().pid()];
        pids.extend((0..cluster.spec.storage).map(|idx| cluster.storage_ref(idx).pid()));
        let start = pids.iter().map(|&pid| cpu_ticks(pid)).collect();
        CpuMeter { pids, start }
    }

    fn stop(&self) -> Cpu {
        let ticks_us = 1e6 / clock_ticks_per_sec();
        let spent: Vec<f64> = self
            .pids
            .iter()
            .zip(&self.start)
            .map(|(&pid, &start)| (cpu_ticks(pid) - start) as f64 * ticks_us)
            .collect();
        Cpu {
            naming_us: spent[0],
            storage_us: spent[1..].iter().sum(),
        }
    }
}

/// utime + stime of `pid`, in clock ticks (every thread, live or gone).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_sec() -> f64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// One phase of a `harbour bench` run, with the servers' CPU over it.
struct Measured {
    ops: f64,
    ops_per_sec: f64,
    mb_per_sec: f64,
    p99_ms: f64,
    cpu: Cpu,
}

/// Runs one phase of `harbour bench` over `files` files of `size` with
/// `workers`, under the prefix `prefix` (kept between phases).
fn phase(
    cluster: &Cluster,
    phase: &str,
    prefix: &str,
    files: u64,
    size: &str,
    workers: u32,
) -> Measured {
    let keep = phase != "delete";
    let files = files.to_string();
    let workers = workers.to_string();
    let mut args = vec![
        "bench",
        "--json",
        "--phases",
        phase,
        "--prefix",
        prefix,
        "--files",
        &files,
        "--size",
        size,
        "--workers",
        &workers,
    ];
    if keep {
        args.push("--keep");
    }
    let meter = CpuMeter::start(cluster);
    let run = cluster.cli(&args).assert_ok();
    let cpu = meter.stop();
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let measured = &report["phases"][0];
    Measured {
        ops: measured["ops"].as_f64().unwrap(),
        ops_per_sec: measured["ops_per_sec"].as_f64().unwrap(),
        mb_per_sec: measured["mb_per_sec"].as_f64().unwrap(),
        p99_ms: measured["latency_ms"]["p99"].as_f64().unwrap(),
        cpu,
    }
}

/// A line of the report: what, the figure, its bound and their ratio, and
/// the CPU per operation (or per MiB).
fn row(
    what: &str,
    figure: String,
    bound: Option<(f64, f64, String)>,
    cpu: Option<(Cpu, f64, &str)>,
) {
    let (ratio, bound) = match bound {
        Some((figure, bound, text)) => (format!("{:.2}", figure / bound), text),
        None => (String::new(), String::new()),
    };
    let cpu = match cpu {
        Some((cpu, per, unit)) => format!(
            "naming {:>7.0} µs  storage {:>7.0} µs  /{unit}",
            cpu.naming_us / per,
            cpu.storage_us / per
        ),
        None => String::new(),
    };
    println!("{what:<34} {figure:>22} {bound:>28} {ratio:>6}  {cpu}");
}

/// Rows of one small-file workload: create, read, delete, each with its
/// bound and CPU per operation.
fn small_files(
    cluster: &Cluster,
    bounds: &bounds::Bounds,
    label: &str,
    files: u64,
    size: &str,
    workers: u32,
) {
    let prefix = format!("bench-{label}/");
    for (name, bound) in [
        ("create", (bounds.fsyncs_per_sec, "one-at-a-time fsyncs")),
        ("read", (bounds.round_trips_per_sec, "loopback round trips")),
        ("delete", (bounds.fsyncs_per_sec, "one-at-a-time fsyncs")),
    ] {
        let measured = phase(cluster, name, &prefix, files, size, workers);
        row(
            &format!("{label} {name}, {workers} workers"),
            format!(
                "{:.0}/s p99 {:.1} ms",
                measured.ops_per_sec, measured.p99_ms
            ),
            Some((
                measured.ops_per_sec,
                bound.0,
                format!("{:.0}/s {}", bound.0, bound.1),
            )),
            Some((measured.cpu, measured.ops, "op")),
        );
        if name != "delete" && size != "1KiB" {
            println!(
                "{:<34} {:>22}",
                "",
                format!("{:.1} MB/s", measured.mb_per_sec)
            );
        }
    }
}

#[test]
fn bench_report() {
    if !enabled() {
        return;
    }
    let started = Instant::now();
    let mut cluster = Cluster::start(bench_spec());
    let file_mib = 256;
    let bounds = bounds::measure(&cluster.dir, file_mib << 20, cluster.spec.replication);
    bounds.print();
    println!();
    println!(
        "{:<34} {:>22} {:>28} {:>6}  CPU per operation",
        "workload", "figure", "bound", "ratio"
    );

    // (g) first, while the processes are fresh.
    let idle = [
        cluster.naming().peak_rss_bytes(),
        cluster.storage(0).peak_rss_bytes(),
    ];
    row(
        "idle RSS naming / storage",
        format!("{} / {} KiB", idle[0] / 1024, idle[1] / 1024),
        None,
        None,
    );
    for binary in ["harbour", "harbour-naming", "harbour-storage"] {
        let bytes = fs::metadata(bin_path(binary)).unwrap().len();
        row(
            &format!("binary {binary}"),
            format!("{:.2} MB", bytes as f64 / 1e6),
            None,
            None,
        );
    }
    row(
        "naming start to healthy",
        format!("{:.1} ms", start_to_healthy(&cluster).as_secs_f64() * 1e3),
        None,
        None,
    );

    // (a) one 256 MiB file up and down; (e) peak RSS meanwhile.
    big_file(&cluster, &bounds, "(a)", file_mib);
    let peak = [
        cluster.naming().peak_rss_bytes(),
        cluster.storage(0).peak_rss_bytes(),
        cluster.storage(1).peak_rss_bytes(),
    ];
    row(
        "(e) peak RSS naming / storage x2",
        format!(
            "{} / {} / {} KiB",
            peak[0] / 1024,
            peak[1] / 1024,
            peak[2] / 1024
        ),
        None,
        None,
    );

    // (b) and (d): 5,000 files of 1 KiB with 16 workers and with 1.
    small_files(&cluster, &bounds, "(b) 1 KiB x 5000", 5000, "1KiB", 16);
    small_files(&cluster, &bounds, "(b) 1 KiB x 5000", 5000, "1KiB", 1);
    // (c) 1,000 files of 64 KiB with 8 workers.
    small_files(&cluster, &bounds, "(c) 64 KiB x 1000", 1000, "64KiB", 8);
    drop(cluster);

    // (h) (a) and (b) again on a cluster where every server serves HTTPS
    // and every call is verified: what TLS costs, beside the rows above.
    let tls_cluster = Cluster::start(Spec {
        tls: true,
        ..bench_spec()
    });
    row(
        "(h) TLS idle RSS naming / storage",
        format!(
            "{} / {} KiB",
            tls_cluster.naming_ref().peak_rss_bytes() / 1024,
            tls_cluster.storage_ref(0).peak_rss_bytes() / 1024
        ),
        None,
        None,
    );
    big_file(&tls_cluster, &bounds, "(h) TLS", file_mib);
    small_files(
        &tls_cluster,
        &bounds,
        "(h) TLS 1 KiB x 5000",
        5000,
        "1KiB",
        16,
    );
    drop(tls_cluster);

    // (f) naming-server memory per file and per chunk.
    let per_file = scale::naming_restart(1_000_000, 1, 1);
    row(
        "(f) naming memory per file",
        format!(
            "{:.0} B",
            per_file.extra_rss_bytes as f64 / per_file.files as f64
        ),
        None,
        None,
    );
    row(
        "    restart with 1M files",
        format!("{:.2} s", per_file.restart.as_secs_f64()),
        None,
        None,
    );
    let per_chunk = scale::naming_restart(1000, 1000, 4);
    let file_bytes = per_file.extra_rss_bytes as f64 / per_file.files as f64;
    let chunk_bytes = (per_chunk.extra_rss_bytes as f64 - file_bytes * per_chunk.files as f64)
        / per_chunk.chunks as f64;
    row(
        "(f) naming memory per chunk",
        format!("{:.2} B (runs of 250)", chunk_bytes.max(0.0)),
        None,
        None,
    );
    println!("\nmake bench took {:.0} s", started.elapsed().as_secs_f64());
}

/// One file of `file_mib` MiB up and down (and deleted), each beside its
/// bound, with the CPU per MiB.
fn big_file(cluster: &Cluster, bounds: &bounds::Bounds, label: &str, file_mib: usize) {
    let size = format!("{file_mib}MiB");
    let prefix = format!("bench-{label}/");
    let up = phase(cluster, "create", &prefix, 1, &size, 1);
    row(
        &format!("{label} {file_mib} MiB up"),
        format!("{:.0} MB/s", up.mb_per_sec),
        Some((
            up.mb_per_sec,
            bounds.copies_write_mib_per_sec * MIB / 1e6,
            format!(
                "{:.0} MB/s {} copies",
                bounds.copies_write_mib_per_sec * MIB / 1e6,
                bounds.copies
            ),
        )),
        Some((up.cpu, file_mib as f64, "MiB")),
    );
    let down = phase(cluster, "read", &prefix, 1, &size, 1);
    row(
        &format!("{label} {file_mib} MiB down"),
        format!("{:.0} MB/s", down.mb_per_sec),
        Some((
            down.mb_per_sec,
            bounds.loopback_mib_per_sec * MIB / 1e6,
            format!(
                "{:.0} MB/s loopback",
                bounds.loopback_mib_per_sec * MIB / 1e6
            ),
        )),
        Some((down.cpu, file_mib as f64, "MiB")),
    );
    phase(cluster, "delete", &prefix, 1, &size, 1);
}

/// Time from starting a naming server to its first 200 on /health,
/// polled as fast as connections go.
fn start_to_healthy(cluster: &Cluster) -> Duration {
    let dir = crate::cluster::test_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let urls = format!("{},{}", cluster.storage_url(0), cluster.storage_url(1));
    let mut command = std::process::Command::new(bin_path("harbour-naming"));
    crate::cluster::clear_env(&mut command);
    let log = fs::File::create(dir.join("naming.log")).unwrap();
    let started = Instant::now();
    let mut naming = command
        .args([
            "--listen",
            &listen,
            "--storage-servers",
            &urls,
            "--meta-dir",
        ])
        .arg(dir.join("meta"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let healthy = loop {
        let answered = std::net::TcpStream::connect(&listen).is_ok_and(|mut stream| {
            use std::io::{Read, Write};
            let mut status = [0u8; 12];
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .is_ok()
                && stream.read_exact(&mut status).is_ok()
                && &status == b"HTTP/1.1 200"
        });
        if answered {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "naming never became healthy"
        );
    };
    let _ = naming.kill();
    let _ = naming.wait();
    let _ = fs::remove_dir_all(dir);
    healthy
}
