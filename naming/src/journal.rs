//! The metadata journal: every change is appended to a write-ahead log in
//! `META_DIR` and made durable (one fsync shared by every change waiting
//! for it: group commit) before the client hears of it. A checkpoint, a
//! snapshot of the whole namespace, is written atomically (temporary file,
//! fsync, rename, fsync of the folder) and the journal before it dropped,
//! so restart time stays bounded however long the cluster has run.
//! Invariants: a change is acknowledged only after the fsync that covers
//! it; replay applies whole, checksummed records only and stops cleanly at
//! a torn tail of the newest journal.
//!
//! The open journal keeps zeros written ahead of its last record (see
//! `common::zeroed_tail`), so a sync rewrites allocated blocks and
//! `fdatasync` commits no inode change; replay stops at them, the open cuts
//! them off, and a rotation cuts them from the journal it closes.
//!
//! ```text
//! META_DIR/checkpoint           "HRBCKPT1" | generation u64 | frame* | frame(End)
//! META_DIR/journal-NNNNNNNN.log "HRBJRNL1" | generation u64 | frame*
//! ```
//! A checkpoint of generation G holds everything journaled before
//! `journal-G`; replay loads it, then journals G, G+1, ... in order, and
//! hands every change to the caller (the door applies it to the state).
//! The journal knows frames and files, not what a change means.

pub mod record;

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use common::codec::{Put, Reader};
use common::group_commit::GroupCommit;
use common::own_files;
use common::zeroed_tail;

use crate::metadata::change::Change;

use self::record::{FrameError, Record, frame, parse, read_frame};

const CHECKPOINT_MAGIC: [u8; 8] = *b"HRBCKPT1";
const JOURNAL_MAGIC: [u8; 8] = *b"HRBJRNL1";
const FILE_HEADER_BYTES: u64 = 16;
const CHECKPOINT_NAME: &str = "checkpoint";
const CHECKPOINT_TEMP_NAME: &str = "checkpoint.tmp";

/// Position of a record in the journal, counted from 1 since the open.
pub type Lsn = u64;

pub struct Journal {
    dir: PathBuf,
    writer: Mutex<Writer>,
    /// How far the appended records are durable; one write and one fsync
    /// cover every record appended before they started.
    commit: GroupCommit<Lsn>,
    /// A test pauses a syncer here, to put a checkpoint between a change's
    /// append and its fsync.
    #[cfg(test)]
    pub pause_before_sync: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

struct Writer {
    file: Arc<File>,
    generation: u64,
    /// Appended frames not yet written to `file`.
    pending: Vec<u8>,
    /// Where the last record taken for writing ends.
    file_len: u64,
    /// How far the file holds zeros past `file_len` (or ends at it).
    zeroed_to: u64,
    last_lsn: Lsn,
    bytes_since_checkpoint: u64,
}

impl Writer {
    /// Writes what is pending and ends the file at its last record (the
    /// zeros written ahead cut, see `common::zeroed_tail`), durably: what a
    /// journal is left as when it closes or rotates.
    fn seal(&mut self) -> io::Result<()> {
        self.file.write_all_at(&self.pending, self.file_len)?;
        self.file_len += self.pending.len() as u64;
        self.pending.clear();
        self.file.set_len(self.file_len)?;
        self.file.sync_all()?;
        self.zeroed_to = self.file_len;
        Ok(())
    }
}

/// What replay hands each change to: `Err` says why the change cannot be
/// applied, which makes the journal damaged.
pub type Replay<'a> = &'a mut dyn FnMut(Change) -> Result<(), String>;

#[derive(Debug)]
pub enum JournalError {
    Io { path: PathBuf, err: io::Error },
    Damaged { path: PathBuf, detail: String },
}

impl Journal {
    /// Loads the checkpoint and replays the journals after it through
    /// `apply`, cuts a torn tail, and opens the newest journal for
    /// appending. Returns what it found and did, for the log.
    pub fn open(dir: &Path, apply: Replay<'_>) -> Result<(Journal, Vec<String>), JournalError> {
        let mut notes = Vec::new();
        let _ = fs::remove_file(dir.join(CHECKPOINT_TEMP_NAME));
        let checkpoint_generation = load_checkpoint(dir, apply, &mut notes)?;
        let mut generations: Vec<u64> = list_journals(dir)?
            .into_iter()
            .filter(|&generation| generation >= checkpoint_generation)
            .collect();
        for stale in list_journals(dir)?
            .into_iter()
            .filter(|&generation| generation < checkpoint_generation)
        {
            // Left by a crash between a checkpoint's rename and this cleanup.
            remove(dir, &journal_path(dir, stale))?;
        }
        if generations.is_empty() {
            create_journal(dir, checkpoint_generation)?;
            generations.push(checkpoint_generation);
        }
        let newest = *generations.last().expect("one at least");
        // A crash while the newest journal was being created can leave it
        // without its whole header: nothing was ever appended to it.
        let newest_path = journal_path(dir, newest);
        let newest_file_len = fs::metadata(&newest_path)
            .map_err(|err| io_error(&newest_path, err))?
            .len();
        if newest_file_len < FILE_HEADER_BYTES {
            notes.push(format!(
                "{}: recreated a journal cut inside its header",
                newest_path.display()
            ));
            create_journal(dir, newest)?;
        }
        let mut bytes_since_checkpoint = 0;
        let mut newest_len = 0;
        for &generation in &generations {
            let path = journal_path(dir, generation);
            let replay = replay_journal(&path, generation, apply, &mut notes)?;
            bytes_since_checkpoint += replay.valid_len;
            if replay.valid_len < replay.file_len {
                let file = own_files::open_read_write(&path).map_err(|err| io_error(&path, err))?;
                let unused = zeroed_tail::is_zeros(&file, replay.valid_len, replay.file_len)
                    .map_err(|err| io_error(&path, err))?;
                if !unused && generation != newest {
                    let detail = format!(
                        "a record at offset {} is torn in a closed journal",
                        replay.valid_len
                    );
                    return Err(JournalError::Damaged { path, detail });
                }
                if !unused {
                    notes.push(format!(
                        "{}: cut a torn tail at offset {} ({} bytes with the zeros after it)",
                        path.display(),
                        replay.valid_len,
                        replay.file_len - replay.valid_len
                    ));
                }
                file.set_len(replay.valid_len)
                    .map_err(|err| io_error(&path, err))?;
                file.sync_all().map_err(|err| io_error(&path, err))?;
            }
            newest_len = replay.valid_len;
        }
        let path = journal_path(dir, newest);
        let file = own_files::open_read_write(&path).map_err(|err| io_error(&path, err))?;
        let writer = Writer {
            file: Arc::new(file),
            generation: newest,
            pending: Vec::new(),
            file_len: newest_len,
            zeroed_to: newest_len,
            last_lsn: 0,
            bytes_since_checkpoint,
        };
        let journal = Journal {
            dir: dir.to_path_buf(),
            writer: Mutex::new(writer),
            commit: GroupCommit::new(0),
            #[cfg(test)]
            pause_before_sync: Mutex::new(None),
        };
        Ok((journal, notes))
    }

