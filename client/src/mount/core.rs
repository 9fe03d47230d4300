//! What each kernel operation does, on paths and Harbour calls, with
//! errno results; `kernel.rs` only decodes the kernel's arguments and
//! replies. Locks are held briefly and never across a call to the server,
//! except a file's own lock during its upload or staging copy and an open
//! directory's during its page fetch. They are taken in one order: the
//! inode table, then the open files, then one file.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use super::dir_stream::DirStream;
use super::inodes::{Inodes, Kind, child_path};
use super::open_files::{Handle, OpenFile, OpenFiles, lock};
use super::read_ahead::ReadAhead;
use super::remote::{Remote, RemoteFile};
use super::staging::Staging;
use super::write_behind::Uploaders;

/// How long the kernel may trust an entry or attributes before asking
/// again: short, as other clients change the namespace too.
pub const ATTR_TTL: Duration = Duration::from_secs(1);

/// `st_blksize`: the I/O size `cp` and friends use, one FUSE write.
pub const IO_SIZE_BYTES: u32 = 1 << 20;

pub struct Core {
    pub remote: Remote,
    pub staging: Staging,
    /// The write-behind uploader threads' queue (`write_behind`).
    pub uploaders: Uploaders,
    pub read_only: bool,
    pub(super) inodes: Mutex<Inodes>,
    pub open_files: OpenFiles,
    handles: Mutex<std::collections::HashMap<u64, Arc<Handle>>>,
    dirs: Mutex<std::collections::HashMap<u64, Arc<Mutex<DirStream>>>>,
    next_handle: AtomicU64,
    /// Owner of every file and directory: who mounted.
    owner: (u32, u32),
    /// The time directories show (Harbour keeps none for them).
    mounted_at: SystemTime,
}

impl Core {
    pub fn new(remote: Remote, staging: Staging, read_only: bool, owner: (u32, u32)) -> Core {
        Core {
            remote,
            staging,
            uploaders: Uploaders::new(),
            read_only,
            inodes: Mutex::new(Inodes::new()),
            open_files: OpenFiles::default(),
            handles: Mutex::default(),
            dirs: Mutex::default(),
            next_handle: AtomicU64::new(1),
            owner,
            mounted_at: SystemTime::now(),
        }
    }

    fn attr(&self, ino: u64, kind: Kind, size: u64, mtime: SystemTime) -> FileAttr {
        let (kind, perm, nlink) = match kind {
            Kind::File => (FileType::RegularFile, 0o644, 1),
            Kind::Dir => (FileType::Directory, 0o755, 2),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm,
            nlink,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: IO_SIZE_BYTES,
            flags: 0,
        }
    }

    fn file_attr(&self, ino: u64, file: RemoteFile) -> FileAttr {
        let mtime = UNIX_EPOCH + Duration::from_millis(file.mtime_ms);
        self.attr(ino, Kind::File, file.size, mtime)
    }

    pub(super) fn dir_attr(&self, ino: u64) -> FileAttr {
        self.attr(ino, Kind::Dir, 0, self.mounted_at)
    }

    /// The attributes of an open file as this mount sees them.
    fn open_attr(&self, ino: u64) -> Option<FileAttr> {
        let file = self.open_files.get(ino)?;
        let (size, mtime) = lock(&file).seen();
        Some(self.attr(ino, Kind::File, size, mtime))
    }

    pub fn path_of(&self, ino: u64) -> Result<(String, Kind), Errno> {
        lock(&self.inodes).get(ino).ok_or(Errno::ENOENT)
    }

    pub(super) fn current_path(&self, ino: u64) -> Option<String> {
        lock(&self.inodes).get(ino).map(|(path, _)| path)
    }

    pub(super) fn child(&self, parent: u64, name: &OsStr) -> Result<String, Errno> {
        let (dir, _) = self.path_of(parent)?;
        let name = name.to_str().ok_or(Errno::EINVAL)?;
        if name.len() > super::remote::ENTRY_NAME_BYTES_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(child_path(&dir, name))
    }

    pub(super) fn writable(&self) -> Result<(), Errno> {
        match self.read_only {
            true => Err(Errno::EROFS),
            false => Ok(()),
        }
    }

