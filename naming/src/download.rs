//! The life of a read: stream a version's chunks batch by batch, each batch
//! from one replica, moving on to the next replica when one errors, times
//! out or serves a chunk that fails its checksum. Memory stays at one batch
//! whatever the file size.

use std::io::{self, Read};
use std::sync::Arc;

use common::limits::BATCH_CHUNKS_MAX;

use crate::error::ApiError;
use crate::metadata::version::{FileVersion, ServerId};
use crate::naming::Naming;

/// The bytes of one version, as a reader for a streamed response.
pub struct ChunkReader {
    naming: Arc<Naming>,
    version: Arc<FileVersion>,
    /// Every server's URL by id, as of the open: ids never change meaning.
    urls: Vec<Arc<str>>,
    next_index: u64,
    buffer: Vec<u8>,
    buffer_pos: usize,
}

impl ChunkReader {
    /// Fetches the first batch before any byte is answered, so a file that
    /// cannot be read at all gets an error status, not a cut 200.
    pub fn open(naming: Arc<Naming>, version: Arc<FileVersion>) -> Result<ChunkReader, ApiError> {
        let urls = naming.metadata().server_urls();
        let mut reader = ChunkReader {
            naming,
            version,
            urls,
            next_index: 0,
            buffer: Vec::new(),
            buffer_pos: 0,
        };
        reader.fill()?;
        Ok(reader)
    }

    fn fill(&mut self) -> Result<(), ApiError> {
        if self.next_index >= self.version.chunks_count() {
            self.buffer.clear();
            self.buffer_pos = 0;
            return Ok(());
        }
        let count = fetch_batch(
            &self.naming,
            &self.urls,
            &self.version,
            self.next_index,
            &mut self.buffer,
        )?;
        self.naming.metrics.count(
            &self.naming.metrics.bytes_read_total,
            self.buffer.len() as u64,
        );
        self.buffer_pos = 0;
        self.next_index += u64::from(count);
        Ok(())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buffer_pos == self.buffer.len() {
            self.fill()
                .map_err(|err| io::Error::other(err.to_string()))?;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let available = &self.buffer[self.buffer_pos..];
        let copied = available.len().min(out.len());
        out[..copied].copy_from_slice(&available[..copied]);
        self.buffer_pos += copied;
        Ok(copied)
    }
}

/// Reads the batch starting at chunk `first_index` (at most
/// `BATCH_CHUNKS_MAX` chunks, within one run) from the first replica that
/// serves it whole and intact, into `out` (reused from batch to batch);
/// returns its chunk count.
fn fetch_batch(
    naming: &Naming,
    urls: &[Arc<str>],
    version: &FileVersion,
    first_index: u64,
    out: &mut Vec<u8>,
) -> Result<u32, ApiError> {
    let run = version.run_of(first_index);
    let run_end = u64::from(run.first_index) + u64::from(run.count);
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
