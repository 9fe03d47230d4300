#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use super::{
    LIVE_PERCENT_MAX, MERGE_SEGMENT_BYTES_MAX, MERGE_SEGMENTS_MIN, Order, Plan,
    SEAL_ACTIVE_BYTES_MIN, SegmentStat, plan,
};
use crate::record::SEGMENT_MAGIC_BYTES;

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
