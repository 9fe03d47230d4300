//! Files held open by the kernel. One `OpenFile` per inode, shared by all
//! its handles (so a reader sees what another descriptor wrote): what the
//! server held at the first open, and once written or truncated, the whole
//! content in a staging file, uploaded as one create or overwrite when a
//! descriptor is closed (`flush`), on fsync, and at the last release.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use fuser::Errno;

use super::read_ahead::ReadAhead;
use super::remote::{Remote, RemoteFile};
use super::staging::{StagedFile, Staging};
use super::write_behind::{Stream, Uploaders, WRITE_BEHIND_START_BYTES};

pub struct OpenFile {
    /// What the server held at the first open; `None` for a file created
    /// here and not yet uploaded.
    pub remote: Option<RemoteFile>,
    /// The whole content, once it is written or truncated here.
    pub staged: Option<StagedFile>,
    /// `staged` holds what the server does not have yet.
    pub dirty: bool,
    /// When the content last changed here.
    pub modified: SystemTime,
    /// Every write so far continued the staged content from its first
    /// byte: the file may stream its upload (`write_behind`).
    pub sequential: bool,
    /// The upload streaming as it is written, if one is.
    pub stream: Option<Stream>,
}

impl OpenFile {
    pub fn opened(remote: RemoteFile) -> OpenFile {
        OpenFile {
            remote: Some(remote),
            staged: None,
            dirty: false,
            modified: UNIX_EPOCH + std::time::Duration::from_millis(remote.mtime_ms),
            sequential: false,
            stream: None,
        }
    }

    /// A file made here: empty, and dirty until uploaded (a `touch`
    /// makes an empty file on the server).
    pub fn created(staged: StagedFile) -> OpenFile {
        OpenFile {
            remote: None,
            staged: Some(staged),
            dirty: true,
            modified: SystemTime::now(),
            sequential: true,
            stream: None,
        }
    }

    /// Size and modification time as a reader here sees them.
    pub fn seen(&self) -> (u64, SystemTime) {
        let size = match (&self.staged, &self.remote) {
            (Some(staged), _) => staged.len,
            (None, Some(remote)) => remote.size,
            (None, None) => 0,
        };
        (size, self.modified)
    }

    /// Makes sure the content is staged, copying from the server the
    /// first `keep` bytes of what it holds (all of them to write into a
    /// file, fewer for a truncation).
    pub fn stage(
        &mut self,
        staging: &Staging,
        remote: &Remote,
        path: Option<&str>,
        keep: u64,
    ) -> Result<&mut StagedFile, Errno> {
        if self.staged.is_none() {
            let mut staged = staging.create()?;
            let copy = self.remote.map_or(0, |file| file.size.min(keep));
            if copy > 0 {
                let path = path.ok_or(Errno::ENOENT)?;
                staged.reserve(copy)?;
                let mut body = remote.open_stream(path, 0, Some(copy))?;
                let mut writer = StagedWriter {
                    staged: &mut staged,
                    at: 0,
                };
                let copied = std::io::copy(&mut body, &mut writer).map_err(|_| Errno::EIO)?;
                if copied != copy {
                    // The file changed on the server since it was opened.
                    return Err(Errno::EIO);
                }
            }
            self.sequential = staged.len == 0;
            self.staged = Some(staged);
        }
        self.staged.as_mut().ok_or(Errno::EIO)
    }

    /// Uploads the staged content to `path` if the server lacks it; a file
    /// with no name any more (unlinked while open) is not uploaded.
    pub fn upload_if_dirty(&mut self, remote: &Remote, path: Option<&str>) -> Result<(), Errno> {
        if !self.dirty {
            return Ok(());
        }
        let Some(path) = path else {
            // Unlinked: a stream is dropped unfinished, so the server drops it.
            self.stream = None;
            self.dirty = false;
            return Ok(());
        };
        let staged = self.staged.as_ref().ok_or(Errno::EIO)?;
        let streamed = match self.stream.take() {
            // The stream holds every staged byte: its end is the upload.
            Some(stream) if stream.next == staged.len => stream.finish().is_ok(),
            _ => false,
        };
        if !streamed {
            remote.upload(path, &mut staged.reader(), Some(staged.len))?;
        }
        self.dirty = false;
        let mtime_ms = self
            .modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        self.remote = Some(RemoteFile {
            size: staged.len,
            mtime_ms,
        });
        Ok(())
    }
}

