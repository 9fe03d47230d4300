//! The body of a create, stored batch by batch: read from the client,
//! encoded (a CRC32C per chunk), replicated, with up to
//! `UPLOAD_BATCHES_IN_FLIGHT_MAX` batches being replicated at once while
//! the next is read, so a large file is not held back by each batch's round
//! trip and fsync. Memory stays bounded whatever the file's size: one read
//! buffer and that many encoded batches, all reused from batch to batch.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read};
use std::thread;

use common::chunk::{BlobId, ChunkId, crc32c};
use common::limits::{BATCH_BYTES_MAX, BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES, FILE_BYTES_MAX};
use common::pool::BufferPool;
use common::wire::BatchEncoder;

use crate::error::ApiError;
use crate::limits::{BATCH_BUFFERS_KEPT_MAX, UPLOAD_BATCHES_IN_FLIGHT_MAX};
use crate::metadata::version::{self, FileVersion, Piece, ServerId};
use crate::naming::Naming;
use crate::replicate::{self, Batch, Replicated};

const BATCH_BYTES: usize = BATCH_CHUNKS_MAX * CHUNK_SIZE_BYTES;

/// Batch buffers shared by every create: concurrent creates reuse the same
/// memory. Without it each worker thread's allocator arena kept its own
/// freed batches (glibc raises its mmap threshold once a batch is freed,
/// then keeps later ones per arena): four concurrent 8 MiB S3 parts peaked
/// at 107 MB, 45 MB with the pool.
static BATCH_BUFFERS: BufferPool = BufferPool::new(BATCH_BUFFERS_KEPT_MAX);

/// A buffer from `BATCH_BUFFERS` that holds an encoded batch (or a read
/// one) without growing.
fn take_buffer() -> Vec<u8> {
    let mut buffer = BATCH_BUFFERS.take_owned();
    buffer.reserve(BATCH_BYTES_MAX);
    buffer
}

