//! S3 multipart uploads under way: the meaning of `Change::BeginUpload`,
//! `AddPart`, `CompleteUpload` and `AbortUpload`. Each part is stored as
//! its own blob and recorded here, durably, as soon as it is stored, so
//! its chunks are referenced (reconciliation keeps them, repair keeps them
//! replicated) and survive a restart. Completing an upload makes the
//! listed parts' pieces the pieces of a new version of the object: no byte
//! is copied. An upload is never a file: it appears in no listing of
//! files, only in the S3 upload listings.
//!
//! Invariants (`check_uploads`): every part's piece is well formed, on
//! servers of the table, below the reservation, and indexed as that part's.

use std::collections::BTreeMap;
use std::sync::Arc;

use common::name::FileName;

use super::change::{Applied, Change, Refusal};
use super::version::{FileVersion, ObjectMeta, Piece};
use super::{Holder, Metadata};
use crate::limits::{UPLOAD_PART_NUMBER_MAX, UPLOADS_MAX};

/// An upload's id: a blob id `new_blob` handed out, so never reused.
pub type UploadId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The file it becomes: `BUCKET/KEY`.
    pub name: FileName,
    /// When it began, in milliseconds since the Unix epoch: it expires
    /// from there.
    pub started_ms: u64,
    /// The object's metadata as given when it began (its digest is made
    /// at completion).
    pub object: Box<ObjectMeta>,
    pub parts: BTreeMap<u32, Part>,
}

/// One stored part of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub piece: Piece,
    /// MD5 of the part's bytes: its ETag.
    pub md5: [u8; 16],
    pub mtime_ms: u64,
}

impl Metadata {
    pub fn upload(&self, id: UploadId) -> Option<&Upload> {
        self.uploads.get(&id)
    }

    /// Every upload under way, by id (the order they began in).
    pub fn uploads(&self) -> impl Iterator<Item = (UploadId, &Upload)> {
        self.uploads.iter().map(|(&id, upload)| (id, upload))
    }

    pub fn uploads_count(&self) -> usize {
        self.uploads.len()
    }

    pub(super) fn begin_upload(
        &mut self,
        id: UploadId,
        name: &FileName,
        started_ms: u64,
        object: &ObjectMeta,
    ) -> Result<Applied, Refusal> {
        if self.uploads.contains_key(&id) {
            return Err(Refusal::Invalid(format!("upload {id} exists")));
        }
        self.check_reserved(common::chunk::BlobId(id))
            .map_err(Refusal::Invalid)?;
        if self.uploads.len() >= UPLOADS_MAX {
            return Err(Refusal::TooManyUploads);
        }
        let upload = Upload {
            name: name.clone(),
            started_ms,
            object: Box::new(object.clone()),
            parts: BTreeMap::new(),
        };
        self.uploads.insert(id, upload);
        Ok(Applied::Changed)
    }

    pub(super) fn add_part(
        &mut self,
        id: UploadId,
        number: u32,
        part: &Part,
    ) -> Result<Applied, Refusal> {
        if !self.uploads.contains_key(&id) {
            return Err(Refusal::NoSuchUpload);
        }
        if !(1..=UPLOAD_PART_NUMBER_MAX).contains(&number) {
            return Err(Refusal::Invalid(format!("part number {number}")));
        }
        let piece = &part.piece;
        piece
            .check_runs()
            .map_err(|err| Refusal::Invalid(err.to_owned()))?;
        self.check_servers(piece.servers())
            .map_err(Refusal::Invalid)?;
        self.check_reserved(piece.blob).map_err(Refusal::Invalid)?;
        let holder = Holder::Part { upload: id, number };
        if let Some(other) = self.holders.get(&piece.blob)
            && *other != holder
        {
            return Err(Refusal::Invalid(format!(
                "blob {} is {other:?}'s",
                piece.blob
            )));
        }
        let upload = self.uploads.get_mut(&id).expect("checked above");
        let replaced = upload.parts.insert(number, part.clone());
        if let Some(old) = &replaced
            && old.piece.blob != piece.blob
        {
            self.holders.remove(&old.piece.blob);
        }
        self.holders.insert(piece.blob, holder);
        Ok(Applied::PartAdded {
            replaced: replaced
                .map(|old| old.piece)
                .filter(|old| old.blob != piece.blob),
        })
    }