    /// Adds `change` after every change appended before it; durable once
    /// `sync` returns for its Lsn. The door appends under the state lock,
    /// so journal order is the order changes were applied in.
    pub fn append(&self, change: &Change) -> Lsn {
        let frame = frame(&Record::Change(change.clone()));
        let mut writer = self.lock_writer();
        writer.pending.extend_from_slice(&frame);
        writer.bytes_since_checkpoint += frame.len() as u64;
        writer.last_lsn += 1;
        writer.last_lsn
    }

    /// Returns once the record at `lsn` is on stable storage. One write and
    /// one fsync cover every record appended before they started.
    pub fn sync(&self, lsn: Lsn) -> io::Result<()> {
        #[cfg(test)]
        {
            let pause = self
                .pause_before_sync
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(pause) = pause {
                pause();
            }
        }
        self.commit.wait_durable(lsn, || {
            // Taken under the writer lock, written outside it, so appends
            // go on meanwhile. A failed write is fatal to the caller (the
            // door stops the process), so the taken bytes are not retried.
            // Syncs run one at a time, so the zeros written here are never
            // overwritten by another sync's zeros after its records.
            let (bytes, file, offset, zeros, target_lsn) = {
                let mut writer = self.lock_writer();
                let bytes = std::mem::take(&mut writer.pending);
                let offset = writer.file_len;
                writer.file_len += bytes.len() as u64;
                let end = writer.file_len;
                let zeros = (end > writer.zeroed_to).then(|| {
                    writer.zeroed_to = zeroed_tail::target(end, u64::MAX);
                    end..writer.zeroed_to
                });
                let file = Arc::clone(&writer.file);
                (bytes, file, offset, zeros, writer.last_lsn)
            };
            file.write_all_at(&bytes, offset)?;
            if let Some(zeros) = zeros {
                zeroed_tail::write_zeros(&file, zeros.start, zeros.end)?;
            }
            file.sync_data()?;
            Ok(target_lsn)
        })
    }

    /// Every change up to this Lsn is on stable storage.
    #[cfg(test)]
    pub fn durable_lsn(&self) -> Lsn {
        self.commit.durable()
    }

    /// The Lsn of the last change appended.
    pub fn last_lsn(&self) -> Lsn {
        self.lock_writer().last_lsn
    }

    /// How long each fsync of the journal took.
    pub fn sync_latency(&self) -> common::metrics::HistogramSnapshot {
        self.commit.sync_latency()
    }

