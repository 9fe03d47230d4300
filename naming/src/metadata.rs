//! The naming server's durable state, in one struct: the namespace (which
//! names exist and the version each points to), the S3 multipart uploads
//! under way (`uploads.rs`), the storage server table (URL and drain flag
//! by id) and the blob id reservation. It changes only
//! through `apply`, which the one door (`MetaStore`) calls for every change
//! it makes durable and replay calls for every change it reads back, so the
//! state after a restart is the state that was acknowledged. No IO here.
//!
//! Invariants, asserted by `check_invariants` and where they are kept:
//! - a name maps to a version whose runs cover its chunks once, in order,
//!   each run on distinct servers that are in the table;
//! - every committed blob id is below the reservation, and no two pieces
//!   (of files or of uploads' parts) share a blob;
//! - the server table only grows, and an id's URL never changes.

pub mod change;
mod entity;
pub use self::entity::Entity;
mod dirs;
pub use self::dirs::Entry;
mod rename;
pub mod uploads;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use common::api::FileEntry;
use common::chunk::BlobId;
use common::name::FileName;

use crate::limits::STORAGE_SERVERS_MAX;

use self::change::{Applied, Change, Refusal};
use self::uploads::{Upload, UploadId};
use self::version::{FileVersion, Piece, ServerId};

#[derive(Default)]
pub struct Metadata {
    files: BTreeMap<FileName, Arc<FileVersion>>,
    /// Whose piece each blob is, for repairs that know a blob.
    holders: HashMap<BlobId, Holder>,
    /// S3 multipart uploads under way, by id.
    uploads: BTreeMap<UploadId, Upload>,
    chunks_count: u64,
    /// By id: ids are positions, so the table only grows.
    servers: Vec<ServerEntry>,
    /// Blob ids below this may have been handed out.
    blobs_reserved_up_to: u64,
    /// Directories made explicitly (`POST /dirs`), each ending in `/`;
    /// others exist implicitly while a name lies under them.
    dirs: BTreeSet<String>,
}

