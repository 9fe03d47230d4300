//! The chunk store: chunks appended to large segment files (the design of
//! Haystack and SeaweedFS volumes; records in `record.rs`), an in-memory
//! index of where each run of chunks sits (`index.rs`), what each segment
//! holds (`segments.rs`), group commit, and compaction (`compaction/`).
//! Invariants: a batch is acknowledged only after an fsync that covers it;
//! every chunk read is checked against its CRC32C before it is returned; a
//! record that fails its checks at start-up is never indexed; the segment
//! files always replay, in id order, to the live chunks.
//!
//! Writes go to the newest segment, the active one; past
//! `SEGMENT_BYTES_MAX` it is closed and the next started. Compaction
//! rewrites closed segments without their dead records (see its module);
//! a rewritten segment keeps its id, so replay order never changes, and a
//! segment left with nothing is deleted, so ids may have gaps.
//! `CAPACITY_BYTES` caps the segment files' bytes (their records; the
//! active segment's file may also hold up to two `ZEROED_TAIL_BYTES` of
//! zeros written ahead of small appends, cut when it is closed).

mod capacity;
pub mod compaction;
pub mod files;
mod recovery;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use common::chunk::{BlobId, ChunkId};
use common::group_commit::GroupCommit;
use common::limits::{BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES};
use common::metrics::HistogramSnapshot;
use common::own_files;
use common::pool::{BufferPool, Pooled};
#[cfg(test)]
use common::wire::Chunk;
use common::wire::ChunkRef;
use common::zeroed_tail;

use crate::error::StorageError;
use crate::index::{Index, Run};
use crate::limits::{
    BLOB_LISTING_PAGE_BLOBS_MAX, RECORD_BUFFERS_SPARE_MAX, SEGMENT_BYTES_MAX,
    ZEROED_APPEND_BYTES_MAX,
};
use crate::record::{
    self, RECORD_HEADER_BYTES, RECORD_STRIDE_BYTES, SEGMENT_MAGIC, SEGMENT_MAGIC_BYTES,
};
use crate::segments::Segments;

use self::capacity::Room;
use self::compaction::schedule::Schedule;

/// Records of batches being stored, and of runs being read: a buffer per
/// request in progress, and a few spare (see `common::pool`).
static RECORD_BUFFERS: BufferPool = BufferPool::new(RECORD_BUFFERS_SPARE_MAX);

pub struct Store {
    dir: PathBuf,
    capacity_bytes: Option<u64>,
    state: Mutex<State>,
    /// The position up to which everything is on stable storage; one fsync
    /// covers every batch appended before it started.
    commit: GroupCommit<Position>,
    /// Where requests ask the compaction thread for a pass.
    pub compaction: Schedule,
}

/// A place in the log: segment id, then offset in it.
type Position = (u32, u64);

struct State {
    index: Index,
    segments: Segments,
    /// An open handle per segment. Compaction swaps a segment's handle;
    /// a read holding the old one keeps reading the old file.
    files: BTreeMap<u32, Arc<File>>,
    active_id: u32,
    /// How far the active segment's file holds zeros past its records (or
    /// ends with them): see `common::zeroed_tail`.
    active_zeroed_to: u64,
}

/// What `Store::open` found and did, for the start-up log.
pub struct Recovery {
    pub segments_count: usize,
    pub chunks_count: usize,
    pub runs_count: usize,
    pub notes: Vec<String>,
}

pub struct StoreUsage {
    pub live_bytes: u64,
    pub disk_bytes: u64,
    pub chunks_count: u64,
    pub capacity_bytes: Option<u64>,
    pub segments_count: u64,
}

/// What one scrub step read and found.
pub struct ScrubStep {
    pub next: Option<(BlobId, u32)>,
    pub bytes_read: u64,
    pub corrupt: Vec<ChunkId>,
}

