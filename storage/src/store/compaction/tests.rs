#![allow(clippy::unwrap_used)]

mod race;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::chunk::BlobId;
use common::wire::Chunk;

use super::copy::{copy_live, finish, put_in_place};
use super::plan::{Order, Plan, plan};
use super::{Outcome, Pacing, compact_group, pass};
use crate::error::StorageError;
use crate::record::{RECORD_HEADER_BYTES, SEGMENT_MAGIC_BYTES};
use crate::store::Store;
use crate::store::files::{segment_path, temp_path};
use crate::test_support::{chunks, chunks_seeded, segment_files_bytes, temp_dir};

const URGENT: Order = Order {
    urgent: true,
    reclaim_bytes: 0,
};

fn plan_of(active_id: u32, stats: &[super::plan::SegmentStat], order: Order) -> Plan {
    plan(active_id, stats, order, &BTreeSet::new())
}

/// Rewrites closed segment `id` now, unpaced.
fn compact(store: &Store, id: u32) -> Outcome {
    compact_ids(store, &[id])
}

/// Rewrites the consecutive closed segments `group` as one, unpaced.
fn compact_ids(store: &Store, group: &[u32]) -> Outcome {
    let mut pacing = Pacing::new(&store.compaction, true);
    compact_group(store, group, &mut pacing).unwrap()
}

fn seal(store: &Store) -> u32 {
    let (active_id, _) = store.segment_stats();
    assert!(store.seal_active(active_id).unwrap());
    active_id
}

fn segment_len(dir: &Path, id: u32) -> u64 {
    fs::metadata(segment_path(dir, id)).unwrap().len()
}

fn record_bytes(sizes: &[usize]) -> u64 {
    sizes
        .iter()
        .map(|len| (RECORD_HEADER_BYTES + len) as u64)
        .sum()
}

/// Every chunk of `expected` reads back byte for byte.
fn assert_readable(store: &Store, expected: &[Chunk]) {
    for chunk in expected {
        let read = store.get_run(chunk.id.blob, chunk.id.index, 1).unwrap();
        assert_eq!(read, std::slice::from_ref(chunk), "chunk {}", chunk.id);
    }
}

fn assert_gone(store: &Store, blob: u64) {
    assert!(
        matches!(
            store.get_run(BlobId(blob), 0, 1),
            Err(StorageError::NotFound { .. })
        ),
        "blob {blob} should be gone"
    );
}

