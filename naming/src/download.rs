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
use crate::metadata::version::{FileVersion, Piece, ServerId};
use crate::naming::Naming;

/// The bytes of one version, batch by batch, for a prefetched response.
/// A batch never crosses a piece: each piece is its own blob.
pub struct ChunkPieces {
    naming: Arc<Naming>,
    version: Arc<FileVersion>,
    /// Every server's URL by id, as of the open: ids never change meaning.
    urls: Vec<Arc<str>>,
    /// The bytes of the file to answer with.
    bytes: Range<u64>,
    /// The first byte not answered yet.
    next_byte: u64,
    /// The piece that holds `next_byte` (or one before it), and the file
    /// offset its bytes start at.
    piece: usize,
    piece_start: u64,
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
        let (piece, piece_start) = match bytes.is_empty() {
            true => (0, 0),
            false => version.piece_at(bytes.start),
        };
        let mut pieces = ChunkPieces {
            naming,
            version,
            urls,
            next_byte: bytes.start,
            bytes,
            piece,
            piece_start,
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
        if self.next_byte >= self.bytes.end {
            return Ok(());
        }
        // Pieces before `next_byte` (empty ones too) are done.
        while self.next_byte >= self.piece_start + self.version.pieces[self.piece].size_bytes {
            self.piece_start += self.version.pieces[self.piece].size_bytes;
            self.piece += 1;
        }
        let piece = &self.version.pieces[self.piece];
        let chunk = CHUNK_SIZE_BYTES as u64;
        let first_index = (self.next_byte - self.piece_start) / chunk;
        let end_index = (self.bytes.end - self.piece_start)
            .min(piece.size_bytes)
            .div_ceil(chunk);
        let batch_start = self.piece_start + first_index * chunk;
        fetch_batch(
            &self.naming,
            &self.urls,
            piece,
            (first_index, end_index),
            out,
        )?;
        // Only the range's bytes: cut the end first, then the start.
        let batch_end = batch_start + out.len() as u64;
        if batch_end > self.bytes.end {
            out.truncate((self.bytes.end - batch_start) as usize);
        }
        if batch_start < self.next_byte {
            out.drain(..(self.next_byte - batch_start) as usize);
        }
        self.naming
            .metrics
            .count(&self.naming.metrics.bytes_read_total, out.len() as u64);
        self.next_byte = batch_end;
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
        match self.next_byte >= self.bytes.end {
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

/// Reads the batch starting at chunk `first_index` of `piece` (at most
/// `BATCH_CHUNKS_MAX` chunks, within one run, before `end_index`) from the
/// first replica that serves it whole and intact, into `out` (reused from
/// batch to batch); returns its chunk count.
fn fetch_batch(
    naming: &Naming,
    urls: &[Arc<str>],
    piece: &Piece,
    (first_index, end_index): (u64, u64),
    out: &mut Vec<u8>,
) -> Result<u32, ApiError> {
    let run = piece.run_of(first_index);
    let run_end = (u64::from(run.first_index) + u64::from(run.count)).min(end_index);
    assert!(first_index < run_end);
    let count = (run_end - first_index).min(BATCH_CHUNKS_MAX as u64);
    let count = u32::try_from(count).expect("at most BATCH_CHUNKS_MAX");
    let first = u32::try_from(first_index).expect("chunk indexes fit u32");
    let mut failures = Vec::new();
    for server in replica_order(naming, &run.replicas, first_index) {
        let url = &urls[usize::from(server)];
        match fetch_from(naming, url, piece, (first, count), out) {
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
    piece: &Piece,
    (first, count): (u32, u32),
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    let mut wrong_size = None;
    naming
        .storage
        .get_run(url, piece.blob, first, count, &mut |chunk| {
            let expected = piece.chunk_size(u64::from(chunk.id().index));
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
