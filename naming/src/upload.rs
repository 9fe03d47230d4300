//! The life of a create: reserve the name, cut the body into batches, place
//! each batch on `replication` servers and store it there (several batches
//! at once, while the next is read from the client: `batches.rs`), then
//! commit. Invariant: the name
//! becomes visible only in `commit`, after every batch was acknowledged by
//! every replica; on any failure the chunks written so far are deleted.

mod batches;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use common::api::Created;
use common::limits::FILE_BYTES_MAX;
use common::name::FileName;

use crate::error::ApiError;
use crate::metadata::change::Refusal;
use crate::metadata::version::{FileVersion, ObjectMeta, Piece, ServerId};
use crate::naming::Naming;

use self::batches::upload_batches;

/// A name held for a create under way. Taken before any byte of the body
/// is read, so a refusal (409, 413) reaches the client before it sends the
/// body; released on drop unless the create committed.
pub struct Reservation<'a> {
    naming: &'a Naming,
    name: FileName,
    overwrite: bool,
    /// The Content-Length, when the body has one (else it is chunked).
    declared_bytes: Option<u64>,
    released: bool,
}

/// Starts a create of `name`: without `overwrite`, of concurrent creates
/// of one name exactly one gets past here.
pub fn reserve(
    naming: &Naming,
    name: FileName,
    overwrite: bool,
    declared_bytes: Option<u64>,
) -> Result<Reservation<'_>, ApiError> {
    if declared_bytes.is_some_and(|bytes| bytes > FILE_BYTES_MAX) {
        return Err(ApiError::BodyTooLarge {
            limit_bytes: FILE_BYTES_MAX,
        });
    }
    match naming.begin_create(&name, overwrite) {
        Ok(()) => Ok(Reservation {
            naming,
            name,
            overwrite,
            declared_bytes,
            released: false,
        }),
        Err(_) => Err(ApiError::Exists { name }),
    }
}

impl Reservation<'_> {
    /// Stores the body and commits it; on error nothing of it remains
    /// visible, and its chunks are deleted (or queued for deletion). Every
    /// error it returns is met after the body began to be read.
    pub fn upload(self, body: &mut dyn Read) -> Result<Created, ApiError> {
        let mut body = body;
        self.upload_sealed(&mut body, |_, _| Ok(None))
    }

    /// `upload`, with `seal` called once every byte is stored and before
    /// the commit, with the version about to be committed: it gives the
    /// version's S3 metadata from what `body` learnt on the way (its MD5),
    /// or refuses it (a digest that does not match), and then nothing of
    /// it remains.
    pub fn upload_sealed<B: Read>(
        mut self,
        body: &mut B,
        seal: impl FnOnce(&mut B, &FileVersion) -> Result<Option<Box<ObjectMeta>>, ApiError>,
    ) -> Result<Created, ApiError> {
        let naming = self.naming;
        // Held until the version is committed or its chunks discarded.
        let in_flight = naming.new_blob()?;
        let blob = in_flight.blob;
        let mut touched = BTreeSet::new();
        let stored = upload_batches(naming, blob, body, self.declared_bytes, &mut touched)
            .and_then(|version| check_declared(self.declared_bytes, version))
            .and_then(|mut version| {
                version.object = seal(body, &version)?;
                Ok(version)
            });
        match stored {
            Ok(version) => {
                self.released = true;
                commit(naming, &self.name, self.overwrite, version, touched)
            }
            Err(err) => {
                // The name is free before the chunks go (a new create of it
                // takes another blob), so whoever sees them gone can create it.
                self.release();
                naming.garbage.discard_now(naming, blob, touched);
                naming
                    .metrics
                    .count(&naming.metrics.creates_failed_total, 1);
                Err(err)
            }
        }
    }
}

/// An error that may leave it unknown whether a change was recorded (the
/// metadata store could not answer): the chunks it refers to must stay,
/// for reconciliation to reclaim if it was not.
pub trait Undecided {
    fn undecided(&self) -> bool;
}

/// Stores `body` as one piece of a blob of its own, not a file (an S3
/// upload's part), and hands it to `record`, which makes it durable (or
/// refuses it, from what `body` learnt on the way or because the upload is
/// gone) while the blob is still in flight; on any error the chunks are
/// deleted, but when it is undecided whether `record` made it durable.
pub fn store_piece<B: Read, R, E: From<ApiError> + Undecided>(
    naming: &Naming,
    body: &mut B,
    declared_bytes: Option<u64>,
    record: impl FnOnce(&mut B, Piece) -> Result<R, E>,
) -> Result<R, E> {
    if declared_bytes.is_some_and(|bytes| bytes > FILE_BYTES_MAX) {
        return Err(ApiError::BodyTooLarge {
            limit_bytes: FILE_BYTES_MAX,
        }
        .into());
    }
    let in_flight = naming.new_blob().map_err(E::from)?;
    let blob = in_flight.blob;
    let mut touched = BTreeSet::new();
    let stored = upload_batches(naming, blob, body, declared_bytes, &mut touched)
        .and_then(|version| check_declared(declared_bytes, version))
        .map_err(E::from)
        .and_then(|version| {
            version.assert_well_formed(naming.cluster.replication);
            let piece = version
                .pieces
                .into_vec()
                .pop()
                .expect("a stored body is one piece");
            record(body, piece)
        });
    if let Err(err) = &stored
        && !err.undecided()
    {
        naming.garbage.discard_now(naming, blob, touched);
        naming
            .metrics
            .count(&naming.metrics.creates_failed_total, 1);
    }
    drop(in_flight);
    stored
}

/// The stored version, if its size is the one announced.
fn check_declared(declared: Option<u64>, version: FileVersion) -> Result<FileVersion, ApiError> {
    match declared {
        Some(declared) if declared != version.size_bytes => Err(ApiError::BodyIncomplete {
            detail: format!(
                "{} of the {declared} announced bytes arrived",
                version.size_bytes
            ),
        }),
        _ => Ok(version),
    }
}

impl Reservation<'_> {
    fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.naming.abort_create(&self.name, self.overwrite);
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Makes the stored version visible under `name`: the only place a name appears.
fn commit(
    naming: &Naming,
    name: &FileName,
    overwrite: bool,
    version: FileVersion,
    touched: BTreeSet<ServerId>,
) -> Result<Created, ApiError> {
    version.assert_well_formed(naming.cluster.replication);
    let version = Arc::new(version);
    let created = Created {
        name: name.to_string(),
        size: version.size_bytes,
        chunks: version.chunks_count(),
    };
    let committed = naming.commit(name, overwrite, Arc::clone(&version));
    match committed {
        Ok(replaced) => {
            if let Some(replaced) = replaced {
                naming.garbage.drop_version(replaced);
            }
            naming.metrics.count(&naming.metrics.files_created_total, 1);
            naming
                .metrics
                .count(&naming.metrics.bytes_written_total, created.size);
            Ok(created)
        }
        Err(Refusal::NameTaken) => {
            // Another create of the same name (an overwrite) won the race.
            naming
                .garbage
                .discard_now(naming, version.first_blob(), touched);
            Err(ApiError::Exists { name: name.clone() })
        }
        // The commit may yet have landed: the chunks stay, and if it did
        // not, reconciliation takes them for orphans.
        Err(refusal) => Err(refusal.into()),
    }
}