#[test]
fn a_rewrite_keeps_exactly_the_live_chunks_byte_exact() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let kept_sizes = [1024, 1024, 1024, 1024, 1024, 7];
    let kept = chunks(1, &kept_sizes);
    store.put_chunks(&kept).unwrap();
    store.put_chunks(&chunks(2, &[1024; 20])).unwrap();
    store.put_chunks(&chunks(3, &[1024, 500])).unwrap();
    // A retried batch rewrites chunks 2..4 of blob 1 in place of the first.
    store.put_chunks(&kept[2..4]).unwrap();
    store.delete_blob(BlobId(2)).unwrap();
    let id = seal(&store);
    let before = store.usage();
    let old_len = segment_len(&dir, id);

    let outcome = compact(&store, id);

    let new_len = SEGMENT_MAGIC_BYTES + record_bytes(&kept_sizes) + record_bytes(&[1024, 500]);
    assert_eq!(outcome, Outcome::Rewritten { old_len, new_len });
    assert_eq!(segment_len(&dir, id), new_len);
    assert!(!temp_path(&dir, id).exists());
    assert_readable(&store, &kept);
    assert_readable(&store, &chunks(3, &[1024, 500]));
    assert_eq!(store.get_run(BlobId(1), 0, 6).unwrap(), kept);
    assert_gone(&store, 2);
    let after = store.usage();
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.chunks_count, before.chunks_count);
    assert_eq!(after.disk_bytes, before.disk_bytes - (old_len - new_len));
    assert_eq!(after.disk_bytes, segment_files_bytes(&dir));
    // Nothing left to do: the rewritten segment is all live.
    assert!(
        plan_of(id + 1, &store.segment_stats().1, URGENT)
            .groups
            .is_empty()
    );
    drop(store);

    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(recovery.chunks_count, 8);
    assert_eq!(store.get_run(BlobId(1), 0, 6).unwrap(), kept);
    assert_readable(&store, &chunks(3, &[1024, 500]));
    assert_gone(&store, 2);
    assert_eq!(store.usage().disk_bytes, after.disk_bytes);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_delete_or_rewrite_during_the_copy_wins() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_chunks(&chunks(1, &[1024, 1024, 1024])).unwrap();
    store.put_chunks(&chunks(2, &[1024, 1024, 1024])).unwrap();
    store.put_chunks(&chunks(3, &[1024, 1024])).unwrap();
    store.put_chunks(&chunks(9, &[1024; 30])).unwrap();
    store.delete_blob(BlobId(9)).unwrap();
    let id = seal(&store);

    let mut pacing = Pacing::new(&store.compaction, true);
    let copy = copy_live(&store, &[id], &mut pacing).unwrap().unwrap();
    // Meanwhile: blob 1 is deleted, chunk 2/1 rewritten with other bytes.
    store.delete_blob(BlobId(1)).unwrap();
    let rewritten = chunks_seeded(2, &[1024, 1024, 1024], 5);
    store.put_chunks(&rewritten[1..2]).unwrap();
    let outcome = finish(&store, copy).unwrap();

    assert!(matches!(outcome, Outcome::Rewritten { .. }), "{outcome:?}");
    let expect_blob2 = [
        chunks(2, &[1024])[0].clone(),
        rewritten[1].clone(),
        chunks(2, &[1024, 1024, 1024])[2].clone(),
    ];
    let check = |store: &Store| {
        assert_gone(store, 1);
        assert_gone(store, 9);
        assert_eq!(store.get_run(BlobId(2), 0, 3).unwrap(), expect_blob2);
        assert_eq!(
            store.get_run(BlobId(3), 0, 2).unwrap(),
            chunks(3, &[1024, 1024])
        );
    };
    check(&store);
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    check(&store);
    // The copies of what died during the copy are reclaimed next time.
    let (_, stats) = store.segment_stats();
    let compacted = stats.iter().find(|stat| stat.id == id).unwrap();
    assert_eq!(compacted.dead_bytes(), record_bytes(&[1024; 4]));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_tombstone_stays_while_an_older_segment_holds_its_blob() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_chunks(&chunks(1, &[1024, 1024])).unwrap();
    store.put_chunks(&chunks(5, &[300])).unwrap();
    let first = seal(&store);
    store.put_chunks(&chunks(2, &[1024; 10])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    store.delete_blob(BlobId(2)).unwrap();
    store.put_chunks(&chunks(6, &[1024])).unwrap();
    let second = seal(&store);

    // Compacting the newer segment first: the tombstone of blob 1 must
    // stay, or its records in the older segment would come back at replay.
    // The tombstone of blob 2 goes with blob 2's records.
    let kept_second = SEGMENT_MAGIC_BYTES + RECORD_HEADER_BYTES as u64 + record_bytes(&[1024]);
    assert!(matches!(
        compact(&store, second),
        Outcome::Rewritten { new_len, .. } if new_len == kept_second
    ));
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_gone(&store, 1);
    assert_gone(&store, 2);
    assert_readable(&store, &chunks(5, &[300]));
    assert_readable(&store, &chunks(6, &[1024]));

    // Once the older records are gone, the tombstone can go too.
    let kept_first = SEGMENT_MAGIC_BYTES + record_bytes(&[300]);
    assert!(matches!(
        compact(&store, first),
        Outcome::Rewritten { new_len, .. } if new_len == kept_first
    ));
    let (_, stats) = store.segment_stats();
    let second_stat = stats.iter().find(|stat| stat.id == second).unwrap();
    assert_eq!(second_stat.dead_bytes(), RECORD_HEADER_BYTES as u64);
    assert!(matches!(
        compact(&store, second),
        Outcome::Rewritten { new_len, .. }
            if new_len == SEGMENT_MAGIC_BYTES + record_bytes(&[1024])
    ));
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_gone(&store, 1);
    assert_gone(&store, 2);
    assert_readable(&store, &chunks(5, &[300]));
    assert_readable(&store, &chunks(6, &[1024]));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_segment_left_with_nothing_is_deleted() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_chunks(&chunks(1, &[1024; 8])).unwrap();
    let first = seal(&store);
    store.put_chunks(&chunks(2, &[10])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    let disk_before = store.usage().disk_bytes;

    let freed_bytes = pass(&store, URGENT, &mut BTreeSet::new());

    assert_eq!(freed_bytes, disk_before - store.usage().disk_bytes);
    assert_eq!(freed_bytes, segment_files_bytes(&dir).abs_diff(disk_before));
    assert!(!segment_path(&dir, first).exists());
    // The active segment, dense, keeps the tombstone of blob 1 for now.
    let usage = store.usage();
    assert_eq!(usage.disk_bytes, segment_files_bytes(&dir));
    assert_eq!(
        usage.disk_bytes,
        SEGMENT_MAGIC_BYTES + record_bytes(&[10]) + RECORD_HEADER_BYTES as u64
    );
    assert_readable(&store, &chunks(2, &[10]));
    drop(store);
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.segments_count, 1);
    assert_gone(&store, 1);
    assert_readable(&store, &chunks(2, &[10]));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_crash_during_the_copy_leaves_the_segment_and_a_copy_start_up_removes() {
    let dir = temp_dir();
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_chunks(&chunks(1, &[1024, 1024, 3])).unwrap();
        store.put_chunks(&chunks(2, &[1024; 5])).unwrap();
        store.delete_blob(BlobId(2)).unwrap();
        let id = seal(&store);
        let mut pacing = Pacing::new(&store.compaction, true);
        let copy = copy_live(&store, &[id], &mut pacing).unwrap().unwrap();
        assert!(copy.temp_path.exists());
        // The process dies here: the copy is neither fsynced nor renamed.
    }
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(!temp_path(&dir, 1).exists(), "{:?}", recovery.notes);
    assert_eq!(recovery.chunks_count, 3);
    assert_eq!(
        store.get_run(BlobId(1), 0, 3).unwrap(),
        chunks(1, &[1024, 1024, 3])
    );
    assert_gone(&store, 2);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_crash_after_the_rename_before_the_index_moved_replays_the_same_chunks() {
    let dir = temp_dir();
    let new_len;
    {
        let (store, _) = Store::open(&dir, None).unwrap();
        store.put_chunks(&chunks(1, &[1024, 1024, 3])).unwrap();
        store.put_chunks(&chunks(2, &[1024; 5])).unwrap();
        store.put_chunks(&chunks(3, &[1024; 5])).unwrap();
        store.delete_blob(BlobId(2)).unwrap();
        let id = seal(&store);
        let mut pacing = Pacing::new(&store.compaction, true);
        let copy = copy_live(&store, &[id], &mut pacing).unwrap().unwrap();
        // Blob 3 dies after the copy: its tombstone in the newer segment
        // must still kill the copied records at replay.
        store.delete_blob(BlobId(3)).unwrap();
        put_in_place(&store, &copy).unwrap();
        new_len = copy.len;
        // The process dies here: the index never moved to the new file.
        // Reads until then used the old file's handle.
        assert_eq!(
            store.get_run(BlobId(1), 0, 3).unwrap(),
            chunks(1, &[1024, 1024, 3])
        );
    }
    assert_eq!(segment_len(&dir, 1), new_len);
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_eq!(recovery.chunks_count, 3);
    assert_eq!(
        store.get_run(BlobId(1), 0, 3).unwrap(),
        chunks(1, &[1024, 1024, 3])
    );
    assert_gone(&store, 2);
    assert_gone(&store, 3);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_read_that_took_the_old_file_keeps_reading_it() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let kept = chunks(1, &[1024, 1024]);
    store.put_chunks(&chunks(2, &[1024; 6])).unwrap();
    store.put_chunks(&kept).unwrap();
    store.delete_blob(BlobId(2)).unwrap();
    let id = seal(&store);
    let (old_file, _) = store.closed_segment(id).unwrap();
    assert!(matches!(compact(&store, id), Outcome::Rewritten { .. }));
    // The old inode is unlinked but alive while a handle holds it: a read
    // that located its run before the swap reads the same bytes.
    let at = SEGMENT_MAGIC_BYTES + record_bytes(&[1024; 6]) + RECORD_HEADER_BYTES as u64;
    let mut data = vec![0u8; 1024];
    old_file.read_exact_at(&mut data, at).unwrap();
    assert_eq!(data, kept[0].data);
    assert_eq!(store.get_run(BlobId(1), 0, 2).unwrap(), kept);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn live_records_past_damage_leave_the_segment_as_it_is() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_chunks(&chunks(1, &[1024; 4])).unwrap();
    store.put_chunks(&chunks(2, &[1024; 4])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    let id = seal(&store);
    // A header of a dead record rots after start-up; blob 2 lies past it.
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(&dir, id))
        .unwrap();
    file.write_all_at(&[0xff], SEGMENT_MAGIC_BYTES + 5).unwrap();
    let old_len = segment_len(&dir, id);

    let mut abandoned = BTreeSet::new();
    pass(&store, URGENT, &mut abandoned);

    assert_eq!(abandoned, BTreeSet::from([id]));
    assert_eq!(segment_len(&dir, id), old_len);
    assert!(!temp_path(&dir, id).exists());
    assert_eq!(
        store.get_run(BlobId(2), 0, 4).unwrap(),
        chunks(2, &[1024; 4])
    );
    fs::remove_dir_all(dir).unwrap();
}

/// Four small closed segments and an active one: blob 1 with its chunk 1
/// rewritten later, blob 9 deleted, blobs 2, 4 and 5 whole. Returns what
/// must read back.
fn small_segments(store: &Store) -> Vec<Chunk> {
    let blob1 = chunks(1, &[1024, 1024, 100]);
    let rewritten = chunks_seeded(1, &[1024, 1024], 3);
    store.put_chunks(&blob1).unwrap();
    store.put_chunks(&chunks(9, &[1024, 1024])).unwrap();
    seal(store);
    store.put_chunks(&chunks(2, &[1024, 7])).unwrap();
    store.delete_blob(BlobId(9)).unwrap();
    seal(store);
    store.put_chunks(&rewritten[1..]).unwrap();
    store.put_chunks(&chunks(4, &[1024])).unwrap();
    seal(store);
    store.put_chunks(&chunks(5, &[33])).unwrap();
    seal(store);
    store.put_chunks(&chunks(6, &[1])).unwrap();
    let mut live = vec![blob1[0].clone(), rewritten[1].clone(), blob1[2].clone()];
    live.extend(chunks(2, &[1024, 7]));
    live.extend(chunks(4, &[1024]));
    live.extend(chunks(5, &[33]));
    live.extend(chunks(6, &[1]));
    live
}

#[test]
fn a_run_of_small_segments_merges_into_the_newest_one() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let live = small_segments(&store);
    let disk_before = store.usage().disk_bytes;

    let outcome = compact_ids(&store, &[1, 2, 3, 4]);

    // Blob 9's records were in segment 1, older than the merged segment's
    // id while segment 1 existed: its tombstone was kept.
    let live_records = record_bytes(&[1024, 1024, 100, 1024, 7, 1024, 33]);
    let tombstone = RECORD_HEADER_BYTES as u64;
    let new_len = SEGMENT_MAGIC_BYTES + live_records + tombstone;
    assert!(
        matches!(outcome, Outcome::Rewritten { new_len: len, .. } if len == new_len),
        "{outcome:?}"
    );
    for id in 1..=3 {
        assert!(!segment_path(&dir, id).exists());
    }
    assert_eq!(segment_len(&dir, 4), new_len);
    assert_readable(&store, &live);
    assert_gone(&store, 9);
    assert_eq!(store.usage().disk_bytes, segment_files_bytes(&dir));
    assert!(store.usage().disk_bytes < disk_before);
    drop(store);

    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert_eq!(recovery.segments_count, 2);
    assert_readable(&store, &live);
    assert_gone(&store, 9);
    // With segment 1 gone for good, the tombstone goes at the next rewrite.
    assert!(matches!(
        compact(&store, 4),
        Outcome::Rewritten { new_len, .. } if new_len == SEGMENT_MAGIC_BYTES + live_records
    ));
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_readable(&store, &live);
    assert_gone(&store, 9);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_crash_after_a_merge_was_renamed_replays_the_same_chunks_with_any_old_segments_left() {
    let dir = temp_dir();
    let live = {
        let (store, _) = Store::open(&dir, None).unwrap();
        let live = small_segments(&store);
        let mut pacing = Pacing::new(&store.compaction, true);
        let copy = copy_live(&store, &[1, 2, 3, 4], &mut pacing)
            .unwrap()
            .unwrap();
        put_in_place(&store, &copy).unwrap();
        // The process dies here, before the older segments are deleted.
        live
    };
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    assert_readable(&store, &live);
    assert_gone(&store, 9);
    drop(store);
    // Or it died having deleted some of them: segment 2 held the tombstone
    // of blob 9, whose records segment 1 still holds.
    fs::remove_file(segment_path(&dir, 2)).unwrap();
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_readable(&store, &live);
    assert_gone(&store, 9);
    // The next pass deletes the leftovers: all they hold is dead.
    pass(&store, URGENT, &mut BTreeSet::new());
    assert!(!segment_path(&dir, 1).exists());
    assert!(!segment_path(&dir, 3).exists());
    assert_readable(&store, &live);
    drop(store);
    let (store, _) = Store::open(&dir, None).unwrap();
    assert_readable(&store, &live);
    assert_gone(&store, 9);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_request_wakes_the_compaction_thread_and_returns_after_its_pass() {
    // (Passes nobody asks for are what the integration tests see: without a
    // capacity, nothing asks.)
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    store.put_chunks(&chunks(1, &[1024; 200])).unwrap();
    store.put_chunks(&chunks(2, &[1024; 3])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    crate::test_support::with_compactor(&store, || store.compaction.request_pass(0));
    assert_eq!(
        store.usage().disk_bytes,
        2 * SEGMENT_MAGIC_BYTES + record_bytes(&[1024; 3])
    );
    assert_readable(&store, &chunks(2, &[1024; 3]));
    fs::remove_dir_all(dir).unwrap();
}
