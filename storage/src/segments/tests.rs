#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use common::chunk::BlobId;

use super::{Contents, Segments, TOMBSTONE_BYTES};

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
