//! The chunk store: chunks appended to large segment files (the design of
//! Haystack and SeaweedFS volumes), an in-memory index of where each run of
//! chunks sits (`index.rs`), what each segment holds (`segments.rs`), and
//! group commit. Invariants: a batch is acknowledged only after an fsync
//! that covers it; every chunk read is checked against its CRC32C before it
//! is returned; a record that fails its checks at start-up is never indexed;
//! the segment files always replay, in id order, to the live chunks.
//!
//! ```text
//! DATA_DIR/segment-NNNNNNNN.hseg              a segment (id in 8 decimal digits)
//! DATA_DIR/segment-NNNNNNNN.hseg.compacting   compaction's copy of one, until renamed over it
//!
//! segment = magic "HRBSEG01" | record*
//! record  = kind u8 | 3 zero bytes | blob u64 | index u32 | len u32 | data_crc u32
//!           | header_crc u32 (CRC32C of the 24 bytes before it) | data[len]
//! ```
//! Integers are big-endian. `kind` 1 is a chunk; kind 2 is a tombstone that
//! deletes every earlier chunk of `blob` (its index, len and data_crc are 0).
//!
//! Writes go to the newest segment, the active one; past `SEGMENT_BYTES_MAX`
//! it is closed and the next started. Compaction (`compaction.rs`) rewrites
//! a closed segment that is mostly dead, or merges a run of small
//! consecutive ones: the live records and the tombstones still needed are
//! copied, in their order, into `segment-NNNNNNNN.hseg.compacting` (NNNNNNNN
//! the id of the newest segment rewritten), which is fsynced and renamed
//! over that segment (then the folder fsynced) before the index moves to
//! it; the older segments merged are deleted after. A rewritten segment
//! keeps its id, so replay order is unchanged; a segment left with nothing
//! is deleted, so ids may have gaps. A leftover `.compacting` file is a copy
//! that never took effect, and `Store::open` removes it. The record format
//! is unchanged: a compacted segment is an ordinary one without its dead
//! records. `CAPACITY_BYTES` caps the segment files' bytes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use common::chunk::{BlobId, ChunkId, crc32c};
use common::limits::{BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES};
use common::wire::Chunk;

use crate::compaction::{Move, Schedule, SegmentStat};
use crate::error::StorageError;
use crate::index::{Index, RECORD_HEADER_BYTES, RECORD_STRIDE_BYTES, Run};
use crate::limits::{BLOB_LISTING_PAGE_BLOBS_MAX, SEGMENT_BYTES_MAX};
use crate::segments::{Contents, Segments};

pub const SEGMENT_MAGIC: [u8; 8] = *b"HRBSEG01";
pub const SEGMENT_MAGIC_BYTES: u64 = SEGMENT_MAGIC.len() as u64;

pub const KIND_CHUNK: u8 = 1;
pub const KIND_TOMBSTONE: u8 = 2;
const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".hseg";
/// Ends the name of compaction's copy of a segment (after `SEGMENT_SUFFIX`).
const TEMP_SUFFIX: &str = ".compacting";

pub struct Store {
    dir: PathBuf,
    capacity_bytes: Option<u64>,
    state: Mutex<State>,
    /// Held by the one thread running an fsync; others wait here and most
    /// find their records already covered when they get it (group commit).
    sync_lock: Mutex<()>,
    /// The position up to which everything is on stable storage.
    synced_through: Mutex<Position>,
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
}

/// A record header as compaction reads it, and where it sits.
#[derive(Clone, Copy, Debug)]
pub struct RecordAt {
    pub offset: u64,
    pub kind: u8,
    pub id: ChunkId,
    pub len: u32,
}

