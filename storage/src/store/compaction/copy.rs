//! Copying a group of segments: what the index still serves and the
//! tombstones still needed go, in their replay order, into the
//! `.compacting` file of the group's newest segment (read with the record
//! scanner, a piece at a time, without the state lock); then the copy is
//! checked, put in place and the index moved to it. Steps 1 to 5 of the
//! module header.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use common::chunk::BlobId;
use common::limits::CHUNK_SIZE_BYTES;
use common::own_files;

use super::{Outcome, Pacing};
use crate::record::{
    self, Kind, Piece, RecordAt, SCAN_PIECE_BYTES, SEGMENT_MAGIC, SEGMENT_MAGIC_BYTES, ScanEnd,
    Visitor,
};
use crate::segments::Contents;
use crate::store::Store;
use crate::store::files;

/// Records whose fate one hold of the state lock decides. The lock is
/// taken once per piece the scanner reads (or per this many records of
/// it), to decide which records to keep, and never held while copying: a
/// piece of tombstones holds 150,000 of them, too many lookups for one
/// hold.
pub const KEEP_DECISIONS_PER_LOCK_MAX: usize = 4096;

/// A stretch of consecutive chunks of one blob whose records were copied
/// back to back: from `offset` of `segment` to `new_offset` of the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub segment: u32,
    pub blob: BlobId,
    pub first_index: u32,
    pub count: u32,
    pub offset: u64,
    pub new_offset: u64,
}

/// One segment a copy reads.
pub struct Source {
    pub id: u32,
    pub file: Arc<File>,
    pub len: u64,
    /// What the copy found in it.
    pub old: Contents,
}

/// A finished copy of a group, not yet in place.
pub struct Copy {
    /// Oldest first; the copy takes the last one's id.
    pub sources: Vec<Source>,
    pub temp_path: PathBuf,
    pub file: File,
    pub len: u64,
    pub moves: Vec<Move>,
    /// What the copy kept.
    pub new: Contents,
    /// The first damaged record met, as (segment, offset), if any.
    pub damaged_from: Option<(u32, u64)>,
}

impl Copy {
    /// The id the copy takes: the group's newest.
    pub fn target_id(&self) -> u32 {
        self.sources.last().expect("a group has a segment").id
    }

    pub fn old_len(&self) -> u64 {
        self.sources.iter().map(|source| source.len).sum()
    }

    fn source_ids(&self) -> Vec<u32> {
        self.sources.iter().map(|source| source.id).collect()
    }
}

/// Steps 2 to 5 for a finished copy: check it, put it in place (or delete
/// the group if it kept nothing), move the index to it, delete the rest.
pub fn finish(store: &Store, copy: Copy) -> io::Result<Outcome> {
    let source_ids = copy.source_ids();
    if store.live_bytes_not_moved(&source_ids, &copy.moves) != 0 {
        let _ = fs::remove_file(&copy.temp_path);
        let (segment, damaged_from) = copy
            .damaged_from
            .unwrap_or((copy.target_id(), copy.old_len()));
        return Ok(Outcome::Abandoned {
            segment,
            damaged_from,
        });
    }
    let old_len = copy.old_len();
    if copy.len == SEGMENT_MAGIC_BYTES {
        fs::remove_file(&copy.temp_path)?;
        delete_segments(store, &copy.sources)?;
        return Ok(Outcome::Deleted { old_len });
    }
    put_in_place(store, &copy)?;
    let target_id = copy.target_id();
    let Copy {
        mut sources,
        file,
        len: new_len,
        moves,
        new,
        ..
    } = copy;
    let target = sources.pop().expect("a group has a segment");
    store.install_compacted(
        (target_id, file, new_len),
        &moves,
        &source_ids,
        (&target.old, &new),
    );
    // The copy is durable and the index on it: the older segments of the
    // group hold nothing that replay needs any more.
    delete_segments(store, &sources)?;
    Ok(Outcome::Rewritten { old_len, new_len })
}

/// Step 1: copies what `group` still needs into the `.compacting` file of
/// its newest segment. `None` if a segment of it is gone or active.
pub fn copy_live(
    store: &Store,
    group: &[u32],
    pacing: &mut Pacing<'_>,
) -> io::Result<Option<Copy>> {
    let mut sources = Vec::with_capacity(group.len());
    for &id in group {
        let Some((file, len)) = store.closed_segment(id) else {
            return Ok(None);
        };
        sources.push(Source {
            id,
            file,
            len,
            old: Contents::default(),
        });
    }
    let target_id = *group.last().expect("a group has a segment");
    let temp_path = files::temp_path(store.dir(), target_id);
    let file = own_files::create_fresh(&temp_path)?;
    let mut copy = Copy {
        sources,
        temp_path,
        file,
        len: 0,
        moves: Vec::new(),
        new: Contents::default(),
        damaged_from: None,
    };
    match copy_records(store, &mut copy, pacing) {
        Ok(()) => Ok(Some(copy)),
        Err(err) => {
            let _ = fs::remove_file(&copy.temp_path);
            Err(err)
        }
    }
}

