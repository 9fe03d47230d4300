//! One open directory, read a page at a time through the one-level
//! listing (`GET /files?prefix&delimiter=/&limit&after`), so a directory
//! of millions of names costs one page of memory. Entry `i` of the stream
//! (`.` and `..` are 0 and 1) carries offset `i + 1`, the kernel's cursor
//! for the next call; going back (`rewinddir`) starts over.

use std::collections::HashSet;

use fuser::Errno;

use super::inodes::{Kind, child_path};
use super::remote::Remote;

/// Names fetched per listing call.
pub const DIR_PAGE_ENTRIES: usize = 1000;

enum Cursor {
    Start,
    After(String),
    End,
}

pub struct DirStream {
    path: String,
    /// Stream index of `entries[0]`.
    base: u64,
    entries: Vec<(String, Kind)>,
    cursor: Cursor,
}

impl DirStream {
    pub fn new(path: String) -> DirStream {
        let mut stream = DirStream {
            path,
            base: 0,
            entries: Vec::new(),
            cursor: Cursor::Start,
        };
        stream.rewind();
        stream
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn rewind(&mut self) {
        self.base = 0;
        self.entries = vec![(".".to_owned(), Kind::Dir), ("..".to_owned(), Kind::Dir)];
        self.cursor = Cursor::Start;
    }

    /// The entries from stream offset `offset` on, as far as the current
    /// page goes (empty at the end), each with its full path and the
    /// offset of the entry after it. `local` names the files made here and
    /// not yet uploaded, shown after the server's.
    pub fn entries_from(
        &mut self,
        remote: &Remote,
        offset: u64,
        local: impl FnOnce() -> Vec<String>,
    ) -> Result<Vec<(String, Kind, String, u64)>, Errno> {
        if offset < self.base {
            self.rewind();
        }
        let mut local = Some(local);
        while offset - self.base >= self.entries.len() as u64 {
            let after = match &self.cursor {
                Cursor::End => return Ok(Vec::new()),
                Cursor::Start => None,
                Cursor::After(key) => Some(key.clone()),
            };
            let page = remote.list_page(&self.path, after.as_deref(), DIR_PAGE_ENTRIES)?;
            self.base += self.entries.len() as u64;
            // A name both a file and a directory shows as the file (what a
            // lookup finds).
            let files: HashSet<String> = page
                .entries
                .iter()
                .filter(|(_, kind)| *kind == Kind::File)
                .map(|(name, _)| name.clone())
                .collect();
            let mut entries = page.entries;
            entries.retain(|(name, kind)| *kind == Kind::File || !files.contains(name));
            self.cursor = match page.next {
                Some(key) => Cursor::After(key),
                None => {
                    if let Some(local) = local.take() {
                        for name in local() {
                            if !entries.iter().any(|(other, _)| *other == name) {
                                entries.push((name, Kind::File));
                            }
                        }
                    }
                    Cursor::End
                }
            };
            self.entries = entries;
        }
        let from = (offset - self.base) as usize;
        Ok(self.entries[from..]
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| {
                let next = self.base + (from + i) as u64 + 1;
                (name.clone(), *kind, child_path(&self.path, name), next)
            })
            .collect())
    }
}
