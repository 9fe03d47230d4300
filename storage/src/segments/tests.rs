#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use common::chunk::BlobId;

use super::{Contents, Segments};
use crate::record::TOMBSTONE_BYTES;

const X: BlobId = BlobId(7);
const Y: BlobId = BlobId(8);

fn contents(chunk_blobs: &[BlobId], tombstone_blobs: &[BlobId]) -> Contents {
    Contents {
        chunk_blobs: chunk_blobs.iter().copied().collect::<BTreeSet<_>>(),
        tombstone_blobs: tombstone_blobs.to_vec(),
    }
}

#[test]
fn a_tombstone_is_needed_only_while_an_older_segment_holds_its_blob() {
    let mut segments = Segments::default();
    for id in 1..=3 {
        segments.add(id, 8);
    }
    segments.note_chunk(X, 1);
    segments.note_chunk(Y, 2);
    // X's tombstone in 2 kills X's records in 1; Y's in 2 kills only
    // records of its own segment, which its rewrite drops anyway.
    segments.note_tombstone(X, 2);
    segments.note_tombstone(Y, 2);
    segments.note_tombstone(X, 3);
    assert!(segments.tombstone_needed(X, 2));
    assert!(!segments.tombstone_needed(Y, 2));
    assert!(!segments.tombstone_needed(X, 1));
    assert_eq!(segments.needed_tombstone_bytes(2), TOMBSTONE_BYTES);
    assert_eq!(segments.needed_tombstone_bytes(3), TOMBSTONE_BYTES);

    // Segment 1 is rewritten without X: no tombstone of X is needed now.
    segments.replace(1, 8, &contents(&[X], &[]), &contents(&[], &[]));
    assert!(!segments.tombstone_needed(X, 2));
    assert_eq!(segments.needed_tombstone_bytes(2), 0);
    assert_eq!(segments.needed_tombstone_bytes(3), 0);

    // Segment 2 is rewritten keeping its Y records and no tombstone.
    segments.replace(2, 8, &contents(&[Y], &[X, Y]), &contents(&[Y], &[]));
    assert!(segments.tombstone_needed(Y, 3));
    assert!(!segments.tombstone_needed(X, 3));
}

#[test]
fn a_new_home_in_an_older_segment_makes_later_tombstones_needed() {
    // Replay notes segments in id order, but the counts must not depend on
    // it: a home noted after the tombstone still counts.
    let mut segments = Segments::default();
    segments.add(1, 8);
    segments.add(2, 8);
    segments.note_tombstone(X, 2);
    segments.note_tombstone(X, 2);
    assert_eq!(segments.needed_tombstone_bytes(2), 0);
    segments.note_chunk(X, 1);
    assert_eq!(segments.needed_tombstone_bytes(2), 2 * TOMBSTONE_BYTES);
    segments.remove(1, &contents(&[X], &[]));
    assert_eq!(segments.needed_tombstone_bytes(2), 0);
}

#[test]
fn lengths_add_up_to_the_disk_bytes() {
    let mut segments = Segments::default();
    segments.add(1, 8);
    segments.add(2, 8);
    segments.grow(2, 100);
    assert_eq!(segments.disk_bytes(), 116);
    segments.replace(2, 50, &Contents::default(), &Contents::default());
    assert_eq!(segments.len(2), 50);
    assert_eq!(segments.disk_bytes(), 58);
    segments.remove(1, &Contents::default());
    assert_eq!(segments.disk_bytes(), 50);
    assert_eq!(segments.ids().collect::<Vec<_>>(), vec![2]);
}

mod property {
    use std::collections::{BTreeMap, BTreeSet};

    use common::chunk::BlobId;
    use common::rng::Rng;

    use super::super::{Contents, Segments};
    use crate::record::TOMBSTONE_BYTES;

