//! What a compaction pass rewrites, decided from the store's counters
//! alone: pure, no IO, no clock, tested by tables.

use std::collections::BTreeSet;

use crate::limits::SEGMENT_BYTES_MAX;
use crate::record::SEGMENT_MAGIC_BYTES;

/// A segment is rewritten when less than this share of its bytes is live
/// (records still served and tombstones still needed). At 50% a rewrite at
/// least halves the segment, so each byte is copied a bounded number of
/// times on average.
pub const LIVE_PERCENT_MAX: u64 = 50;

/// The background closes a sparse active segment for compaction only from
/// this size on, so that it does not cut a new segment for a few dead
/// chunks every second. A request that waits on the pass seals at any size.
pub const SEAL_ACTIVE_BYTES_MIN: u64 = 4 * 1024 * 1024;

/// A closed segment under this size is small: runs of small segments are
/// merged, because each segment costs an open file for the process's life.
pub const MERGE_SEGMENT_BYTES_MAX: u64 = SEGMENT_BYTES_MAX / 4;

/// Dense small segments are merged only this many at a time or more, so a
/// merge removes several files for what it copies, and a byte is merged
/// again only into a group several times larger.
pub const MERGE_SEGMENTS_MIN: usize = 4;

const _: () = assert!(LIVE_PERCENT_MAX > 0 && LIVE_PERCENT_MAX <= 100);
const _: () = assert!(MERGE_SEGMENTS_MIN >= 2);
const _: () = assert!(MERGE_SEGMENT_BYTES_MAX * MERGE_SEGMENTS_MIN as u64 <= SEGMENT_BYTES_MAX);

/// What a pass is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// A request waits on this pass: no pacing, and the active segment is
    /// sealed at any size.
    pub urgent: bool,
    /// Beyond the sparse segments, rewrite the deadest ones until this many
    /// bytes are freed, if the dead records allow.
    pub reclaim_bytes: u64,
}

impl Order {
    pub const BACKGROUND: Order = Order {
        urgent: false,
        reclaim_bytes: 0,
    };
}

/// A segment as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentStat {
    pub id: u32,
    pub len: u64,
    /// Bytes a rewrite would leave: magic, live records, needed tombstones.
    pub kept_bytes: u64,
}

/// What a pass rewrites.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Close the active segment first; its id is then in a group.
    pub seal_active: bool,
    /// Groups of consecutive segments, oldest first, each rewritten as one.
    pub groups: Vec<Vec<u32>>,
}

impl SegmentStat {
    /// Bytes of records a rewrite keeps.
    pub fn live_bytes(&self) -> u64 {
        self.kept_bytes.saturating_sub(SEGMENT_MAGIC_BYTES)
    }

    /// Bytes a rewrite frees.
    pub fn dead_bytes(&self) -> u64 {
        self.len.saturating_sub(self.kept_bytes)
    }

    /// Whether less than `LIVE_PERCENT_MAX` of the segment is live.
    pub fn is_sparse(&self) -> bool {
        u128::from(self.live_bytes()) * 100 < u128::from(self.len) * u128::from(LIVE_PERCENT_MAX)
    }

    /// Whether rewriting this closed segment is worth it on its own: it is
    /// empty, or sparse with something to free.
    pub fn is_wasteful(&self) -> bool {
        self.live_bytes() == 0 || (self.is_sparse() && self.dead_bytes() > 0)
    }
}

