//! Directories: explicit ones (`Change::MakeDir`, kept in `dirs`) and
//! implicit ones (any prefix ending in `/` that a name lies under), and the
//! one-level listing of `GET /files?prefix=P&delimiter=/`, which walks the
//! two sorted sets a page at a time, jumping over each sub-directory's
//! names, so a page costs its own size, not the directory's.

use std::ops::Bound;
use std::sync::Arc;

use common::api::FileEntry;
use common::name::FileName;

use super::Metadata;
use super::change::{Applied, Refusal};
use super::version::FileVersion;

/// One page of a one-level listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub files: Vec<FileEntry>,
    /// Sub-directories, each `PREFIX...NAME/`.
    pub dirs: Vec<String>,
    /// The key to pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

/// A key of the namespace as S3 lists them: a file, or an explicit
/// directory (its folder marker, ending in `/`).
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    File(&'a FileName, &'a Arc<FileVersion>),
    Dir(&'a str),
}

impl Entry<'_> {
    pub fn key(&self) -> &str {
        match self {
            Entry::File(name, _) => name.as_str(),
            Entry::Dir(path) => path,
        }
    }
}

/// The first string above every string that starts with `dir` (which ends
/// in `/`): `/` is followed by `0` in byte order.
fn past(dir: &str) -> String {
    debug_assert!(dir.ends_with('/'));
    format!("{}0", &dir[..dir.len() - 1])
}

impl Metadata {
    /// Whether `dir` (ending in `/`) exists, explicitly or implicitly.
    pub fn dir_exists(&self, dir: &str) -> bool {
        self.dirs.contains(dir) || self.has_under(dir)
    }

    /// Whether any file or explicit directory lies under `dir`.
    fn has_under(&self, dir: &str) -> bool {
        let file = self
            .files
            .range::<str, _>((Bound::Included(dir), Bound::Unbounded))
            .next()
            .is_some_and(|(name, _)| name.as_str().starts_with(dir));
        let sub = self
            .dirs
            .range::<str, _>((Bound::Excluded(dir), Bound::Unbounded))
            .next()
            .is_some_and(|sub| sub.starts_with(dir));
        file || sub
    }

    pub(super) fn make_dir(&mut self, path: &str) -> Result<Applied, Refusal> {
        let Some(as_name) = path.strip_suffix('/') else {
            return Err(Refusal::Invalid(format!("{path:?} does not end in /")));
        };
        FileName::parse(as_name).map_err(|err| Refusal::Invalid(err.to_string()))?;
        let file_named_so = self.files.contains_key::<str>(as_name);
        if self.dir_exists(path) || file_named_so {
            return Err(Refusal::NameTaken);
        }
        self.dirs.insert(path.to_owned());
        Ok(Applied::Changed)
    }

    pub(super) fn remove_dir(
        &mut self,
        path: &str,
        even_if_not_empty: bool,
    ) -> Result<Applied, Refusal> {
        if !even_if_not_empty && self.has_under(path) {
            return Err(Refusal::NotEmpty);
        }
        match self.dirs.remove(path) {
            true => Ok(Applied::Changed),
            false => Err(Refusal::NoSuchFile),
        }
    }

    /// Moves the explicit directories under `from` (and `from` itself) to
    /// `to`, for a directory rename that checked `to` is free.
    pub(super) fn rename_dirs(&mut self, from: &str, to: &str) -> u64 {
        let moving: Vec<String> = self
            .dirs
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|dir| dir.starts_with(from))
            .cloned()
            .collect();
        for dir in &moving {
            self.dirs.remove(dir);
            self.dirs.insert(format!("{to}{}", &dir[from.len()..]));
        }
        moving.len() as u64
    }

    /// Whether an explicit directory would be taken by a rename to `to`.
    pub(super) fn dirs_under(&self, dir: &str) -> bool {
        self.dirs
            .range::<str, _>((Bound::Included(dir), Bound::Unbounded))
            .next()
            .is_some_and(|sub| sub.starts_with(dir))
    }

    /// The first file or explicit directory at or after `from` whose key
    /// starts with `prefix`, in key order (a directory `a/` comes before
    /// the files under it). One range seek: a listing page costs its size.
    pub fn next_entry(&self, prefix: &str, from: Bound<&str>) -> Option<Entry<'_>> {
        let file = self
            .files
            .range::<str, _>((from, Bound::Unbounded))
            .next()
            .filter(|(name, _)| name.as_str().starts_with(prefix));
        let dir = self
            .dirs
            .range::<str, _>((from, Bound::Unbounded))
            .next()
            .filter(|dir| dir.starts_with(prefix));
        match (file, dir) {
            (Some((name, version)), Some(dir)) if name.as_str() < dir.as_str() => {
                Some(Entry::File(name, version))
            }
            (_, Some(dir)) => Some(Entry::Dir(dir)),
            (Some((name, version)), None) => Some(Entry::File(name, version)),
            (None, None) => None,
        }
    }

    /// Up to `limit` entries (files and sub-directories, in name order)
    /// directly under `prefix`, after the key `after`.
    pub fn list_level(&self, prefix: &str, after: Option<&str>, limit: usize) -> Level {
        assert!(limit >= 1);
        let mut cursor: (String, bool) = match after {
            // A directory key: past everything under it.
            Some(after) if after.ends_with('/') => (past(after), true),
            Some(after) => (after.to_owned(), false),
            None => (prefix.to_owned(), true),
        };
        if cursor.0.as_str() < prefix {
            cursor = (prefix.to_owned(), true);
        }
        let mut level = Level::default();
        let mut emitted = 0;
        loop {
            let bound = |(key, included): &(String, bool)| match included {
                true => Bound::Included(key.clone()),
                false => Bound::Excluded(key.clone()),
            };
            let start = bound(&cursor);
            let file = self
                .files
                .range::<str, _>((start.as_ref().map(String::as_str), Bound::Unbounded))
                .next()
                .filter(|(name, _)| name.as_str().starts_with(prefix));
            let dir = self
                .dirs
                .range::<str, _>((start.as_ref().map(String::as_str), Bound::Unbounded))
                .find(|dir| dir.as_str() != prefix)
                .filter(|dir| dir.starts_with(prefix));
            // What each stands for one level down: a file, or a sub-directory.
            let level_key = |name: &str| -> String {
                let rest = &name[prefix.len()..];
                match rest.find('/') {
                    Some(cut) => format!("{prefix}{}", &rest[..=cut]),
                    None => name.to_owned(),
                }
            };
            let file_key = file.map(|(name, _)| level_key(name.as_str()));
            let dir_key = dir.map(|dir| level_key(dir));
            let key = match (&file_key, &dir_key) {
                (Some(file), Some(dir)) => file.min(dir).clone(),
                (Some(key), None) | (None, Some(key)) => key.clone(),
                (None, None) => break,
            };
            if emitted == limit {
                level.next = level
                    .dirs
                    .last()
                    .cloned()
                    .into_iter()
                    .chain(level.files.last().map(|file| file.name.clone()))
                    .max();
                break;
            }
            emitted += 1;
            if key.ends_with('/') {
                cursor = (past(&key), true);
                level.dirs.push(key);
            } else {
                let (name, version) = file.expect("a file key comes from a file");
                level.files.push(FileEntry {
                    name: name.to_string(),
                    size: version.size_bytes,
                    mtime: common::time::from_unix_ms(version.mtime_ms),
                });
                cursor = (key, false);
            }
        }
        level
    }
}
