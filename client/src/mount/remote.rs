//! The naming server's public API as the mount uses it: every call maps
//! its outcome to the errno a program understands (SPEC "Mount"), in one
//! place, `refusal_errno`. A mount path is relative to the mounted prefix
//! ("" is the mount's root); `Remote` turns it into the Harbour name.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use common::api::{ClusterStatus, FileEntry, MTIME_HEADER};
use common::limits::FILE_NAME_BYTES_MAX;
use common::name::{FileName, NameError};
use common::percent;
use fuser::Errno;
use serde::Deserialize;

use super::inodes::Kind;
use crate::error::ClientError;
use crate::naming_client::{Answer, NamingClient, Refusal};

/// What the server holds for a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub size: u64,
    pub mtime_ms: u64,
}

/// One page of a one-level listing, names relative to the directory
/// (its files, then its sub-directories), and the cursor of the next.
pub struct ListPage {
    pub entries: Vec<(String, Kind)>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct LevelBody {
    files: Vec<FileEntry>,
    dirs: Vec<String>,
    next: Option<String>,
}

/// The largest JSON document the mount reads (a listing page of
/// `LIST_PAGE_BYTES`-long names is well under it).
const JSON_DOCUMENT_BYTES_MAX: u64 = 64 << 20;

pub struct Remote {
    client: NamingClient,
    /// The mounted prefix: empty, or a directory ending in `/`.
    prefix: String,
    /// Whether the last call reached the server: a failure is reported
    /// on stderr once, and its end once, however many calls fail between.
    reachable: AtomicBool,
}

impl Remote {
    pub fn new(client: NamingClient, prefix: String) -> Remote {
        debug_assert!(prefix.is_empty() || prefix.ends_with('/'));
        Remote {
            client,
            prefix,
            reachable: AtomicBool::new(true),
        }
    }

    /// The Harbour name of mount path `path`, or the errno of a name
    /// Harbour cannot hold.
    pub fn name(&self, path: &str) -> Result<String, Errno> {
        let name = format!("{}{path}", self.prefix);
        match FileName::parse(&name) {
            Ok(_) => Ok(name),
            Err(NameError::TooLong { .. }) => Err(Errno::ENAMETOOLONG),
            Err(_) => Err(Errno::EINVAL),
        }
    }

    /// The Harbour directory (ending in `/`) of mount directory `path`.
    fn dir_name(&self, path: &str) -> Result<String, Errno> {
        match path {
            "" => Ok(self.prefix.clone()),
            path => Ok(format!("{}/", self.name(path)?)),
        }
    }

    /// The file at `path`, if there is one.
    pub fn stat_file(&self, path: &str) -> Result<Option<RemoteFile>, Errno> {
        if path.is_empty() {
            return Ok(None);
        }
        let url = self.client.file_url(&self.name(path)?);
        match self.call(self.client.head(&url))? {
            Ok(response) => Ok(Some(remote_file(&response)?)),
            Err(refusal) if refusal.status == 404 => Ok(None),
            Err(refusal) => Err(refusal_errno(&refusal)),
        }
    }

    /// Whether the directory `path` exists (explicitly or implicitly).
    pub fn dir_exists(&self, path: &str) -> Result<bool, Errno> {
        if path.is_empty() {
            return Ok(true);
        }
        let name = self.name(path)?;
        let url = self
            .client
            .url(&format!("/dirs/{}", percent::encode(&name, true)));
        match self.call(self.client.head(&url))? {
            Ok(_) => Ok(true),
            Err(refusal) if refusal.status == 404 => Ok(false),
            Err(refusal) => Err(refusal_errno(&refusal)),
        }
    }

