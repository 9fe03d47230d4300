#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::chunk::{BlobId, ChunkId};
use common::wire::Chunk;

use super::{RECORD_HEADER_BYTES, SEGMENT_MAGIC, Store, segment_path};
use crate::error::StorageError;

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "harbour-store-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn chunks(blob: u64, sizes: &[usize]) -> Vec<Chunk> {
    sizes
        .iter()
        .enumerate()
        .map(|(index, &len)| {
            let data = (0..len).map(|i| (i * 7 + index) as u8).collect();
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

#[test]
fn stores_reads_and_deletes_runs() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let batch = chunks(1, &[1024, 1024, 3]);
    store.put_batch(&batch).unwrap();
    assert_eq!(store.get_run(BlobId(1), 0, 3).unwrap(), batch);
    assert_eq!(store.get_run(BlobId(1), 1, 2).unwrap(), batch[1..]);
    assert!(matches!(
        store.get_run(BlobId(1), 2, 2),
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(store.usage().live_bytes, 2051);
    store.delete_blob(BlobId(1)).unwrap();
    assert!(matches!(
        store.get_run(BlobId(1), 0, 1),
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(store.usage().live_bytes, 0);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reopening_rebuilds_the_index_and_keeps_deletes() {
    let dir = temp_dir();
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_batch(&chunks(1, &[10, 20])).unwrap();
        store.put_batch(&chunks(2, &[30])).unwrap();
        store.delete_blob(BlobId(1)).unwrap();
    }
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.chunks_count, 1);
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(store.get_run(BlobId(2), 0, 1).unwrap(), chunks(2, &[30]));
    assert!(store.get_run(BlobId(1), 0, 1).is_err());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_served() {
    let dir = temp_dir();
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_batch(&chunks(1, &[100])).unwrap();
        store.put_batch(&chunks(2, &[100])).unwrap();
    }
    let path = segment_path(&dir, 1);
    let full_len = fs::metadata(&path).unwrap().len();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full_len - 50).unwrap();
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.chunks_count, 1);
    assert!(
        recovery.notes.iter().any(|note| note.contains("cut")),
        "{:?}",
        recovery.notes
    );
    let expected_len = (SEGMENT_MAGIC.len() + RECORD_HEADER_BYTES + 100) as u64;
    assert_eq!(fs::metadata(&path).unwrap().len(), expected_len);
    assert_eq!(store.get_run(BlobId(1), 0, 1).unwrap(), chunks(1, &[100]));
    // The store appends on a record boundary after the cut.
    store.put_batch(&chunks(3, &[5])).unwrap();
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_eq!(store.get_run(BlobId(3), 0, 1).unwrap(), chunks(3, &[5]));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_flipped_data_byte_is_reported_as_corruption_never_served() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_batch(&chunks(1, &[100, 100])).unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(&dir, 1))
        .unwrap();
    let at = (SEGMENT_MAGIC.len() + RECORD_HEADER_BYTES + 10) as u64;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], at).unwrap();
    assert!(
        matches!(store.get_run(BlobId(1), 0, 2), Err(StorageError::Corrupt { chunk }) if chunk.index == 0)
    );
    drop(store);
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.chunks_count, 1);
    assert!(matches!(
        store.get_run(BlobId(1), 0, 1),
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(
        store.get_run(BlobId(1), 1, 1).unwrap(),
        chunks(1, &[100, 100])[1..]
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn capacity_refuses_a_batch_that_does_not_fit_and_frees_on_delete() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, Some(2048)).unwrap();
    store.put_batch(&chunks(1, &[1024])).unwrap();
    assert!(matches!(
        store.put_batch(&chunks(2, &[1024, 1])),
        Err(StorageError::Full { .. })
    ));
    assert!(store.get_run(BlobId(2), 0, 1).is_err());
    store.delete_blob(BlobId(1)).unwrap();
    store.put_batch(&chunks(2, &[1024, 1024])).unwrap();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_of_many_batches_costs_a_handful_of_index_entries() {
    let dir = temp_dir();
    let sizes = vec![1024; 1024];
    let all = chunks(5, &sizes);
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        for batch in all.chunks(256) {
            store.put_batch(batch).unwrap();
        }
        assert_eq!(store.get_run(BlobId(5), 250, 10).unwrap(), all[250..260]);
    }
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.chunks_count, 1024);
    assert_eq!(
        recovery.runs_count, 1,
        "contiguous batches merge into one run"
    );
    assert_eq!(store.get_run(BlobId(5), 1000, 24).unwrap(), all[1000..]);
    // A retried batch replaces the chunks it rewrites, and reads still verify.
    store.put_batch(&all[100..200]).unwrap();
    assert_eq!(store.get_run(BlobId(5), 90, 256).unwrap(), all[90..346]);
    assert_eq!(store.usage().live_bytes, 1024 * 1024);
    fs::remove_dir_all(dir).unwrap();
}