    pub(super) fn complete_upload(
        &mut self,
        id: UploadId,
        listed: &[(u32, [u8; 16])],
        md5: [u8; 16],
        mtime_ms: u64,
    ) -> Result<Applied, Refusal> {
        let upload = self.uploads.get(&id).ok_or(Refusal::NoSuchUpload)?;
        if listed.is_empty() || !listed.is_sorted_by(|a, b| a.0 < b.0) {
            return Err(Refusal::Invalid(
                "a completion lists its parts once each, in ascending order".to_owned(),
            ));
        }
        let mut pieces = Vec::with_capacity(listed.len());
        for &(number, part_md5) in listed {
            match upload.parts.get(&number) {
                Some(part) if part.md5 == part_md5 => pieces.push(part.piece.clone()),
                _ => return Err(Refusal::InvalidPart { number }),
            }
        }
        let mut object = upload.object.clone();
        object.md5 = md5;
        object.parts_count = u32::try_from(listed.len()).expect("part numbers fit u32");
        let version = FileVersion {
            size_bytes: pieces.iter().map(|piece| piece.size_bytes).sum(),
            pieces: pieces.into(),
            mtime_ms,
            object: Some(object),
        };
        self.check_version(&version).map_err(Refusal::Invalid)?;
        // Checked: from here on nothing is refused.
        let name = upload.name.clone();
        let upload = self.uploads.remove(&id).expect("found above");
        let mut unused = Vec::new();
        for (number, part) in upload.parts {
            self.holders.remove(&part.piece.blob);
            if listed.binary_search_by_key(&number, |&(n, _)| n).is_err() {
                unused.push(part.piece);
            }
        }
        let version = Arc::new(version);
        let replaced = self.files.insert(name.clone(), Arc::clone(&version));
        if let Some(old) = &replaced {
            self.unhold(old);
        }
        self.hold(&version, Holder::File(name));
        Ok(Applied::Completed { replaced, unused })
    }

    pub(super) fn abort_upload(&mut self, id: UploadId) -> Result<Applied, Refusal> {
        let upload = self.uploads.remove(&id).ok_or(Refusal::NoSuchUpload)?;
        let pieces = upload
            .parts
            .into_values()
            .map(|part| {
                self.holders.remove(&part.piece.blob);
                part.piece
            })
            .collect();
        Ok(Applied::Aborted { pieces })
    }

    /// The changes that rebuild the uploads table, for a snapshot.
    pub(super) fn upload_snapshot(&self) -> impl Iterator<Item = Change> + '_ {
        self.uploads.iter().flat_map(|(&id, upload)| {
            let begin = Change::BeginUpload {
                id,
                name: upload.name.clone(),
                started_ms: upload.started_ms,
                object: upload.object.clone(),
            };
            let parts = upload
                .parts
                .iter()
                .map(move |(&number, part)| Change::AddPart {
                    upload: id,
                    number,
                    part: part.clone(),
                });
            std::iter::once(begin).chain(parts)
        })
    }

    /// Checks the invariants of the module header; the number of parts.
    pub(super) fn check_uploads(&self) -> Result<usize, String> {
        let mut parts_count = 0;
        for (&id, upload) in &self.uploads {
            for (&number, part) in &upload.parts {
                let piece = &part.piece;
                piece.check_runs()?;
                self.check_servers(piece.servers())?;
                self.check_reserved(piece.blob)?;
                if self.holders.get(&piece.blob) != Some(&Holder::Part { upload: id, number }) {
                    return Err(format!("part {number} of upload {id} is not indexed"));
                }
                parts_count += 1;
            }
        }
        Ok(parts_count)
    }
}

#[cfg(test)]
mod tests;
