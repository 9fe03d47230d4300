//! Start-up: the index and the segment table are rebuilt by replaying every
//! segment in id order through the record scanner. Consecutive records of
//! one blob become one run; a tombstone forgets every earlier chunk of its
//! blob; a record whose data fails its CRC is reported and never indexed
//! (but still counts as a record of its blob, which a tombstone may have
//! to keep dead). Where the scan stops, the segment's readable part ends:
//! in the newest segment that is a torn tail and `Store::open` cuts it.
//! Zeros after the last record are the unused tail written ahead of the
//! appends (`common::zeroed_tail`): cut from any segment without a word.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::chunk::ChunkId;
use common::group_commit::GroupCommit;
use common::limits::CHUNK_SIZE_BYTES;
use common::own_files;
use common::zeroed_tail;

use crate::index::{Index, Run};
use crate::record::{self, Kind, Piece, SEGMENT_MAGIC_BYTES, ScanEnd, Visitor};
use crate::segments::Segments;
use crate::store::compaction::schedule::Schedule;
use crate::store::{Recovery, State, Store, files};

impl Store {
    /// Opens (or creates) the store in `dir`, rebuilding the index from the
    /// segments. A torn tail of the newest segment is cut off; a copy
    /// compaction left behind is removed.
    pub fn open(dir: &Path, capacity_bytes: Option<u64>) -> io::Result<(Store, Recovery)> {
        let mut notes = files::remove_leftover_copies(dir)?;
        let segment_ids = files::list_segments(dir)?;
        let mut state = State {
            index: Index::default(),
            segments: Segments::default(),
            files: BTreeMap::new(),
            active_id: 0,
            active_zeroed_to: 0,
        };
        let last_id = segment_ids.last().copied();
        for &segment_id in &segment_ids {
            let path = files::segment_path(dir, segment_id);
            let file = own_files::open_read_write(&path)?;
            let mut len = file.metadata()?.len();
            let replayed = replay_segment(
                &file,
                len,
                segment_id,
                &mut state.index,
                &mut state.segments,
            )?;
            notes.extend(
                replayed
                    .notes
                    .iter()
                    .map(|note| format!("{}: {note}", path.display())),
            );
            if replayed.valid_len < len {
                if replayed.unused_tail || Some(segment_id) == last_id {
                    if !replayed.unused_tail {
                        notes.push(format!(
                            "{}: cut a torn or corrupt tail at offset {} ({} bytes)",
                            path.display(),
                            replayed.valid_len,
                            len - replayed.valid_len
                        ));
                    }
                    file.set_len(replayed.valid_len)?;
                    file.sync_all()?;
                    len = replayed.valid_len;
                } else {
                    notes.push(format!(
                        "{}: {} bytes after offset {} are damaged and ignored",
                        path.display(),
                        len - replayed.valid_len,
                        replayed.valid_len
                    ));
                }
            }
            state.segments.add(segment_id, len);
            state.files.insert(segment_id, Arc::new(file));
            state.active_id = segment_id;
            state.active_zeroed_to = len;
        }
        let segments_count = segment_ids.len();
        let active_len = state.segments.len(state.active_id);
        let store = Store {
            dir: dir.to_path_buf(),
            capacity_bytes,
            commit: GroupCommit::new((state.active_id, active_len)),
            state: Mutex::new(state),
            compaction: Schedule::default(),
        };
        let (chunks_count, runs_count) = {
            let mut state = store.lock_state();
            if state.files.is_empty() || active_len < SEGMENT_MAGIC_BYTES {
                store.start_segment(&mut state)?;
            }
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
}

/// What the replay of one segment found.
struct Replayed {
    /// Where its whole, readable records end.
    valid_len: u64,
    /// Only zeros follow `valid_len`.
    unused_tail: bool,
    notes: Vec<String>,
}

/// Replays segment `segment_id`, `len` bytes of `file`, into `index` and
/// `segments`.
fn replay_segment(
    file: &File,
    len: u64,
    segment_id: u32,
    index: &mut Index,
    segments: &mut Segments,
) -> io::Result<Replayed> {
    let mut replay = Replay {
        segment_id,
        index,
        segments,
        pending: None,
        notes: Vec::new(),
    };
    let (valid_len, end) = record::scan(file, len, &mut replay)?;
    replay.flush_pending();
    let mut notes = replay.notes;
    let unused_tail = valid_len >= SEGMENT_MAGIC_BYTES
        && valid_len < len
        && zeroed_tail::is_zeros(file, valid_len, len)?;
    match end {
        ScanEnd::Clean | ScanEnd::Cut { .. } => {}
        ScanEnd::NoMagic => notes.push("no segment header".to_owned()),
        ScanEnd::Damaged { .. } if unused_tail => {}
        ScanEnd::Damaged { offset } => {
            notes.push(format!("record header at offset {offset} fails its CRC32C"));
        }
    }
    Ok(Replayed {
        valid_len,
        unused_tail,
        notes,
    })
}

struct Replay<'a> {
    segment_id: u32,
    index: &'a mut Index,
    segments: &'a mut Segments,
    /// The run being gathered: its first chunk and where it is.
    pending: Option<(ChunkId, Run)>,
    notes: Vec<String>,
}

impl Visitor for Replay<'_> {
    fn visit(&mut self, piece: &Piece<'_>) -> io::Result<()> {
        for record in &piece.records {
            match record.kind {
                Kind::Chunk if piece.data_intact(record) => {
                    self.segments.note_chunk(record.id.blob, self.segment_id);
                    let extends = self.pending.as_ref().is_some_and(|(first, run)| {
                        first.blob == record.id.blob
                            && u64::from(first.index) + u64::from(run.count)
                                == u64::from(record.id.index)
                            && run.last_len as usize == CHUNK_SIZE_BYTES
                            && run.offset + run.record_bytes() == record.offset
                    });
                    match self.pending.as_mut() {
                        Some((_, run)) if extends => {
                            run.count += 1;
                            run.last_len = record.len;
                        }
                        _ => {
                            self.flush_pending();
                            let run = Run {
                                segment: self.segment_id,
                                offset: record.offset,
                                count: 1,
                                last_len: record.len,
                            };
                            self.pending = Some((record.id, run));
                        }
                    }
                }
                Kind::Chunk => {
                    self.flush_pending();
                    // Not served, but still a record of its blob on disk: a
                    // tombstone that kills it must stay (see `segments.rs`).
                    self.segments.note_chunk(record.id.blob, self.segment_id);
                    self.notes.push(format!(
                        "chunk {} at offset {} is corrupt; not served",
                        record.id, record.offset
                    ));
                }
                Kind::Tombstone => {
                    self.flush_pending();
                    self.index.remove_blob(record.id.blob);
                    self.segments
                        .note_tombstone(record.id.blob, self.segment_id);
                }
            }
        }
        Ok(())
    }
}

impl Replay<'_> {
    fn flush_pending(&mut self) {
        if let Some((first, run)) = self.pending.take() {
            self.index.insert(first.blob, first.index, run);
        }
    }
}
