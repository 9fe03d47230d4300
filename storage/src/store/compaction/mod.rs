//! Compaction: gives back the disk space of dead records (chunks deleted or
//! rewritten, tombstones no longer needed) by rewriting mostly-dead closed
//! segments with only what is still needed, and merges runs of small ones so
//! their number stays bounded. Invariant: at every moment the segment files
//! replay to the same live chunks. A copy takes effect only by a rename made
//! after the copy was fsynced; the index moves to it only after the rename
//! is durable, and only the runs still at their old place move, so a delete
//! or rewrite made during the copy wins.
//!
//! One thread runs passes (`run`), every `COMPACTION_INTERVAL` or sooner
//! when a request asks (`schedule.rs`: `Schedule::request_pass`). A pass
//! plans from the store's counters (`plan.rs`, pure): groups of
//! consecutive closed segments, each rewritten as one file that takes the
//! id of its newest segment. For each group, oldest first (`copy.rs`):
//!
//! 1. copies, in the record scanner's pieces read without the state lock,
//!    every record the index still serves from the group and every
//!    tombstone that a segment older than the group's id may still hold a
//!    record for (`segments.rs`), in their replay order, into
//!    `segment-NNNNNNNN.hseg.compacting`; the state lock is held only to
//!    decide which records of a piece to keep;
//! 2. checks that every live run of the group was copied;
//! 3. fsyncs the copy, renames it over the newest segment, fsyncs the folder;
//! 4. moves the runs to their new places and that segment's handle to the
//!    new file, under the state lock (a read that took an old handle keeps
//!    reading the old file, which lives on until the read drops it);
//! 5. deletes the group's other segments, then fsyncs the folder.
//!
//! A group left with nothing is deleted instead (then the folder fsynced).
//!
//! Crash safety: before step 3's rename, a crash leaves the old segments and
//! a copy that `Store::open` removes. After it, the new file holds every
//! record that was live and every tombstone an older record may need, in
//! the old order and at the place of the group's newest segment, so replay
//! finds the same chunks whether or not the other segments of the group are
//! still there: their live records are overridden by the copies, their dead
//! ones killed by what killed them before, which is either a kept record of
//! the group or newer than the group. A tombstone is dropped only once no
//! segment older than the group holds a record of its blob, and that is
//! known only after the older segment's own rewrite or deletion was durable.

pub mod copy;
mod hooks;
pub mod plan;
pub mod schedule;

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

use common::pacer::Pacer;

use crate::store::Store;

use self::copy::{copy_live, finish};
use self::plan::{Order, plan};
use self::schedule::{Schedule, Serving};

/// A background pass reads at most this many segment bytes per second, so
/// that it leaves the disk to client traffic. A pass a request waits on is
/// not paced.
pub const COPY_BYTES_PER_SECOND_MAX: u64 = 64 * 1024 * 1024;

/// What became of one group.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Rewritten {
        old_len: u64,
        new_len: u64,
    },
    Deleted {
        old_len: u64,
    },
    /// A segment of it is gone or is the active one: nothing done.
    Skipped,
    /// Live records sit past a damaged record the copy cannot read past:
    /// left as it is, and `segment` not tried again by this process.
    Abandoned {
        segment: u32,
        damaged_from: u64,
    },
}

/// The compaction thread: passes until `Schedule::stop`. IO errors are
/// logged and the group left as it was; the next pass tries again.
pub fn run(store: &Store) {
    store.compaction.set_serving(true);
    let _serving = Serving(&store.compaction);
    let mut abandoned = BTreeSet::new();
    while let Some((order, ticket)) = store.compaction.next_order() {
        let freed = pass(store, order, &mut abandoned);
        let schedule = &store.compaction;
        schedule.passes_total.fetch_add(1, Ordering::Relaxed);
        schedule
            .bytes_freed_total
            .fetch_add(freed, Ordering::Relaxed);
        store.compaction.finish(ticket);
    }
}

/// One pass: plans, then rewrites the chosen groups oldest first (so a
/// tombstone whose older records go in this pass can go too). Returns the
/// bytes freed. `abandoned` are segments not to try again.
pub fn pass(store: &Store, order: Order, abandoned: &mut BTreeSet<u32>) -> u64 {
    let (active_id, stats) = store.segment_stats();
    let plan = plan(active_id, &stats, order, abandoned);
    if plan.seal_active
        && let Err(err) = store.seal_active(active_id)
    {
        log::warn!("compaction: cannot close segment {active_id}: {err}");
    }
    let mut pacing = Pacing::new(&store.compaction, order.urgent);
    let mut freed_bytes = 0;
    for group in plan.groups {
        let what = match group.as_slice() {
            [id] => format!("segment {id}"),
            _ => format!(
                "segments {}..={} (merged)",
                group[0],
                group[group.len() - 1]
            ),
        };
        match compact_group(store, &group, &mut pacing) {
            Ok(Outcome::Rewritten { old_len, new_len }) => {
                freed_bytes += old_len.saturating_sub(new_len);
                log::info!("compaction: {what}: {old_len} -> {new_len} bytes");
            }
            Ok(Outcome::Deleted { old_len }) => {
                freed_bytes += old_len;
                log::info!("compaction: {what}: {old_len} bytes, all dead, deleted");
            }
            Ok(Outcome::Skipped) => {}
            Ok(Outcome::Abandoned {
                segment,
                damaged_from,
            }) => {
                abandoned.insert(segment);
                log::warn!(
                    "compaction: segment {segment} has live records past damage at offset {damaged_from}; left as it is"
                );
            }
            Err(err) => log::warn!("compaction: {what}: {err}; left as it was"),
        }
    }
    freed_bytes
}

/// Rewrites `group`, consecutive closed segments oldest first, as one
/// segment with only what is still needed, or deletes it if that is nothing.
pub fn compact_group(store: &Store, group: &[u32], pacing: &mut Pacing<'_>) -> io::Result<Outcome> {
    match copy_live(store, group, pacing)? {
        Some(copy) => finish(store, copy),
        None => Ok(Outcome::Skipped),
    }
}

/// Paces a background pass to `COPY_BYTES_PER_SECOND_MAX` with the common
/// pacer. A pass a request waits on is not paced, and a request arriving
/// cuts a pause short.
pub struct Pacing<'a> {
    schedule: &'a Schedule,
    urgent: bool,
    pacer: Pacer,
}

impl Pacing<'_> {
    pub fn new(schedule: &Schedule, urgent: bool) -> Pacing<'_> {
        Pacing {
            schedule,
            urgent,
            pacer: Pacer::new(COPY_BYTES_PER_SECOND_MAX),
        }
    }

    /// Counts `bytes` read; waits while ahead of the rate, unless a request
    /// is waiting for a pass.
    fn pace(&mut self, bytes: u64) {
        let delay = self.pacer.delay(bytes, Instant::now());
        if self.urgent || self.schedule.urgent_pending() {
            return;
        }
        if let Some(ahead) = delay {
            self.schedule.pause(ahead);
        }
    }
}

#[cfg(test)]
mod tests;