impl OpenFile {
    /// Writes `data` at `offset` of the staged content (staged already),
    /// and feeds or starts the write-behind stream of a sequential writer.
    pub fn write(
        &mut self,
        uploaders: &Uploaders,
        path: Option<&str>,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Errno> {
        let staged = self.staged.as_mut().ok_or(Errno::EIO)?;
        let continues = offset == staged.len;
        staged.write_at(offset, data)?;
        self.dirty = true;
        self.modified = SystemTime::now();
        self.sequential &= continues;
        match &mut self.stream {
            Some(stream) if stream.next == offset => {
                if !stream.send(data) {
                    self.stream = None;
                }
            }
            // Out of order: the stream is dropped, the close uploads whole.
            Some(_) => self.stream = None,
            None => {
                if self.sequential
                    && staged.len >= WRITE_BEHIND_START_BYTES
                    && let Some(path) = path
                {
                    self.stream = uploaders.start(path, staged);
                }
            }
        }
        Ok(())
    }

    /// Cuts or extends the staged content (staged already) to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> Result<(), Errno> {
        let staged = self.staged.as_mut().ok_or(Errno::EIO)?;
        staged.set_len(len)?;
        self.stream = None;
        self.sequential = len == 0;
        self.dirty = true;
        self.modified = SystemTime::now();
        Ok(())
    }
}

/// Writes into a staged file from its start, for the copy of `stage`.
struct StagedWriter<'a> {
    staged: &'a mut StagedFile,
    at: u64,
}

impl std::io::Write for StagedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.staged
            .write_at(self.at, buf)
            .map_err(|errno| std::io::Error::from_raw_os_error(errno.code()))?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One open of a file by the kernel.
pub struct Handle {
    pub ino: u64,
    pub file: Arc<Mutex<OpenFile>>,
    pub read_ahead: Mutex<ReadAhead>,
}

/// An open file and the count of its handles.
type Opened = (Arc<Mutex<OpenFile>>, u32);

/// The open files by inode.
#[derive(Default)]
pub struct OpenFiles {
    by_ino: Mutex<HashMap<u64, Opened>>,
}

impl OpenFiles {
    /// The open file of `ino`, if any.
    pub fn get(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        lock(&self.by_ino)
            .get(&ino)
            .map(|(file, _)| Arc::clone(file))
    }

    /// One more handle on `ino` if it is open.
    pub fn open_existing(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        let mut by_ino = lock(&self.by_ino);
        let (file, opens) = by_ino.get_mut(&ino)?;
        *opens += 1;
        Some(Arc::clone(file))
    }

    /// One more handle on `ino`: its open file, or `fresh()` for a first.
    pub fn open(&self, ino: u64, fresh: impl FnOnce() -> OpenFile) -> Arc<Mutex<OpenFile>> {
        let mut by_ino = lock(&self.by_ino);
        let (file, opens) = by_ino
            .entry(ino)
            .or_insert_with(|| (Arc::new(Mutex::new(fresh())), 0));
        *opens += 1;
        Arc::clone(file)
    }

    /// One handle fewer on `ino`; true when it was the last.
    pub fn close(&self, ino: u64) -> bool {
        let mut by_ino = lock(&self.by_ino);
        let Some((_, opens)) = by_ino.get_mut(&ino) else {
            return false;
        };
        *opens = opens.saturating_sub(1);
        if *opens == 0 {
            by_ino.remove(&ino);
            return true;
        }
        false
    }

    /// Every open file, for a flush of all of them.
    pub fn all(&self) -> Vec<(u64, Arc<Mutex<OpenFile>>)> {
        lock(&self.by_ino)
            .iter()
            .map(|(ino, (file, _))| (*ino, Arc::clone(file)))
            .collect()
    }
}

/// A lock that a panicked holder does not poison for the others: the
/// state under it is updated in single steps.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
