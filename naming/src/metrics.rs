//! Counters of the naming server and their Prometheus text rendering.

use std::sync::atomic::{AtomicU64, Ordering};

use common::api::ServerStatus;
use common::metrics::Page;
use common::server::ServerStats;

use crate::cluster::Health;
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
    pub bytes_re_replicated_total: AtomicU64,
}

impl Metrics {
    pub fn count(&self, counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// A gauge's value for one storage server, if it has one.
type PerServer = fn(&ServerStatus, &Health) -> Option<f64>;

/// The whole `/metrics` page.
pub fn render(naming: &Naming, server: &ServerStats) -> String {
    let mut page = Page::default();
    server.render(&mut page);
    let metrics = &naming.metrics;
    let counters: [(&str, &str, &AtomicU64); 10] = [
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
            "Replica reads that failed (unreachable, or a corrupt chunk) and moved on to the next replica.",
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
            "harbour_re_replicated_bytes_total",
            "Data bytes re-replication copied (each copy counted).",
            &metrics.bytes_re_replicated_total,
        ),
    ];
    for (name, help, value) in counters {
        page.counter(name, help, value.load(Ordering::Relaxed));
    }
    let (files, chunks) = {
        let metadata = naming.metadata();
        (metadata.files_count(), metadata.chunks_count())
    };
    let store = naming.store().stats();
    let rows = naming.server_rows();
    let dead = rows.iter().filter(|row| !row.alive).count();
    let gauges: [(&str, &str, f64); 9] = [
        ("harbour_files", "Files in the namespace.", files as f64),
        (
            "harbour_chunks",
            "Chunks of all files (each stored on `replication` servers).",
            chunks as f64,
        ),
        (
            "harbour_under_replicated_chunks",
            "Chunks with fewer healthy replicas than the replication factor.",
            naming.under_replicated_chunks() as f64,
        ),
        (
            "harbour_missing_replicas",
            "Blob replicas the metadata expects that a storage server lacks.",
            naming.reconciler.missing_count() as f64,
        ),
        (
            "harbour_garbage_pending",
            "Dropped blobs whose chunks still await deletion.",
            naming.garbage.pending_count() as f64,
        ),
        (
            "harbour_storage_servers_dead",
            "Storage servers not heard from within DEAD_AFTER_MS.",
            dead as f64,
        ),
        (
            "harbour_journal_bytes",
            "Bytes of metadata journal since the last checkpoint (what a restart replays).",
            store.journal_bytes as f64,
        ),
        (
            "harbour_upkeep_leader",
            "1 if this naming server runs the upkeep that runs once per cluster (always with the local journal; with etcd, the elected leader).",
            f64::from(u8::from(naming.store().leads_upkeep())),
        ),
        (
            "harbour_checkpoint_age_seconds",
            "Seconds since the last metadata checkpoint (or since start-up).",
            store.checkpoint_age.as_secs_f64(),
        ),
    ];
    for (name, help, value) in gauges {
        page.gauge(name, help, value);
    }
    page.histogram(
        "harbour_journal_fsync_duration_seconds",
        "Time of each fsync of the metadata journal (with etcd: of each transaction).",
        &store.sync_latency,
    );
    let per_server: [(&str, &str, PerServer); 5] = [
        (
            "harbour_storage_up",
            "Whether the storage server answered recently.",
            |row, _| Some(f64::from(u8::from(row.alive))),
        ),
        (
            "harbour_storage_used_bytes",
            "Bytes of the server's segment files, what CAPACITY_BYTES caps.",
            |row, _| Some(row.used_bytes as f64),
        ),
        (
            "harbour_storage_chunks",
            "Chunks the server says it stores.",
            |row, _| Some(row.chunks as f64),
        ),
        (
            "harbour_storage_corrupt_chunks_found",
            "Chunks the server's scrub found corrupt since it started.",
            |_, health| Some(health.corrupt_chunks_found as f64),
        ),
        (
            "harbour_storage_last_heard_seconds",
            "Seconds since the server last answered.",
            |row, _| row.last_heard_ms.map(|millis| millis as f64 / 1000.0),
        ),
    ];
    let ids = naming.server_ids();
    for (name, help, value) in per_server {
        page.family(name, help, "gauge");
        for (row, id) in rows.iter().zip(&ids) {
            let health = naming.cluster.health(*id);
            if let Some(value) = value(row, &health) {
                page.sample(name, &[("server", row.url.clone())], value);
            }
        }
    }
    page.finish()
}