impl Store {
    /// Stores a batch of checked chunks (a `ChunkRef` is one: the wire
    /// decoder made it after checking its CRC); returns once it is on
    /// stable storage. All or nothing: on error no chunk of the batch is
    /// indexed.
    #[cfg(test)]
    pub fn put_batch(&self, chunks: &[ChunkRef<'_>]) -> Result<(), StorageError> {
        let mut batch = Store::incoming();
        for &chunk in chunks {
            batch.push(chunk);
        }
        self.put_incoming(batch)
    }

    /// A batch to fill as its chunks arrive (`IncomingBatch::push`), then
    /// store with `put_incoming`: what arrived is encoded as records at
    /// once, so the batch is never held twice.
    pub fn incoming() -> IncomingBatch {
        IncomingBatch {
            records: RECORD_BUFFERS.take(),
            chunks: Vec::new(),
        }
    }

    /// Stores `batch` as `put_batch` does.
    pub fn put_incoming(&self, batch: IncomingBatch) -> Result<(), StorageError> {
        if batch.chunks.is_empty() {
            return Ok(());
        }
        self.append_batch(&batch.chunks, &batch.records)
    }

    /// The records of `chunks`, encoded, appended and indexed, durably.
    fn append_batch(&self, chunks: &[(ChunkId, u32)], records: &[u8]) -> Result<(), StorageError> {
        let mut reclaim_asked = false;
        let ticket = loop {
            let mut state = self.lock_state();
            match capacity::room_for(self.capacity_bytes, &state, records.len() as u64) {
                Room::Fits => {}
                Room::Full {
                    needed_bytes,
                    free_bytes,
                } => {
                    return Err(StorageError::Full {
                        needed_bytes,
                        free_bytes,
                    });
                }
                Room::AfterReclaiming {
                    needed_bytes,
                    free_bytes,
                } => {
                    // A pass that frees the shortfall is asked for and
                    // waited on once, for at most `REQUEST_WAIT`; then the
                    // room is checked again.
                    if reclaim_asked {
                        return Err(StorageError::Full {
                            needed_bytes,
                            free_bytes,
                        });
                    }
                    drop(state);
                    self.compaction.request_pass(needed_bytes - free_bytes);
                    reclaim_asked = true;
                    continue;
                }
            }
            let records_offset = self.append(&mut state, records)?;
            let segment = state.active_id;
            let mut offset = records_offset;
            for (first, run_chunks) in runs_of(chunks) {
                let last_len = run_chunks.last().map_or(0, |&(_, len)| len);
                let run = Run {
                    segment,
                    offset,
                    count: u32::try_from(run_chunks.len()).expect("a batch fits u32"),
                    last_len,
                };
                offset += run.record_bytes();
                state.index.insert(first.blob, first.index, run);
                state.segments.note_chunk(first.blob, segment);
            }
            assert_eq!(offset, records_offset + records.len() as u64);
            break (state.active_id, state.segments.len(state.active_id));
        };
        self.sync_through(ticket).map_err(StorageError::from_io)
    }

    /// Reads `count` consecutive chunks of `blob` from `first_index`, each
    /// checked against its record header and CRC32C (one read per run), and
    /// hands them to `each` in order, borrowed from the read.
    pub fn read_run(
        &self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        each: &mut dyn FnMut(ChunkRef<'_>),
    ) -> Result<(), StorageError> {
        assert!(count as usize <= BATCH_CHUNKS_MAX);
        let pieces: Vec<(u32, Run, Arc<File>)> = {
            let state = self.lock_state();
            let pieces = state
                .index
                .locate(blob, first_index, count)
                .map_err(|chunk| StorageError::NotFound { chunk })?;
            pieces
                .into_iter()
                .map(|piece| {
                    (
                        piece.first_index,
                        piece.run,
                        Arc::clone(&state.files[&piece.run.segment]),
                    )
                })
                .collect()
        };
        let mut buffer = RECORD_BUFFERS.take();
        {
            let mut handed = 0;
            for (piece_first, run, file) in pieces {
                let records = read_run(&file, &run, &mut buffer).map_err(StorageError::from_io)?;
                let verified = record::verify_run(
                    records,
                    run.offset,
                    (blob, piece_first),
                    run.count,
                    run.last_len,
                );
                for chunk in verified {
                    each(chunk.map_err(|chunk| StorageError::Corrupt { chunk })?);
                    handed += 1;
                }
            }
            assert_eq!(handed, count);
            Ok(())
        }
    }

    /// `read_run`, into owned chunks.
    #[cfg(test)]
    pub fn get_run(
        &self,
        blob: BlobId,
        first_index: u32,
        count: u32,
    ) -> Result<Vec<Chunk>, StorageError> {
        let mut chunks = Vec::with_capacity(count as usize);
        self.read_run(blob, first_index, count, &mut |chunk| {
            chunks.push(chunk.to_owned())
        })?;
        Ok(chunks)
    }

    /// Scrubs the run after `cursor` in index order: reads it, checks every
    /// record, and drops the corrupt chunks from the index, so they count
    /// as missing and the naming server copies them back from a good
    /// replica. `next` is `None` once the whole index was visited.
    /// `buffer` holds the run's records; the scrubber keeps it from step to
    /// step.
    pub fn scrub_step(
        &self,
        cursor: Option<(BlobId, u32)>,
        buffer: &mut Vec<u8>,
    ) -> io::Result<ScrubStep> {
        let found = {
            let state = self.lock_state();
            state
                .index
                .run_after(cursor)
                .map(|(key, run)| (key, run, Arc::clone(&state.files[&run.segment])))
        };
        let Some(((blob, first_index), run, file)) = found else {
            return Ok(ScrubStep {
                next: None,
                bytes_read: 0,
                corrupt: Vec::new(),
            });
        };
        let records = read_run(&file, &run, buffer)?;
        let corrupt: Vec<ChunkId> = record::verify_run(
            records,
            run.offset,
            (blob, first_index),
            run.count,
            run.last_len,
        )
        .into_iter()
        .filter_map(Result::err)
        .collect();
        if !corrupt.is_empty() {
            let mut state = self.lock_state();
            for id in &corrupt {
                let offset = run.offset + u64::from(id.index - first_index) * RECORD_STRIDE_BYTES;
                // A chunk rewritten or deleted since the read is not ours to drop.
                if state.index.is_at(*id, run.segment, offset) {
                    state.index.forget_chunk(*id);
                }
            }
        }
        Ok(ScrubStep {
            next: Some((blob, first_index)),
            bytes_read: records.len() as u64,
            corrupt,
        })
    }

    /// Stops serving chunks `first..first + count` of `blob`: surplus
    /// replicas the naming server no longer places here (a server that was
    /// dead while its chunks were re-replicated). Only the index forgets
    /// them, nothing is journaled: compaction reclaims their records, and
    /// if a restart comes first they are listed again and reconciliation
    /// drops them again. They are copies of committed chunks, so serving
    /// them in between is harmless.
    pub fn drop_surplus(&self, blob: BlobId, first: u32, count: u32) {
        let mut state = self.lock_state();
        state
            .index
            .forget_range(blob, first, first.saturating_add(count));
    }

    /// Deletes every chunk of `blob`; deleting what is not here succeeds.
    pub fn delete_blob(&self, blob: BlobId) -> Result<(), StorageError> {
        self.delete_blobs(&[blob])
    }

    /// Deletes every chunk of each of `blobs`, with one write of their
    /// tombstones and one fsync; deleting what is not here succeeds.
    pub fn delete_blobs(&self, blobs: &[BlobId]) -> Result<(), StorageError> {
        let ticket = {
            let mut state = self.lock_state();
            let held: Vec<BlobId> = blobs
                .iter()
                .copied()
                .filter(|&blob| state.index.has_blob(blob))
                .collect();
            if held.is_empty() {
                return Ok(());
            }
            let mut tombstones = Vec::with_capacity(held.len() * RECORD_HEADER_BYTES);
            for &blob in &held {
                record::encode_tombstone(&mut tombstones, blob);
            }
            self.append(&mut state, &tombstones)?;
            let segment = state.active_id;
            for &blob in &held {
                state.index.remove_blob(blob);
                state.segments.note_tombstone(blob, segment);
            }
            (state.active_id, state.segments.len(state.active_id))
        };
        self.sync_through(ticket).map_err(StorageError::from_io)?;
        if self.capacity_bytes.is_some() {
            // Under a capacity, the room a delete frees is only real once
            // compaction has reclaimed it, and the naming server asks for
            // this server's status right after deleting a failed create's
            // chunks to place the next one. Answer after a pass (bounded),
            // so that status already shows the room.
            self.compaction.request_pass(0);
        }
        Ok(())
    }

    pub fn usage(&self) -> StoreUsage {
        let state = self.lock_state();
        StoreUsage {
            live_bytes: state.index.live_bytes(),
            disk_bytes: state.segments.disk_bytes(),
            chunks_count: state.index.chunks_count(),
            capacity_bytes: self.capacity_bytes,
            segments_count: state.files.len() as u64,
        }
    }

    /// The durations of the store's fsyncs so far.
    pub fn sync_latency(&self) -> HistogramSnapshot {
        self.commit.sync_latency()
    }

    /// Up to `BLOB_LISTING_PAGE_BLOBS_MAX` blobs from `from` on, in order,
    /// each with its number of chunks: one page of `GET /blobs`.
    pub fn blob_counts(&self, from: BlobId) -> Vec<(BlobId, u64)> {
        self.lock_state()
            .index
            .blob_counts(from, BLOB_LISTING_PAGE_BLOBS_MAX)
    }

    /// Appends `bytes` to the active segment, starting a new one when it is
    /// full; returns the offset they were written at. On error nothing is
    /// left half-written: the segment is cut back.
    fn append(&self, state: &mut MutexGuard<'_, State>, bytes: &[u8]) -> Result<u64, StorageError> {
        if state.segments.len(state.active_id) + bytes.len() as u64 > SEGMENT_BYTES_MAX {
            self.start_segment(state).map_err(StorageError::from_io)?;
        }
        let file = Arc::clone(&state.files[&state.active_id]);
        let offset = state.segments.len(state.active_id);
        let end = offset + bytes.len() as u64;
        if let Err(err) = file.write_all_at(bytes, offset) {
            // Cut back whatever part landed, so the next record starts on a
            // record boundary; if even that fails the tail is torn, and the
            // next start-up cuts it.
            let _ = file.set_len(offset);
            state.active_zeroed_to = offset;
            return Err(StorageError::from_io(err));
        }
        if end > state.active_zeroed_to {
            state.active_zeroed_to = end;
            if (bytes.len() as u64) < ZEROED_APPEND_BYTES_MAX {
                let to = zeroed_tail::target(end, SEGMENT_BYTES_MAX);
                // The zeros only make later fsyncs cheaper: on a full disk
                // they are cut back and the appends go on without them.
                match zeroed_tail::write_zeros(&file, end, to) {
                    Ok(()) => state.active_zeroed_to = to,
                    Err(_) => {
                        let _ = file.set_len(end);
                    }
                }
            }
        }
        let active_id = state.active_id;
        state.segments.grow(active_id, bytes.len() as u64);
        Ok(offset)
    }

    /// At a clean shutdown: the active segment ends at its last record, its
    /// zeros cut durably (see `common::zeroed_tail`), so the next open
    /// finds nothing to cut. Appending after it is still correct.
    pub fn close(&self) -> io::Result<()> {
        let mut state = self.lock_state();
        let len = state.segments.len(state.active_id);
        if let Some(active) = state.files.get(&state.active_id)
            && state.active_zeroed_to > len
        {
            active.set_len(len)?;
            active.sync_all()?;
            state.active_zeroed_to = len;
        }
        Ok(())
    }

    /// Closes the active segment (fsynced, so tickets in it stay covered)
    /// and starts the next one, fsyncing the folder so it survives a crash.
    fn start_segment(&self, state: &mut MutexGuard<'_, State>) -> io::Result<()> {
        if let Some(active) = state.files.get(&state.active_id) {
            // A closed segment ends at its last record: its zeros are cut
            // (and the cut made durable) before the next segment exists.
            let len = state.segments.len(state.active_id);
            if state.active_zeroed_to > len {
                active.set_len(len)?;
                active.sync_all()?;
            } else {
                active.sync_data()?;
            }
        }
        let next_id = state.files.keys().next_back().map_or(1, |id| id + 1);
        let path = files::segment_path(&self.dir, next_id);
        let file = own_files::create_new(&path)?;
        file.write_all_at(&SEGMENT_MAGIC, 0)?;
        file.sync_all()?;
        files::sync_dir(&self.dir)?;
        state.files.insert(next_id, Arc::new(file));
        state.segments.add(next_id, SEGMENT_MAGIC_BYTES);
        state.active_id = next_id;
        state.active_zeroed_to = SEGMENT_MAGIC_BYTES;
        Ok(())
    }

    /// Returns once everything up to `ticket` is on stable storage. One
    /// fsync covers every record appended before it started, so concurrent
    /// batches share fsyncs instead of queueing one each.
    fn sync_through(&self, ticket: Position) -> io::Result<()> {
        self.commit.wait_durable(ticket, || {
            let (target, file) = {
                let state = self.lock_state();
                (
                    (state.active_id, state.segments.len(state.active_id)),
                    Arc::clone(&state.files[&state.active_id]),
                )
            };
            // Earlier segments were fsynced when they were closed.
            file.sync_data()?;
            Ok(target)
        })
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic never leaves `State` half-updated (no panics between the
        // steps of an update), so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A batch being received (see `Store::incoming`).
pub struct IncomingBatch {
    records: Pooled<'static>,
    /// Each chunk's id and length, in the order received.
    chunks: Vec<(ChunkId, u32)>,
}

impl IncomingBatch {
    pub fn push(&mut self, chunk: ChunkRef<'_>) {
        record::encode_chunk(&mut self.records, chunk.id(), chunk.crc(), chunk.data());
        let len = u32::try_from(chunk.data().len()).expect("a chunk fits u32");
        self.chunks.push((chunk.id(), len));
    }
}

/// The records of `run`, read whole into `buffer` (grown as needed, kept
/// by the caller from read to read).
fn read_run<'a>(file: &File, run: &Run, buffer: &'a mut Vec<u8>) -> io::Result<&'a [u8]> {
    let len = usize::try_from(run.record_bytes()).expect("a run fits memory");
    if buffer.len() < len {
        buffer.resize(len, 0);
    }
    let records = &mut buffer[..len];
    file.read_exact_at(records, run.offset)?;
    Ok(records)
}

/// Splits a batch into runs the index can keep as one entry each:
/// consecutive chunks of one blob, every one but the last full.
fn runs_of(chunks: &[(ChunkId, u32)]) -> Vec<(ChunkId, &[(ChunkId, u32)])> {
    let mut runs = Vec::new();
    let mut start = 0;
    for idx in 1..=chunks.len() {
        let continues = idx < chunks.len() && {
            let ((previous, previous_len), (next, _)) = (chunks[idx - 1], chunks[idx]);
            previous.blob == next.blob
                && previous.index.checked_add(1) == Some(next.index)
                && previous_len as usize == CHUNK_SIZE_BYTES
        };
        if !continues {
            runs.push((chunks[start].0, &chunks[start..idx]));
            start = idx;
        }
    }
    runs
}

#[cfg(test)]
mod tests;