    /// What `path` is now: an open file here, a file, a directory, or
    /// nothing.
    pub(super) fn probe(&self, path: &str) -> Result<Option<(Kind, Option<RemoteFile>)>, Errno> {
        if let Some((ino, Kind::File)) = lock(&self.inodes).peek(path)
            && self.open_files.get(ino).is_some()
        {
            return Ok(Some((Kind::File, None)));
        }
        if let Some(file) = self.remote.stat_file(path)? {
            return Ok(Some((Kind::File, Some(file))));
        }
        match self.remote.dir_exists(path)? {
            true => Ok(Some((Kind::Dir, None))),
            false => Ok(None),
        }
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let path = match self.child(parent, name) {
            Ok(path) => path,
            Err(Errno::EINVAL) => return Err(Errno::ENOENT),
            Err(errno) => return Err(errno),
        };
        if self.remote.name(&path).is_err() {
            return Err(Errno::ENOENT);
        }
        match self.probe(&path)?.ok_or(Errno::ENOENT)? {
            (Kind::File, Some(file)) => {
                let ino = lock(&self.inodes).remember(&path, Kind::File);
                Ok(self.open_attr(ino).unwrap_or(self.file_attr(ino, file)))
            }
            (Kind::File, None) => {
                let ino = lock(&self.inodes).remember(&path, Kind::File);
                self.open_attr(ino).ok_or(Errno::ENOENT)
            }
            (Kind::Dir, _) => {
                let ino = lock(&self.inodes).remember(&path, Kind::Dir);
                Ok(self.dir_attr(ino))
            }
        }
    }

    pub fn forget(&self, ino: u64, count: u64) {
        lock(&self.inodes).forget(ino, count);
    }