    pub fn bytes_since_checkpoint(&self) -> u64 {
        self.lock_writer().bytes_since_checkpoint
    }

    /// Writes what is pending and cuts the zeros ahead of the last record
    /// (see `common::zeroed_tail`), durably: at a clean shutdown, so the
    /// next open finds a journal that simply ends. Appending after it is
    /// still correct (zeros are written ahead again).
    pub fn close(&self) -> io::Result<()> {
        self.commit.sync_alone(|| {
            let mut writer = self.lock_writer();
            writer.seal()?;
            Ok((writer.last_lsn, ()))
        })
    }

    /// Starts the next journal generation and returns it; everything
    /// appended so far is durable in the previous one. The caller holds the
    /// state lock, so the snapshot it takes next is exactly the state as of
    /// the end of the previous generation.
    pub fn rotate(&self) -> io::Result<u64> {
        self.commit.sync_alone(|| {
            let mut guard = self.lock_writer();
            let writer = &mut *guard;
            // Pending records stay pending until written: a failed rotation
            // (the checkpointer logs it and tries again) loses none.
            writer.seal()?;
            let generation = writer.generation + 1;
            let file = create_journal(&self.dir, generation).map_err(|err| match err {
                JournalError::Io { err, .. } => err,
                JournalError::Damaged { detail, .. } => io::Error::other(detail),
            })?;
            writer.file = Arc::new(file);
            writer.generation = generation;
            writer.file_len = FILE_HEADER_BYTES;
            writer.zeroed_to = FILE_HEADER_BYTES;
            writer.bytes_since_checkpoint = 0;
            Ok((writer.last_lsn, generation))
        })
    }

