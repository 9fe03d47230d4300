#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::chunk::BlobId;
use common::wire::Chunk;

use super::{
    LIVE_PERCENT_MAX, MERGE_SEGMENT_BYTES_MAX, MERGE_SEGMENTS_MIN, Order, Outcome, Pacer, Plan,
    SEAL_ACTIVE_BYTES_MIN, SegmentStat, compact_group, copy_live, finish, pass, plan, put_in_place,
};
use crate::error::StorageError;
use crate::index::RECORD_HEADER_BYTES;
use crate::store::{SEGMENT_MAGIC_BYTES, Store, segment_path, temp_path};
use crate::test_support::{chunks, chunks_seeded, segment_files_bytes, temp_dir};

const URGENT: Order = Order {
    urgent: true,
    reclaim_bytes: 0,
};

fn stat(id: u32, len: u64, live_bytes: u64) -> SegmentStat {
    SegmentStat {
        id,
        len,
        kept_bytes: SEGMENT_MAGIC_BYTES + live_bytes,
    }
}

fn plan_of(active_id: u32, stats: &[SegmentStat], order: Order) -> Plan {
    plan(active_id, stats, order, &BTreeSet::new())
}

/// Rewrites closed segment `id` now, unpaced.
fn compact(store: &Store, id: u32) -> Outcome {
    compact_ids(store, &[id])
}

/// Rewrites the consecutive closed segments `group` as one, unpaced.
fn compact_ids(store: &Store, group: &[u32]) -> Outcome {
    let mut pacer = Pacer::new(&store.compaction, true);
    compact_group(store, group, &mut pacer).unwrap()
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
fn the_live_fraction_is_live_records_over_segment_bytes() {
    // 49 live bytes of 100 is sparse; 50 is not.
    assert!(stat(1, 100, 49).is_sparse());
    assert!(!stat(1, 100, 50).is_sparse());
    assert_eq!(LIVE_PERCENT_MAX, 50);
    let half_dead = stat(1, 1000, 400);
    assert_eq!(half_dead.live_bytes(), 400);
    assert_eq!(half_dead.dead_bytes(), 1000 - 400 - SEGMENT_MAGIC_BYTES);
    // A compacted segment is all live.
    assert!(!stat(1, SEGMENT_MAGIC_BYTES + 10, 10).is_sparse());
}

#[test]
fn a_pass_chooses_sparse_and_empty_closed_segments_oldest_first() {
    let big = MERGE_SEGMENT_BYTES_MAX;
    let stats = [
        stat(1, big, big * 6 / 10), // dense: kept
        stat(2, big, big / 10),     // sparse
        stat(3, big, big * 7 / 10), // dense: kept
        stat(4, 8, 0),              // magic only: deleted
        stat(5, big, 0),            // all dead
        stat(6, 100_000, 1_000),    // the active one, small and sparse
    ];
    assert_eq!(
        plan_of(6, &stats, Order::BACKGROUND),
        Plan {
            seal_active: false,
            groups: vec![vec![2], vec![4], vec![5]]
        }
    );
    // An urgent order seals the sparse active segment at any size.
    assert_eq!(
        plan_of(6, &stats, URGENT),
        Plan {
            seal_active: true,
            groups: vec![vec![2], vec![4], vec![5], vec![6]]
        }
    );
    // In the background, only from SEAL_ACTIVE_BYTES_MIN on.
    let big_active = [stat(6, SEAL_ACTIVE_BYTES_MIN, 1_000)];
    assert!(plan_of(6, &big_active, Order::BACKGROUND).seal_active);
    // An active segment that is only its magic is never sealed.
    assert!(plan_of(6, &[stat(6, 8, 0)], URGENT).groups.is_empty());
    // Abandoned segments are left alone, and split groups.
    let abandoned = BTreeSet::from([2, 4]);
    assert_eq!(
        plan(6, &stats, Order::BACKGROUND, &abandoned).groups,
        vec![vec![5]]
    );
}

#[test]
fn runs_of_small_segments_are_merged_a_few_at_a_time() {
    let small = MERGE_SEGMENT_BYTES_MAX / 8;
    let dense = |id| stat(id, small, small - 100);
    let few: Vec<SegmentStat> = (1..MERGE_SEGMENTS_MIN as u32).map(dense).collect();
    assert!(plan_of(99, &few, Order::BACKGROUND).groups.is_empty());
    let mut enough: Vec<SegmentStat> = (1..=MERGE_SEGMENTS_MIN as u32).map(dense).collect();
    let all: Vec<u32> = (1..=MERGE_SEGMENTS_MIN as u32).collect();
    assert_eq!(plan_of(99, &enough, Order::BACKGROUND).groups, vec![all]);
    // A big dense segment in the middle splits the run.
    enough[1] = stat(2, MERGE_SEGMENT_BYTES_MAX, MERGE_SEGMENT_BYTES_MAX);
    assert!(plan_of(99, &enough, Order::BACKGROUND).groups.is_empty());
    // A wasteful segment is rewritten alone when no merge takes it.
    let big = MERGE_SEGMENT_BYTES_MAX;
    let with_sparse = [dense(1), stat(2, small, 100), dense(3), stat(4, big, big)];
    assert_eq!(
        plan_of(99, &with_sparse, Order::BACKGROUND).groups,
        vec![vec![2]]
    );
    // A merge never copies a big segment to absorb a few tiny ones.
    let tiny = |id| stat(id, 10_000, 10_000);
    let lopsided = [dense(1), tiny(2), tiny(3), tiny(4), tiny(5), tiny(6)];
    assert_eq!(
        plan_of(99, &lopsided, Order::BACKGROUND).groups,
        vec![vec![2, 3, 4, 5, 6]]
    );
    // Nor merges across a segment it may not touch.
    let abandoned = BTreeSet::from([4]);
    assert!(
        plan(99, &lopsided, Order::BACKGROUND, &abandoned)
            .groups
            .is_empty()
    );
    // A group never keeps more than a segment's worth.
    let near_max: Vec<SegmentStat> = (1..=8).map(|id| stat(id, big - 1, big - 100)).collect();
    assert_eq!(
        plan_of(99, &near_max, Order::BACKGROUND).groups,
        vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]]
    );
}