    /// One page of the directory `path`, after the cursor `after`.
    pub fn list_page(
        &self,
        path: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, Errno> {
        let dir = self.dir_name(path)?;
        let mut url = self.client.url(&format!(
            "/files?prefix={}&delimiter=/&limit={limit}",
            percent::encode(&dir, false)
        ));
        if let Some(after) = after {
            url.push_str(&format!("&after={}", percent::encode(after, false)));
        }
        let level: LevelBody = self.get_json(&url)?;
        let relative = |full: &str| full.strip_prefix(dir.as_str()).map(str::to_owned);
        let files = level
            .files
            .iter()
            .map(|entry| (entry.name.as_str(), Kind::File));
        let dirs = level
            .dirs
            .iter()
            .map(|sub| (sub.trim_end_matches('/'), Kind::Dir));
        let entries = files
            .chain(dirs)
            .filter_map(|(full, kind)| Some((relative(full)?, kind)))
            .collect();
        Ok(ListPage {
            entries,
            next: level.next,
        })
    }

    /// The bytes `start..end` of the file at `path` (fewer at its end).
    pub fn read_range(&self, path: &str, start: u64, end: u64) -> Result<Vec<u8>, Errno> {
        debug_assert!(start < end);
        let mut body = self.open_stream(path, start, Some(end))?;
        let mut bytes = Vec::with_capacity((end - start) as usize);
        body.read_to_end(&mut bytes).map_err(|_| self.lost())?;
        Ok(bytes)
    }

    /// A stream of the file at `path` from byte `start` (to `end`, or to
    /// its end); empty when `start` is at or past the end.
    pub fn open_stream(
        &self,
        path: &str,
        start: u64,
        end: Option<u64>,
    ) -> Result<Box<dyn Read + Send>, Errno> {
        let url = self.client.file_url(&self.name(path)?);
        let range = match end {
            Some(end) => format!("bytes={start}-{}", end - 1),
            None => format!("bytes={start}-"),
        };
        match self.call(self.client.get_range(&url, &range))? {
            Ok(response) => Ok(Box::new(response.into_body().into_reader())),
            Err(refusal) if refusal.status == 416 => Ok(Box::new(std::io::empty())),
            Err(refusal) => Err(refusal_errno(&refusal)),
        }
    }

    /// Makes the bytes of `body` (`len` of them, or chunked when unknown)
    /// the content of `path`, in one atomic create or overwrite.
    pub fn upload(&self, path: &str, body: &mut dyn Read, len: Option<u64>) -> Result<(), Errno> {
        let url = format!("{}?overwrite=true", self.client.file_url(&self.name(path)?));
        let answer = self.call(self.client.put(&url, body, len))?;
        answer.map(drop).map_err(|refusal| refusal_errno(&refusal))
    }

    pub fn delete(&self, path: &str) -> Result<(), Errno> {
        let url = self.client.file_url(&self.name(path)?);
        let answer = self.call(self.client.delete(&url))?;
        answer.map(drop).map_err(|refusal| refusal_errno(&refusal))
    }

    /// Renames a file, or with `dir` the directory, `from` to `to`.
    pub fn rename(&self, from: &str, to: &str, dir: bool, overwrite: bool) -> Result<(), Errno> {
        let (from, to) = match dir {
            true => (self.dir_name(from)?, self.dir_name(to)?),
            false => (self.name(from)?, self.name(to)?),
        };
        let url = self.client.url(&format!(
            "/rename?from={}&to={}{}",
            percent::encode(&from, false),
            percent::encode(&to, false),
            if overwrite { "&overwrite=true" } else { "" }
        ));
        let answer = self.call(self.client.post(&url))?;
        answer.map(drop).map_err(|refusal| refusal_errno(&refusal))
    }

    pub fn make_dir(&self, path: &str) -> Result<(), Errno> {
        let url = self.dir_url(path)?;
        let answer = self.call(self.client.post(&url))?;
        answer.map(drop).map_err(|refusal| refusal_errno(&refusal))
    }

    /// Removes the directory `path`: `ENOTEMPTY` while a name lies under it.
    pub fn remove_dir(&self, path: &str) -> Result<(), Errno> {
        let url = self.dir_url(path)?;
        match self.call(self.client.delete(&url))? {
            Ok(_) => Ok(()),
            Err(refusal) if refusal.status == 409 => Err(Errno::ENOTEMPTY),
            Err(refusal) => Err(refusal_errno(&refusal)),
        }
    }

    fn dir_url(&self, path: &str) -> Result<String, Errno> {
        let name = self.name(path)?;
        Ok(self
            .client
            .url(&format!("/dirs/{}", percent::encode(&name, true))))
    }

    pub fn status(&self) -> Result<ClusterStatus, Errno> {
        self.get_json(&self.client.url("/status"))
    }

    /// A JSON document (at most `JSON_DOCUMENT_BYTES_MAX` of it).
    fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Errno> {
        let mut response = self
            .call(self.client.get(url))?
            .map_err(|refusal| refusal_errno(&refusal))?;
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(JSON_DOCUMENT_BYTES_MAX)
            .read_to_end(&mut bytes)
            .map_err(|_| self.lost())?;
        serde_json::from_slice(&bytes).map_err(|_| Errno::EIO)
    }

    /// The outcome of a call: a transport failure becomes `EIO`, told on
    /// stderr when the server was reachable until then.
    fn call(&self, sent: Result<Answer, ClientError>) -> Result<Answer, Errno> {
        match sent {
            Ok(answer) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    eprintln!("harbour mount: the naming server answers again");
                }
                Ok(answer)
            }
            Err(err) => {
                if self.reachable.swap(false, Ordering::Relaxed) {
                    eprintln!("harbour mount: {err}; operations fail with EIO until it answers");
                }
                Err(Errno::EIO)
            }
        }
    }

    /// A body that broke off mid-transfer.
    fn lost(&self) -> Errno {
        if self.reachable.swap(false, Ordering::Relaxed) {
            eprintln!("harbour mount: a transfer from the naming server broke off");
        }
        Errno::EIO
    }
}

/// The errno of a refusal, the one mapping of HTTP status to errno.
pub fn refusal_errno(refusal: &Refusal) -> Errno {
    match refusal.status {
        404 => Errno::ENOENT,
        409 => Errno::EEXIST,
        507 => Errno::ENOSPC,
        401 | 403 => Errno::EACCES,
        413 => Errno::EFBIG,
        400 => Errno::EINVAL,
        _ => Errno::EIO,
    }
}

/// Size and modification time from the headers of `GET`/`HEAD /files/NAME`.
fn remote_file(response: &ureq::http::Response<ureq::Body>) -> Result<RemoteFile, Errno> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let size = header("Content-Length")
        .and_then(|len| len.parse().ok())
        .ok_or(Errno::EIO)?;
    let mtime_ms = header(MTIME_HEADER)
        .and_then(common::time::parse_unix_ms)
        .unwrap_or(0);
    Ok(RemoteFile { size, mtime_ms })
}

/// Longest name one directory entry may have (`statfs`'s `namelen`); a
/// whole path is bounded by `FILE_NAME_BYTES_MAX`.
pub const ENTRY_NAME_BYTES_MAX: u32 = 255;

const _: () = assert!(ENTRY_NAME_BYTES_MAX as usize <= FILE_NAME_BYTES_MAX);
