//! Scrubbing: every stored chunk is read back and checked against its
//! CRC32C in the background, at a bounded rate, round after round. A
//! corrupt chunk is dropped from the index, so it counts as missing: the
//! naming server's reconciliation notices, and re-replication copies it
//! back from a good replica. Reads check every chunk too; the scrubber
//! finds the rot nobody has read yet.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::pacer::Pacer;

use crate::store::Store;

/// The pause between two full rounds over the store.
const ROUND_PAUSE: Duration = Duration::from_secs(1);

/// What scrubbing has found, for status and metrics.
#[derive(Default)]
pub struct ScrubStats {
    pub corrupt_chunks_found: AtomicU64,
    pub bytes_verified: AtomicU64,
}

/// Scrubs until `stop` is set, reading at most `bytes_per_sec`.
pub fn run(store: &Store, stats: &ScrubStats, bytes_per_sec: u64, stop: &AtomicBool) {
    let mut pacer = Pacer::new(bytes_per_sec);
    let mut cursor = None;
    let mut buffer = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let step = match store.scrub_step(cursor, &mut buffer) {
            Ok(step) => step,
            Err(err) => {
                log::error!("scrub: reading the store failed: {err}");
                pause(ROUND_PAUSE);
                continue;
            }
        };
        for id in &step.corrupt {
            log::warn!(
                "scrub: chunk {id} is corrupt; dropped so it is repaired from another replica"
            );
        }
        stats
            .corrupt_chunks_found
            .fetch_add(step.corrupt.len() as u64, Ordering::Relaxed);
        stats
            .bytes_verified
            .fetch_add(step.bytes_read, Ordering::Relaxed);
        cursor = step.next;
        if cursor.is_none() {
            pause(ROUND_PAUSE);
            pacer.restart();
            continue;
        }
        pacer.wait(step.bytes_read);
    }
}

/// Waits `duration` on a timer channel (bounded; no sleep in product code).
fn pause(duration: Duration) {
    let _ = crossbeam_channel::after(duration).recv();
}