#[test]
fn a_reclaim_takes_the_deadest_segments_until_it_is_covered() {
    let big = MERGE_SEGMENT_BYTES_MAX;
    let stats = [
        stat(1, big, big - 3000), // 2992 dead
        stat(2, big, big - 4000), // 3992 dead
        stat(3, big, big - 1000), // 992 dead
        stat(4, big, big - 2000), // active: 1992 dead, minus a new magic
    ];
    let reclaim = |reclaim_bytes| Order {
        urgent: true,
        reclaim_bytes,
    };
    assert!(plan_of(4, &stats, reclaim(0)).groups.is_empty());
    assert_eq!(plan_of(4, &stats, reclaim(3000)).groups, vec![vec![2]]);
    assert_eq!(
        plan_of(4, &stats, reclaim(4000)).groups,
        vec![vec![1], vec![2]]
    );
    let everything = plan_of(4, &stats, reclaim(1_000_000));
    assert_eq!(everything.groups, vec![vec![1], vec![2], vec![3], vec![4]]);
    assert!(everything.seal_active);
}

#[test]
fn a_rewrite_keeps_exactly_the_live_chunks_byte_exact() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let kept_sizes = [1024, 1024, 1024, 1024, 1024, 7];
    let kept = chunks(1, &kept_sizes);
    store.put_batch(&kept).unwrap();
    store.put_batch(&chunks(2, &[1024; 20])).unwrap();
    store.put_batch(&chunks(3, &[1024, 500])).unwrap();
    // A retried batch rewrites chunks 2..4 of blob 1 in place of the first.
    store.put_batch(&kept[2..4]).unwrap();
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
    store.put_batch(&chunks(1, &[1024, 1024, 1024])).unwrap();
    store.put_batch(&chunks(2, &[1024, 1024, 1024])).unwrap();
    store.put_batch(&chunks(3, &[1024, 1024])).unwrap();
    store.put_batch(&chunks(9, &[1024; 30])).unwrap();
    store.delete_blob(BlobId(9)).unwrap();
    let id = seal(&store);

    let mut pacer = Pacer::new(&store.compaction, true);
    let copy = copy_live(&store, &[id], &mut pacer).unwrap().unwrap();
    // Meanwhile: blob 1 is deleted, chunk 2/1 rewritten with other bytes.
    store.delete_blob(BlobId(1)).unwrap();
    let rewritten = chunks_seeded(2, &[1024, 1024, 1024], 5);
    store.put_batch(&rewritten[1..2]).unwrap();
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
    store.put_batch(&chunks(1, &[1024, 1024])).unwrap();
    store.put_batch(&chunks(5, &[300])).unwrap();
    let first = seal(&store);
    store.put_batch(&chunks(2, &[1024; 10])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    store.delete_blob(BlobId(2)).unwrap();
    store.put_batch(&chunks(6, &[1024])).unwrap();
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
    store.put_batch(&chunks(1, &[1024; 8])).unwrap();
    let first = seal(&store);
    store.put_batch(&chunks(2, &[10])).unwrap();
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
        store.put_batch(&chunks(1, &[1024, 1024, 3])).unwrap();
        store.put_batch(&chunks(2, &[1024; 5])).unwrap();
        store.delete_blob(BlobId(2)).unwrap();
        let id = seal(&store);
        let mut pacer = Pacer::new(&store.compaction, true);
        let copy = copy_live(&store, &[id], &mut pacer).unwrap().unwrap();
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
        store.put_batch(&chunks(1, &[1024, 1024, 3])).unwrap();
        store.put_batch(&chunks(2, &[1024; 5])).unwrap();
        store.put_batch(&chunks(3, &[1024; 5])).unwrap();
        store.delete_blob(BlobId(2)).unwrap();
        let id = seal(&store);
        let mut pacer = Pacer::new(&store.compaction, true);
        let copy = copy_live(&store, &[id], &mut pacer).unwrap().unwrap();
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
    store.put_batch(&chunks(2, &[1024; 6])).unwrap();
    store.put_batch(&kept).unwrap();
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
    store.put_batch(&chunks(1, &[1024; 4])).unwrap();
    store.put_batch(&chunks(2, &[1024; 4])).unwrap();
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
    store.put_batch(&blob1).unwrap();
    store.put_batch(&chunks(9, &[1024, 1024])).unwrap();
    seal(store);
    store.put_batch(&chunks(2, &[1024, 7])).unwrap();
    store.delete_blob(BlobId(9)).unwrap();
    seal(store);
    store.put_batch(&rewritten[1..]).unwrap();
    store.put_batch(&chunks(4, &[1024])).unwrap();
    seal(store);
    store.put_batch(&chunks(5, &[33])).unwrap();
    seal(store);
    store.put_batch(&chunks(6, &[1])).unwrap();
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
        let mut pacer = Pacer::new(&store.compaction, true);
        let copy = copy_live(&store, &[1, 2, 3, 4], &mut pacer)
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
    store.put_batch(&chunks(1, &[1024; 200])).unwrap();
    store.put_batch(&chunks(2, &[1024; 3])).unwrap();
    store.delete_blob(BlobId(1)).unwrap();
    crate::test_support::with_compactor(&store, || store.compaction.request_pass(0));
    assert_eq!(
        store.usage().disk_bytes,
        2 * SEGMENT_MAGIC_BYTES + record_bytes(&[1024; 3])
    );
    assert_readable(&store, &chunks(2, &[1024; 3]));
    fs::remove_dir_all(dir).unwrap();
}

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
struct Dice(u64);