/// Step 3: fsyncs the copy, renames it over its group's newest segment and
/// fsyncs the folder; `copy.file` is now that segment's file.
pub fn put_in_place(store: &Store, copy: &Copy) -> io::Result<()> {
    let placed = copy.file.sync_all().and_then(|()| {
        fs::rename(
            &copy.temp_path,
            files::segment_path(store.dir(), copy.target_id()),
        )
    });
    if let Err(err) = placed {
        let _ = fs::remove_file(&copy.temp_path);
        return Err(err);
    }
    // Until the folder is fsynced the rename may not survive a crash; the
    // index keeps the old file meanwhile, which is correct either way.
    files::sync_dir(store.dir())
}

/// Deletes the files of `sources`, which hold nothing replay needs, and
/// only once that is durable lets the store forget them (which may let
/// tombstones of newer segments go).
fn delete_segments(store: &Store, sources: &[Source]) -> io::Result<()> {
    if sources.is_empty() {
        return Ok(());
    }
    for source in sources {
        fs::remove_file(files::segment_path(store.dir(), source.id))?;
    }
    files::sync_dir(store.dir())?;
    for source in sources {
        store.forget_segment(source.id, &source.old);
    }
    Ok(())
}

fn copy_records(store: &Store, copy: &mut Copy, pacing: &mut Pacing<'_>) -> io::Result<()> {
    let target_id = copy.target_id();
    let mut writer = BufWriter::with_capacity(SCAN_PIECE_BYTES, &copy.file);
    writer.write_all(&SEGMENT_MAGIC)?;
    copy.len = SEGMENT_MAGIC_BYTES;
    for source in &mut copy.sources {
        let mut copier = Copier {
            store,
            ids: (source.id, target_id),
            old: &mut source.old,
            new: &mut copy.new,
            moves: &mut copy.moves,
            len: &mut copy.len,
            writer: &mut writer,
            growing: None,
            pacing,
        };
        let (_, end) = record::scan(&source.file, source.len, &mut copier)?;
        let damaged_at = match end {
            ScanEnd::Clean => None,
            ScanEnd::NoMagic => Some(0),
            ScanEnd::Damaged { offset } | ScanEnd::Cut { offset } => Some(offset),
        };
        if let Some(offset) = damaged_at {
            copy.damaged_from.get_or_insert((source.id, offset));
        }
    }
    writer.flush()
}

/// The scanner's visitor for one source of a copy.
struct Copier<'a, 'b, 'c> {
    store: &'a Store,
    /// The segment read, and the id the copy takes.
    ids: (u32, u32),
    old: &'a mut Contents,
    new: &'a mut Contents,
    moves: &'a mut Vec<Move>,
    len: &'a mut u64,
    writer: &'a mut BufWriter<&'b File>,
    /// The last chunk record copied, while a move may still grow from it.
    growing: Option<GrowingMove>,
    pacing: &'a mut Pacing<'c>,
}

impl Visitor for Copier<'_, '_, '_> {
    fn visit(&mut self, piece: &Piece<'_>) -> io::Result<()> {
        let keep: Vec<bool> = piece
            .records
            .chunks(KEEP_DECISIONS_PER_LOCK_MAX)
            .flat_map(|records| self.store.records_to_keep(self.ids, records))
            .collect();
        for (record, keep) in piece.records.iter().zip(keep) {
            match record.kind {
                Kind::Chunk => self.old.chunk_blobs.insert(record.id.blob),
                Kind::Tombstone => {
                    self.old.tombstone_blobs.push(record.id.blob);
                    true
                }
            };
            if !keep {
                continue;
            }
            self.writer.write_all(piece.record_bytes(record))?;
            match record.kind {
                Kind::Chunk => {
                    self.new.chunk_blobs.insert(record.id.blob);
                    grow_moves(self.moves, &mut self.growing, self.ids.0, record, *self.len);
                }
                Kind::Tombstone => {
                    self.new.tombstone_blobs.push(record.id.blob);
                    self.growing = None;
                }
            }
            *self.len += record.record_bytes();
        }
        self.pacing.pace(piece.bytes.len() as u64);
        Ok(())
    }
}

/// Where the move being built ends, to tell whether the next record extends it.
struct GrowingMove {
    next_index: u32,
    old_end: u64,
    last_full: bool,
}

/// Adds copied chunk `record` of `segment`, now at `new_offset`, to the
/// moves: it extends the last one when it is the next chunk of the same
/// blob, laid right after it in the old file (so in the new one too) behind
/// a full chunk, which is the layout of a run.
fn grow_moves(
    moves: &mut Vec<Move>,
    growing: &mut Option<GrowingMove>,
    segment: u32,
    record: &RecordAt,
    new_offset: u64,
) {
    let extends = match (moves.last(), growing.as_ref()) {
        (Some(last), Some(grow)) => {
            last.segment == segment
                && last.blob == record.id.blob
                && grow.next_index == record.id.index
                && grow.old_end == record.offset
                && grow.last_full
        }
        _ => false,
    };
    match moves.last_mut() {
        Some(last) if extends => last.count += 1,
        _ => moves.push(Move {
            segment,
            blob: record.id.blob,
            first_index: record.id.index,
            count: 1,
            offset: record.offset,
            new_offset,
        }),
    }
    *growing = record
        .id
        .index
        .checked_add(1)
        .map(|next_index| GrowingMove {
            next_index,
            old_end: record.end(),
            last_full: record.len as usize == CHUNK_SIZE_BYTES,
        });
}
