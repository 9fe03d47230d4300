//! The operations that change the namespace (mkdir, rmdir, unlink,
//! rename), and what they must know of files written here and not yet
//! uploaded: the server renames only what it has, so those go up first.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};

use fuser::{Errno, FileAttr};

use super::core::Core;
use super::inodes::{Kind, parent_of};
use super::open_files::{OpenFile, lock};

impl Core {
    pub fn mkdir(&self, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        self.writable()?;
        let path = self.child(parent, name)?;
        self.remote.make_dir(&path)?;
        let ino = lock(&self.inodes).remember(&path, Kind::Dir);
        Ok(self.dir_attr(ino))
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        self.writable()?;
        let path = self.child(parent, name)?;
        if self.pending_under(&path) {
            return Err(Errno::ENOTEMPTY);
        }
        if self.remote.stat_file(&path)?.is_some() {
            return Err(Errno::ENOTDIR);
        }
        self.remote.remove_dir(&path)?;
        lock(&self.inodes).detach(&path);
        Ok(())
    }

    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        self.writable()?;
        let path = self.child(parent, name)?;
        let open = lock(&self.inodes)
            .peek(&path)
            .and_then(|(ino, _)| self.open_files.get(ino));
        // (Locked apart: an upload under way must not hold up the table.)
        let pending = open.is_some_and(|file| lock(&file).remote.is_none());
        if !pending {
            self.remote.delete(&path)?;
        }
        lock(&self.inodes).detach(&path);
        Ok(())
    }

    pub fn rename(
        &self,
        (parent, name): (u64, &OsStr),
        (new_parent, new_name): (u64, &OsStr),
        no_replace: bool,
    ) -> Result<(), Errno> {
        self.writable()?;
        let from = self.child(parent, name)?;
        let to = self.child(new_parent, new_name)?;
        self.remote.name(&to)?;
        if from == to {
            return Ok(());
        }
        let kind = lock(&self.inodes).peek(&from).map(|(_, kind)| kind);
        let kind = match kind {
            Some(kind) => kind,
            None => self.probe(&from)?.ok_or(Errno::ENOENT)?.0,
        };
        match kind {
            Kind::File => {
                // The server renames what it has: a file written here goes up first.
                let open = lock(&self.inodes)
                    .peek(&from)
                    .and_then(|(ino, _)| self.open_files.get(ino));
                if let Some(file) = open {
                    lock(&file).upload_if_dirty(&self.remote, Some(&from))?;
                }
                if self.remote.dir_exists(&to)? {
                    return Err(Errno::EISDIR);
                }
                self.remote.rename(&from, &to, false, !no_replace)?;
            }
            Kind::Dir => {
                if to.starts_with(&format!("{from}/")) {
                    return Err(Errno::EINVAL);
                }
                if self.remote.stat_file(&to)?.is_some() {
                    return Err(Errno::ENOTDIR);
                }
                if self.remote.dir_exists(&to)? {
                    if no_replace {
                        return Err(Errno::EEXIST);
                    }
                    // POSIX replaces an empty directory.
                    self.remote.remove_dir(&to)?;
                }
                self.upload_pending_under(&from)?;
                match self.remote.rename(&from, &to, true, false) {
                    Err(Errno::EEXIST) => return Err(Errno::ENOTEMPTY),
                    other => other?,
                }
            }
        }
        lock(&self.inodes).rename(&from, &to);
        Ok(())
    }

    /// Files under directory `dir` written here and not yet uploaded,
    /// each with whether the server has never had it. A file being
    /// uploaded right now (its lock held) counts as both: a listing or an
    /// `rmdir` need not wait for its upload to end.
    fn pending_files(&self, dir: &str) -> Vec<Pending> {
        let under = format!("{dir}/");
        let mut pending = Vec::new();
        for (ino, file) in self.open_files.all() {
            let Some(path) = self.current_path(ino) else {
                continue;
            };
            if !dir.is_empty() && !path.starts_with(&under) {
                continue;
            }
            let (dirty, never_uploaded) = match file.try_lock() {
                Ok(open) => (open.dirty, open.remote.is_none()),
                Err(std::sync::TryLockError::Poisoned(poison)) => {
                    let open = poison.into_inner();
                    (open.dirty, open.remote.is_none())
                }
                Err(std::sync::TryLockError::WouldBlock) => (true, true),
            };
            if dirty {
                pending.push(Pending {
                    path,
                    file,
                    never_uploaded,
                });
            }
        }
        pending
    }

    fn pending_under(&self, dir: &str) -> bool {
        !self.pending_files(dir).is_empty()
    }

    fn upload_pending_under(&self, dir: &str) -> Result<(), Errno> {
        for pending in self.pending_files(dir) {
            lock(&pending.file).upload_if_dirty(&self.remote, Some(&pending.path))?;
        }
        Ok(())
    }

    /// The files made here, not yet uploaded, directly in directory `dir`:
    /// a listing shows them as the server does not know them yet.
    pub fn local_entries(&self, dir: &str) -> Vec<String> {
        self.pending_files(dir)
            .into_iter()
            .filter(|pending| pending.never_uploaded && parent_of(&pending.path) == dir)
            .map(|pending| {
                let name = pending.path.rsplit('/').next().unwrap_or_default();
                name.to_owned()
            })
            .collect()
    }
}

/// A file written here whose bytes the server does not have yet.
struct Pending {
    path: String,
    file: Arc<Mutex<OpenFile>>,
    never_uploaded: bool,
}
