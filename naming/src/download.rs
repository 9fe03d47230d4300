//! The life of a read: stream a version's chunks batch by batch, each batch
//! from one replica, moving on to the next replica when one errors, times
//! out or serves a chunk that fails its checksum. The server loop fetches
//! the next batch while the current one is sent (`common::server::Pieces`):
//! memory stays at two batches whatever the file size. A ranged read
//! fetches only the chunks of its range and trims the first and last.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use common::limits::{BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES};
use common::server::{Pieces, Reply};

use crate::error::ApiError;
use crate::metadata::version::{FileVersion, ServerId};
use crate::naming::Naming;

/// The bytes of one version, batch by batch, for a prefetched response.
pub struct ChunkPieces {
    naming: Arc<Naming>,
    version: Arc<FileVersion>,
    /// Every server's URL by id, as of the open: ids never change meaning.
    urls: Vec<Arc<str>>,
    next_index: u64,
    /// The bytes of the file to answer with.
    bytes: Range<u64>,
    /// Chunks past the range are not fetched.
    end_index: u64,
    /// The first batch, fetched by `open`.
    first: Option<Vec<u8>>,
}

impl ChunkPieces {
    /// Fetches the first batch of `bytes` (within the version) before any
    /// byte is answered, so a file that cannot be read at all gets an error
    /// status, not a cut 200.
    pub fn open(
        naming: Arc<Naming>,
        version: Arc<FileVersion>,
        bytes: Range<u64>,
    ) -> Result<ChunkPieces, ApiError> {
        assert!(bytes.start <= bytes.end && bytes.end <= version.size_bytes);
        let urls = naming.metadata().server_urls();
        let chunk = CHUNK_SIZE_BYTES as u64;
        let mut pieces = ChunkPieces {
            naming,
            version,
            urls,
            next_index: bytes.start / chunk,
            end_index: bytes.end.div_ceil(chunk),
            bytes,
            first: None,
        };
        let mut first = Vec::new();
        pieces.fill(&mut first)?;
        pieces.first = Some(first);
        Ok(pieces)
    }

    /// Fetches the next batch into `out`; leaves it empty past the end.
    fn fill(&mut self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        out.clear();
        if self.next_index >= self.end_index || self.bytes.is_empty() {
            return Ok(());
        }
        let batch_start = self.next_index * CHUNK_SIZE_BYTES as u64;
        let count = fetch_batch(
            &self.naming,
            &self.urls,
            &self.version,
            (self.next_index, self.end_index),
            out,
        )?;
        // Only the range's bytes: cut the end first, then the start.
        let batch_end = batch_start + out.len() as u64;
        if batch_end > self.bytes.end {
            out.truncate((self.bytes.end - batch_start) as usize);
        }
        if batch_start < self.bytes.start {
            out.drain(..(self.bytes.start - batch_start) as usize);
        }
        self.naming
            .metrics
            .count(&self.naming.metrics.bytes_read_total, out.len() as u64);
        self.next_index += u64::from(count);
        Ok(())
    }
}

/// The answer of `status` carrying `bytes` of `version`: at once for a
/// range within one batch, else prefetched batch by batch. Errs before any
/// byte when the first batch cannot be read.
pub fn answer(
    naming: Arc<Naming>,
    version: Arc<FileVersion>,
    bytes: Range<u64>,
    status: u16,
) -> Result<Reply, ApiError> {
    let len = bytes.end - bytes.start;
    let pieces = ChunkPieces::open(naming, version, bytes)?;
    Ok(match pieces.into_whole() {
        Ok(whole) => Reply::bytes(status, "application/octet-stream", whole),
        Err(pieces) => Reply::prefetched(status, "application/octet-stream", Box::new(pieces), len),
    })
}

impl ChunkPieces {
    /// The whole file when its first batch is all of it (a small file):
    /// nothing to fetch ahead, so no thread to do it.
    pub fn into_whole(mut self) -> Result<Vec<u8>, ChunkPieces> {
        match self.next_index >= self.end_index {
            true => Ok(self.first.take().unwrap_or_default()),
            false => Err(self),
        }
    }
}

impl Pieces for ChunkPieces {
    fn next_piece(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        match self.first.take() {
            Some(mut first) => std::mem::swap(out, &mut first),
            None => self
                .fill(out)
                .map_err(|err| io::Error::other(err.to_string()))?,
        }
        Ok(!out.is_empty())
    }
}

/// Reads the batch starting at chunk `first_index` (at most
/// `BATCH_CHUNKS_MAX` chunks, within one run, before `end_index`) from the
/// first replica that serves it whole and intact, into `out` (reused from
/// batch to batch); returns its chunk count.
fn fetch_batch(
    naming: &Naming,
    urls: &[Arc<str>],
    version: &FileVersion,
    (first_index, end_index): (u64, u64),
    out: &mut Vec<u8>,
) -> Result<u32, ApiError> {
    let run = version.run_of(first_index);
    let run_end = (u64::from(run.first_index) + u64::from(run.count)).min(end_index);
    assert!(first_index < run_end);
    let count = (run_end - first_index).min(BATCH_CHUNKS_MAX as u64);
    let count = u32::try_from(count).expect("at most BATCH_CHUNKS_MAX");
    let first = u32::try_from(first_index).expect("chunk indexes fit u32");
    let mut failures = Vec::new();
    for server in replica_order(naming, &run.replicas, first_index) {
        let url = &urls[usize::from(server)];
        match fetch_from(naming, url, version, (first, count), out) {
            Ok(()) => return Ok(count),
            Err(detail) => {
                naming
                    .metrics
                    .count(&naming.metrics.replica_read_failures_total, 1);
                failures.push(format!("{url}: {detail}"));
            }
        }
    }
    Err(ApiError::ChunkUnavailable {
        detail: failures.join("; "),
    })
}

fn fetch_from(
    naming: &Naming,
    url: &str,
    version: &FileVersion,
    (first, count): (u32, u32),
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    let mut wrong_size = None;
    naming
        .storage
        .get_run(url, version.blob, first, count, &mut |chunk| {
            let expected = version.chunk_size(u64::from(chunk.id().index));
            if chunk.data().len() as u64 != expected {
                wrong_size.get_or_insert(format!(
                    "chunk {} has {} bytes, {expected} expected",
                    chunk.id(),
                    chunk.data().len()
                ));
            }
            out.extend_from_slice(chunk.data());
        })
        .map_err(|err| err.to_string())?;
    match wrong_size {
        Some(detail) => Err(detail),
        None => Ok(()),
    }
}

/// Replicas in the order to try them: live ones first, and among them a
/// start that rotates with the batch, spreading reads over all replicas.
fn replica_order(naming: &Naming, replicas: &[ServerId], first_index: u64) -> Vec<ServerId> {
    let start =
        usize::try_from(first_index / BATCH_CHUNKS_MAX as u64).unwrap_or(0) % replicas.len();
    let rotated = replicas
        .iter()
        .cycle()
        .skip(start)
        .take(replicas.len())
        .copied();
    let (live, dead): (Vec<ServerId>, Vec<ServerId>) =
        rotated.partition(|&id| naming.cluster.is_alive(id));
    live.into_iter().chain(dead).collect()
}
