//! The write cache: a file being written lives in a staging file on local
//! disk (under `--cache-dir`, unlinked as soon as it is made, so a crash
//! leaves nothing behind) until it is uploaded whole on close or fsync.
//! Memory stays flat whatever the file's size; the disk the cache may take
//! is `--cache-bytes`, past which a write fails with `ENOSPC`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fuser::Errno;

/// Bytes the staging files of one mount may hold at once unless
/// `--cache-bytes` says otherwise.
pub const CACHE_BYTES_DEFAULT: u64 = 16 << 30;

/// The cache's folder and what it holds.
pub struct Staging {
    dir: PathBuf,
    budget: Arc<Budget>,
    made: AtomicU64,
}

struct Budget {
    limit: u64,
    used: Mutex<u64>,
}

/// One file's content being written: `len` bytes of `file`.
pub struct StagedFile {
    pub file: File,
    pub len: u64,
    /// Bytes taken from the budget (the largest `len` so far).
    charged: u64,
    budget: Arc<Budget>,
}

impl Staging {
    /// A cache in `dir` (made if missing, only its owner may enter it).
    pub fn new(dir: PathBuf, limit: u64) -> io::Result<Staging> {
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Staging {
            dir,
            budget: Arc::new(Budget {
                limit,
                used: Mutex::new(0),
            }),
            made: AtomicU64::new(0),
        })
    }

    /// A new, empty staging file.
    pub fn create(&self) -> Result<StagedFile, Errno> {
        let serial = self.made.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("staged-{serial}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| io_errno(&err))?;
        fs::remove_file(&path).map_err(|err| io_errno(&err))?;
        Ok(StagedFile {
            file,
            len: 0,
            charged: 0,
            budget: Arc::clone(&self.budget),
        })
    }

    /// Bytes the staging files hold now.
    #[cfg(test)]
    pub fn used_bytes(&self) -> u64 {
        *self
            .budget
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl StagedFile {
    /// Writes `data` at `offset`, growing the file (within the budget).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        self.reserve(end)?;
        self.file
            .write_all_at(data, offset)
            .map_err(|err| io_errno(&err))?;
        self.len = self.len.max(end);
        Ok(())
    }

    /// Up to `size` bytes at `offset` (fewer at the end).
    pub fn read_at(&self, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let end = self.len.min(offset.saturating_add(u64::from(size)));
        let mut bytes = vec![0; end.saturating_sub(offset) as usize];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|err| io_errno(&err))?;
        Ok(bytes)
    }

    /// The content from its start, for an upload.
    pub fn reader(&self) -> StagedReader<&File> {
        StagedReader::new(&self.file, self.len)
    }

    /// Cuts or extends (with zeros) the content to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> Result<(), Errno> {
        self.reserve(len)?;
        self.file.set_len(len).map_err(|err| io_errno(&err))?;
        self.len = len;
        Ok(())
    }

    /// Takes from the budget what growing to `len` bytes needs.
    pub fn reserve(&mut self, len: u64) -> Result<(), Errno> {
        if len <= self.charged {
            return Ok(());
        }
        let more = len - self.charged;
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if *used + more > self.budget.limit {
            return Err(Errno::ENOSPC);
        }
        *used += more;
        self.charged = len;
        Ok(())
    }
}

/// Positional reads of the first `end` bytes of a staged file (borrowed,
/// or a clone of its descriptor): its cursor is never used, so an upload
/// can be made again (a second fsync) from the start.
pub struct StagedReader<F> {
    file: F,
    at: u64,
    end: u64,
}

impl<F: std::borrow::Borrow<File>> StagedReader<F> {
    pub fn new(file: F, end: u64) -> StagedReader<F> {
        StagedReader { file, at: 0, end }
    }

    /// Whether every byte has been read.
    pub fn is_done(&self) -> bool {
        self.at == self.end
    }
}

impl<F: std::borrow::Borrow<File>> io::Read for StagedReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.at).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let read = self.file.borrow().read_at(&mut buf[..left], self.at)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the staging file is shorter than its content",
            ));
        }
        self.at += read as u64;
        Ok(read)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        debug_assert!(*used >= self.charged, "the budget gives back what it lent");
        *used = used.saturating_sub(self.charged);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Every staging file was unlinked when made: the folder is empty.
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The errno of a local I/O failure (a full cache disk is `ENOSPC`).
pub fn io_errno(err: &io::Error) -> Errno {
    err.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

#[cfg(test)]
mod tests {
    use super::Staging;

    #[test]
    fn staged_bytes_read_back_and_the_budget_is_kept_and_given_back() {
        let dir = common::testing::fresh_dir("staging").join("cache");
        let staging = Staging::new(dir.clone(), 10_000).expect("cache");
        let mut staged = staging.create().expect("staged");
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0, "unlinked");
        staged.write_at(1000, b"abc").expect("write");
        assert_eq!(staged.len, 1003);
        assert_eq!(staged.read_at(999, 10).expect("read"), b"\0abc");
        assert_eq!(staging.used_bytes(), 1003);
        assert_eq!(
            staged.write_at(9_999, b"xy"),
            Err(fuser::Errno::ENOSPC),
            "past the budget"
        );
        staged.set_len(2).expect("truncate");
        assert_eq!(staged.read_at(0, 10).expect("read"), b"\0\0");
        drop(staged);
        assert_eq!(staging.used_bytes(), 0);
    }
}
