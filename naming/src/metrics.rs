//! Counters of the naming server and their Prometheus text rendering.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use common::server::ServerStats;

use crate::naming::Naming;

#[derive(Default)]
pub struct Metrics {
    pub files_created_total: AtomicU64,
    pub files_deleted_total: AtomicU64,
    pub creates_failed_total: AtomicU64,
    pub bytes_written_total: AtomicU64,
    pub bytes_read_total: AtomicU64,
    pub replica_read_failures_total: AtomicU64,
    pub blobs_reclaimed_total: AtomicU64,
    pub orphan_blobs_deleted_total: AtomicU64,
    pub chunks_re_replicated_total: AtomicU64,
}

impl Metrics {
    pub fn count(&self, counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// The whole `/metrics` page.
pub fn render(naming: &Naming, server: &ServerStats) -> String {
    let mut out = String::new();
    let metrics = &naming.metrics;
    let counters: [(&str, &str, &AtomicU64); 14] = [
        (
            "harbour_files_created_total",
            "Files created or overwritten.",
            &metrics.files_created_total,
        ),
        (
            "harbour_files_deleted_total",
            "Files deleted.",
            &metrics.files_deleted_total,
        ),
        (
            "harbour_creates_failed_total",
            "Creates that failed and were rolled back.",
            &metrics.creates_failed_total,
        ),
        (
            "harbour_bytes_written_total",
            "File bytes accepted by committed creates.",
            &metrics.bytes_written_total,
        ),
        (
            "harbour_bytes_read_total",
            "File bytes served to readers.",
            &metrics.bytes_read_total,
        ),
        (
            "harbour_replica_read_failures_total",
            "Replica reads that failed and moved on to the next replica.",
            &metrics.replica_read_failures_total,
        ),
        (
            "harbour_blobs_reclaimed_total",
            "Dropped file versions whose chunks were deleted everywhere.",
            &metrics.blobs_reclaimed_total,
        ),
        (
            "harbour_orphan_blobs_deleted_total",
            "Blobs no file referenced, deleted from a storage server by reconciliation.",
            &metrics.orphan_blobs_deleted_total,
        ),
        (
            "harbour_chunks_re_replicated_total",
            "Chunks copied to a new server because they had too few healthy replicas.",
            &metrics.chunks_re_replicated_total,
        ),
        (
            "harbour_http_requests_total",
            "HTTP requests received.",
            &server.requests_total,
        ),
        (
            "harbour_http_client_errors_total",
            "Requests answered 4xx.",
            &server.errors_4xx_total,
        ),
        (
            "harbour_http_server_errors_total",
            "Requests answered 5xx.",
            &server.errors_5xx_total,
        ),
        (
            "harbour_http_busy_rejections_total",
            "Requests answered 503 because every worker was busy.",
            &server.busy_rejections_total,
        ),
        (
            "harbour_http_handler_panics_total",
            "Handler panics answered 500.",
            &server.panics_total,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let (files, chunks) = {
        let metadata = naming.metadata();
        (metadata.files_count(), metadata.chunks_count())
    };
    let gauges: [(&str, &str, u64); 4] = [
        ("harbour_files", "Files in the namespace.", files),
        (
            "harbour_chunks",
            "Chunks of all files (each stored on `replication` servers).",
            chunks,
        ),
        (
            "harbour_missing_replicas",
            "Blob replicas the metadata expects that a storage server lacks.",
            naming.reconciler.missing_count() as u64,
        ),
        (
            "harbour_garbage_pending",
            "Dropped blobs whose chunks still await deletion.",
            naming.garbage.pending_count() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let rows = naming.server_rows();
    let _ = writeln!(
        out,
        "# HELP harbour_storage_up Whether the storage server answered recently.\n# TYPE harbour_storage_up gauge"
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "harbour_storage_up{{server=\"{}\"}} {}",
            row.url,
            u8::from(row.alive)
        );
    }
    let _ = writeln!(
        out,
        "# HELP harbour_storage_used_bytes Bytes of the server's segment files, what CAPACITY_BYTES caps.\n# TYPE harbour_storage_used_bytes gauge"
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "harbour_storage_used_bytes{{server=\"{}\"}} {}",
            row.url, row.used_bytes
        );
    }
    let _ = writeln!(
        out,
        "# HELP harbour_storage_last_heard_seconds Seconds since the server last answered.\n# TYPE harbour_storage_last_heard_seconds gauge"
    );
    for row in &rows {
        if let Some(millis) = row.last_heard_ms {
            let _ = writeln!(
                out,
                "harbour_storage_last_heard_seconds{{server=\"{}\"}} {:.3}",
                row.url,
                millis as f64 / 1000.0
            );
        }
    }
    out
}