/// Chooses what a pass rewrites. Pure.
///
/// - The active segment is sealed when sparse, big enough (any size for an
///   urgent order) and holding more dead bytes than its successor's magic
///   costs.
/// - Runs of consecutive closed segments that are small or wasteful are
///   merged, `MERGE_SEGMENTS_MIN` or more at a time, up to a segment's worth
///   of kept bytes, when the largest keeps no more than the others together:
///   a merge then at least doubles the segment a byte is in, so a byte is
///   merged a few times at most before its segment is no longer small.
/// - Every other wasteful closed segment is rewritten alone.
/// - Then, for `order.reclaim_bytes`, the deadest of the rest, one by one,
///   until the dead bytes chosen cover it.
pub fn plan(
    active_id: u32,
    stats: &[SegmentStat],
    order: Order,
    abandoned: &BTreeSet<u32>,
) -> Plan {
    let seal_bytes_min = if order.urgent {
        0
    } else {
        SEAL_ACTIVE_BYTES_MIN
    };
    // What rewriting a segment frees; the active one costs a new magic.
    let freed = |stat: &SegmentStat| {
        if stat.id == active_id {
            stat.dead_bytes().saturating_sub(SEGMENT_MAGIC_BYTES)
        } else {
            stat.dead_bytes()
        }
    };
    let mut by_id: Vec<&SegmentStat> = stats.iter().collect();
    by_id.sort_by_key(|stat| stat.id);
    let usable = |stat: &SegmentStat| !abandoned.contains(&stat.id);
    let seal_active = by_id.iter().any(|stat| {
        stat.id == active_id
            && usable(stat)
            && stat.len >= seal_bytes_min
            && stat.is_sparse()
            && freed(stat) > 0
    });
    let closed = |stat: &SegmentStat| stat.id != active_id || seal_active;
    // Runs of consecutive closed segments worth merging; any other segment,
    // an abandoned one too, ends a run.
    let mut runs: Vec<Vec<&SegmentStat>> = vec![Vec::new()];
    for &stat in &by_id {
        let mergeable = closed(stat)
            && usable(stat)
            && (stat.is_wasteful() || stat.len < MERGE_SEGMENT_BYTES_MAX);
        match runs.last_mut() {
            Some(run) if mergeable => run.push(stat),
            _ => runs.push(Vec::new()),
        }
    }
    let mut groups: Vec<Vec<&SegmentStat>> = runs.iter().flat_map(|run| merges_in(run)).collect();
    let mut chosen: BTreeSet<u32> = groups.iter().flatten().map(|stat| stat.id).collect();
    for &stat in &by_id {
        if closed(stat) && usable(stat) && stat.is_wasteful() && chosen.insert(stat.id) {
            groups.push(vec![stat]);
        }
    }
    let mut freed_bytes: u64 = groups.iter().flatten().map(|stat| freed(stat)).sum();
    if freed_bytes < order.reclaim_bytes {
        let mut rest: Vec<&SegmentStat> = by_id
            .iter()
            .copied()
            .filter(|stat| usable(stat) && freed(stat) > 0 && !chosen.contains(&stat.id))
            .collect();
        rest.sort_by_key(|stat| std::cmp::Reverse(freed(stat)));
        for stat in rest {
            if freed_bytes >= order.reclaim_bytes {
                break;
            }
            freed_bytes += freed(stat);
            chosen.insert(stat.id);
            groups.push(vec![stat]);
        }
    }
    let mut groups: Vec<Vec<u32>> = groups
        .iter()
        .map(|group| group.iter().map(|stat| stat.id).collect())
        .collect();
    groups.sort_unstable();
    Plan {
        seal_active: chosen.contains(&active_id),
        groups,
    }
}

/// The merges to make in `run`, consecutive mergeable segments: windows of
/// at least `MERGE_SEGMENTS_MIN` that keep at most a segment's worth and
/// whose largest keeps no more than the others together, first fit.
fn merges_in<'a>(run: &[&'a SegmentStat]) -> Vec<Vec<&'a SegmentStat>> {
    let mut merges = Vec::new();
    let mut start = 0;
    while start + MERGE_SEGMENTS_MIN <= run.len() {
        let mut end = start;
        let mut kept_bytes = 0;
        while end < run.len() && kept_bytes + run[end].kept_bytes <= SEGMENT_BYTES_MAX {
            kept_bytes += run[end].kept_bytes;
            end += 1;
        }
        let window = &run[start..end];
        let largest = window.iter().map(|stat| stat.kept_bytes).max().unwrap_or(0);
        if window.len() >= MERGE_SEGMENTS_MIN && largest <= kept_bytes - largest {
            merges.push(window.to_vec());
            start = end;
        } else {
            start += 1;
        }
    }
    merges
}

#[cfg(test)]
mod tests;
