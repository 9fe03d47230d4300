//! The store's side of compaction: what the planner reads and what a copy
//! asks and changes, each under one short hold of the state lock. Only
//! compaction calls these.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::copy::Move;
use super::plan::SegmentStat;
use crate::record::{Kind, RecordAt};
use crate::segments::Contents;
use crate::store::Store;
use crate::store::capacity::kept_bytes;

impl Store {
    /// The folder of the segment files (also for `/metrics`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The active segment's id and, per segment, what compaction would keep.
    pub(in crate::store) fn segment_stats(&self) -> (u32, Vec<SegmentStat>) {
        let state = self.lock_state();
        let stats = state
            .segments
            .ids()
            .map(|id| SegmentStat {
                id,
                len: state.segments.len(id),
                kept_bytes: kept_bytes(&state, id),
            })
            .collect();
        (state.active_id, stats)
    }

    /// Closes the active segment if it is still `segment_id`, so that
    /// compaction may rewrite it; returns whether it did.
    pub(in crate::store) fn seal_active(&self, segment_id: u32) -> io::Result<bool> {
        let mut state = self.lock_state();
        if state.active_id != segment_id {
            return Ok(false);
        }
        self.start_segment(&mut state)?;
        Ok(true)
    }

    /// The file and length of closed segment `segment_id`, if it exists.
    pub(super) fn closed_segment(&self, segment_id: u32) -> Option<(Arc<File>, u64)> {
        let state = self.lock_state();
        if segment_id == state.active_id {
            return None;
        }
        let file = state.files.get(&segment_id)?;
        Some((Arc::clone(file), state.segments.len(segment_id)))
    }

    /// Which of `records`, read from closed segment `source_id`, the copy
    /// that takes id `target_id` must keep: chunks the index still serves
    /// from there, and tombstones whose blob a segment older than the copy
    /// may hold records of. One short hold of the state lock.
    pub(super) fn records_to_keep(
        &self,
        (source_id, target_id): (u32, u32),
        records: &[RecordAt],
    ) -> Vec<bool> {
        let state = self.lock_state();
        records
            .iter()
            .map(|record| match record.kind {
                Kind::Chunk => state.index.is_at(record.id, source_id, record.offset),
                Kind::Tombstone => state.segments.tombstone_needed(record.id.blob, target_id),
            })
            .collect()
    }

    /// Record bytes of `segment_ids` the index serves that `moves` did not
    /// copy; zero means the copy is complete. Records only die, never come
    /// back, so a zero stays zero until the copy is installed.
    pub(super) fn live_bytes_not_moved(&self, segment_ids: &[u32], moves: &[Move]) -> u64 {
        let state = self.lock_state();
        let moved: u64 = moves
            .iter()
            .flat_map(|copied| {
                state.index.still_at(
                    copied.blob,
                    copied.first_index,
                    copied.count,
                    copied.segment,
                    copied.offset,
                )
            })
            .map(|(_, run)| run.record_bytes())
            .sum();
        let live: u64 = segment_ids
            .iter()
            .map(|&id| state.index.segment_record_bytes(id))
            .sum();
        live - moved
    }

    /// Switches segment `target_id` to its compacted `file` of `len` bytes,
    /// already renamed over it, which holds the copy of `source_ids` (target
    /// included): the runs still at their old places move to their new ones
    /// (a delete or rewrite since the copy wins), and reads get `file`. The
    /// other sources stay known until `forget_segment`.
    pub(super) fn install_compacted(
        &self,
        (target_id, file, len): (u32, File, u64),
        moves: &[Move],
        source_ids: &[u32],
        (old, new): (&Contents, &Contents),
    ) {
        let mut state = self.lock_state();
        assert!(
            source_ids.iter().all(|&id| id != state.active_id),
            "only closed segments compact"
        );
        let live_bytes: u64 = source_ids
            .iter()
            .map(|&id| state.index.segment_record_bytes(id))
            .sum();
        let moved_bytes: u64 = moves
            .iter()
            .map(|copied| {
                state.index.relocate(
                    copied.blob,
                    copied.first_index,
                    copied.count,
                    (copied.segment, copied.offset),
                    (target_id, copied.new_offset),
                )
            })
            .sum();
        // `live_bytes_not_moved` was zero before the rename, and records
        // only die: every run left in the group was moved just now.
        assert_eq!(moved_bytes, live_bytes, "segments {source_ids:?}");
        state.files.insert(target_id, Arc::new(file));
        state.segments.replace(target_id, len, old, new);
    }

    /// Forgets `segment_id`, whose file compaction deleted (it held `old`,
    /// nothing replay needs).
    pub(super) fn forget_segment(&self, segment_id: u32, old: &Contents) {
        let mut state = self.lock_state();
        assert_ne!(segment_id, state.active_id, "only closed segments compact");
        assert_eq!(state.index.segment_record_bytes(segment_id), 0);
        state.files.remove(&segment_id);
        state.segments.remove(segment_id, old);
    }
}
