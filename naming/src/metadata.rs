//! The namespace: which names exist, and for each the version it points to
//! and where that version's chunks live. No IO happens here. Invariants: a
//! name maps to a version only once every chunk of it was stored on
//! `replication` distinct servers; the runs of a version cover its chunks
//! exactly once, in order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use common::api::FileEntry;
use common::chunk::BlobId;
use common::limits::CHUNK_SIZE_BYTES;
use common::name::FileName;

/// Index of a storage server in the cluster's list.
pub type ServerId = u16;

/// One stored version of a file. Chunk `i` is `(blob, i)`; replica sets are
/// stored once per run of consecutive chunks that share them, so a version
/// costs a few bytes per run, not an object per chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct FileVersion {
    pub blob: BlobId,
    pub size_bytes: u64,
    pub runs: Vec<Run>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub first_index: u32,
    pub count: u32,
    pub replicas: Box<[ServerId]>,
}

#[derive(Default)]
pub struct Metadata {
    files: BTreeMap<FileName, Arc<FileVersion>>,
    /// Which file each committed blob is, for repairs that know a blob.
    names_by_blob: HashMap<BlobId, FileName>,
    /// Names with a create (without overwrite) under way: a second one fails at once.
    creating: HashSet<FileName>,
    /// Blobs being written by creates that have not committed (or failed)
    /// yet: reconciliation must not take them for orphans.
    blobs_in_flight: HashSet<BlobId>,
    chunks_count: u64,
}

/// Why a create cannot start or commit.
#[derive(Debug, PartialEq, Eq)]
pub struct NameTaken;

impl FileVersion {
    pub fn chunks_count(&self) -> u64 {
        chunks_for_size(self.size_bytes)
    }

    /// Size of chunk `index`: full, but for the last one.
    pub fn chunk_size(&self, index: u64) -> u64 {
        assert!(index < self.chunks_count());
        (self.size_bytes - index * CHUNK_SIZE_BYTES as u64).min(CHUNK_SIZE_BYTES as u64)
    }

    /// Checks that the runs cover every chunk once, in order.
    pub fn assert_well_formed(&self, replication: usize) {
        let mut next_index = 0u64;
        for run in &self.runs {
            assert_eq!(u64::from(run.first_index), next_index);
            assert!(run.count >= 1);
            assert_eq!(run.replicas.len(), replication);
            next_index += u64::from(run.count);
        }
        assert_eq!(next_index, self.chunks_count());
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

impl Metadata {
    pub fn get(&self, name: &FileName) -> Option<Arc<FileVersion>> {
        self.files.get(name).cloned()
    }

    /// Starts a create. Without `overwrite` the name must be free and not
    /// being created by someone else.
    pub fn begin_create(&mut self, name: &FileName, overwrite: bool) -> Result<(), NameTaken> {
        if overwrite {
            return Ok(());
        }
        if self.files.contains_key(name) || !self.creating.insert(name.clone()) {
            return Err(NameTaken);
        }
        Ok(())
    }

    /// Ends a create that will not commit.
    pub fn abort_create(&mut self, name: &FileName, overwrite: bool) {
        if !overwrite {
            let removed = self.creating.remove(name);
            assert!(removed);
        }
    }

    /// Makes `version` visible under `name`: the only place a name appears.
    /// Returns the version it replaced, whose chunks are now garbage.
    pub fn commit_create(
        &mut self,
        name: &FileName,
        overwrite: bool,
        version: Arc<FileVersion>,
    ) -> Result<Option<Arc<FileVersion>>, NameTaken> {
        if !overwrite {
            let removed = self.creating.remove(name);
            assert!(removed);
            if self.files.contains_key(name) {
                return Err(NameTaken);
            }
        }
        self.chunks_count += version.chunks_count();
        self.names_by_blob.insert(version.blob, name.clone());
        let replaced = self.files.insert(name.clone(), version);
        if let Some(old) = &replaced {
            self.chunks_count -= old.chunks_count();
            self.names_by_blob.remove(&old.blob);
        }
        Ok(replaced)
    }

    pub fn remove(&mut self, name: &FileName) -> Option<Arc<FileVersion>> {
        let removed = self.files.remove(name)?;
        self.chunks_count -= removed.chunks_count();
        self.names_by_blob.remove(&removed.blob);
        Some(removed)
    }

    /// The committed version whose blob is `blob`, if any.
    pub fn version_of(&self, blob: BlobId) -> Option<&Arc<FileVersion>> {
        self.files.get(self.names_by_blob.get(&blob)?)
    }

    /// Moves chunks `first_index..first_index + count` of `blob` to
    /// `replicas` (a repair). False if no committed file has that blob any
    /// more (deleted or replaced meanwhile): then nothing changes.
    pub fn relocate(
        &mut self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        replicas: &[ServerId],
    ) -> bool {
        let Some(name) = self.names_by_blob.get(&blob) else {
            return false;
        };
        let current = &self.files[name];
        let end = u64::from(first_index) + u64::from(count);
        assert!(count >= 1);
        assert!(end <= current.chunks_count());
        let mut runs = Vec::with_capacity(current.runs.len() + 2);
        for run in &current.runs {
            let run_end = run.first_index + run.count;
            // The parts of `run` before and after the moved range keep their
            // replicas; the moved range takes the new ones, once.
            let keep_before = run.first_index..run_end.min(first_index);
            if !keep_before.is_empty() {
                push_run(
                    &mut runs,
                    keep_before.end - keep_before.start,
                    &run.replicas,
                );
            }
            let moved = run.first_index.max(first_index)..run_end.min(first_index + count);
            if !moved.is_empty() {
                push_run(&mut runs, moved.end - moved.start, replicas);
            }
            let keep_after = run.first_index.max(first_index + count)..run_end;
            if !keep_after.is_empty() {
                push_run(&mut runs, keep_after.end - keep_after.start, &run.replicas);
            }
        }
        let version = FileVersion {
            blob,
            size_bytes: current.size_bytes,
            runs,
        };
        version.assert_well_formed(replicas.len());
        let name = name.clone();
        self.files.insert(name, Arc::new(version));
        true
    }

    /// Files whose names start with `prefix`, sorted by name.
    pub fn list(&self, prefix: &str) -> Vec<FileEntry> {
        let range = self
            .files
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded));
        range
            .take_while(|(name, _)| name.as_str().starts_with(prefix))
            .map(|(name, version)| FileEntry {
                name: name.to_string(),
                size: version.size_bytes,
            })
            .collect()
    }

    pub fn begin_blob(&mut self, blob: BlobId) {
        let inserted = self.blobs_in_flight.insert(blob);
        assert!(inserted);
    }

    pub fn end_blob(&mut self, blob: BlobId) {
        let removed = self.blobs_in_flight.remove(&blob);
        assert!(removed);
    }

    pub fn blobs_in_flight(&self) -> impl Iterator<Item = &BlobId> {
        self.blobs_in_flight.iter()
    }

    pub fn files_count(&self) -> u64 {
        self.files.len() as u64
    }

    pub fn chunks_count(&self) -> u64 {
        self.chunks_count
    }

    /// Every file, in name order, for checkpoints.
    pub fn files(&self) -> impl Iterator<Item = (&FileName, &Arc<FileVersion>)> {
        self.files.iter()
    }

    /// Every version, for status and repair scans.
    pub fn versions(&self) -> impl Iterator<Item = &Arc<FileVersion>> {
        self.files.values()
    }
}

#[cfg(test)]
mod tests;
