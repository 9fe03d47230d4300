//! The in-memory chunk index: where each stored chunk's record sits. It is
//! kept per *run*, consecutive chunks of one blob whose records lie back to
//! back in one segment with every chunk but the last full, because that is
//! how batches arrive: a million 1 KiB chunks cost a few thousand entries,
//! not a million. Invariant: runs of one blob never overlap; a new run
//! replaces whatever part of older ones it covers. It also keeps, per
//! segment, the record bytes its runs cover, which is what compaction calls
//! live. No IO here.

use std::collections::BTreeMap;
use std::ops::Bound;

use common::chunk::{BlobId, ChunkId};
use common::limits::CHUNK_SIZE_BYTES;

use crate::record::{RECORD_HEADER_BYTES, RECORD_STRIDE_BYTES};

/// Where a run's records are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub segment: u32,
    /// Offset of the first record's header in the segment.
    pub offset: u64,
    pub count: u32,
    /// Data bytes of the last chunk; every other chunk has `CHUNK_SIZE_BYTES`.
    pub last_len: u32,
}

/// A stretch of consecutive chunks asked for, all inside one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub first_index: u32,
    pub run: Run,
}

#[derive(Default)]
pub struct Index {
    runs: BTreeMap<(BlobId, u32), Run>,
    live_bytes: u64,
    chunks_count: u64,
    /// Record bytes (headers and data) of the runs in each segment; a
    /// segment without runs has no entry.
    segment_record_bytes: BTreeMap<u32, u64>,
}

impl Run {
    pub fn data_bytes(&self) -> u64 {
        assert!(self.count >= 1);
        u64::from(self.count - 1) * CHUNK_SIZE_BYTES as u64 + u64::from(self.last_len)
    }

    /// Bytes of the run's records on disk.
    pub fn record_bytes(&self) -> u64 {
        u64::from(self.count - 1) * RECORD_STRIDE_BYTES
            + RECORD_HEADER_BYTES as u64
            + u64::from(self.last_len)
    }

    /// The part of the run from chunk `skip` on, `count` chunks long.
    fn slice(&self, skip: u32, count: u32) -> Run {
        assert!(count >= 1);
        assert!(skip + count <= self.count);
        let at_end = skip + count == self.count;
        Run {
            segment: self.segment,
            offset: self.offset + u64::from(skip) * RECORD_STRIDE_BYTES,
            count,
            last_len: if at_end {
                self.last_len
            } else {
                CHUNK_SIZE_BYTES as u32
            },
        }
    }
}

impl Index {
    /// Records that chunks `first_index..first_index + run.count` of `blob`
    /// are now at `run`, replacing any older location of them.
    pub fn insert(&mut self, blob: BlobId, first_index: u32, run: Run) {
        assert!(run.count >= 1);
        assert!(run.last_len as usize <= CHUNK_SIZE_BYTES);
        let end = first_index
            .checked_add(run.count)
            .expect("chunk indexes fit u32");
        self.remove_range(blob, first_index, end);
        self.runs.insert((blob, first_index), run);
        self.remember(&run);
    }

    /// Forgets every chunk of `blob`; returns whether there was any.
    pub fn remove_blob(&mut self, blob: BlobId) -> bool {
        let keys: Vec<(BlobId, u32)> = self
            .runs
            .range((blob, 0)..=(blob, u32::MAX))
            .map(|(key, _)| *key)
            .collect();
        for key in &keys {
            let run = self.runs.remove(key).expect("key just listed");
            self.forget(&run);
        }
        !keys.is_empty()
    }

    /// The run after `cursor` in (blob, first index) order, or the first.
    pub fn run_after(&self, cursor: Option<(BlobId, u32)>) -> Option<((BlobId, u32), Run)> {
        let mut runs = match cursor {
            Some(key) => self.runs.range((Bound::Excluded(key), Bound::Unbounded)),
            None => self.runs.range(..),
        };
        runs.next().map(|(key, run)| (*key, *run))
    }

    /// Forgets one chunk (found corrupt): it is missing from now on.
    pub fn forget_chunk(&mut self, id: ChunkId) {
        self.remove_range(id.blob, id.index, id.index + 1);
    }

    /// Forgets chunks `start..end` of `blob`, whichever of them are here.
    pub fn forget_range(&mut self, blob: BlobId, start: u32, end: u32) {
        if start < end {
            self.remove_range(blob, start, end);
        }
    }

    pub fn has_blob(&self, blob: BlobId) -> bool {
        self.runs
            .range((blob, 0)..=(blob, u32::MAX))
            .next()
            .is_some()
    }

    /// Where chunks `first_index..first_index + count` of `blob` are, as
    /// pieces in order; the first missing chunk if any is not stored.
    pub fn locate(
        &self,
        blob: BlobId,
        first_index: u32,
        count: u32,
    ) -> Result<Vec<Piece>, ChunkId> {
        let end = first_index.saturating_add(count);
        let mut pieces = Vec::new();
        let mut index = first_index;
        while index < end {
            let missing = ChunkId { blob, index };
            let (&(run_blob, run_first), run) = self
                .runs
                .range(..=(blob, index))
                .next_back()
                .ok_or(missing)?;
            let run_end = run_first + run.count;
            if run_blob != blob || run_end <= index {
                return Err(missing);
            }
            let take = run_end.min(end) - index;
            pieces.push(Piece {
                first_index: index,
                run: run.slice(index - run_first, take),
            });
            index += take;
        }
        Ok(pieces)
    }

    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub fn chunks_count(&self) -> u64 {
        self.chunks_count
    }

