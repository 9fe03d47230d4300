//! `make bench`, the S3 API (issue "S3", point 7): 1 KiB and 64 MiB
//! objects put and got through boto3, beside the same through the native
//! API (one keep-alive connection from Python, so the clients cost alike).
//! Each row: rate, and the CPU the naming and storage servers spent per
//! object (MD5 and SigV4 are the S3 path's extra on the naming server),
//! and 64 MiB objects as multipart uploads of 8 MiB parts, four at once.

use super::{CpuMeter, MIB, bench_spec, enabled};
use crate::cluster::{Cluster, Spec};
use crate::s3::{KEYS, here, run_ok};

fn phase(cluster: &Cluster, api: &str, phase: &str, count: usize, size: usize) {
    let meter = CpuMeter::start(cluster);
    let (count_text, size_text) = (count.to_string(), size.to_string());
    let out = run_ok(
        cluster,
        &here(),
        "python3",
        &["bench_client.py", api, phase, &count_text, &size_text],
        &[("NATIVE_URL", &cluster.url())],
    );
    let cpu = meter.stop();
    let wall: f64 = out.trim().parse().unwrap_or(f64::NAN);
    println!(
        "{:<28} {wall:>7.2} s {:>8.0} objects/s {:>8.1} MiB/s   naming {:>7.0} µs  storage {:>7.0} µs  /object",
        format!("{api} {phase} {count} × {}", human(size)),
        count as f64 / wall,
        (count * size) as f64 / MIB / wall,
        cpu.naming_us / count as f64,
        cpu.storage_us / count as f64,
    );
}

fn human(size: usize) -> String {
    match size {
        size if size >= 1 << 20 => format!("{} MiB", size >> 20),
        size => format!("{} KiB", size >> 10),
    }
}

#[test]
fn bench_s3_beside_the_native_api() {
    if !enabled() {
        return;
    }
    let cluster = Cluster::start(Spec {
        s3_keys: Some(KEYS),
        ..bench_spec()
    });
    run_ok(
        &cluster,
        &here(),
        "python3",
        &["bench_client.py", "s3", "setup", "0", "0"],
        &[],
    );
    println!(
        "\n== S3 (boto3) beside the native API (Python, keep-alive), 1 naming, 2 storage, R=2"
    );
    for (count, size) in [(1000, 1024), (4, 64 << 20)] {
        for api in ["native", "s3"] {
            phase(&cluster, api, "put", count, size);
            phase(&cluster, api, "get", count, size);
        }
    }
    // The same 64 MiB objects as multipart uploads, 8 MiB parts, four at
    // once (what the aws CLI and boto3's upload_file do past 8 MiB).
    phase(&cluster, "s3-multipart", "put", 4, 64 << 20);
    phase(&cluster, "s3-multipart", "get", 4, 64 << 20);
}
