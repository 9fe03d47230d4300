//! The life of a create: reserve the name, cut the body into batches, place
//! each batch on `replication` servers and store it there (reading the next
//! batch from the client meanwhile), then commit. Invariant: the name
//! becomes visible only in `commit`, after every batch was acknowledged by
//! every replica; on any failure the chunks written so far are deleted.

use std::collections::BTreeSet;
use std::io::Read;
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
        let stored = upload_batches(naming, blob, body, self.declared_bytes, &mut touched)
            .and_then(|version| match self.declared_bytes {
                Some(declared) if declared != version.size_bytes => Err(ApiError::BodyIncomplete {
                    detail: format!(
                        "{} of the {declared} announced bytes arrived",
                        version.size_bytes
                    ),
                }),
                _ => Ok(version),
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
/// memory stays at two batches whatever the file size. The last batch (the
/// only one of a small file) is replicated on this thread: nothing is left
/// to read meanwhile.
fn upload_batches(
    naming: &Naming,
    blob: BlobId,
    body: &mut dyn Read,
    declared_bytes: Option<u64>,
    touched: &mut BTreeSet<ServerId>,
) -> Result<FileVersion, ApiError> {
    let mut runs = Vec::new();
    let mut next_index = 0u32;
    let mut body = BatchReader {
        body,
        declared_bytes,
        read_bytes: 0,
    };
    let mut batch = body.next_batch()?;
    thread::scope(|scope| {
        while !batch.data.is_empty() {
            let data_bytes = batch.data.len() as u64;
            let chunks_count = batch.data.len().div_ceil(CHUNK_SIZE_BYTES) as u64;
            let targets = naming.place(data_bytes)?;
            let encoded = encode(blob, next_index, &batch.data);
            let store = move |encoded: &[u8]| {
                let batch = Batch {
                    encoded,
                    data_bytes,
                    chunks_count,
                };
                replicate::store_batch(naming, targets, &batch)
            };
            let (replicated, next) = if batch.last {
                let done = BodyBatch {
                    data: Vec::new(),
                    last: true,
                };
                (store(&encoded), Ok(done))
            } else {
                let in_flight = scope.spawn(move || store(&encoded));
                let next = body.next_batch();
                let replicated = in_flight.join().map_err(|_| {
                    ApiError::Internal("the replication thread panicked".to_owned())
                })?;
                (replicated, next)
            };
            touched.extend(replicated.attempted.iter().copied());
            let targets = replicated.outcome?;
            let count = u32::try_from(chunks_count).expect("a batch count fits u32");
            version::push_run(&mut runs, count, &targets);
            next_index += count;
            batch = next?;
        }
        Ok(FileVersion {
            blob,
            size_bytes: body.read_bytes,
            runs,
        })
    })
}

/// The client's body, read a batch at a time.
struct BatchReader<'a> {
    body: &'a mut dyn Read,
    /// The Content-Length, when the body has one: buffers are sized by it,
    /// so a 1 KiB file costs a 1 KiB buffer, not a batch's.
    declared_bytes: Option<u64>,
    read_bytes: u64,
}

/// Up to one batch of file bytes, and whether the body ends after them.
struct BodyBatch {
    data: Vec<u8>,
    last: bool,
}

impl BatchReader<'_> {
    /// Reads up to one batch of file bytes; fewer only at the end of the body.
    fn next_batch(&mut self) -> Result<BodyBatch, ApiError> {
        let capacity = match self.declared_bytes {
            Some(declared) => declared
                .saturating_sub(self.read_bytes)
                .min(BATCH_BYTES as u64),
            None => BATCH_BYTES as u64,
        };
        let mut data = Vec::with_capacity(usize::try_from(capacity).expect("at most a batch"));
        let read = (&mut self.body)
            .take(BATCH_BYTES as u64)
            .read_to_end(&mut data)
            .map_err(|err| ApiError::BodyIncomplete {
                detail: err.to_string(),
            })?;
        self.read_bytes += read as u64;
        if self.read_bytes > FILE_BYTES_MAX {
            return Err(ApiError::BodyTooLarge {
                limit_bytes: FILE_BYTES_MAX,
            });
        }
        // A short batch met the end of the body; so did one that completes
        // the Content-Length (the body reader ends there).
        let last = read < BATCH_BYTES || self.declared_bytes == Some(self.read_bytes);
        Ok(BodyBatch { data, last })
    }
}

fn encode(blob: BlobId, first_index: u32, data: &[u8]) -> Vec<u8> {
    let mut encoder = BatchEncoder::new(data.len().div_ceil(CHUNK_SIZE_BYTES));
    for (offset, piece) in data.chunks(CHUNK_SIZE_BYTES).enumerate() {
        let index = first_index + u32::try_from(offset).expect("a batch offset fits u32");
        encoder.push(ChunkId { blob, index }, crc32c(piece), piece);
    }
    encoder.finish()
}