    /// Each segment's length and records, kept plainly.
    #[derive(Clone, Default)]
    struct ModelSegment {
        len: u64,
        chunk_blobs: BTreeSet<BlobId>,
        tombstone_blobs: Vec<BlobId>,
    }

    fn contents(segment: &ModelSegment) -> Contents {
        Contents {
            chunk_blobs: segment.chunk_blobs.clone(),
            tombstone_blobs: segment.tombstone_blobs.clone(),
        }
    }

    /// A tombstone must stay while an older segment holds its blob.
    fn needed(model: &BTreeMap<u32, ModelSegment>, blob: BlobId, segment: u32) -> bool {
        model
            .range(..segment)
            .any(|(_, older)| older.chunk_blobs.contains(&blob))
    }

    fn check(segments: &Segments, model: &BTreeMap<u32, ModelSegment>) {
        assert_eq!(
            segments.ids().collect::<Vec<_>>(),
            model.keys().copied().collect::<Vec<_>>()
        );
        assert_eq!(
            segments.disk_bytes(),
            model.values().map(|segment| segment.len).sum::<u64>()
        );
        for (&id, segment) in model {
            assert_eq!(segments.len(id), segment.len);
            let needed_count = segment
                .tombstone_blobs
                .iter()
                .filter(|&&blob| needed(model, blob, id))
                .count() as u64;
            assert_eq!(
                segments.needed_tombstone_bytes(id),
                needed_count * TOMBSTONE_BYTES,
                "segment {id}"
            );
            for blob in 0..5 {
                assert_eq!(
                    segments.tombstone_needed(BlobId(blob), id),
                    needed(model, BlobId(blob), id)
                );
            }
        }
    }

    #[test]
    fn random_records_rewrites_and_deletions_agree_with_a_plain_model() {
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let mut segments = Segments::default();
            let mut model: BTreeMap<u32, ModelSegment> = BTreeMap::new();
            let mut next_id = 1;
            for _ in 0..300 {
                let ids: Vec<u32> = model.keys().copied().collect();
                let blob = BlobId(rng.below(5));
                match rng.below(10) {
                    0 => {
                        segments.add(next_id, 8);
                        model.insert(
                            next_id,
                            ModelSegment {
                                len: 8,
                                ..ModelSegment::default()
                            },
                        );
                        next_id += 1;
                    }
                    1..=3 if !ids.is_empty() => {
                        let id = *rng.pick(&ids);
                        segments.note_chunk(blob, id);
                        segments.grow(id, 1052);
                        let segment = model.get_mut(&id).unwrap();
                        segment.chunk_blobs.insert(blob);
                        segment.len += 1052;
                    }
                    4 | 5 if !ids.is_empty() => {
                        let id = *rng.pick(&ids);
                        segments.note_tombstone(blob, id);
                        segments.grow(id, TOMBSTONE_BYTES);
                        let segment = model.get_mut(&id).unwrap();
                        segment.tombstone_blobs.push(blob);
                        segment.len += TOMBSTONE_BYTES;
                    }
                    6 | 7 if !ids.is_empty() => {
                        // A rewrite keeps some of what the segment held.
                        let id = *rng.pick(&ids);
                        let old = model[&id].clone();
                        let kept = ModelSegment {
                            len: 8 + rng.below(old.len),
                            chunk_blobs: old
                                .chunk_blobs
                                .iter()
                                .copied()
                                .filter(|_| rng.chance(50))
                                .collect(),
                            tombstone_blobs: old
                                .tombstone_blobs
                                .iter()
                                .copied()
                                .filter(|_| rng.chance(50))
                                .collect(),
                        };
                        segments.replace(id, kept.len, &contents(&old), &contents(&kept));
                        model.insert(id, kept);
                    }
                    8 if !ids.is_empty() => {
                        let id = *rng.pick(&ids);
                        let old = model.remove(&id).unwrap();
                        segments.remove(id, &contents(&old));
                    }
                    _ => {}
                }
                check(&segments, &model);
            }
        }
    }
}
