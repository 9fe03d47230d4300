//! What each segment file holds beyond the index: its length on disk, which
//! blobs have chunk records in it, and its tombstones. Compaction plans from
//! it and asks it which tombstones it may drop. Invariant: a tombstone is
//! counted as needed exactly when a segment older than its own holds a chunk
//! record of its blob, live or dead, because only then would dropping it let
//! that record come back at replay (segments replay in id order). No IO here.

use std::collections::{BTreeMap, BTreeSet};

use common::chunk::BlobId;

use crate::record::TOMBSTONE_BYTES;

#[derive(Default)]
pub struct Segments {
    lens: BTreeMap<u32, u64>,
    disk_bytes: u64,
    /// `(blob, segment)` for every segment that holds a chunk record of `blob`.
    homes: BTreeSet<(BlobId, u32)>,
    /// How many tombstones of `blob` a segment holds, by `(blob, segment)`.
    tombstones: BTreeMap<(BlobId, u32), u32>,
    /// How many of each segment's tombstones are needed; no entry is zero.
    needed_tombstones: BTreeMap<u32, u64>,
}

/// The records of one segment as compaction sees them: read from the old
/// file, or written to the new one.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Contents {
    pub chunk_blobs: BTreeSet<BlobId>,
    pub tombstone_blobs: Vec<BlobId>,
}

impl Segments {
    pub fn add(&mut self, segment: u32, len: u64) {
        let previous = self.lens.insert(segment, len);
        assert!(previous.is_none(), "segment {segment} is added once");
        self.disk_bytes += len;
    }

    /// Counts `bytes` appended to `segment`.
    pub fn grow(&mut self, segment: u32, bytes: u64) {
        *self
            .lens
            .get_mut(&segment)
            .expect("appends go to a known segment") += bytes;
        self.disk_bytes += bytes;
    }

    pub fn len(&self, segment: u32) -> u64 {
        self.lens.get(&segment).copied().unwrap_or(0)
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.lens.keys().copied()
    }

    /// The sum of the segment files' lengths.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    /// A chunk record of `blob` is in `segment`.
    pub fn note_chunk(&mut self, blob: BlobId, segment: u32) {
        if !self.homes.contains(&(blob, segment)) {
            self.change_homes(blob, |homes| homes.insert((blob, segment)));
        }
    }

    /// A tombstone of `blob` is in `segment`.
    pub fn note_tombstone(&mut self, blob: BlobId, segment: u32) {
        *self.tombstones.entry((blob, segment)).or_insert(0) += 1;
        if self.tombstone_needed(blob, segment) {
            *self.needed_tombstones.entry(segment).or_insert(0) += 1;
        }
    }

    /// Whether a tombstone of `blob` in `segment` must survive compaction:
    /// an older segment still holds a chunk record of `blob`.
    pub fn tombstone_needed(&self, blob: BlobId, segment: u32) -> bool {
        oldest_home(&self.homes, blob).is_some_and(|oldest| oldest < segment)
    }

    /// Bytes of the tombstones of `segment` that compaction must keep.
    pub fn needed_tombstone_bytes(&self, segment: u32) -> u64 {
        self.needed_tombstones.get(&segment).copied().unwrap_or(0) * TOMBSTONE_BYTES
    }

    /// `segment` was rewritten to `len` bytes holding `new` in place of `old`.
    pub fn replace(&mut self, segment: u32, len: u64, old: &Contents, new: &Contents) {
        self.forget_contents(segment, old);
        for &blob in &new.chunk_blobs {
            self.note_chunk(blob, segment);
        }
        for &blob in &new.tombstone_blobs {
            self.note_tombstone(blob, segment);
        }
        let old_len = self
            .lens
            .insert(segment, len)
            .expect("a rewritten segment is known");
        self.disk_bytes = self.disk_bytes - old_len + len;
    }

    /// `segment`, which held `old`, was deleted.
    pub fn remove(&mut self, segment: u32, old: &Contents) {
        self.forget_contents(segment, old);
        let old_len = self
            .lens
            .remove(&segment)
            .expect("a deleted segment is known");
        self.disk_bytes -= old_len;
    }

    fn forget_contents(&mut self, segment: u32, old: &Contents) {
        for &blob in &old.chunk_blobs {
            if self.homes.contains(&(blob, segment)) {
                self.change_homes(blob, |homes| homes.remove(&(blob, segment)));
            }
        }
        for &blob in &old.tombstone_blobs {
            let needed = self.tombstone_needed(blob, segment);
            let Some(count) = self.tombstones.get_mut(&(blob, segment)) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                self.tombstones.remove(&(blob, segment));
            }
            if needed {
                self.adjust_needed(segment, -1);
            }
        }
    }

    /// Applies `change` to the homes of `blob`, then recounts its
    /// tombstones whose neededness the change of its oldest home flipped.
    fn change_homes(
        &mut self,
        blob: BlobId,
        change: impl FnOnce(&mut BTreeSet<(BlobId, u32)>) -> bool,
    ) {
        let oldest_before = oldest_home(&self.homes, blob);
        change(&mut self.homes);
        let oldest_after = oldest_home(&self.homes, blob);
        if oldest_before == oldest_after {
            return;
        }
        let flips: Vec<(u32, i64)> = self
            .tombstones
            .range((blob, 0)..=(blob, u32::MAX))
            .filter_map(|(&(_, segment), &count)| {
                let before = oldest_before.is_some_and(|oldest| oldest < segment);
                let after = oldest_after.is_some_and(|oldest| oldest < segment);
                match (before, after) {
                    (false, true) => Some((segment, i64::from(count))),
                    (true, false) => Some((segment, -i64::from(count))),
                    _ => None,
                }
            })
            .collect();
        for (segment, delta) in flips {
            self.adjust_needed(segment, delta);
        }
    }

    fn adjust_needed(&mut self, segment: u32, delta: i64) {
        let count = self.needed_tombstones.entry(segment).or_insert(0);
        *count = count
            .checked_add_signed(delta)
            .expect("needed tombstones never go below zero");
        if *count == 0 {
            self.needed_tombstones.remove(&segment);
        }
    }
}

fn oldest_home(homes: &BTreeSet<(BlobId, u32)>, blob: BlobId) -> Option<u32> {
    homes
        .range((blob, 0)..=(blob, u32::MAX))
        .next()
        .map(|&(_, segment)| segment)
}

#[cfg(test)]
mod tests;