impl Dice {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[test]
fn puts_rewrites_deletes_and_reads_race_compaction_without_losing_a_byte() {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    const WRITERS: u64 = 4;
    const STEPS: u64 = 400;
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let writing_done = AtomicBool::new(false);
    // Each writer owns the blobs `writer + WRITERS * n`, so its model of
    // them is exact.
    let models: Vec<BTreeMap<u64, Vec<Chunk>>> = thread::scope(|scope| {
        let compactor = scope.spawn(|| {
            let mut abandoned = BTreeSet::new();
            let mut passes = 0;
            while !writing_done.load(Ordering::Relaxed) {
                pass(&store, URGENT, &mut abandoned);
                passes += 1;
            }
            assert!(abandoned.is_empty());
            passes
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = &store;
                scope.spawn(move || {
                    let mut dice = Dice(writer * 7919 + 17);
                    let mut model: BTreeMap<u64, Vec<Chunk>> = BTreeMap::new();
                    let mut next_blob = writer + 1;
                    for step in 0..STEPS {
                        let blobs: Vec<u64> = model.keys().copied().collect();
                        let pick = |dice: &mut Dice| blobs[dice.below(blobs.len() as u64) as usize];
                        match dice.below(10) {
                            0..=3 => {
                                let count = 1 + dice.below(40) as usize;
                                let mut sizes = vec![1024; count];
                                sizes[count - 1] = 1 + dice.below(1024) as usize;
                                let written = chunks_seeded(next_blob, &sizes, step as usize);
                                store.put_batch(&written).unwrap();
                                model.insert(next_blob, written);
                                next_blob += WRITERS;
                            }
                            4 | 5 if !blobs.is_empty() => {
                                // A retried batch: some chunks again, other bytes.
                                let blob = pick(&mut dice);
                                let held = &model[&blob];
                                let sizes: Vec<usize> =
                                    held.iter().map(|chunk| chunk.data.len()).collect();
                                let fresh = chunks_seeded(blob, &sizes, step as usize + 1);
                                let start = dice.below(sizes.len() as u64) as usize;
                                let end =
                                    start + 1 + dice.below((sizes.len() - start) as u64) as usize;
                                store.put_batch(&fresh[start..end]).unwrap();
                                let held = model.get_mut(&blob).unwrap();
                                held[start..end].clone_from_slice(&fresh[start..end]);
                            }
                            6 if !blobs.is_empty() => {
                                let blob = pick(&mut dice);
                                store.delete_blob(BlobId(blob)).unwrap();
                                model.remove(&blob);
                            }
                            7 => {
                                let (active_id, _) = store.segment_stats();
                                store.seal_active(active_id).unwrap();
                            }
                            _ if !blobs.is_empty() => {
                                let blob = pick(&mut dice);
                                let held = &model[&blob];
                                let count = held.len() as u32;
                                assert_eq!(&store.get_run(BlobId(blob), 0, count).unwrap(), held);
                            }
                            _ => {}
                        }
                    }
                    model
                })
            })
            .collect();
        let models = writers
            .into_iter()
            .map(|writer| writer.join().unwrap())
            .collect();
        writing_done.store(true, Ordering::Relaxed);
        assert!(compactor.join().unwrap() > 0);
        models
    });
    let check = |store: &Store| {
        for model in &models {
            for (&blob, held) in model {
                let count = held.len() as u32;
                assert_eq!(&store.get_run(BlobId(blob), 0, count).unwrap(), held);
            }
        }
        let live_chunks: usize = models
            .iter()
            .flat_map(|model| model.values())
            .map(Vec::len)
            .sum();
        assert_eq!(store.usage().chunks_count, live_chunks as u64);
    };
    check(&store);
    pass(&store, URGENT, &mut BTreeSet::new());
    check(&store);
    assert_eq!(store.usage().disk_bytes, segment_files_bytes(&dir));
    drop(store);
    let (store, recovery) = Store::open(&dir, None).unwrap();
    assert!(recovery.notes.is_empty(), "{:?}", recovery.notes);
    check(&store);
    fs::remove_dir_all(dir).unwrap();
}