    pub fn runs_count(&self) -> usize {
        self.runs.len()
    }

    /// Record bytes of `segment` that some run still points at.
    pub fn segment_record_bytes(&self, segment: u32) -> u64 {
        self.segment_record_bytes
            .get(&segment)
            .copied()
            .unwrap_or(0)
    }

    /// Whether chunk `id` is served from the record at `offset` of `segment`.
    pub fn is_at(&self, id: ChunkId, segment: u32, offset: u64) -> bool {
        match self.locate(id.blob, id.index, 1) {
            Ok(pieces) => pieces
                .first()
                .is_some_and(|piece| piece.run.segment == segment && piece.run.offset == offset),
            Err(_) => false,
        }
    }

    /// The parts of chunks `first_index..first_index + count` of `blob` that
    /// are still served from `segment`, from records laid back to back from
    /// `offset` on (the layout of a run); as `(first index, run)`. Anything
    /// deleted or rewritten since is left out.
    pub fn still_at(
        &self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        segment: u32,
        offset: u64,
    ) -> Vec<(u32, Run)> {
        let end = first_index
            .checked_add(count)
            .expect("chunk indexes fit u32");
        let mut found: Vec<(u32, Run)> = self
            .runs
            .range((blob, 0)..(blob, end))
            .rev()
            .take_while(|((_, first), run)| first + run.count > first_index)
            .filter(|(_, run)| run.segment == segment)
            .filter_map(|((_, run_first), run)| {
                let start = (*run_first).max(first_index);
                let stop = (run_first + run.count).min(end);
                let piece = run.slice(start - run_first, stop - start);
                let expected_offset = offset + u64::from(start - first_index) * RECORD_STRIDE_BYTES;
                (piece.offset == expected_offset).then_some((start, piece))
            })
            .collect();
        found.reverse();
        found
    }

    /// Moves the parts of `first_index..first_index + count` of `blob` that
    /// `still_at` finds at `from` (segment, offset) to the records laid the
    /// same way at `to` (a compacted file); returns the record bytes moved.
    /// What was deleted or rewritten meanwhile stays as it is: the newer
    /// state wins.
    pub fn relocate(
        &mut self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        from: (u32, u64),
        to: (u32, u64),
    ) -> u64 {
        let mut moved_bytes = 0;
        for (start, piece) in self.still_at(blob, first_index, count, from.0, from.1) {
            let shift = u64::from(start - first_index) * RECORD_STRIDE_BYTES;
            let moved = Run {
                segment: to.0,
                offset: to.1 + shift,
                ..piece
            };
            self.insert(blob, start, moved);
            moved_bytes += piece.record_bytes();
        }
        moved_bytes
    }

    /// Up to `blobs_max` blobs from `from` on, in order, each with its
    /// number of chunks.
    pub fn blob_counts(&self, from: BlobId, blobs_max: usize) -> Vec<(BlobId, u64)> {
        let mut counts: Vec<(BlobId, u64)> = Vec::new();
        for (&(blob, _), run) in self.runs.range((from, 0)..) {
            let full = counts.len() == blobs_max;
            match counts.last_mut() {
                Some((last, count)) if *last == blob => *count += u64::from(run.count),
                _ if full => break,
                _ => counts.push((blob, u64::from(run.count))),
            }
        }
        counts
    }

    /// Cuts `[start, end)` of `blob` out of the runs that cover it.
    fn remove_range(&mut self, blob: BlobId, start: u32, end: u32) {
        let overlapping: Vec<(u32, Run)> = self
            .runs
            .range((blob, 0)..(blob, end))
            .rev()
            .take_while(|((_, first), run)| first + run.count > start)
            .map(|((_, first), run)| (*first, *run))
            .collect();
        for (first, run) in overlapping {
            self.runs.remove(&(blob, first));
            self.forget(&run);
            let run_end = first + run.count;
            if first < start {
                let left = run.slice(0, start - first);
                self.runs.insert((blob, first), left);
                self.remember(&left);
            }
            if run_end > end {
                let right = run.slice(end - first, run_end - end);
                self.runs.insert((blob, end), right);
                self.remember(&right);
            }
        }
    }

    fn remember(&mut self, run: &Run) {
        self.live_bytes += run.data_bytes();
        self.chunks_count += u64::from(run.count);
        *self.segment_record_bytes.entry(run.segment).or_insert(0) += run.record_bytes();
    }

    fn forget(&mut self, run: &Run) {
        self.live_bytes -= run.data_bytes();
        self.chunks_count -= u64::from(run.count);
        let segment_bytes = self
            .segment_record_bytes
            .get_mut(&run.segment)
            .expect("a run's segment has an entry");
        *segment_bytes -= run.record_bytes();
        if *segment_bytes == 0 {
            self.segment_record_bytes.remove(&run.segment);
        }
    }
}

#[cfg(test)]
mod tests;
