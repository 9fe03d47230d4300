#![allow(clippy::unwrap_used)]

use common::chunk::{BlobId, ChunkId};

use super::{Index, Piece, RECORD_STRIDE_BYTES, Run};

const BLOB: BlobId = BlobId(9);

fn run(segment: u32, offset: u64, count: u32, last_len: u32) -> Run {
    Run {
        segment,
        offset,
        count,
        last_len,
    }
}

/// The run covering each of chunks `0..len` (None where missing).
fn layout(index: &Index, len: u32) -> Vec<Option<(u32, u64, u32)>> {
    (0..len)
        .map(|idx| {
            index.locate(BLOB, idx, 1).ok().map(|pieces| {
                let piece = pieces[0];
                (piece.run.segment, piece.run.offset, piece.run.last_len)
            })
        })
        .collect()
}

#[test]
fn locates_pieces_across_runs_and_reports_the_first_missing_chunk() {
    let mut index = Index::default();
    index.insert(BLOB, 0, run(1, 8, 4, 1024));
    index.insert(BLOB, 4, run(2, 8, 2, 10));
    assert_eq!(
        index.locate(BLOB, 2, 4).unwrap(),
        vec![
            Piece {
                first_index: 2,
                run: run(1, 8 + 2 * RECORD_STRIDE_BYTES, 2, 1024)
            },
            Piece {
                first_index: 4,
                run: run(2, 8, 2, 10)
            },
        ]
    );
    assert_eq!(
        index.locate(BLOB, 5, 2),
        Err(ChunkId {
            blob: BLOB,
            index: 6
        })
    );
    assert_eq!(
        index.locate(BlobId(8), 0, 1),
        Err(ChunkId {
            blob: BlobId(8),
            index: 0
        })
    );
    assert_eq!(
        index.locate(BlobId(10), 0, 1),
        Err(ChunkId {
            blob: BlobId(10),
            index: 0
        })
    );
    assert_eq!(index.chunks_count(), 6);
    assert_eq!(index.live_bytes(), 5 * 1024 + 10);
}

#[test]
fn a_new_run_replaces_the_parts_of_older_runs_it_covers() {
    let mut index = Index::default();
    index.insert(BLOB, 0, run(1, 0, 6, 7));
    // Rewrite chunks 2..4: the old run is split around them.
    index.insert(BLOB, 2, run(2, 0, 2, 1024));
    let stride = RECORD_STRIDE_BYTES;
    assert_eq!(
        layout(&index, 7),
        vec![
            Some((1, 0, 1024)),
            Some((1, stride, 1024)),
            Some((2, 0, 1024)),
            Some((2, stride, 1024)),
            Some((1, 4 * stride, 1024)),
            Some((1, 5 * stride, 7)),
            None,
        ]
    );
    assert_eq!(index.runs_count(), 3);
    assert_eq!(index.chunks_count(), 6);
    assert_eq!(index.live_bytes(), 5 * 1024 + 7);
    // A run over the tail and beyond replaces the tail.
    index.insert(BLOB, 5, run(3, 0, 3, 1));
    assert_eq!(index.chunks_count(), 8);
    assert_eq!(index.live_bytes(), 7 * 1024 + 1);
    // An identical rewrite (a retried batch) leaves one run.
    index.insert(BLOB, 5, run(4, 0, 3, 1));
    assert_eq!(index.runs_count(), 4);
    assert_eq!(index.chunks_count(), 8);
}

#[test]
fn removing_a_blob_forgets_all_its_runs_and_nothing_else() {
    let mut index = Index::default();
    index.insert(BLOB, 0, run(1, 0, 3, 1024));
    index.insert(BLOB, 3, run(2, 0, 1, 5));
    index.insert(BlobId(10), 0, run(1, 0, 1, 3));
    assert!(index.remove_blob(BLOB));
    assert!(!index.remove_blob(BLOB));
    assert_eq!(index.chunks_count(), 1);
    assert_eq!(index.live_bytes(), 3);
    assert!(index.locate(BlobId(10), 0, 1).is_ok());
}

#[test]
fn relocating_moves_only_the_parts_still_at_their_old_place() {
    let stride = RECORD_STRIDE_BYTES;
    let mut index = Index::default();
    index.insert(BLOB, 0, run(1, 100, 6, 9));
    index.insert(BlobId(10), 0, run(1, 100 + 6 * stride, 1, 5));
    let segment_bytes = index.segment_record_bytes(1);
    assert_eq!(segment_bytes, (5 * stride + 28 + 9) + (28 + 5));
    // Chunk 2 was rewritten elsewhere while the segment was copied.
    index.insert(BLOB, 2, run(2, 8, 1, 1024));
    assert_eq!(
        index.still_at(BLOB, 0, 6, 1, 100),
        vec![
            (0, run(1, 100, 2, 1024)),
            (3, run(1, 100 + 3 * stride, 3, 9))
        ]
    );
    // The copy put the six records at offset 8 of the new file.
    let moved = index.relocate(BLOB, 0, 6, (1, 100), (1, 8));
    assert_eq!(moved, 4 * stride + 28 + 9);
    assert_eq!(
        layout(&index, 6),
        vec![
            Some((1, 8, 1024)),
            Some((1, 8 + stride, 1024)),
            Some((2, 8, 1024)),
            Some((1, 8 + 3 * stride, 1024)),
            Some((1, 8 + 4 * stride, 1024)),
            Some((1, 8 + 5 * stride, 9)),
        ]
    );
    // Nothing is left at the old place: a second relocation moves nothing.
    assert_eq!(index.relocate(BLOB, 0, 6, (1, 100), (1, 8)), 0);
    assert!(index.is_at(
        ChunkId {
            blob: BLOB,
            index: 5
        },
        1,
        8 + 5 * stride
    ));
    assert!(!index.is_at(
        ChunkId {
            blob: BLOB,
            index: 2
        },
        1,
        8 + 2 * stride
    ));
    assert_eq!(index.chunks_count(), 7);
    assert_eq!(
        index.segment_record_bytes(1) + index.segment_record_bytes(2),
        segment_bytes
    );
    // A merge moves runs to another segment, and their bytes with them.
    let moved = index.relocate(BlobId(10), 0, 1, (1, 100 + 6 * stride), (3, 8));
    assert_eq!(moved, 28 + 5);
    assert_eq!(index.segment_record_bytes(3), 28 + 5);
    assert_eq!(
        index.locate(BlobId(10), 0, 1).unwrap()[0].run,
        run(3, 8, 1, 5)
    );
}

#[test]
fn blob_counts_list_blobs_in_order_a_page_at_a_time() {
    let mut index = Index::default();
    index.insert(BlobId(3), 0, run(1, 0, 4, 1024));
    index.insert(BlobId(3), 10, run(1, 0, 2, 1));
    index.insert(BlobId(1), 0, run(1, 0, 1, 1));
    index.insert(BlobId(8), 0, run(1, 0, 7, 1));
    assert_eq!(
        index.blob_counts(BlobId(0), 10),
        vec![(BlobId(1), 1), (BlobId(3), 6), (BlobId(8), 7)]
    );
    assert_eq!(
        index.blob_counts(BlobId(0), 2),
        vec![(BlobId(1), 1), (BlobId(3), 6)]
    );
    assert_eq!(index.blob_counts(BlobId(4), 2), vec![(BlobId(8), 7)]);
    assert_eq!(index.blob_counts(BlobId(9), 2), vec![]);
    assert_eq!(index.blob_counts(BlobId(0), 0), vec![]);
}
