#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::chunk::BlobId;
use common::name::FileName;

use super::record::Record;
use super::{Journal, JournalError, journal_path};
use crate::metadata::{FileVersion, push_run};

fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "harbour-journal-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap()
}

fn commit(text: &str, blob: u64, size_bytes: u64) -> Record {
    let mut runs = Vec::new();
    let chunks = size_bytes.div_ceil(1024) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, &[0, 1]);
    }
    Record::Commit {
        name: name(text),
        version: Arc::new(FileVersion {
            blob: BlobId(blob),
            size_bytes,
            runs,
        }),
    }
}

fn names(journal_dir: &std::path::Path) -> Vec<String> {
    let (_, recovered) = Journal::open(journal_dir).unwrap();
    recovered
        .metadata
        .list("")
        .into_iter()
        .map(|entry| entry.name)
        .collect()
}

fn write(journal: &Journal, records: Vec<Record>) {
    let mut last = 0;
    for record in &records {
        last = journal.append(record);
    }
    journal.sync(last).unwrap();
}

#[test]
fn replay_rebuilds_files_deletes_servers_and_reservations() {
    let dir = temp_dir();
    {
        let (journal, recovered) = Journal::open(&dir).unwrap();
        assert_eq!(recovered.metadata.files_count(), 0);
        write(
            &journal,
            vec![
                Record::Server {
                    id: 0,
                    url: "http://a:1".to_owned(),
                },
                Record::Server {
                    id: 1,
                    url: "http://b:2".to_owned(),
                },
                Record::ReserveBlobs { up_to: 1000 },
                commit("a", 1, 10),
                commit("b", 2, 3000),
                commit("a", 3, 20),
                Record::Delete { name: name("b") },
            ],
        );
    }
    let (_, recovered) = Journal::open(&dir).unwrap();
    assert_eq!(recovered.servers, ["http://a:1", "http://b:2"]);
    assert_eq!(recovered.blobs_reserved_up_to, 1000);
    let a = recovered.metadata.get(&name("a")).unwrap();
    assert_eq!((a.blob, a.size_bytes), (BlobId(3), 20));
    assert_eq!(recovered.metadata.files_count(), 1);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_checkpoint_replaces_the_journals_before_it() {
    let dir = temp_dir();
    {
        let (journal, _) = Journal::open(&dir).unwrap();
        write(&journal, vec![commit("a", 1, 10), commit("b", 2, 10)]);
        let generation = journal.rotate().unwrap();
        journal
            .write_checkpoint(
                generation,
                vec![commit("a", 1, 10), commit("b", 2, 10)].into_iter(),
            )
            .unwrap();
        write(
            &journal,
            vec![Record::Delete { name: name("a") }, commit("c", 3, 10)],
        );
        assert!(
            !journal_path(&dir, 0).exists(),
            "the journal before the checkpoint is gone"
        );
    }
    assert_eq!(names(&dir), ["b", "c"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_replayed() {
    let dir = temp_dir();
    {
        let (journal, _) = Journal::open(&dir).unwrap();
        write(&journal, vec![commit("a", 1, 10), commit("b", 2, 10)]);
    }
    let path = journal_path(&dir, 0);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (journal, recovered) = Journal::open(&dir).unwrap();
    assert!(
        recovered.notes.iter().any(|note| note.contains("cut")),
        "{:?}",
        recovered.notes
    );
    assert_eq!(recovered.metadata.files_count(), 1);
    // Appends continue on a record boundary.
    write(&journal, vec![commit("c", 3, 10)]);
    drop(journal);
    assert_eq!(names(&dir), ["a", "c"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_damaged_checkpoint_refuses_to_start() {
    let dir = temp_dir();
    {
        let (journal, _) = Journal::open(&dir).unwrap();
        let generation = journal.rotate().unwrap();
        journal
            .write_checkpoint(generation, vec![commit("a", 1, 10)].into_iter())
            .unwrap();
    }
    let path = dir.join("checkpoint");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Journal::open(&dir),
        Err(JournalError::Damaged { .. })
    ));
    fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    assert!(matches!(
        Journal::open(&dir),
        Err(JournalError::Damaged { .. })
    ));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn concurrent_appends_share_fsyncs_and_all_survive() {
    let dir = temp_dir();
    {
        let (journal, _) = Journal::open(&dir).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let journal = &journal;
                scope.spawn(move || {
                    for idx in 0..50u64 {
                        let lsn = journal.append(&commit(
                            &format!("t{thread}/{idx}"),
                            thread * 100 + idx,
                            1,
                        ));
                        journal.sync(lsn).unwrap();
                    }
                });
            }
        });
    }
    assert_eq!(names(&dir).len(), 400);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_newest_journal_cut_inside_its_header_is_recreated() {
    let dir = temp_dir();
    {
        let (journal, _) = Journal::open(&dir).unwrap();
        write(&journal, vec![commit("a", 1, 10)]);
        let generation = journal.rotate().unwrap();
        journal
            .write_checkpoint(generation, vec![commit("a", 1, 10)].into_iter())
            .unwrap();
        // A crash while rotating again: the next journal exists, headerless.
        fs::write(journal_path(&dir, generation + 1), b"HRBJ").unwrap();
    }
    let (journal, recovered) = Journal::open(&dir).unwrap();
    assert!(
        recovered
            .notes
            .iter()
            .any(|note| note.contains("recreated")),
        "{:?}",
        recovered.notes
    );
    write(&journal, vec![commit("b", 2, 10)]);
    drop(journal);
    assert_eq!(names(&dir), ["a", "b"]);
    fs::remove_dir_all(dir).unwrap();
}
