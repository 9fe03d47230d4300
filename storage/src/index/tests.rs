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
