//! The naming server's durable state, in one struct: the namespace (which
//! names exist and the version each points to), the storage server table
//! (URL and drain flag by id) and the blob id reservation. It changes only
//! through `apply`, which the one door (`MetaStore`) calls for every change
//! it makes durable and replay calls for every change it reads back, so the
//! state after a restart is the state that was acknowledged. No IO here.
//!
//! Invariants, asserted by `check_invariants` and where they are kept:
//! - a name maps to a version whose runs cover its chunks once, in order,
//!   each run on distinct servers that are in the table;
//! - every committed blob id is below the reservation, and no two files
//!   share a blob;
//! - the server table only grows, and an id's URL never changes.

pub mod change;
mod dirs;
pub use self::dirs::Entry;
mod rename;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use common::api::FileEntry;
use common::chunk::BlobId;
use common::name::FileName;

use crate::limits::STORAGE_SERVERS_MAX;

use self::change::{Applied, Change, Refusal};
use self::version::{FileVersion, ServerId};

#[derive(Default)]
pub struct Metadata {
    files: BTreeMap<FileName, Arc<FileVersion>>,
    /// Which file each committed blob is, for repairs that know a blob.
    names_by_blob: HashMap<BlobId, FileName>,
    chunks_count: u64,
    /// By id: ids are positions, so the table only grows.
    servers: Vec<ServerEntry>,
    /// Blob ids below this may have been handed out.
    blobs_reserved_up_to: u64,
    /// Directories made explicitly (`POST /dirs`), each ending in `/`;
    /// others exist implicitly while a name lies under them.
    dirs: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct ServerEntry {
    url: Arc<str>,
    draining: bool,
}

impl Metadata {
    /// Applies `change`, or refuses it and changes nothing.
    pub fn apply(&mut self, change: &Change) -> Result<Applied, Refusal> {
        match change {
            Change::Commit {
                name,
                version,
                overwrite,
            } => self.commit(name, version, *overwrite),
            Change::Delete { name } => {
                let removed = self.files.remove(name).ok_or(Refusal::NoSuchFile)?;
                self.chunks_count -= removed.chunks_count();
                self.names_by_blob.remove(&removed.blob);
                Ok(Applied::Deleted { removed })
            }
            Change::Rename {
                from,
                to,
                overwrite,
            } => self.rename(from, to, *overwrite),
            Change::RenamePrefix { from, to } => self.rename_prefix(from, to),
            Change::MakeDir { path } => self.make_dir(path),
            Change::RemoveDir {
                path,
                even_if_not_empty,
            } => self.remove_dir(path, *even_if_not_empty),
            Change::Relocate {
                blob,
                first_index,
                count,
                replicas,
            } => self.relocate(*blob, *first_index, *count, replicas),
            Change::AddServer { id, url } => {
                let id = usize::from(*id);
                if id < self.servers.len() && *self.servers[id].url == **url {
                    return Ok(Applied::Unchanged);
                }
                if id != self.servers.len() {
                    return Err(Refusal::UnknownServer {
                        id: ServerId::try_from(id).expect("a ServerId"),
                    });
                }
                if id == STORAGE_SERVERS_MAX {
                    return Err(Refusal::TableFull);
                }
                if self.server_id(url).is_some() {
                    return Err(Refusal::Invalid(format!("{url} has an id already")));
                }
                self.servers.push(ServerEntry {
                    url: url.as_str().into(),
                    draining: false,
                });
                Ok(Applied::Changed)
            }
            Change::Drain { id } => {
                let entry = self
                    .servers
                    .get_mut(usize::from(*id))
                    .ok_or(Refusal::UnknownServer { id: *id })?;
                if entry.draining {
                    return Ok(Applied::Unchanged);
                }
                entry.draining = true;
                Ok(Applied::Changed)
            }
            Change::ReserveBlobs { up_to } => {
                if *up_to <= self.blobs_reserved_up_to {
                    return Ok(Applied::Unchanged);
                }
                self.blobs_reserved_up_to = *up_to;
                Ok(Applied::Changed)
            }
        }
    }

    /// The changes that rebuild this state from nothing, in an order replay
    /// accepts: servers, drains, the reservation, then every file.
    pub fn snapshot(&self) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .servers
            .iter()
            .enumerate()
            .map(|(id, entry)| Change::AddServer {
                id: ServerId::try_from(id).expect("the table holds ServerIds"),
                url: entry.url.to_string(),
            })
            .collect();
        changes.extend(
            self.server_ids()
                .filter(|&id| self.is_draining(id))
                .map(|id| Change::Drain { id }),
        );
        changes.push(Change::ReserveBlobs {
            up_to: self.blobs_reserved_up_to,
        });
        changes.extend(
            self.dirs
                .iter()
                .map(|path| Change::MakeDir { path: path.clone() }),
        );
        changes.extend(self.files.iter().map(|(name, version)| Change::Commit {
            name: name.clone(),
            version: Arc::clone(version),
            overwrite: true,
        }));
        changes
    }

    pub fn get(&self, name: &FileName) -> Option<Arc<FileVersion>> {
        self.files.get(name).cloned()
    }

    pub fn contains(&self, name: &FileName) -> bool {
        self.files.contains_key(name)
    }

