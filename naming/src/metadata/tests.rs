#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use common::chunk::BlobId;
use common::name::FileName;

use super::{FileVersion, Metadata, NameTaken, Run, push_run};

fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap()
}

fn version(blob: u64, size_bytes: u64) -> Arc<FileVersion> {
    let mut runs = Vec::new();
    let chunks = super::chunks_for_size(size_bytes) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, &[0, 1]);
    }
    Arc::new(FileVersion {
        blob: BlobId(blob),
        size_bytes,
        runs,
    })
}

#[test]
fn runs_merge_when_replicas_match() {
    let mut runs = Vec::new();
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 3, &[1, 2]);
    assert_eq!(
        runs,
        vec![
            Run {
                first_index: 0,
                count: 512,
                replicas: vec![0, 1].into()
            },
            Run {
                first_index: 512,
                count: 3,
                replicas: vec![1, 2].into()
            },
        ]
    );
    let version = FileVersion {
        blob: BlobId(1),
        size_bytes: 514 * 1024 + 1,
        runs,
    };
    version.assert_well_formed(2);
    assert_eq!(version.chunk_size(514), 1);
    assert_eq!(version.chunk_size(0), 1024);
}

#[test]
fn chunk_counts_at_the_boundaries() {
    for (size, chunks) in [(0, 0), (1, 1), (1023, 1), (1024, 1), (1025, 2)] {
        assert_eq!(super::chunks_for_size(size), chunks, "size {size}");
    }
}

#[test]
fn of_two_creates_of_one_name_only_one_starts() {
    let mut metadata = Metadata::default();
    let a = name("a");
    assert_eq!(metadata.begin_create(&a, false), Ok(()));
    assert_eq!(metadata.begin_create(&a, false), Err(NameTaken));
    assert_eq!(metadata.commit_create(&a, false, version(1, 10)), Ok(None));
    assert_eq!(metadata.begin_create(&a, false), Err(NameTaken));
    assert_eq!(metadata.chunks_count(), 1);
}

#[test]
fn a_create_that_lost_the_race_to_an_overwrite_does_not_commit() {
    let mut metadata = Metadata::default();
    let a = name("a");
    metadata.begin_create(&a, false).unwrap();
    metadata.begin_create(&a, true).unwrap();
    assert_eq!(metadata.commit_create(&a, true, version(2, 2048)), Ok(None));
    assert_eq!(
        metadata.commit_create(&a, false, version(1, 10)),
        Err(NameTaken)
    );
    assert_eq!(metadata.get(&a).unwrap().blob, BlobId(2));
    assert_eq!(metadata.chunks_count(), 2);
}

#[test]
fn overwrite_returns_the_replaced_version_and_delete_removes() {
    let mut metadata = Metadata::default();
    let a = name("a");
    metadata.commit_create(&a, true, version(1, 3000)).unwrap();
    let replaced = metadata.commit_create(&a, true, version(2, 10)).unwrap();
    assert_eq!(replaced.unwrap().blob, BlobId(1));
    assert_eq!(metadata.chunks_count(), 1);
    assert_eq!(metadata.remove(&a).unwrap().blob, BlobId(2));
    assert_eq!(metadata.remove(&a), None);
    assert_eq!(metadata.chunks_count(), 0);
    metadata.begin_create(&a, false).unwrap();
    metadata.abort_create(&a, false);
    assert_eq!(metadata.begin_create(&a, false), Ok(()));
}

#[test]
fn list_filters_by_prefix_in_name_order() {
    let mut metadata = Metadata::default();
    for (idx, text) in ["b/2", "a", "b/1", "c", "b"].iter().enumerate() {
        metadata
            .commit_create(&name(text), true, version(idx as u64, idx as u64))
            .unwrap();
    }
    let names = |prefix: &str| {
        metadata
            .list(prefix)
            .into_iter()
            .map(|entry| entry.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(""), ["a", "b", "b/1", "b/2", "c"]);
    assert_eq!(names("b/"), ["b/1", "b/2"]);
    assert_eq!(names("zz"), Vec::<String>::new());
}

#[test]
fn relocating_a_range_splits_runs_and_merges_equal_neighbours() {
    let mut metadata = Metadata::default();
    let a = name("a");
    let mut runs = Vec::new();
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 256, &[1, 2]);
    push_run(&mut runs, 10, &[0, 2]);
    let version = Arc::new(FileVersion {
        blob: BlobId(5),
        size_bytes: 522 * 1024,
        runs,
    });
    metadata.commit_create(&a, true, version).unwrap();
    // Chunks 200..300 move to {2, 1}: cuts the first run, takes part of the second.
    assert!(metadata.relocate(BlobId(5), 200, 100, &[2, 1]));
    assert_eq!(
        metadata.get(&a).unwrap().runs,
        vec![
            Run {
                first_index: 0,
                count: 200,
                replicas: vec![0, 1].into()
            },
            Run {
                first_index: 200,
                count: 100,
                replicas: vec![2, 1].into()
            },
            Run {
                first_index: 300,
                count: 212,
                replicas: vec![1, 2].into()
            },
            Run {
                first_index: 512,
                count: 10,
                replicas: vec![0, 2].into()
            },
        ]
    );
    // Moving the last run onto the previous run's replicas merges them.
    assert!(metadata.relocate(BlobId(5), 512, 10, &[1, 2]));
    assert_eq!(metadata.get(&a).unwrap().runs.len(), 3);
    metadata.get(&a).unwrap().assert_well_formed(2);
    // A blob no file has any more is left alone.
    metadata.remove(&a);
    assert!(!metadata.relocate(BlobId(5), 0, 1, &[2, 1]));
}
