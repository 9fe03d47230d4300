//! `CAPACITY_BYTES`: a cap on the bytes of the segment files, dead records
//! included until compaction removes them, as if the volume were that
//! small. (Counting it against what compaction would leave instead would
//! let the files outgrow the cap whenever compaction lags.) A put that
//! does not fit waits for a pass that frees the shortfall only when the
//! dead bytes can cover it, so a store full of live data refuses at once.

use crate::limits::SEGMENT_BYTES_MAX;
use crate::record::SEGMENT_MAGIC_BYTES;
use crate::store::State;

/// Whether an append fits under the capacity.
pub(super) enum Room {
    Fits,
    /// It fits once compaction frees the shortfall from dead records.
    AfterReclaiming {
        needed_bytes: u64,
        free_bytes: u64,
    },
    /// Even with every dead record gone it would not fit.
    Full {
        needed_bytes: u64,
        free_bytes: u64,
    },
}

/// Whether an append of `records_bytes` fits under `capacity_bytes`.
pub(super) fn room_for(capacity_bytes: Option<u64>, state: &State, records_bytes: u64) -> Room {
    if capacity_bytes.is_none() {
        return Room::Fits;
    }
    let (needed_bytes, free_bytes) = needed_and_free(capacity_bytes, state, records_bytes);
    if needed_bytes <= free_bytes {
        return Room::Fits;
    }
    let shortfall_bytes = needed_bytes - free_bytes;
    if reclaimable_bytes(state) < shortfall_bytes {
        return Room::Full {
            needed_bytes,
            free_bytes,
        };
    }
    Room::AfterReclaiming {
        needed_bytes,
        free_bytes,
    }
}

/// The bytes an append of `records_bytes` adds, and the bytes still free.
fn needed_and_free(capacity_bytes: Option<u64>, state: &State, records_bytes: u64) -> (u64, u64) {
    let free_bytes = capacity_bytes.map_or(u64::MAX, |capacity| {
        capacity.saturating_sub(state.segments.disk_bytes())
    });
    (append_cost_bytes(state, records_bytes), free_bytes)
}

/// Bytes an append of `records_bytes` adds to the disk, counting the magic
/// of the segment it may have to start.
fn append_cost_bytes(state: &State, records_bytes: u64) -> u64 {
    let starts_segment = state.segments.len(state.active_id) + records_bytes > SEGMENT_BYTES_MAX;
    records_bytes
        + if starts_segment {
            SEGMENT_MAGIC_BYTES
        } else {
            0
        }
}

/// Bytes a rewrite of segment `id` would keep: magic, live records, needed
/// tombstones.
pub(in crate::store) fn kept_bytes(state: &State, id: u32) -> u64 {
    SEGMENT_MAGIC_BYTES
        + state.index.segment_record_bytes(id)
        + state.segments.needed_tombstone_bytes(id)
}

/// Bytes compaction could free: every segment's dead records and unneeded
/// tombstones. Rewriting the active segment first starts a new one, whose
/// magic is counted against it.
fn reclaimable_bytes(state: &State) -> u64 {
    state
        .segments
        .ids()
        .map(|id| {
            let reclaimable = state.segments.len(id).saturating_sub(kept_bytes(state, id));
            if id == state.active_id {
                reclaimable.saturating_sub(SEGMENT_MAGIC_BYTES)
            } else {
                reclaimable
            }
        })
        .sum()
}
