//! One stored version of a file: its pieces, its size and time, and for an
//! S3 object what the client stored beside the bytes. A piece is one blob
//! and where its chunks live, as runs of consecutive chunks that share a
//! replica set; a chunk costs no object of its own: chunk `i` of a piece is
//! `(blob, i)`. A file written whole is one piece; an S3 multipart upload
//! becomes one piece per part, so completing it copies no byte.
//! Invariants: a version has at least one piece, its size is the sum of its
//! pieces'; a piece's runs cover its chunks exactly once, in order. Pure.

use common::chunk::BlobId;
use common::limits::CHUNK_SIZE_BYTES;

/// Index of a storage server in the server table (see `Metadata`).
pub type ServerId = u16;

#[derive(Debug, PartialEq, Eq)]
pub struct FileVersion {
    /// The bytes in order, piece after piece.
    pub pieces: Box<[Piece]>,
    pub size_bytes: u64,
    /// When the version was committed, in milliseconds since the Unix
    /// epoch (UTC): the file's modification time. 0 for versions journaled
    /// before times were kept.
    pub mtime_ms: u64,
    /// What an S3 client stored beside the bytes; `None` for a version
    /// written through the native API (boxed: most versions have none).
    pub object: Option<Box<ObjectMeta>>,
}

/// Consecutive bytes of a version stored as one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub blob: BlobId,
    pub size_bytes: u64,
    pub runs: Vec<Run>,
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
        let hex = md5_hex(&self.md5);
        match self.parts_count {
            0 => format!("\"{hex}\""),
            parts => format!("\"{hex}-{parts}\""),
        }
    }
}

/// An MD5 as S3 writes it: 32 lower-case hex digits.
pub fn md5_hex(md5: &[u8; 16]) -> String {
    let mut hex = String::with_capacity(32);
    for byte in md5 {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub first_index: u32,
    pub count: u32,
    pub replicas: Box<[ServerId]>,
}

impl FileVersion {
    /// A version of one piece: a file written whole.
    pub fn whole(piece: Piece, mtime_ms: u64, object: Option<Box<ObjectMeta>>) -> FileVersion {
        FileVersion {
            size_bytes: piece.size_bytes,
            pieces: Box::new([piece]),
            mtime_ms,
            object,
        }
    }

    pub fn chunks_count(&self) -> u64 {
        self.pieces.iter().map(Piece::chunks_count).sum()
    }

    /// The first piece's blob: the version's own (a whole file has no other).
    pub fn first_blob(&self) -> BlobId {
        self.pieces[0].blob
    }

    pub fn blobs(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.pieces.iter().map(|piece| piece.blob)
    }

    /// Every server that holds a replica of some chunk.
    pub fn servers(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.pieces.iter().flat_map(Piece::servers)
    }

    /// Whether the version is well formed (see the module header); the
    /// first fault found otherwise.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.pieces.is_empty() {
            return Err("a version has no piece");
        }
        let mut size_bytes = 0u64;
        for (idx, piece) in self.pieces.iter().enumerate() {
            piece.check_runs()?;
            if self.pieces[..idx]
                .iter()
                .any(|other| other.blob == piece.blob)
            {
                return Err("two pieces share a blob");
            }
            size_bytes = size_bytes
                .checked_add(piece.size_bytes)
                .ok_or("the pieces' sizes overflow")?;
        }
        if size_bytes != self.size_bytes {
            return Err("the pieces' sizes do not add up to the version's");
        }
        Ok(())
    }

    /// Asserts `check`, and that every run has `replication` replicas.
    pub fn assert_well_formed(&self, replication: usize) {
        assert_eq!(self.check(), Ok(()));
        for run in self.pieces.iter().flat_map(|piece| piece.runs.iter()) {
            assert_eq!(run.replicas.len(), replication);
        }
    }

    /// The piece that holds byte `offset` (< size), with the offset its
    /// bytes start at.
    pub fn piece_at(&self, offset: u64) -> (usize, u64) {
        assert!(offset < self.size_bytes);
        let mut start = 0;
        for (idx, piece) in self.pieces.iter().enumerate() {
            if offset < start + piece.size_bytes {
                return (idx, start);
            }
            start += piece.size_bytes;
        }
        unreachable!("the pieces add up to the size")
    }

    /// The version with the piece of `blob` replaced by `piece`.
    pub fn with_piece(&self, piece: Piece) -> FileVersion {
        let pieces = self
            .pieces
            .iter()
            .map(|old| match old.blob == piece.blob {
                true => piece.clone(),
                false => old.clone(),
            })
            .collect();
        FileVersion {
            pieces,
            size_bytes: self.size_bytes,
            mtime_ms: self.mtime_ms,
            object: self.object.clone(),
        }
    }
}

impl Piece {
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

    /// The piece with chunks `first_index..first_index + count` on
    /// `replicas` instead: runs are cut where the range starts and ends,
    /// and equal neighbours merged.
    pub fn relocated(&self, first_index: u32, count: u32, replicas: &[ServerId]) -> Piece {
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
        Piece {
            blob: self.blob,
            size_bytes: self.size_bytes,
            runs,
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
