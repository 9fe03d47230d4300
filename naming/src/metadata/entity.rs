//! The state as a set of entities, for a store that keeps it as keys (etcd):
//! each file, explicit directory, server, drain flag, upload and part is
//! one entity, and so is the blob reservation. An entity's value is the
//! snapshot change that rebuilds it (`Change::Commit` for a file,
//! `Change::AddPart` for a part...), so the store writes each one in the
//! journal's record encoding.
//!
//! Three things are built on it, all through `replace`:
//! - a store that loads the whole state from its keys;
//! - a store that follows the entities other naming servers change;
//! - a store whose write was not accepted puts back what the change had
//!   touched (`touched` before the change, `entity` of each before and after).

use std::ops::Bound;

use common::name::FileName;

use super::change::Change;
use super::uploads::UploadId;
use super::version::ServerId;
use super::{Holder, Metadata, ServerEntry};

/// One entity of the state. The order of the variants is the order a
/// group of them is put back in: what an entity needs comes before it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entity {
    Server(ServerId),
    Drain(ServerId),
    Reservation,
    Dir(String),
    File(FileName),
    Upload(UploadId),
    Part { upload: UploadId, number: u32 },
}

impl Metadata {
    /// Every entity `change` may create, change or remove, looked up
    /// before it is applied (a directory rename touches every name it
    /// moves, old and new; an upload's end touches each of its parts).
    pub fn touched(&self, change: &Change) -> Vec<Entity> {
        match change {
            Change::Commit { name, .. } | Change::Delete { name } => {
                vec![Entity::File(name.clone())]
            }
            Change::Rename { from, to, .. } => {
                vec![Entity::File(from.clone()), Entity::File(to.clone())]
            }
            Change::RenamePrefix { from, to } => self.touched_by_rename_prefix(from, to),
            Change::MakeDir { path } | Change::RemoveDir { path, .. } => {
                vec![Entity::Dir(path.clone())]
            }
            Change::Relocate { blob, .. } => match self.holders.get(blob) {
                Some(Holder::File(name)) => vec![Entity::File(name.clone())],
                Some(Holder::Part { upload, number }) => vec![Entity::Part {
                    upload: *upload,
                    number: *number,
                }],
                None => Vec::new(),
            },
            Change::AddServer { id, .. } => vec![Entity::Server(*id)],
            Change::Drain { id } => vec![Entity::Drain(*id)],
            Change::ReserveBlobs { .. } => vec![Entity::Reservation],
            Change::BeginUpload { id, .. } => vec![Entity::Upload(*id)],
            Change::AddPart { upload, number, .. } => vec![Entity::Part {
                upload: *upload,
                number: *number,
            }],
            Change::CompleteUpload { upload, .. } => {
                let mut touched = self.touched_by_upload(*upload);
                if let Some(found) = self.uploads.get(upload) {
                    touched.push(Entity::File(found.name.clone()));
                }
                touched
            }
            Change::AbortUpload { upload } => self.touched_by_upload(*upload),
        }
    }

    /// The change that rebuilds `entity` as it is now, or `None` if the
    /// state has no such entity.
    pub fn entity(&self, entity: &Entity) -> Option<Change> {
        match entity {
            Entity::Server(id) => {
                self.servers
                    .get(usize::from(*id))
                    .map(|entry| Change::AddServer {
                        id: *id,
                        url: entry.url.to_string(),
                    })
            }
            Entity::Drain(id) => self
                .servers
                .get(usize::from(*id))
                .filter(|entry| entry.draining)
                .map(|_| Change::Drain { id: *id }),
            Entity::Reservation => {
                (self.blobs_reserved_up_to > 0).then_some(Change::ReserveBlobs {
                    up_to: self.blobs_reserved_up_to,
                })
            }
            Entity::Dir(path) => self
                .dirs
                .contains(path)
                .then(|| Change::MakeDir { path: path.clone() }),
            Entity::File(name) => self.files.get(name).map(|version| Change::Commit {
                name: name.clone(),
                version: version.clone(),
                overwrite: true,
            }),
            Entity::Upload(id) => self.uploads.get(id).map(|upload| Change::BeginUpload {
                id: *id,
                name: upload.name.clone(),
                started_ms: upload.started_ms,
                object: upload.object.clone(),
            }),
            Entity::Part { upload, number } => self
                .uploads
                .get(upload)
                .and_then(|found| found.parts.get(number))
                .map(|part| Change::AddPart {
                    upload: *upload,
                    number: *number,
                    part: part.clone(),
                }),
        }
    }

