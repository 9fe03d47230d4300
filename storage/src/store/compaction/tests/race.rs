//! Writers, deleters and readers on several threads against back-to-back
//! compaction passes, checked against each writer's exact model.

use std::collections::BTreeSet;
use std::fs;

use common::chunk::BlobId;
use common::rng::Rng;
use common::wire::Chunk;

use super::URGENT;
use crate::store::Store;
use crate::store::compaction::pass;
use crate::test_support::{chunks_seeded, segment_files_bytes, temp_dir};

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
                    let mut dice = Rng::new(writer * 7919 + 17);
                    let mut model: BTreeMap<u64, Vec<Chunk>> = BTreeMap::new();
                    let mut next_blob = writer + 1;
                    for step in 0..STEPS {
                        let blobs: Vec<u64> = model.keys().copied().collect();
                        let pick = |dice: &mut Rng| blobs[dice.below(blobs.len() as u64) as usize];
                        match dice.below(10) {
                            0..=3 => {
                                let count = 1 + dice.below(40) as usize;
                                let mut sizes = vec![1024; count];
                                sizes[count - 1] = 1 + dice.below(1024) as usize;
                                let written = chunks_seeded(next_blob, &sizes, step as usize);
                                store.put_chunks(&written).unwrap();
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
                                store.put_chunks(&fresh[start..end]).unwrap();
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