/// What a blob is a piece of.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Holder {
    File(FileName),
    Part { upload: UploadId, number: u32 },
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
                self.unhold(&removed);
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
            Change::BeginUpload {
                id,
                name,
                started_ms,
                object,
            } => self.begin_upload(*id, name, *started_ms, object),
            Change::AddPart {
                upload,
                number,
                part,
            } => self.add_part(*upload, *number, part),
            Change::CompleteUpload {
                upload,
                parts,
                md5,
                mtime_ms,
            } => self.complete_upload(*upload, parts, *md5, *mtime_ms),
            Change::AbortUpload { upload } => self.abort_upload(*upload),
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
        changes.extend(self.upload_snapshot());
        changes
    }

    pub fn get(&self, name: &FileName) -> Option<Arc<FileVersion>> {
        self.files.get(name).cloned()
    }

    pub fn contains(&self, name: &FileName) -> bool {
        self.files.contains_key(name)
    }

    /// The piece whose blob is `blob`, of a file or of an upload's part.
    pub fn piece_of(&self, blob: BlobId) -> Option<&Piece> {
        match self.holders.get(&blob)? {
            Holder::File(name) => self.files[name]
                .pieces
                .iter()
                .find(|piece| piece.blob == blob),
            Holder::Part { upload, number } => Some(&self.uploads[upload].parts[number].piece),
        }
    }

    /// Every stored piece: the files', then the uploads' parts', for the
    /// scans that keep chunks replicated.
    pub fn pieces(&self) -> impl Iterator<Item = &Piece> {
        let parts = self
            .uploads
            .values()
            .flat_map(|upload| upload.parts.values().map(|part| &part.piece));
        self.files
            .values()
            .flat_map(|version| version.pieces.iter())
            .chain(parts)
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
        let mut pieces_count = 0;
        for (name, version) in &self.files {
            self.check_version(version)
                .map_err(|err| format!("{name}: {err}"))?;
            let holder = Holder::File(name.clone());
            if version
                .blobs()
                .any(|blob| self.holders.get(&blob) != Some(&holder))
            {
                return Err(format!("{name}: a blob of it is not indexed"));
            }
            chunks_count += version.chunks_count();
            pieces_count += version.pieces.len();
        }
        pieces_count += self.check_uploads()?;
        if self.holders.len() != pieces_count {
            return Err("two pieces share a blob, or a gone one is indexed".to_owned());
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
        let holder = Holder::File(name.clone());
        self.check_blobs_free(version, &holder)?;
        let replaced = self.files.insert(name.clone(), Arc::clone(version));
        if let Some(old) = &replaced {
            self.unhold(old);
        }
        self.hold(version, holder);
        Ok(Applied::Committed { replaced })
    }

    fn relocate(
        &mut self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        replicas: &[ServerId],
    ) -> Result<Applied, Refusal> {
        let piece = self.piece_of(blob).ok_or(Refusal::BlobGone)?;
        let end = u64::from(first_index) + u64::from(count);
        if count == 0 || end > piece.chunks_count() {
            return Err(Refusal::Invalid(format!(
                "relocation of chunks {first_index}..{end} of a piece of {}",
                piece.chunks_count()
            )));
        }
        let piece = piece.relocated(first_index, count, replicas);
        piece
            .check_runs()
            .map_err(|err| Refusal::Invalid(err.to_owned()))?;
        self.check_servers(piece.servers())
            .map_err(Refusal::Invalid)?;
        match self.holders[&blob].clone() {
            Holder::File(name) => {
                let version = self.files[&name].with_piece(piece);
                self.files.insert(name, Arc::new(version));
            }
            Holder::Part { upload, number } => {
                let part = self
                    .uploads
                    .get_mut(&upload)
                    .and_then(|upload| upload.parts.get_mut(&number))
                    .expect("a holder names a stored part");
                part.piece = piece;
            }
        }
        Ok(Applied::Changed)
    }

    /// A version may be committed: well-formed runs on known servers, and
    /// a blob id below the reservation.
    fn check_version(&self, version: &FileVersion) -> Result<(), String> {
        version.check()?;
        self.check_servers(version.servers())?;
        version
            .blobs()
            .try_for_each(|blob| self.check_reserved(blob))
    }

    /// Every server named is in the table.
    fn check_servers(&self, mut servers: impl Iterator<Item = ServerId>) -> Result<(), String> {
        match servers.find(|&id| usize::from(id) >= self.servers.len()) {
            Some(id) => Err(format!("a run names server id {id}, not in the table")),
            None => Ok(()),
        }
    }

    /// `blob` was handed out: it is below the reservation.
    fn check_reserved(&self, blob: BlobId) -> Result<(), String> {
        match blob.0 < self.blobs_reserved_up_to {
            true => Ok(()),
            false => Err(format!(
                "blob {blob} is not below the reservation {}",
                self.blobs_reserved_up_to
            )),
        }
    }

    /// No blob of `version` is another holder's.
    fn check_blobs_free(&self, version: &FileVersion, holder: &Holder) -> Result<(), Refusal> {
        for blob in version.blobs() {
            if let Some(other) = self.holders.get(&blob)
                && other != holder
            {
                return Err(Refusal::Invalid(format!("blob {blob} is {other:?}'s")));
            }
        }
        Ok(())
    }

    /// Indexes the blobs of a version just put in `files`.
    fn hold(&mut self, version: &FileVersion, holder: Holder) {
        self.chunks_count += version.chunks_count();
        for blob in version.blobs() {
            self.holders.insert(blob, holder.clone());
        }
    }

    /// Forgets the blobs of a version just taken out of `files`.
    fn unhold(&mut self, version: &FileVersion) {
        self.chunks_count -= version.chunks_count();
        for blob in version.blobs() {
            self.holders.remove(&blob);
        }
    }
}

#[cfg(test)]
mod tests;
