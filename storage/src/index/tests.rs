#![allow(clippy::unwrap_used)]

use common::chunk::{BlobId, ChunkId};

use super::{Index, Piece, Run};
use crate::record::RECORD_STRIDE_BYTES;

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

mod property {
    use std::collections::BTreeMap;

    use common::chunk::{BlobId, ChunkId};
    use common::limits::CHUNK_SIZE_BYTES;
    use common::rng::Rng;

    use super::super::{Index, Run};
    use crate::record::{RECORD_HEADER_BYTES, RECORD_STRIDE_BYTES};

    /// Where each chunk's record is, one entry per chunk: (segment,
    /// offset, data length).
    type Model = BTreeMap<(u64, u32), (u32, u64, u32)>;

    fn random_run(rng: &mut Rng) -> Run {
        let count = 1 + rng.below(12) as u32;
        Run {
            segment: 1 + rng.below(3) as u32,
            offset: 8 + rng.below(50) * RECORD_STRIDE_BYTES,
            count,
            last_len: 1 + rng.below(CHUNK_SIZE_BYTES as u64) as u32,
        }
    }

    fn place(model: &mut Model, blob: u64, first_index: u32, run: &Run) {
        for k in 0..run.count {
            let len = if k + 1 == run.count {
                run.last_len
            } else {
                CHUNK_SIZE_BYTES as u32
            };
            let offset = run.offset + u64::from(k) * RECORD_STRIDE_BYTES;
            model.insert((blob, first_index + k), (run.segment, offset, len));
        }
    }

    fn check(index: &Index, model: &Model, rng: &mut Rng) {
        for blob in 0..4u64 {
            for chunk in 0..40u32 {
                let found = index.locate(BlobId(blob), chunk, 1).ok().map(|pieces| {
                    (
                        pieces[0].run.segment,
                        pieces[0].run.offset,
                        pieces[0].run.last_len,
                    )
                });
                assert_eq!(
                    found,
                    model.get(&(blob, chunk)).copied(),
                    "chunk {blob}:{chunk}"
                );
            }
        }
        assert_eq!(index.chunks_count(), model.len() as u64);
        let live: u64 = model.values().map(|(_, _, len)| u64::from(*len)).sum();
        assert_eq!(index.live_bytes(), live);
        for segment in 1..=3 {
            let bytes: u64 = model
                .values()
                .filter(|(held_in, _, _)| *held_in == segment)
                .map(|(_, _, len)| RECORD_HEADER_BYTES as u64 + u64::from(*len))
                .sum();
            assert_eq!(
                index.segment_record_bytes(segment),
                bytes,
                "segment {segment}"
            );
        }
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        for &(blob, _) in model.keys() {
            *counts.entry(blob).or_insert(0) += 1;
        }
        let listed: Vec<(u64, u64)> = index
            .blob_counts(BlobId(0), usize::MAX)
            .into_iter()
            .map(|(blob, count)| (blob.0, count))
            .collect();
        assert_eq!(listed, counts.into_iter().collect::<Vec<_>>());
        // A random stretch is found whole exactly when every chunk is held,
        // as pieces that tile it.
        let blob = rng.below(4);
        let first = rng.below(40) as u32;
        let count = 1 + rng.below(10) as u32;
        let all_held = (first..first + count).all(|chunk| model.contains_key(&(blob, chunk)));
        match index.locate(BlobId(blob), first, count) {
            Ok(pieces) => {
                assert!(all_held);
                let mut next = first;
                for piece in pieces {
                    assert_eq!(piece.first_index, next);
                    next += piece.run.count;
                }
                assert_eq!(next, first + count);
            }
            Err(missing) => {
                assert!(!all_held);
                assert!(!model.contains_key(&(blob, missing.index)));
            }
        }
    }

    #[test]
    fn random_inserts_forgets_and_moves_agree_with_a_chunk_by_chunk_model() {
        for seed in 0..30 {
            let mut rng = Rng::new(seed);
            let mut index = Index::default();
            let mut model = Model::new();
            for _ in 0..400 {
                let blob = rng.below(4);
                match rng.below(10) {
                    0..=4 => {
                        let first = rng.below(30) as u32;
                        let run = random_run(&mut rng);
                        index.insert(BlobId(blob), first, run);
                        place(&mut model, blob, first, &run);
                    }
                    5 => {
                        let held = index.remove_blob(BlobId(blob));
                        let before = model.len();
                        model.retain(|(held_blob, _), _| *held_blob != blob);
                        assert_eq!(held, model.len() != before);
                    }
                    6 => {
                        let start = rng.below(40) as u32;
                        let end = start + rng.below(10) as u32;
                        index.forget_range(BlobId(blob), start, end);
                        model.retain(|&(held_blob, chunk), _| {
                            held_blob != blob || !(start..end).contains(&chunk)
                        });
                    }
                    7 => {
                        let chunk = rng.below(40) as u32;
                        index.forget_chunk(ChunkId {
                            blob: BlobId(blob),
                            index: chunk,
                        });
                        model.remove(&(blob, chunk));
                    }
                    _ => {
                        // A compaction move of a stretch laid like a run.
                        let first = rng.below(35) as u32;
                        let count = 1 + rng.below(8) as u32;
                        let from = match model.get(&(blob, first)) {
                            Some(&(segment, offset, _)) if rng.chance(80) => (segment, offset),
                            _ => (
                                1 + rng.below(3) as u32,
                                8 + rng.below(50) * RECORD_STRIDE_BYTES,
                            ),
                        };
                        let to = (
                            1 + rng.below(3) as u32,
                            8 + rng.below(50) * RECORD_STRIDE_BYTES,
                        );
                        let moved = index.relocate(BlobId(blob), first, count, from, to);
                        let mut expected_moved = 0;
                        for k in 0..count {
                            let shift = u64::from(k) * RECORD_STRIDE_BYTES;
                            if let Some(held) = model.get_mut(&(blob, first + k))
                                && (held.0, held.1) == (from.0, from.1 + shift)
                            {
                                *held = (to.0, to.1 + shift, held.2);
                                expected_moved += RECORD_HEADER_BYTES as u64 + u64::from(held.2);
                            }
                        }
                        assert_eq!(moved, expected_moved);
                    }
                }
                check(&index, &model, &mut rng);
            }
        }
    }
}