/// Stores the whole body of blob `blob`; returns its version once every
/// batch is on its replicas. Runs are appended in order as batches
/// complete; the first failure stops the reading, and every batch in flight
/// is waited for (its servers are `touched`, for the cleanup). A file of
/// one batch is replicated on this thread: nothing is left to read
/// meanwhile.
pub fn upload_batches(
    naming: &Naming,
    blob: BlobId,
    body: &mut dyn Read,
    declared_bytes: Option<u64>,
    touched: &mut BTreeSet<ServerId>,
) -> Result<FileVersion, ApiError> {
    // A body of a batch or more reads into a shared buffer; a small one
    // into one of its own size.
    let large = declared_bytes.is_none_or(|bytes| bytes >= BATCH_BYTES as u64);
    let mut body = BatchReader {
        body,
        declared_bytes,
        read_bytes: 0,
        buffer: match large {
            true => take_buffer(),
            false => Vec::new(),
        },
    };
    let mut runs = Vec::new();
    // Encoded batches back from replication, ready for the next ones.
    let mut free: Vec<Vec<u8>> = Vec::new();
    thread::scope(|scope| {
        let mut in_flight: VecDeque<(u32, Pending<'_>)> = VecDeque::new();
        let mut next_index = 0u32;
        let mut ended = false;
        let mut failure: Option<ApiError> = None;
        loop {
            while failure.is_none() && !ended && in_flight.len() < UPLOAD_BATCHES_IN_FLIGHT_MAX {
                let (data, last) = match body.next_batch() {
                    Ok(batch) => batch,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                };
                ended = last;
                if data.is_empty() {
                    break;
                }
                let data_bytes = data.len() as u64;
                let chunks_count = data.len().div_ceil(CHUNK_SIZE_BYTES) as u64;
                let targets = match naming.place(data_bytes) {
                    Ok(targets) => targets,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                };
                let buffer = free.pop().unwrap_or_else(|| match large {
                    true => take_buffer(),
                    false => Vec::new(),
                });
                let encoded = encode(buffer, blob, next_index, data);
                let store = move |encoded: Vec<u8>| {
                    let batch = Batch {
                        encoded: &encoded,
                        data_bytes,
                        chunks_count,
                    };
                    (replicate::store_batch(naming, targets, &batch), encoded)
                };
                let pending = if ended && in_flight.is_empty() {
                    Pending::Done(store(encoded))
                } else {
                    Pending::Running(scope.spawn(move || store(encoded)))
                };
                let count = u32::try_from(chunks_count).expect("a batch count fits u32");
                in_flight.push_back((count, pending));
                next_index += count;
            }
            let Some((count, pending)) = in_flight.pop_front() else {
                break;
            };
            let (replicated, encoded) = match pending {
                Pending::Done(done) => done,
                Pending::Running(handle) => handle.join().unwrap_or_else(|_| {
                    let replicated = Replicated {
                        outcome: Err(ApiError::Internal(
                            "the replication thread panicked".to_owned(),
                        )),
                        attempted: Vec::new(),
                    };
                    (replicated, Vec::new())
                }),
            };
            free.push(encoded);
            touched.extend(replicated.attempted.iter().copied());
            match replicated.outcome {
                Ok(targets) if failure.is_none() => version::push_run(&mut runs, count, &targets),
                Ok(_) => {}
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        for buffer in free.drain(..).chain([std::mem::take(&mut body.buffer)]) {
            BATCH_BUFFERS.give(buffer);
        }
        match failure {
            Some(err) => Err(err),
            // Its modification time: now, as the last byte is stored and
            // the commit comes next.
            None => Ok(FileVersion::whole(
                Piece {
                    blob,
                    size_bytes: body.read_bytes,
                    runs,
                },
                common::cluster_auth::unix_ms(),
                None,
            )),
        }
    })
}

/// A batch being replicated, or already replicated (and its buffer).
enum Pending<'scope> {
    Running(thread::ScopedJoinHandle<'scope, (Replicated, Vec<u8>)>),
    Done((Replicated, Vec<u8>)),
}

/// The client's body, read a batch at a time into one buffer.
struct BatchReader<'a> {
    body: &'a mut dyn Read,
    /// The Content-Length, when the body has one: the buffer is sized by
    /// it, so a 1 KiB file costs a 1 KiB buffer, not a batch's.
    declared_bytes: Option<u64>,
    read_bytes: u64,
    /// Zeroed once, as far as it ever grows, then read into again and again.
    buffer: Vec<u8>,
}

impl BatchReader<'_> {
    /// Reads up to one batch of file bytes (fewer only at the end of the
    /// body); says whether the body ends after them.
    fn next_batch(&mut self) -> Result<(&[u8], bool), ApiError> {
        let wanted = match self.declared_bytes {
            Some(declared) => declared
                .saturating_sub(self.read_bytes)
                .min(BATCH_BYTES as u64) as usize,
            None => BATCH_BYTES,
        };
        // A byte more than announced, to see a body that is longer.
        let room = (wanted + 1).min(BATCH_BYTES);
        if self.buffer.len() < room {
            self.buffer.resize(room, 0);
        }
        let mut filled = 0;
        let mut ended = false;
        while filled < BATCH_BYTES {
            if filled == self.buffer.len() {
                self.buffer.resize(BATCH_BYTES, 0);
            }
            match self.body.read(&mut self.buffer[filled..]) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(read) => filled += read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(ApiError::BodyIncomplete {
                        detail: err.to_string(),
                    });
                }
            }
            // The body reader ends at the Content-Length: all that was
            // announced is here, and the end is next.
            if self.declared_bytes == Some(self.read_bytes + filled as u64) {
                ended = true;
                break;
            }
        }
        self.read_bytes += filled as u64;
        if self.read_bytes > FILE_BYTES_MAX {
            return Err(ApiError::BodyTooLarge {
                limit_bytes: FILE_BYTES_MAX,
            });
        }
        Ok((&self.buffer[..filled], ended))
    }
}

/// Encodes `data` as the batch of chunks from `first_index` of `blob`, into
/// `buffer` (a batch back from replication, or a new one).
fn encode(buffer: Vec<u8>, blob: BlobId, first_index: u32, data: &[u8]) -> Vec<u8> {
    let mut encoder = BatchEncoder::reusing(buffer, data.len().div_ceil(CHUNK_SIZE_BYTES));
    for (offset, piece) in data.chunks(CHUNK_SIZE_BYTES).enumerate() {
        let index = first_index + u32::try_from(offset).expect("a batch offset fits u32");
        encoder.push(ChunkId { blob, index }, crc32c(piece), piece);
    }
    encoder.finish()
}
