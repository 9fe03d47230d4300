//! One stored version of a file: its blob, its size, and where its chunks
//! live, as runs of consecutive chunks that share a replica set. A chunk
//! costs no object of its own: chunk `i` is `(blob, i)`. Invariant: the
//! runs cover the version's chunks exactly once, in order. Pure.

use common::chunk::BlobId;
use common::limits::CHUNK_SIZE_BYTES;

/// Index of a storage server in the server table (see `Metadata`).
pub type ServerId = u16;

#[derive(Debug, PartialEq, Eq)]
pub struct FileVersion {
    pub blob: BlobId,
    pub size_bytes: u64,
    pub runs: Vec<Run>,
    /// When the version was committed, in milliseconds since the Unix
    /// epoch (UTC): the file's modification time. 0 for versions journaled
    /// before times were kept.
    pub mtime_ms: u64,
    /// What an S3 client stored beside the bytes; `None` for a version
    /// written through the native API (boxed: most versions have none).
    pub object: Option<Box<ObjectMeta>>,
}

/// An S3 object's own metadata, kept with its version: replaced with the
/// bytes, dropped with them, moved by a rename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// MD5 of the bytes (one part) or of the parts' MD5s (multipart).
    pub md5: [u8; 16],
    /// 0 for an object stored whole, else the number of its parts: the
    /// ETag is `"HEX"` or `"HEX-N"`, as S3 makes them.
    pub parts_count: u32,
    pub content_type: Option<Box<str>>,
    /// `x-amz-meta-*` headers: names lower-cased without the prefix, sorted.
    pub user: Box<[(Box<str>, Box<str>)]>,
}

impl ObjectMeta {
    /// The ETag header value, quoted.
    pub fn etag(&self) -> String {
        let mut hex = String::with_capacity(40);
        for byte in self.md5 {
            hex.push_str(&format!("{byte:02x}"));
        }
        match self.parts_count {
            0 => format!("\"{hex}\""),
            parts => format!("\"{hex}-{parts}\""),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub first_index: u32,
    pub count: u32,
    pub replicas: Box<[ServerId]>,
}

impl FileVersion {
    pub fn chunks_count(&self) -> u64 {
        chunks_for_size(self.size_bytes)
    }

    /// Size of chunk `index`: full, but for the last one.
    pub fn chunk_size(&self, index: u64) -> u64 {
        assert!(index < self.chunks_count());
        (self.size_bytes - index * CHUNK_SIZE_BYTES as u64).min(CHUNK_SIZE_BYTES as u64)
    }

    /// Whether the runs cover every chunk once, in order, each on distinct
    /// replicas; the first fault found otherwise.
    pub fn check_runs(&self) -> Result<(), &'static str> {
        let mut next_index = 0u64;
        for run in &self.runs {
            if u64::from(run.first_index) != next_index || run.count == 0 {
                return Err("runs do not cover the file in order");
            }
            let distinct = run
                .replicas
                .iter()
                .enumerate()
                .all(|(idx, id)| !run.replicas[..idx].contains(id));
            if run.replicas.is_empty() || !distinct {
                return Err("a run's replicas are not distinct servers");
            }
            next_index += u64::from(run.count);
        }
        if next_index != self.chunks_count() {
            return Err("runs do not cover the file's chunks");
        }
        Ok(())
    }

    /// Asserts `check_runs`, and that every run has `replication` replicas.
    pub fn assert_well_formed(&self, replication: usize) {
        assert_eq!(self.check_runs(), Ok(()));
        for run in &self.runs {
            assert_eq!(run.replicas.len(), replication);
        }
    }

    /// The run that holds chunk `index`.
    pub fn run_of(&self, index: u64) -> &Run {
        assert!(index < self.chunks_count());
        let after = self
            .runs
            .partition_point(|run| u64::from(run.first_index) <= index);
        &self.runs[after - 1]
    }

    /// Every server that holds a replica of some chunk.
    pub fn servers(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.runs
            .iter()
            .flat_map(|run| run.replicas.iter().copied())
    }

    /// The version with chunks `first_index..first_index + count` on
    /// `replicas` instead: runs are cut where the range starts and ends,
    /// and equal neighbours merged.
    pub fn relocated(&self, first_index: u32, count: u32, replicas: &[ServerId]) -> FileVersion {
        assert!(count >= 1);
        assert!(u64::from(first_index) + u64::from(count) <= self.chunks_count());
        let moved_end = first_index + count;
        let mut runs = Vec::with_capacity(self.runs.len() + 2);
        for run in &self.runs {
            let run_end = run.first_index + run.count;
            // The parts of `run` before and after the moved range keep their
            // replicas; the moved range takes the new ones, once.
            let before = run.first_index..run_end.min(first_index);
            let moved = run.first_index.max(first_index)..run_end.min(moved_end);
            let after = run.first_index.max(moved_end)..run_end;
            for (part, part_replicas) in [
                (before, &run.replicas[..]),
                (moved, replicas),
                (after, &run.replicas[..]),
            ] {
                if !part.is_empty() {
                    push_run(&mut runs, part.end - part.start, part_replicas);
                }
            }
        }
        FileVersion {
            blob: self.blob,
            size_bytes: self.size_bytes,
            runs,
            mtime_ms: self.mtime_ms,
            object: self.object.clone(),
        }
    }
}

/// Appends `count` chunks placed on `replicas` to `runs`, merging with the
/// last run when it has the same replicas.
pub fn push_run(runs: &mut Vec<Run>, count: u32, replicas: &[ServerId]) {
    assert!(count >= 1);
    let first_index = runs.last().map_or(0, |run| run.first_index + run.count);
    match runs.last_mut() {
        Some(last) if *last.replicas == *replicas => last.count += count,
        _ => runs.push(Run {
            first_index,
            count,
            replicas: replicas.into(),
        }),
    }
}

pub fn chunks_for_size(size_bytes: u64) -> u64 {
    size_bytes.div_ceil(CHUNK_SIZE_BYTES as u64)
}