impl Store {
    /// Opens (or creates) the store in `dir`, rebuilding the index from the
    /// segments. A torn tail of the newest segment is cut off; a copy
    /// compaction left behind is removed.
    pub fn open(dir: &Path, capacity_bytes: Option<u64>) -> io::Result<(Store, Recovery)> {
        let mut notes = remove_leftover_copies(dir)?;
        let segment_ids = list_segments(dir)?;
        let mut state = State {
            index: Index::default(),
            segments: Segments::default(),
            files: BTreeMap::new(),
            active_id: 0,
        };
        let last_id = segment_ids.last().copied();
        for &segment_id in &segment_ids {
            let path = segment_path(dir, segment_id);
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let scan = scan_segment(&file, segment_id, &mut state)?;
            notes.extend(
                scan.notes
                    .iter()
                    .map(|note| format!("{}: {note}", path.display())),
            );
            let mut len = file.metadata()?.len();
            if scan.valid_len < len {
                if Some(segment_id) == last_id {
                    notes.push(format!(
                        "{}: cut {} bytes of torn or corrupt tail at offset {}",
                        path.display(),
                        len - scan.valid_len,
                        scan.valid_len
                    ));
                    file.set_len(scan.valid_len)?;
                    file.sync_all()?;
                    len = scan.valid_len;
                } else {
                    notes.push(format!(
                        "{}: {} bytes after offset {} are damaged and ignored",
                        path.display(),
                        len - scan.valid_len,
                        scan.valid_len
                    ));
                }
            }
            state.segments.add(segment_id, len);
            state.files.insert(segment_id, Arc::new(file));
            state.active_id = segment_id;
        }
        let segments_count = segment_ids.len();
        let active_len = state.segments.len(state.active_id);
        let store = Store {
            dir: dir.to_path_buf(),
            capacity_bytes,
            synced_through: Mutex::new((state.active_id, active_len)),
            state: Mutex::new(state),
            sync_lock: Mutex::new(()),
            compaction: Schedule::default(),
        };
        {
            let mut state = store.lock_state();
            if state.files.is_empty() || active_len < SEGMENT_MAGIC_BYTES {
                store.start_segment(&mut state)?;
            }
        }
        let (chunks_count, runs_count) = {
            let state = store.lock_state();
            (
                state.index.chunks_count() as usize,
                state.index.runs_count(),
            )
        };
        Ok((
            store,
            Recovery {
                segments_count,
                chunks_count,
                runs_count,
                notes,
            },
        ))
    }