    /// Sets each entity of `group` to its value (`None`: removes it), as
    /// one step: all are removed first, then the values are applied in
    /// entity order, so a blob moving between two of them is never held
    /// twice. The group must leave the state whole (every entity a
    /// change touched, as it was before or after); a value that does not
    /// fit it is a bug or a damaged store, and is refused with why.
    pub fn replace(&mut self, mut group: Vec<(Entity, Option<Change>)>) -> Result<(), String> {
        group.sort_by(|a, b| a.0.cmp(&b.0));
        for (entity, _) in group.iter().rev() {
            self.remove_entity(entity);
        }
        for (entity, value) in group {
            let Some(change) = value else { continue };
            let applied = self
                .apply(&change)
                .map_err(|refusal| format!("{entity:?}: {refusal}"))?;
            drop(applied);
        }
        Ok(())
    }

    /// Every entity of the state, in entity order.
    pub fn entities(&self) -> Vec<Entity> {
        let servers = self.server_ids();
        let drains = self
            .server_ids()
            .filter(|&id| self.is_draining(id))
            .map(Entity::Drain);
        let parts = self.uploads.iter().flat_map(|(&upload, found)| {
            found
                .parts
                .keys()
                .map(move |&number| Entity::Part { upload, number })
        });
        servers
            .map(Entity::Server)
            .chain(drains)
            .chain(std::iter::once(Entity::Reservation).filter(|_| self.blobs_reserved_up_to > 0))
            .chain(self.dirs.iter().cloned().map(Entity::Dir))
            .chain(self.files.keys().cloned().map(Entity::File))
            .chain(self.uploads.keys().copied().map(Entity::Upload))
            .chain(parts)
            .collect()
    }

    fn remove_entity(&mut self, entity: &Entity) {
        match entity {
            Entity::Server(id) => {
                // Ids are positions: only the last one can go (a join that
                // was not accepted).
                if usize::from(*id) + 1 == self.servers.len() {
                    self.servers.pop();
                }
            }
            Entity::Drain(id) => {
                if let Some(ServerEntry { draining, .. }) = self.servers.get_mut(usize::from(*id)) {
                    *draining = false;
                }
            }
            Entity::Reservation => self.blobs_reserved_up_to = 0,
            Entity::Dir(path) => {
                self.dirs.remove(path);
            }
            Entity::File(name) => {
                if let Some(version) = self.files.remove(name) {
                    self.unhold(&version);
                }
            }
            Entity::Upload(id) => {
                // Its parts go with it: a group that removes an upload
                // holds its parts too (`touched_by_upload`).
                if let Some(upload) = self.uploads.remove(id) {
                    for part in upload.parts.values() {
                        self.holders.remove(&part.piece.blob);
                    }
                }
            }
            Entity::Part { upload, number } => {
                let removed = self
                    .uploads
                    .get_mut(upload)
                    .and_then(|found| found.parts.remove(number));
                if let Some(part) = removed {
                    self.holders.remove(&part.piece.blob);
                }
            }
        }
    }

    fn touched_by_upload(&self, id: UploadId) -> Vec<Entity> {
        let mut touched = vec![Entity::Upload(id)];
        if let Some(upload) = self.uploads.get(&id) {
            touched.extend(
                upload
                    .parts
                    .keys()
                    .map(|&number| Entity::Part { upload: id, number }),
            );
        }
        touched
    }

    fn touched_by_rename_prefix(&self, from: &str, to: &str) -> Vec<Entity> {
        let mut touched = Vec::new();
        let files = self
            .files
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .map(|(name, _)| name)
            .take_while(|name| name.as_str().starts_with(from));
        for name in files {
            touched.push(Entity::File(name.clone()));
            let renamed = format!("{to}{}", &name.as_str()[from.len()..]);
            if let Ok(renamed) = FileName::parse(&renamed) {
                touched.push(Entity::File(renamed));
            }
        }
        let dirs = self
            .dirs
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|dir| dir.starts_with(from));
        for dir in dirs {
            touched.push(Entity::Dir(dir.clone()));
            touched.push(Entity::Dir(format!("{to}{}", &dir[from.len()..])));
        }
        touched
    }
}
