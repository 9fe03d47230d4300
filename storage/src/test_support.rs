//! Helpers shared by the storage unit tests: a fresh folder per test, chunk
//! batches with recognisable bytes, and a store with its compaction thread.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::PathBuf;
use std::thread;

use common::chunk::{BlobId, ChunkId};
use common::wire::Chunk;

use crate::store::Store;
use crate::store::compaction;

pub fn temp_dir() -> PathBuf {
    common::testing::fresh_dir("store-test")
}

/// Chunks `0..sizes.len()` of `blob`, chunk `i` being `sizes[i]` bytes.
pub fn chunks(blob: u64, sizes: &[usize]) -> Vec<Chunk> {
    chunks_seeded(blob, sizes, 0)
}

/// Like `chunks`, with other bytes for another `seed`.
pub fn chunks_seeded(blob: u64, sizes: &[usize], seed: usize) -> Vec<Chunk> {
    sizes
        .iter()
        .enumerate()
        .map(|(index, &len)| {
            let data = (0..len)
                .map(|i| (i * 7 + index + seed * 13) as u8)
                .collect();
            Chunk::new(
                ChunkId {
                    blob: BlobId(blob),
                    index: index as u32,
                },
                data,
            )
        })
        .collect()
}

impl Store {
    /// `put_batch` of owned chunks, as tests make them.
    pub fn put_chunks(&self, chunks: &[Chunk]) -> Result<(), crate::error::StorageError> {
        let refs: Vec<_> = chunks.iter().map(Chunk::as_ref).collect();
        self.put_batch(&refs)
    }
}

/// Runs `body` while `store`'s compaction thread runs.
pub fn with_compactor<T>(store: &Store, body: impl FnOnce() -> T) -> T {
    thread::scope(|scope| {
        let compactor = scope.spawn(|| compaction::run(store));
        // Requests only wait for a thread that serves them.
        while !store.compaction.is_serving() {
            thread::yield_now();
        }
        let outcome = body();
        store.compaction.stop();
        compactor.join().unwrap();
        outcome
    })
}

/// The bytes of the segment files in `dir` up to the end of their records
/// (the zeros an active segment holds past them are not part of it).
pub fn segment_files_bytes(dir: &std::path::Path) -> u64 {
    struct Ignore;
    impl crate::record::Visitor for Ignore {
        fn visit(&mut self, _: &crate::record::Piece<'_>) -> std::io::Result<()> {
            Ok(())
        }
    }
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".hseg"))
        .map(|entry| {
            let file = fs::File::open(entry.path()).unwrap();
            let len = file.metadata().unwrap().len();
            let (records_end, _) = crate::record::scan(&file, len, &mut Ignore).unwrap();
            let zeros = common::zeroed_tail::is_zeros(&file, records_end, len).unwrap();
            assert!(zeros, "{:?} holds only records and zeros", entry.path());
            records_end
        })
        .sum()
}
