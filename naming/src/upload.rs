//! The life of a create: reserve the name, cut the body into batches, place
//! each batch on `replication` servers and store it there (reading the next
//! batch from the client meanwhile), then commit. Invariant: the name
//! becomes visible only in `commit`, after every batch was acknowledged by
//! every replica; on any failure the chunks written so far are deleted.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::Arc;
use std::thread;

use common::api::Created;
use common::chunk::{BlobId, ChunkId, crc32c};
use common::limits::{BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES, FILE_BYTES_MAX};
use common::name::FileName;
use common::wire::BatchEncoder;

use crate::error::ApiError;
use crate::metadata::version::{self, FileVersion, ServerId};
use crate::naming::Naming;
use crate::replicate::{self, Batch};

const BATCH_BYTES: usize = BATCH_CHUNKS_MAX * CHUNK_SIZE_BYTES;

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
    pub fn upload(mut self, body: &mut dyn Read) -> Result<Created, ApiError> {
        let naming = self.naming;
        // Held until the version is committed or its chunks discarded.
        let in_flight = naming.new_blob();
        let blob = in_flight.blob;
        let mut touched = BTreeSet::new();
        let stored =
            upload_batches(naming, blob, body, &mut touched).and_then(|version| {
                match self.declared_bytes {
                    Some(declared) if declared != version.size_bytes => {
                        Err(ApiError::BodyIncomplete {
                            detail: format!(
                                "{} of the {declared} announced bytes arrived",
                                version.size_bytes
                            ),
                        })
                    }
                    _ => Ok(version),
                }
            });
        match stored {
            Ok(version) => {
                self.released = true;
                commit(naming, &self.name, self.overwrite, version, touched)
            }
            Err(err) => {
                naming.garbage.discard_now(naming, blob, touched);
                naming
                    .metrics
                    .count(&naming.metrics.creates_failed_total, 1);
                Err(err)
            }
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.naming.abort_create(&self.name, self.overwrite);
        }
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
        Err(_) => {
            // Another create of the same name (an overwrite) won the race.
            naming.garbage.discard_now(naming, version.blob, touched);
            Err(ApiError::Exists { name: name.clone() })
        }
    }
}

/// Streams the body to storage batch by batch. While batch k is being
/// replicated, batch k+1 is read from the client: one batch in flight, so
/// memory stays at two batches whatever the file size.
fn upload_batches(
    naming: &Naming,
    blob: BlobId,
    body: &mut dyn Read,
    touched: &mut BTreeSet<ServerId>,
) -> Result<FileVersion, ApiError> {
    let mut runs = Vec::new();
    let mut size_bytes = 0u64;
    let mut next_index = 0u32;
    let mut data = read_batch(body, &mut size_bytes)?;
    thread::scope(|scope| {
        while !data.is_empty() {
            let chunks_count = data.len().div_ceil(CHUNK_SIZE_BYTES);
            let targets = naming.place(data.len() as u64)?;
            let encoded = encode(blob, next_index, &data);
            let data_bytes = data.len() as u64;
            let in_flight = scope.spawn(move || {
                let batch = Batch {
                    encoded: &encoded,
                    data_bytes,
                    chunks_count: chunks_count as u64,
                };
                replicate::store_batch(naming, targets, &batch)
            });
            let next = read_batch(body, &mut size_bytes);
            let replicated = in_flight
                .join()
                .map_err(|_| ApiError::Internal("the replication thread panicked".to_owned()))?;
            touched.extend(replicated.attempted.iter().copied());
            let targets = replicated.outcome?;
            let count = u32::try_from(chunks_count).expect("a batch count fits u32");
            version::push_run(&mut runs, count, &targets);
            next_index += count;
            data = next?;
        }
        Ok(FileVersion {
            blob,
            size_bytes,
            runs,
        })
    })
}

/// Reads up to one batch of file bytes; fewer only at the end of the body.
fn read_batch(body: &mut dyn Read, size_bytes: &mut u64) -> Result<Vec<u8>, ApiError> {
    let mut data = vec![0u8; BATCH_BYTES];
    let mut filled = 0;
    while filled < data.len() {
        match body.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(ApiError::BodyIncomplete {
                    detail: err.to_string(),
                });
            }
        }
    }
    data.truncate(filled);
    *size_bytes += filled as u64;
    if *size_bytes > FILE_BYTES_MAX {
        return Err(ApiError::BodyTooLarge {
            limit_bytes: FILE_BYTES_MAX,
        });
    }
    Ok(data)
}

fn encode(blob: BlobId, first_index: u32, data: &[u8]) -> Vec<u8> {
    let mut encoder = BatchEncoder::new(data.len().div_ceil(CHUNK_SIZE_BYTES));
    for (offset, piece) in data.chunks(CHUNK_SIZE_BYTES).enumerate() {
        let index = first_index + u32::try_from(offset).expect("a batch offset fits u32");
        encoder.push(ChunkId { blob, index }, crc32c(piece), piece);
    }
    encoder.finish()
}
