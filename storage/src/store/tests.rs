#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use common::chunk::BlobId;

use super::Store;
use super::files::{segment_path, temp_path};
use crate::error::StorageError;
use crate::record::{RECORD_HEADER_BYTES, SEGMENT_MAGIC};
use crate::test_support::{chunks, segment_files_bytes, temp_dir, with_compactor};

#[test]
fn stores_reads_and_deletes_runs() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let batch = chunks(1, &[1024, 1024, 3]);
    store.put_chunks(&batch).unwrap();
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
        store.put_chunks(&chunks(1, &[10, 20])).unwrap();
        store.put_chunks(&chunks(2, &[30])).unwrap();
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
fn one_call_deletes_many_blobs_durably_and_skips_the_absent() {
    let dir = temp_dir();
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        for blob in 1..=4 {
            store.put_chunks(&chunks(blob, &[100, 7])).unwrap();
        }
        let before = segment_files_bytes(&dir);
        store.delete_blobs(&[BlobId(9), BlobId(8)]).unwrap();
        assert_eq!(
            segment_files_bytes(&dir),
            before,
            "nothing held, nothing written"
        );
        store
            .delete_blobs(&[BlobId(1), BlobId(9), BlobId(3)])
            .unwrap();
        assert_eq!(
            segment_files_bytes(&dir),
            before + 2 * RECORD_HEADER_BYTES as u64,
            "one tombstone per blob held"
        );
        assert_eq!(store.usage().live_bytes, 2 * 107);
    }
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.chunks_count, 4);
    for (blob, kept) in [(1, false), (2, true), (3, false), (4, true)] {
        assert_eq!(
            store.get_run(BlobId(blob), 0, 2).is_ok(),
            kept,
            "blob {blob}"
        );
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_served() {
    let dir = temp_dir();
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_chunks(&chunks(1, &[100])).unwrap();
        store.put_chunks(&chunks(2, &[100])).unwrap();
    }
    let path = segment_path(&dir, 1);
    let full_len = segment_files_bytes(&dir);
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
    store.put_chunks(&chunks(3, &[5])).unwrap();
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_eq!(store.get_run(BlobId(3), 0, 1).unwrap(), chunks(3, &[5]));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn small_appends_write_zeros_ahead_which_a_restart_and_a_close_cut_silently() {
    let dir = temp_dir();
    let path = segment_path(&dir, 1);
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_chunks(&chunks(1, &[100])).unwrap();
        let records = segment_files_bytes(&dir);
        assert!(fs::metadata(&path).unwrap().len() > records, "zeros ahead");
        assert_eq!(store.usage().disk_bytes, records, "zeros are not counted");
    }
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(store.get_run(BlobId(1), 0, 1).unwrap(), chunks(1, &[100]));
    store.put_chunks(&chunks(2, &[7])).unwrap();
    // A batch too long to want zeros ahead still lands after the records.
    let long: Vec<usize> = vec![1024; 64];
    store.put_chunks(&chunks(3, &long)).unwrap();
    let (active_id, _) = store.segment_stats();
    assert!(store.seal_active(active_id).unwrap());
    let records = (SEGMENT_MAGIC.len() + 3 * RECORD_HEADER_BYTES + 107 + 64 * 1024) as u64
        + 63 * RECORD_HEADER_BYTES as u64;
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        records,
        "closed: no zeros"
    );
    drop(store);
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(store.get_run(BlobId(2), 0, 1).unwrap(), chunks(2, &[7]));
    assert_eq!(store.get_run(BlobId(3), 0, 64).unwrap(), chunks(3, &long));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_flipped_data_byte_is_reported_as_corruption_never_served() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_chunks(&chunks(1, &[100, 100])).unwrap();
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
fn capacity_caps_disk_bytes_and_a_delete_gives_its_room_back() {
    let dir = temp_dir();
    // Magic (8) + two records of 1024 (2 * 1052) + a tombstone (28) fit;
    // one record more does not.
    let (store, _) = Store::open(&dir, Some(3000)).unwrap();
    with_compactor(&store, || {
        store.put_chunks(&chunks(1, &[1024, 1024])).unwrap();
        assert_eq!(store.usage().disk_bytes, 8 + 2 * 1052);
        assert!(matches!(
            store.put_chunks(&chunks(2, &[1024])),
            Err(StorageError::Full {
                needed_bytes: 1052,
                free_bytes: 888
            })
        ));
        assert!(store.get_run(BlobId(2), 0, 1).is_err());
        // Under a capacity a delete answers once compaction has freed its
        // room: the segment it filled is sealed and, all dead, deleted.
        store.delete_blob(BlobId(1)).unwrap();
        assert_eq!(store.usage().disk_bytes, 8);
        assert_eq!(segment_files_bytes(&dir), 8);
        store.put_chunks(&chunks(2, &[1024, 1024])).unwrap();
        assert_eq!(
            store.get_run(BlobId(2), 0, 2).unwrap(),
            chunks(2, &[1024, 1024])
        );
    });
    drop(store);
    let (store, _) = Store::open(&dir, Some(3000)).unwrap();
    assert!(store.get_run(BlobId(1), 0, 1).is_err());
    assert_eq!(
        store.get_run(BlobId(2), 0, 2).unwrap(),
        chunks(2, &[1024, 1024])
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_put_over_capacity_first_reclaims_dead_records() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, Some(4300)).unwrap();
    with_compactor(&store, || {
        // A retried batch leaves a dead copy of chunk 1/0; the segment is
        // still two-thirds live, too dense for an ordinary pass.
        store.put_chunks(&chunks(1, &[1024])).unwrap();
        store.put_chunks(&chunks(1, &[1024])).unwrap();
        store.put_chunks(&chunks(3, &[1024])).unwrap();
        assert_eq!(store.usage().disk_bytes, 8 + 3 * 1052);
        // 3164 + 2104 > 4300, but not once the dead 1052 are gone.
        store.put_chunks(&chunks(2, &[1024, 1024])).unwrap();
        assert_eq!(store.usage().disk_bytes, 8 + 8 + 4 * 1052);
        assert_eq!(store.usage().disk_bytes, segment_files_bytes(&dir));
        // Past what compaction can free, the answer is 507 at once.
        assert!(matches!(
            store.put_chunks(&chunks(4, &[1024])),
            Err(StorageError::Full { .. })
        ));
        assert_eq!(store.get_run(BlobId(1), 0, 1).unwrap(), chunks(1, &[1024]));
        assert_eq!(store.get_run(BlobId(3), 0, 1).unwrap(), chunks(3, &[1024]));
        assert_eq!(
            store.get_run(BlobId(2), 0, 2).unwrap(),
            chunks(2, &[1024, 1024])
        );
    });
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_a_compaction_thread_a_full_store_refuses_at_once() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, Some(2000)).unwrap();
    store.put_chunks(&chunks(1, &[1024])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    assert!(matches!(
        store.put_chunks(&chunks(2, &[1024])),
        Err(StorageError::Full { .. })
    ));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_leftover_compaction_copy_is_removed_at_start_up() {
    let dir = temp_dir();
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_chunks(&chunks(1, &[100, 200])).unwrap();
    }
    let leftover = temp_path(&dir, 1);
    fs::write(&leftover, b"HRBSEG01 and half a record").unwrap();
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(!leftover.exists());
    assert!(
        recovery
            .notes
            .iter()
            .any(|note| note.contains("unfinished compaction copy")),
        "{:?}",
        recovery.notes
    );
    assert_eq!(recovery.segments_count, 1);
    assert_eq!(
        store.get_run(BlobId(1), 0, 2).unwrap(),
        chunks(1, &[100, 200])
    );
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
            store.put_chunks(batch).unwrap();
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
    store.put_chunks(&all[100..200]).unwrap();
    assert_eq!(store.get_run(BlobId(5), 90, 256).unwrap(), all[90..346]);
    assert_eq!(store.usage().live_bytes, 1024 * 1024);
    fs::remove_dir_all(dir).unwrap();
}
