//! The storage server's `/metrics` page: the server loop's request
//! metrics, the store (chunks, bytes, segments, capacity, fsync latency),
//! compaction and the scrub.

use std::sync::atomic::Ordering;

use common::metrics::Page;

use crate::api::Api;
use crate::store::{Store, StoreUsage};

/// The whole `/metrics` page.
pub fn render(api: &Api) -> String {
    let mut page = Page::default();
    api.stats.render(&mut page);
    let usage = api.store.usage();
    page.gauge(
        "harbour_store_chunks",
        "Chunks stored.",
        usage.chunks_count as f64,
    );
    page.gauge(
        "harbour_store_live_bytes",
        "Data bytes of the chunks stored.",
        usage.live_bytes as f64,
    );
    page.gauge(
        "harbour_store_disk_bytes",
        "Bytes of the segment files, dead records included until compacted: what CAPACITY_BYTES caps.",
        usage.disk_bytes as f64,
    );
    if let Some(capacity) = usage.capacity_bytes {
        page.gauge(
            "harbour_store_capacity_bytes",
            "CAPACITY_BYTES, the cap on the segment files.",
            capacity as f64,
        );
        page.gauge(
            "harbour_store_free_bytes",
            "Bytes the segment files may still grow by under CAPACITY_BYTES.",
            capacity.saturating_sub(usage.disk_bytes) as f64,
        );
    }
    // The file system under DATA_DIR, whatever CAPACITY_BYTES says.
    if let Ok(fs) = rustix::fs::statvfs(api.store.dir()) {
        page.gauge(
            "harbour_store_filesystem_free_bytes",
            "Bytes free for unprivileged users on the data folder's file system.",
            (fs.f_bavail * fs.f_frsize) as f64,
        );
        page.gauge(
            "harbour_store_filesystem_size_bytes",
            "Size of the data folder's file system.",
            (fs.f_blocks * fs.f_frsize) as f64,
        );
    }
    page.gauge(
        "harbour_store_segments",
        "Segment files.",
        usage.segments_count as f64,
    );
    page.histogram(
        "harbour_store_fsync_duration_seconds",
        "Time of each fsync that made appended batches durable.",
        &api.store.sync_latency(),
    );
    let schedule = &api.store.compaction;
    page.counter(
        "harbour_compaction_passes_total",
        "Compaction passes run.",
        schedule.passes_total.load(Ordering::Relaxed),
    );
    page.counter(
        "harbour_compaction_freed_bytes_total",
        "Segment bytes compaction gave back.",
        schedule.bytes_freed_total.load(Ordering::Relaxed),
    );
    page.counter(
        "harbour_scrub_verified_bytes_total",
        "Bytes the background scrub read and checked.",
        api.scrub.bytes_verified.load(Ordering::Relaxed),
    );
    page.counter(
        "harbour_scrub_corrupt_chunks_total",
        "Chunks the scrub found corrupt (and dropped, to be repaired from another replica).",
        api.scrub.corrupt_chunks_found.load(Ordering::Relaxed),
    );
    page.finish()
}

/// Bytes the store can still grow by: what `CAPACITY_BYTES` leaves, and
/// no more than its file system has free; `None` when neither is known.
pub fn free_bytes(store: &Store, usage: &StoreUsage) -> Option<u64> {
    let under_cap = usage
        .capacity_bytes
        .map(|capacity| capacity.saturating_sub(usage.disk_bytes));
    let on_disk = rustix::fs::statvfs(store.dir())
        .ok()
        .map(|fs| fs.f_bavail.saturating_mul(fs.f_frsize));
    match (under_cap, on_disk) {
        (Some(cap), Some(disk)) => Some(cap.min(disk)),
        (cap, disk) => cap.or(disk),
    }
}