    /// The committed version whose blob is `blob`, if any.
    pub fn version_of(&self, blob: BlobId) -> Option<&Arc<FileVersion>> {
        self.files.get(self.names_by_blob.get(&blob)?)
    }

    /// Files whose names start with `prefix`, sorted by name.
    pub fn list(&self, prefix: &str) -> Vec<FileEntry> {
        let range = self
            .files
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        range
            .take_while(|(name, _)| name.as_str().starts_with(prefix))
            .map(|(name, version)| FileEntry {
                name: name.to_string(),
                size: version.size_bytes,
                mtime: common::time::from_unix_ms(version.mtime_ms),
            })
            .collect()
    }

    pub fn files_count(&self) -> u64 {
        self.files.len() as u64
    }

    pub fn chunks_count(&self) -> u64 {
        self.chunks_count
    }

    /// Every version, for status and repair scans.
    pub fn versions(&self) -> impl Iterator<Item = &Arc<FileVersion>> {
        self.files.values()
    }

    pub fn blobs_reserved_up_to(&self) -> u64 {
        self.blobs_reserved_up_to
    }

    pub fn servers_count(&self) -> usize {
        self.servers.len()
    }

    pub fn server_ids(&self) -> impl Iterator<Item = ServerId> + use<> {
        (0..self.servers.len()).map(|id| ServerId::try_from(id).expect("the table holds ServerIds"))
    }

    /// The URL of server `id`, which must be in the table.
    pub fn server_url(&self, id: ServerId) -> Arc<str> {
        Arc::clone(&self.servers[usize::from(id)].url)
    }

    /// Every server's URL, by id.
    pub fn server_urls(&self) -> Vec<Arc<str>> {
        self.servers
            .iter()
            .map(|entry| Arc::clone(&entry.url))
            .collect()
    }

    pub fn server_id(&self, url: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .position(|entry| *entry.url == *url)
            .map(|id| ServerId::try_from(id).expect("the table holds ServerIds"))
    }

    pub fn is_draining(&self, id: ServerId) -> bool {
        self.servers[usize::from(id)].draining
    }

    /// The servers that take new chunks: every one not being drained.
    pub fn accepting_servers(&self) -> Vec<ServerId> {
        self.server_ids()
            .filter(|&id| !self.is_draining(id))
            .collect()
    }

    /// Checks every invariant of the module header; for tests, and cheap
    /// enough only for small states.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut chunks_count = 0;
        for (name, version) in &self.files {
            self.check_version(version)
                .map_err(|err| format!("{name}: {err}"))?;
            if self.names_by_blob.get(&version.blob) != Some(name) {
                return Err(format!("{name}: its blob is not indexed"));
            }
            chunks_count += version.chunks_count();
        }
        if self.names_by_blob.len() != self.files.len() {
            return Err("two files share a blob, or a gone one is indexed".to_owned());
        }
        if chunks_count != self.chunks_count {
            return Err(format!(
                "{} chunks counted, {chunks_count} held",
                self.chunks_count
            ));
        }
        Ok(())
    }

    fn commit(
        &mut self,
        name: &FileName,
        version: &Arc<FileVersion>,
        overwrite: bool,
    ) -> Result<Applied, Refusal> {
        if !overwrite && self.files.contains_key(name) {
            return Err(Refusal::NameTaken);
        }
        self.check_version(version).map_err(Refusal::Invalid)?;
        if let Some(holder) = self.names_by_blob.get(&version.blob)
            && holder != name
        {
            return Err(Refusal::Invalid(format!(
                "blob {} is {holder}'s",
                version.blob
            )));
        }
        self.chunks_count += version.chunks_count();
        self.names_by_blob.insert(version.blob, name.clone());
        let replaced = self.files.insert(name.clone(), Arc::clone(version));
        if let Some(old) = &replaced {
            self.chunks_count -= old.chunks_count();
            if old.blob != version.blob {
                self.names_by_blob.remove(&old.blob);
            }
        }
        Ok(Applied::Committed { replaced })
    }

    fn relocate(
        &mut self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        replicas: &[ServerId],
    ) -> Result<Applied, Refusal> {
        let name = self.names_by_blob.get(&blob).ok_or(Refusal::BlobGone)?;
        let current = &self.files[name];
        let end = u64::from(first_index) + u64::from(count);
        if count == 0 || end > current.chunks_count() {
            return Err(Refusal::Invalid(format!(
                "relocation of chunks {first_index}..{end} of a file of {}",
                current.chunks_count()
            )));
        }
        let version = current.relocated(first_index, count, replicas);
        self.check_version(&version).map_err(Refusal::Invalid)?;
        let name = name.clone();
        self.files.insert(name, Arc::new(version));
        Ok(Applied::Changed)
    }

    /// A version may be committed: well-formed runs on known servers, and
    /// a blob id below the reservation.
    fn check_version(&self, version: &FileVersion) -> Result<(), String> {
        version.check_runs()?;
        if let Some(id) = version
            .servers()
            .find(|&id| usize::from(id) >= self.servers.len())
        {
            return Err(format!("a run names server id {id}, not in the table"));
        }
        if version.blob.0 >= self.blobs_reserved_up_to {
            return Err(format!(
                "blob {} is not below the reservation {}",
                version.blob, self.blobs_reserved_up_to
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