    pub fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        if let Some(attr) = self.open_attr(ino) {
            return Ok(attr);
        }
        match self.path_of(ino)? {
            (_, Kind::Dir) => Ok(self.dir_attr(ino)),
            (path, Kind::File) => match self.remote.stat_file(&path)? {
                Some(file) => Ok(self.file_attr(ino, file)),
                None => Err(Errno::ENOENT),
            },
        }
    }

    /// A truncation (`truncate`, `ftruncate`, `O_TRUNC` without atomic
    /// support); other attributes are Harbour's own and stay as they are.
    pub fn set_size(&self, ino: u64, size: u64) -> Result<FileAttr, Errno> {
        self.writable()?;
        let (path, kind) = self.path_of(ino)?;
        if kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        let file = match self.open_files.get(ino) {
            Some(file) => file,
            // By path, with no descriptor open: staged, then uploaded now.
            None => {
                let remote = self.remote.stat_file(&path)?.ok_or(Errno::ENOENT)?;
                let file = self.open_files.open(ino, || OpenFile::opened(remote));
                let outcome = self.truncate(&file, Some(&path), size).and_then(|()| {
                    // The path first: the inode table is never locked under a file.
                    let path = self.current_path(ino);
                    lock(&file).upload_if_dirty(&self.remote, path.as_deref())
                });
                self.open_files.close(ino);
                outcome?;
                return self.getattr(ino);
            }
        };
        self.truncate(&file, Some(&path), size)?;
        self.getattr(ino)
    }

    fn truncate(&self, file: &Mutex<OpenFile>, path: Option<&str>, size: u64) -> Result<(), Errno> {
        let mut file = lock(file);
        file.stage(&self.staging, &self.remote, path, size)?;
        file.set_len(size)
    }

    fn new_handle(&self, ino: u64, file: Arc<Mutex<OpenFile>>) -> u64 {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            ino,
            file,
            read_ahead: Mutex::new(ReadAhead::default()),
        };
        lock(&self.handles).insert(fh, Arc::new(handle));
        fh
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>, Errno> {
        lock(&self.handles).get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn open(&self, ino: u64, writing: bool, truncating: bool) -> Result<u64, Errno> {
        if writing {
            self.writable()?;
        }
        let (path, kind) = self.path_of(ino)?;
        if kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        let file = match self.open_files.open_existing(ino) {
            Some(file) => file,
            None => {
                let remote = self.remote.stat_file(&path)?.ok_or(Errno::ENOENT)?;
                self.open_files.open(ino, || OpenFile::opened(remote))
            }
        };
        if writing
            && truncating
            && let Err(errno) = self.truncate(&file, Some(&path), 0)
        {
            self.open_files.close(ino);
            return Err(errno);
        }
        Ok(self.new_handle(ino, file))
    }

    pub fn create(&self, parent: u64, name: &OsStr) -> Result<(FileAttr, u64), Errno> {
        self.writable()?;
        let path = self.child(parent, name)?;
        self.remote.name(&path)?;
        let staged = self.staging.create()?;
        let ino = lock(&self.inodes).remember(&path, Kind::File);
        let file = self.open_files.open(ino, || OpenFile::created(staged));
        let fh = self.new_handle(ino, file);
        let attr = self.open_attr(ino).ok_or(Errno::EIO)?;
        Ok((attr, fh))
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let handle = self.handle(fh)?;
        let file_size = {
            let file = lock(&handle.file);
            if let Some(staged) = &file.staged {
                return staged.read_at(offset, size);
            }
            file.remote.map_or(0, |remote| remote.size)
        };
        let path = self.current_path(handle.ino).ok_or(Errno::EIO)?;
        lock(&handle.read_ahead).read(&self.remote, &path, offset, size, file_size)
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.writable()?;
        let handle = self.handle(fh)?;
        let path = self.current_path(handle.ino);
        let mut file = lock(&handle.file);
        file.stage(&self.staging, &self.remote, path.as_deref(), u64::MAX)?;
        file.write(&self.uploaders, path.as_deref(), offset, data)?;
        u32::try_from(data.len()).map_err(|_| Errno::EINVAL)
    }

    /// close (each descriptor) and fsync: the server gets what was written.
    pub fn flush(&self, fh: u64) -> Result<(), Errno> {
        let handle = self.handle(fh)?;
        let path = self.current_path(handle.ino);
        lock(&handle.file).upload_if_dirty(&self.remote, path.as_deref())
    }

    pub fn release(&self, fh: u64) -> Result<(), Errno> {
        let handle = lock(&self.handles).remove(&fh).ok_or(Errno::EBADF)?;
        let path = self.current_path(handle.ino);
        let uploaded = lock(&handle.file).upload_if_dirty(&self.remote, path.as_deref());
        if let Err(errno) = uploaded {
            eprintln!(
                "harbour mount: what was written to {} could not be uploaded at its last close ({errno:?}); it is lost",
                path.as_deref().unwrap_or("an unlinked file")
            );
        }
        self.open_files.close(handle.ino);
        uploaded
    }

    /// Uploads every file written and not yet uploaded (before unmounting).
    pub fn flush_all(&self) {
        for (ino, file) in self.open_files.all() {
            let path = self.current_path(ino);
            if let Err(errno) = lock(&file).upload_if_dirty(&self.remote, path.as_deref()) {
                eprintln!(
                    "harbour mount: {} could not be uploaded ({errno:?})",
                    path.as_deref().unwrap_or("an unlinked file")
                );
            }
        }
    }

    /// The inode number a listing shows for `path`: its own if the kernel
    /// holds it, else a stable stand-in (lookups give real ones).
    pub fn listed_ino(&self, path: &str) -> u64 {
        if let Some((ino, _)) = lock(&self.inodes).peek(path) {
            return ino;
        }
        let mut hasher = DefaultHasher::new();
        path.hash(&mut hasher);
        hasher.finish() | (1 << 63)
    }

    pub fn opendir(&self, ino: u64) -> Result<u64, Errno> {
        let (path, kind) = self.path_of(ino)?;
        if kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, Arc::new(Mutex::new(DirStream::new(path))));
        Ok(fh)
    }

    pub fn dir_stream(&self, fh: u64) -> Result<Arc<Mutex<DirStream>>, Errno> {
        lock(&self.dirs).get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    /// `statfs`: the live servers' space as (size, free, files), in what
    /// users can write: each byte costs one copy per replica.
    pub fn capacity(&self) -> Result<(u64, u64, u64), Errno> {
        let status = self.remote.status()?;
        let replication = status.replication.max(1) as u64;
        let (mut size, mut free) = (0u64, 0u64);
        for server in status.servers.iter().filter(|server| server.alive) {
            let server_free = server.free_bytes.unwrap_or(0);
            size = size.saturating_add(server.used_bytes.saturating_add(server_free));
            if !server.draining {
                free = free.saturating_add(server_free);
            }
        }
        Ok((size / replication, free / replication, status.files))
    }
}