    /// Stores a batch whose CRCs the wire decoder has checked; returns once
    /// it is on stable storage. All or nothing: on error no chunk of the
    /// batch is indexed.
    pub fn put_batch(&self, chunks: &[Chunk]) -> Result<(), StorageError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut records =
            Vec::with_capacity(chunks.len() * (RECORD_HEADER_BYTES + CHUNK_SIZE_BYTES));
        for chunk in chunks {
            assert!(chunk.is_intact(), "the wire decoder checks every CRC");
            encode_record(&mut records, KIND_CHUNK, chunk.id, chunk.crc, &chunk.data);
        }
        let mut reclaim_asked = false;
        let ticket = loop {
            let mut state = self.lock_state();
            if let Some(capacity_bytes) = self.capacity_bytes {
                let needed_bytes = append_cost_bytes(&state, records.len() as u64);
                let free_bytes = capacity_bytes.saturating_sub(state.segments.disk_bytes());
                if needed_bytes > free_bytes {
                    // The capacity caps the files, dead records included
                    // until compaction removes them. (Counting it against
                    // what compaction would leave instead would let the
                    // files outgrow CAPACITY_BYTES whenever compaction
                    // lags.) So a put that does not fit asks for a pass
                    // that frees the shortfall and waits for it, once and
                    // for at most `REQUEST_WAIT`, then checks again; it
                    // asks only when the dead bytes can cover the
                    // shortfall, so a store full of live data refuses at
                    // once.
                    let shortfall_bytes = needed_bytes - free_bytes;
                    if reclaim_asked || reclaimable_bytes(&state) < shortfall_bytes {
                        return Err(StorageError::Full {
                            needed_bytes,
                            free_bytes,
                        });
                    }
                    drop(state);
                    self.compaction.request_pass(shortfall_bytes);
                    reclaim_asked = true;
                    continue;
                }
            }
            let records_offset = self.append(&mut state, &records)?;
            let segment = state.active_id;
            let mut offset = records_offset;
            for (first, run_chunks) in runs_of(chunks) {
                let last_len = run_chunks.last().map_or(0, |chunk| chunk.data.len());
                let count = u32::try_from(run_chunks.len()).expect("a batch fits u32");
                let last_len = u32::try_from(last_len).expect("a chunk fits u32");
                let run = Run {
                    segment,
                    offset,
                    count,
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
    /// checked against its record header and CRC32C; one read per run.
    pub fn get_run(
        &self,
        blob: BlobId,
        first_index: u32,
        count: u32,
    ) -> Result<Vec<Chunk>, StorageError> {
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
        let mut chunks = Vec::with_capacity(count as usize);
        for (piece_first, run, file) in pieces {
            let mut records =
                vec![0u8; usize::try_from(run.record_bytes()).expect("a run fits memory")];
            file.read_exact_at(&mut records, run.offset)
                .map_err(StorageError::from_io)?;
            for chunk in verify_records(blob, piece_first, &run, &records) {
                chunks.push(chunk.map_err(|chunk| StorageError::Corrupt { chunk })?);
            }
        }
        assert_eq!(chunks.len(), count as usize);
        Ok(chunks)
    }

    /// Scrubs the run after `cursor` in index order: reads it, checks every
    /// record, and drops the corrupt chunks from the index, so they count
    /// as missing and the naming server copies them back from a good
    /// replica. `next` is `None` once the whole index was visited.
    pub fn scrub_step(&self, cursor: Option<(BlobId, u32)>) -> io::Result<ScrubStep> {
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
        let mut records =
            vec![0u8; usize::try_from(run.record_bytes()).expect("a run fits memory")];
        file.read_exact_at(&mut records, run.offset)?;
        let corrupt: Vec<ChunkId> = verify_records(blob, first_index, &run, &records)
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
        let ticket = {
            let mut state = self.lock_state();
            if !state.index.has_blob(blob) {
                return Ok(());
            }
            let mut record = Vec::with_capacity(RECORD_HEADER_BYTES);
            encode_record(
                &mut record,
                KIND_TOMBSTONE,
                ChunkId { blob, index: 0 },
                0,
                &[],
            );
            self.append(&mut state, &record)?;
            state.index.remove_blob(blob);
            let segment = state.active_id;
            state.segments.note_tombstone(blob, segment);
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
        }
    }

    /// Up to `BLOB_LISTING_PAGE_BLOBS_MAX` blobs from `from` on, in order,
    /// each with its number of chunks: one page of `GET /blobs`.
    pub fn blob_counts(&self, from: BlobId) -> Vec<(BlobId, u64)> {
        self.lock_state()
            .index
            .blob_counts(from, BLOB_LISTING_PAGE_BLOBS_MAX)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The active segment's id and, per segment, what compaction would keep.
    pub fn segment_stats(&self) -> (u32, Vec<SegmentStat>) {
        let state = self.lock_state();
        let stats = state
            .segments
            .ids()
            .map(|id| SegmentStat {
                id,
                len: state.segments.len(id),
                kept_bytes: SEGMENT_MAGIC_BYTES
                    + state.index.segment_record_bytes(id)
                    + state.segments.needed_tombstone_bytes(id),
            })
            .collect();
        (state.active_id, stats)
    }

    /// Closes the active segment if it is still `segment_id`, so that
    /// compaction may rewrite it; returns whether it did.
    pub fn seal_active(&self, segment_id: u32) -> io::Result<bool> {
        let mut state = self.lock_state();
        if state.active_id != segment_id {
            return Ok(false);
        }
        self.start_segment(&mut state)?;
        Ok(true)
    }

    /// The file and length of closed segment `segment_id`, if it exists.
    pub fn closed_segment(&self, segment_id: u32) -> Option<(Arc<File>, u64)> {
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
    pub fn records_to_keep(
        &self,
        (source_id, target_id): (u32, u32),
        records: &[RecordAt],
    ) -> Vec<bool> {
        let state = self.lock_state();
        records
            .iter()
            .map(|record| match record.kind {
                KIND_CHUNK => state.index.is_at(record.id, source_id, record.offset),
                _ => state.segments.tombstone_needed(record.id.blob, target_id),
            })
            .collect()
    }

    /// Record bytes of `segment_ids` the index serves that `moves` did not
    /// copy; zero means the copy is complete. Records only die, never come
    /// back, so a zero stays zero until the copy is installed.
    pub fn live_bytes_not_moved(&self, segment_ids: &[u32], moves: &[Move]) -> u64 {
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
    pub fn install_compacted(
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
    pub fn forget_segment(&self, segment_id: u32, old: &Contents) {
        let mut state = self.lock_state();
        assert_ne!(segment_id, state.active_id, "only closed segments compact");
        assert_eq!(state.index.segment_record_bytes(segment_id), 0);
        state.files.remove(&segment_id);
        state.segments.remove(segment_id, old);
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
        if let Err(err) = file.write_all_at(bytes, offset) {
            // Cut back whatever part landed, so the next record starts on a
            // record boundary; if even that fails the tail is torn, and the
            // next start-up cuts it.
            let _ = file.set_len(offset);
            return Err(StorageError::from_io(err));
        }
        let active_id = state.active_id;
        state.segments.grow(active_id, bytes.len() as u64);
        Ok(offset)
    }

    /// Closes the active segment (fsynced, so tickets in it stay covered)
    /// and starts the next one, fsyncing the folder so it survives a crash.
    fn start_segment(&self, state: &mut MutexGuard<'_, State>) -> io::Result<()> {
        if let Some(active) = state.files.get(&state.active_id) {
            active.sync_data()?;
        }
        let next_id = state.files.keys().next_back().map_or(1, |id| id + 1);
        let path = segment_path(&self.dir, next_id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all_at(&SEGMENT_MAGIC, 0)?;
        file.sync_all()?;
        sync_dir(&self.dir)?;
        state.files.insert(next_id, Arc::new(file));
        state.segments.add(next_id, SEGMENT_MAGIC_BYTES);
        state.active_id = next_id;
        Ok(())
    }

    /// Returns once everything up to `ticket` is on stable storage. One
    /// fsync covers every record appended before it started, so concurrent
    /// batches share fsyncs instead of queueing one each.
    fn sync_through(&self, ticket: Position) -> io::Result<()> {
        let _sync = self
            .sync_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *self.lock_synced() >= ticket {
            return Ok(());
        }
        let (target, file) = {
            let state = self.lock_state();
            (
                (state.active_id, state.segments.len(state.active_id)),
                Arc::clone(&state.files[&state.active_id]),
            )
        };
        // Earlier segments were fsynced when they were closed.
        file.sync_data()?;
        *self.lock_synced() = target;
        Ok(())
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic never leaves `State` half-updated (no panics between the
        // steps of an update), so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_synced(&self) -> MutexGuard<'_, Position> {
        self.synced_through
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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

/// Bytes compaction could free: every segment's dead records and unneeded
/// tombstones. Rewriting the active segment first starts a new one, whose
/// magic is counted against it.
fn reclaimable_bytes(state: &State) -> u64 {
    state
        .segments
        .ids()
        .map(|id| {
            let kept_bytes = SEGMENT_MAGIC_BYTES
                + state.index.segment_record_bytes(id)
                + state.segments.needed_tombstone_bytes(id);
            let reclaimable = state.segments.len(id).saturating_sub(kept_bytes);
            if id == state.active_id {
                reclaimable.saturating_sub(SEGMENT_MAGIC_BYTES)
            } else {
                reclaimable
            }
        })
        .sum()
}

struct SegmentScan {
    /// Length of the prefix made of whole, valid records.
    valid_len: u64,
    notes: Vec<String>,
}

/// Replays one segment into `state`. Stops at the first record whose header
/// fails its CRC or is cut short (its length can't be trusted); skips, and
/// reports, a record whose header is sound but whose data is corrupt.
fn scan_segment(file: &File, segment_id: u32, state: &mut State) -> io::Result<SegmentScan> {
    let mut reader = BufReader::with_capacity(1024 * 1024, file);
    let mut notes = Vec::new();
    let mut magic = [0u8; SEGMENT_MAGIC.len()];
    if !read_full(&mut reader, &mut magic)? || magic != SEGMENT_MAGIC {
        notes.push("no segment header".to_owned());
        return Ok(SegmentScan {
            valid_len: 0,
            notes,
        });
    }
    let mut offset = SEGMENT_MAGIC_BYTES;
    let mut data = vec![0u8; CHUNK_SIZE_BYTES];
    // Consecutive records of one blob are gathered into one run of the index.
    let mut pending: Option<(ChunkId, Run)> = None;
    loop {
        let mut header = [0u8; RECORD_HEADER_BYTES];
        if !read_full(&mut reader, &mut header)? {
            break;
        }
        let Some(record) = decode_record_header(&header) else {
            notes.push(format!("record header at offset {offset} fails its CRC32C"));
            break;
        };
        let data = &mut data[..record.len as usize];
        if !read_full(&mut reader, data)? {
            break;
        }
        match record.kind {
            KIND_CHUNK if crc32c(data) == record.data_crc => {
                state.segments.note_chunk(record.id.blob, segment_id);
                let extends = pending.as_ref().is_some_and(|(first, run)| {
                    first.blob == record.id.blob
                        && u64::from(first.index) + u64::from(run.count)
                            == u64::from(record.id.index)
                        && run.last_len as usize == CHUNK_SIZE_BYTES
                        && run.offset + run.record_bytes() == offset
                });
                match pending.as_mut() {
                    Some((_, run)) if extends => {
                        run.count += 1;
                        run.last_len = record.len;
                    }
                    _ => {
                        flush_pending(&mut pending, state);
                        let run = Run {
                            segment: segment_id,
                            offset,
                            count: 1,
                            last_len: record.len,
                        };
                        pending = Some((record.id, run));
                    }
                }
            }
            KIND_CHUNK => {
                flush_pending(&mut pending, state);
                // Not served, but still a record of its blob on disk: a
                // tombstone that kills it must stay (see `segments.rs`).
                state.segments.note_chunk(record.id.blob, segment_id);
                notes.push(format!(
                    "chunk {} at offset {offset} is corrupt; not served",
                    record.id
                ));
            }
            _ => {
                flush_pending(&mut pending, state);
                state.index.remove_blob(record.id.blob);
                state.segments.note_tombstone(record.id.blob, segment_id);
            }
        }
        offset += (RECORD_HEADER_BYTES + record.len as usize) as u64;
    }
    flush_pending(&mut pending, state);
    Ok(SegmentScan {
        valid_len: offset,
        notes,
    })
}

fn flush_pending(pending: &mut Option<(ChunkId, Run)>, state: &mut State) {
    if let Some((first, run)) = pending.take() {
        state.index.insert(first.blob, first.index, run);
    }
}

/// What one scrub step read and found.
pub struct ScrubStep {
    pub next: Option<(BlobId, u32)>,
    pub bytes_read: u64,
    pub corrupt: Vec<ChunkId>,
}

/// Checks the records of `run` (chunks from `first_index` of `blob`), read
/// whole into `records`: each chunk, or the id of one that fails its header
/// (kind, id, length, header CRC) or data CRC.
fn verify_records(
    blob: BlobId,
    first_index: u32,
    run: &Run,
    records: &[u8],
) -> Vec<Result<Chunk, ChunkId>> {
    let mut chunks = Vec::with_capacity(run.count as usize);
    for k in 0..run.count {
        let id = ChunkId {
            blob,
            index: first_index + k,
        };
        let at = k as usize * RECORD_STRIDE_BYTES as usize;
        let expected_len = if k + 1 == run.count {
            run.last_len
        } else {
            CHUNK_SIZE_BYTES as u32
        };
        let header: &[u8; RECORD_HEADER_BYTES] = records[at..at + RECORD_HEADER_BYTES]
            .try_into()
            .expect("RECORD_HEADER_BYTES long");
        let verified = decode_record_header(header)
            .filter(|record| {
                record.kind == KIND_CHUNK && record.id == id && record.len == expected_len
            })
            .map(|record| {
                let data_start = at + RECORD_HEADER_BYTES;
                let data = records[data_start..data_start + record.len as usize].to_vec();
                Chunk {
                    id,
                    crc: record.data_crc,
                    data,
                }
            })
            .filter(Chunk::is_intact);
        chunks.push(verified.ok_or(id));
    }
    chunks
}

/// Splits a batch into runs the index can keep as one entry each:
/// consecutive chunks of one blob, every one but the last full.
fn runs_of(chunks: &[Chunk]) -> Vec<(ChunkId, &[Chunk])> {
    let mut runs = Vec::new();
    let mut start = 0;
    for idx in 1..=chunks.len() {
        let continues = idx < chunks.len() && {
            let (previous, next) = (&chunks[idx - 1], &chunks[idx]);
            previous.id.blob == next.id.blob
                && previous.id.index.checked_add(1) == Some(next.id.index)
                && previous.data.len() == CHUNK_SIZE_BYTES
        };
        if !continues {
            runs.push((chunks[start].id, &chunks[start..idx]));
            start = idx;
        }
    }
    runs
}

pub struct RecordHeader {
    pub kind: u8,
    pub id: ChunkId,
    pub len: u32,
    pub data_crc: u32,
}

fn encode_record(out: &mut Vec<u8>, kind: u8, id: ChunkId, data_crc: u32, data: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&id.blob.0.to_be_bytes());
    out.extend_from_slice(&id.index.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(data.len())
            .expect("a chunk fits u32")
            .to_be_bytes(),
    );
    out.extend_from_slice(&data_crc.to_be_bytes());
    let header_crc = crc32c(&out[start..]);
    out.extend_from_slice(&header_crc.to_be_bytes());
    assert_eq!(out.len() - start, RECORD_HEADER_BYTES);
    out.extend_from_slice(data);
}

/// The header's fields if its CRC and shape are sound, else `None`.
pub fn decode_record_header(header: &[u8; RECORD_HEADER_BYTES]) -> Option<RecordHeader> {
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if crc32c(&header[..24]) != word(24) || header[1..4] != [0, 0, 0] {
        return None;
    }
    let blob = u64::from_be_bytes([
        header[4], header[5], header[6], header[7], header[8], header[9], header[10], header[11],
    ]);
    let record = RecordHeader {
        kind: header[0],
        id: ChunkId {
            blob: BlobId(blob),
            index: word(12),
        },
        len: word(16),
        data_crc: word(20),
    };
    let valid = match record.kind {
        KIND_CHUNK => record.len as usize <= CHUNK_SIZE_BYTES,
        KIND_TOMBSTONE => record.len == 0,
        _ => false,
    };
    valid.then_some(record)
}

/// Fills `buf`; `false` if the reader ended first (a torn tail).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(err),
    }
}

pub fn segment_path(dir: &Path, segment_id: u32) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{segment_id:08}{SEGMENT_SUFFIX}"))
}

/// Where compaction writes the copy of `segment_id` before renaming it over.
pub fn temp_path(dir: &Path, segment_id: u32) -> PathBuf {
    dir.join(format!(
        "{SEGMENT_PREFIX}{segment_id:08}{SEGMENT_SUFFIX}{TEMP_SUFFIX}"
    ))
}

/// Makes renames, creations and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn list_segments(dir: &Path) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|digits| digits.parse::<u32>().ok());
        ids.extend(id);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Removes the copies an interrupted compaction left: never renamed, they
/// never took effect. Returns a note per file.
fn remove_leftover_copies(dir: &Path) -> io::Result<Vec<String>> {
    let mut notes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_copy = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(SEGMENT_PREFIX) && name.ends_with(TEMP_SUFFIX));
        if is_copy {
            fs::remove_file(&path)?;
            notes.push(format!(
                "{}: removed an unfinished compaction copy",
                path.display()
            ));
        }
    }
    if !notes.is_empty() {
        sync_dir(dir)?;
    }
    Ok(notes)
}

#[cfg(test)]
mod tests;