    /// Writes the checkpoint of `generation` from `changes` (the state when
    /// it began) atomically, then drops the journals it replaces.
    pub fn write_checkpoint(
        &self,
        generation: u64,
        changes: impl Iterator<Item = Change>,
    ) -> io::Result<()> {
        let temp_path = self.dir.join(CHECKPOINT_TEMP_NAME);
        let file = own_files::create_fresh(&temp_path)?;
        let mut out = BufWriter::with_capacity(1024 * 1024, file);
        out.write_all(&file_header(&CHECKPOINT_MAGIC, generation))?;
        let mut records_count = 0u64;
        for change in changes {
            out.write_all(&frame(&Record::Change(change)))?;
            records_count += 1;
        }
        out.write_all(&frame(&Record::End { records_count }))?;
        let file = out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        fs::rename(&temp_path, self.dir.join(CHECKPOINT_NAME))?;
        own_files::sync_dir(&self.dir)?;
        for stale in list_journals(&self.dir).map_err(journal_to_io)? {
            if stale < generation {
                fs::remove_file(journal_path(&self.dir, stale))?;
            }
        }
        Ok(())
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // The writer's fields change together under the lock, with no panic
        // in between, so a poisoned lock still holds a consistent writer.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Loads `META_DIR/checkpoint` if there is one; returns its generation (0
/// without one). A checkpoint is written whole or not at all, so any damage
/// in it is fatal, never a tail to cut.
fn load_checkpoint(
    dir: &Path,
    apply: Replay<'_>,
    notes: &mut Vec<String>,
) -> Result<u64, JournalError> {
    let path = dir.join(CHECKPOINT_NAME);
    let file = match own_files::open_read(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(io_error(&path, err)),
    };
    let damaged = |detail: String| JournalError::Damaged {
        path: path.clone(),
        detail,
    };
    let mut reader = BufReader::with_capacity(1024 * 1024, file);
    let generation = read_file_header(&mut reader, &CHECKPOINT_MAGIC).map_err(&damaged)?;
    let mut records_count = 0u64;
    loop {
        let payload = match read_frame(&mut reader) {
            Ok(Some(payload)) => payload,
            Ok(None) => return Err(damaged("it has no end record".to_owned())),
            Err(FrameError::Io(err)) => return Err(io_error(&path, err)),
            Err(FrameError::Torn) => return Err(damaged("a record fails its CRC32C".to_owned())),
            Err(FrameError::Malformed(detail)) => return Err(damaged(detail)),
        };
        match parse(&payload) {
            Ok(Record::End {
                records_count: expected,
            }) if expected == records_count => break,
            Ok(Record::End { .. }) => return Err(damaged("its record count is wrong".to_owned())),
            Ok(Record::Change(change)) => apply(change).map_err(damaged)?,
            Err(FrameError::Malformed(detail)) => return Err(damaged(detail)),
            Err(_) => return Err(damaged("unreadable record".to_owned())),
        }
        records_count += 1;
    }
    let mut rest = [0u8; 1];
    if reader.read(&mut rest).map_err(|err| io_error(&path, err))? != 0 {
        return Err(damaged("bytes follow its end record".to_owned()));
    }
    notes.push(format!(
        "checkpoint: {records_count} records, generation {generation}"
    ));
    Ok(generation)
}

struct Replayed {
    valid_len: u64,
    file_len: u64,
}

/// Replays one journal file up to its first torn frame.
fn replay_journal(
    path: &Path,
    generation: u64,
    apply: Replay<'_>,
    notes: &mut Vec<String>,
) -> Result<Replayed, JournalError> {
    let file = own_files::open_read(path).map_err(|err| io_error(path, err))?;
    let file_len = file.metadata().map_err(|err| io_error(path, err))?.len();
    let damaged = |detail: String| JournalError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let mut reader = BufReader::with_capacity(1024 * 1024, file);
    let header_generation = read_file_header(&mut reader, &JOURNAL_MAGIC).map_err(&damaged)?;
    if header_generation != generation {
        return Err(damaged(format!(
            "its header says generation {header_generation}"
        )));
    }
    let mut valid_len = FILE_HEADER_BYTES;
    let mut records_count = 0u64;
    loop {
        let payload = match read_frame(&mut reader) {
            Ok(Some(payload)) => payload,
            Ok(None) | Err(FrameError::Torn) => break,
            Err(FrameError::Io(err)) => return Err(io_error(path, err)),
            Err(FrameError::Malformed(detail)) => return Err(damaged(detail)),
        };
        let change = match parse(&payload) {
            Ok(Record::Change(change)) => change,
            Ok(Record::End { .. }) => {
                return Err(damaged(format!(
                    "record {records_count}: an end record outside a checkpoint"
                )));
            }
            Err(FrameError::Malformed(detail)) => {
                return Err(damaged(format!("record {records_count}: {detail}")));
            }
            Err(_) => return Err(damaged(format!("record {records_count} is unreadable"))),
        };
        apply(change).map_err(|detail| damaged(format!("record {records_count}: {detail}")))?;
        valid_len += (record::FRAME_HEADER_BYTES + payload.len()) as u64;
        records_count += 1;
    }
    notes.push(format!(
        "{}: replayed {records_count} records",
        path.display()
    ));
    Ok(Replayed {
        valid_len,
        file_len,
    })
}

fn read_file_header(reader: &mut impl Read, magic: &[u8; 8]) -> Result<u64, String> {
    let mut header = [0u8; FILE_HEADER_BYTES as usize];
    reader
        .read_exact(&mut header)
        .map_err(|_| "its header is missing".to_owned())?;
    let mut fields = Reader::new(&header);
    let in_header = "FILE_HEADER_BYTES holds magic and generation";
    if fields.array::<8>().expect(in_header) != *magic {
        return Err("its header has the wrong magic".to_owned());
    }
    Ok(fields.u64().expect(in_header))
}

/// `magic | generation u64`, the first bytes of a journal or checkpoint.
fn file_header(magic: &[u8; 8], generation: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(FILE_HEADER_BYTES as usize);
    header.put_bytes(magic);
    header.put_u64(generation);
    header
}

/// Creates `journal-G.log` with its header, durably (folder fsynced too).
fn create_journal(dir: &Path, generation: u64) -> Result<File, JournalError> {
    let path = journal_path(dir, generation);
    let mut file = own_files::create_fresh(&path).map_err(|err| io_error(&path, err))?;
    file.write_all(&file_header(&JOURNAL_MAGIC, generation))
        .map_err(|err| io_error(&path, err))?;
    file.sync_all().map_err(|err| io_error(&path, err))?;
    own_files::sync_dir(dir).map_err(|err| io_error(dir, err))?;
    Ok(file)
}

fn journal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("journal-{generation:08}.log"))
}

fn list_journals(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut generations = Vec::new();
    for entry in fs::read_dir(dir).map_err(|err| io_error(dir, err))? {
        let name = entry.map_err(|err| io_error(dir, err))?.file_name();
        let generation = name
            .to_str()
            .and_then(|name| name.strip_prefix("journal-"))
            .and_then(|rest| rest.strip_suffix(".log"))
            .and_then(|digits| digits.parse::<u64>().ok());
        generations.extend(generation);
    }
    generations.sort_unstable();
    Ok(generations)
}

fn remove(dir: &Path, path: &Path) -> Result<(), JournalError> {
    fs::remove_file(path).map_err(|err| io_error(path, err))?;
    own_files::sync_dir(dir).map_err(|err| io_error(dir, err))
}

fn io_error(path: &Path, err: io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_path_buf(),
        err,
    }
}

fn journal_to_io(err: JournalError) -> io::Error {
    io::Error::other(err.to_string())
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            JournalError::Damaged { path, detail } => {
                write!(f, "{} is damaged: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for JournalError {}

#[cfg(test)]
mod tests;
