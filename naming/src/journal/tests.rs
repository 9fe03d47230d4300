#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::chunk::BlobId;
use common::name::FileName;

use super::{Journal, JournalError, journal_path};
use crate::metadata::Metadata;
use crate::metadata::change::Change;
use crate::metadata::version::{FileVersion, Piece, push_run};

fn temp_dir() -> PathBuf {
    common::testing::fresh_dir("journal-test")
}

fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap()
}

fn commit(text: &str, blob: u64, size_bytes: u64) -> Change {
    let mut runs = Vec::new();
    let chunks = size_bytes.div_ceil(1024) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, &[0, 1]);
    }
    Change::Commit {
        name: name(text),
        version: Arc::new(FileVersion::whole(
            Piece {
                blob: BlobId(blob),
                size_bytes,
                runs,
            },
            0,
            None,
        )),
        overwrite: true,
    }
}

/// Two servers and a reservation: what commits need to be applied.
fn preamble() -> Vec<Change> {
    vec![
        Change::AddServer {
            id: 0,
            url: "http://a:1".to_owned(),
        },
        Change::AddServer {
            id: 1,
            url: "http://b:2".to_owned(),
        },
        Change::ReserveBlobs { up_to: 1000 },
    ]
}

/// Opens the journal in `dir`, replaying it into a fresh state.
fn open(dir: &Path) -> Result<(Journal, Metadata, Vec<String>), JournalError> {
    let mut metadata = Metadata::default();
    let mut replay = |change: Change| {
        metadata
            .apply(&change)
            .map(drop)
            .map_err(|err| err.to_string())
    };
    let (journal, notes) = Journal::open(dir, &mut replay)?;
    Ok((journal, metadata, notes))
}

fn names(journal_dir: &Path) -> Vec<String> {
    let (_, metadata, _) = open(journal_dir).unwrap();
    metadata
        .list("")
        .into_iter()
        .map(|entry| entry.name)
        .collect()
}

fn write(journal: &Journal, changes: Vec<Change>) {
    let mut last = 0;
    for change in &changes {
        last = journal.append(change);
    }
    journal.sync(last).unwrap();
}

#[test]
fn replay_rebuilds_files_deletes_servers_and_reservations() {
    let dir = temp_dir();
    {
        let (journal, metadata, _) = open(&dir).unwrap();
        assert_eq!(metadata.files_count(), 0);
        let mut changes = preamble();
        changes.extend([
            commit("a", 1, 10),
            commit("b", 2, 3000),
            commit("a", 3, 20),
            Change::Delete { name: name("b") },
        ]);
        write(&journal, changes);
    }
    let (_, metadata, _) = open(&dir).unwrap();
    let urls: Vec<String> = metadata
        .server_urls()
        .iter()
        .map(|url| url.to_string())
        .collect();
    assert_eq!(urls, ["http://a:1", "http://b:2"]);
    assert_eq!(metadata.blobs_reserved_up_to(), 1000);
    let a = metadata.get(&name("a")).unwrap();
    assert_eq!((a.first_blob(), a.size_bytes), (BlobId(3), 20));
    assert_eq!(metadata.files_count(), 1);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_checkpoint_replaces_the_journals_before_it() {
    let dir = temp_dir();
    {
        let (journal, _, _) = open(&dir).unwrap();
        let mut changes = preamble();
        changes.extend([commit("a", 1, 10), commit("b", 2, 10)]);
        write(&journal, changes.clone());
        let generation = journal.rotate().unwrap();
        journal
            .write_checkpoint(generation, changes.into_iter())
            .unwrap();
        write(
            &journal,
            vec![Change::Delete { name: name("a") }, commit("c", 3, 10)],
        );
        assert!(
            !journal_path(&dir, 0).exists(),
            "the journal before the checkpoint is gone"
        );
    }
    assert_eq!(names(&dir), ["b", "c"]);
    fs::remove_dir_all(dir).unwrap();
}

/// Where the journal's records end (zeros follow them in the file).
fn records_end(journal: &Journal) -> u64 {
    journal.lock_writer().file_len
}

/// A journal of the preamble and files "a" and "b"; returns where its
/// records end.
fn journal_of_a_and_b(dir: &Path) -> u64 {
    let (journal, _, _) = open(dir).unwrap();
    let mut changes = preamble();
    changes.extend([commit("a", 1, 10), commit("b", 2, 10)]);
    write(&journal, changes);
    records_end(&journal)
}

#[test]
fn a_torn_tail_is_cut_and_everything_before_it_replayed() {
    // Torn the two ways a crash tears: the file cut inside the last record,
    // and the last record's end never written over the zeros after it.
    for zeroed in [false, true] {
        let dir = temp_dir();
        let end = journal_of_a_and_b(&dir);
        let file = OpenOptions::new()
            .write(true)
            .open(journal_path(&dir, 0))
            .unwrap();
        if zeroed {
            std::os::unix::fs::FileExt::write_all_at(&file, &[0; 3], end - 3).unwrap();
        } else {
            file.set_len(end - 3).unwrap();
        }
        let (journal, metadata, notes) = open(&dir).unwrap();
        assert!(notes.iter().any(|note| note.contains("cut")), "{notes:?}");
        assert_eq!(metadata.files_count(), 1);
        // Appends continue on a record boundary.
        write(&journal, vec![commit("c", 3, 10)]);
        drop(journal);
        assert_eq!(names(&dir), ["a", "c"]);
        fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn the_zeros_after_the_records_are_an_unused_tail_and_closed_journals_lose_them() {
    let dir = temp_dir();
    let end = journal_of_a_and_b(&dir);
    let path = journal_path(&dir, 0);
    let len = fs::metadata(&path).unwrap().len();
    assert!(len > end, "zeros follow the records: {len} > {end}");
    let (journal, metadata, notes) = open(&dir).unwrap();
    assert!(!notes.iter().any(|note| note.contains("cut")), "{notes:?}");
    assert_eq!(metadata.files_count(), 2);
    write(&journal, vec![commit("c", 3, 10)]);
    assert!(fs::metadata(&path).unwrap().len() > records_end(&journal));
    let closed_end = records_end(&journal);
    let generation = journal.rotate().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), closed_end);
    write(&journal, vec![commit("d", 4, 10)]);
    drop(journal);
    assert_eq!(generation, 1);
    assert_eq!(names(&dir), ["a", "b", "c", "d"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_change_replay_cannot_apply_makes_the_journal_damaged() {
    let dir = temp_dir();
    {
        let (journal, _, _) = open(&dir).unwrap();
        // A commit on servers the table does not have: checksummed, but
        // nothing replay may serve from.
        write(&journal, vec![commit("a", 1, 10)]);
    }
    assert!(matches!(open(&dir), Err(JournalError::Damaged { .. })));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_damaged_checkpoint_refuses_to_start() {
    let dir = temp_dir();
    {
        let (journal, _, _) = open(&dir).unwrap();
        let generation = journal.rotate().unwrap();
        let mut changes = preamble();
        changes.push(commit("a", 1, 10));
        journal
            .write_checkpoint(generation, changes.into_iter())
            .unwrap();
    }
    let path = dir.join("checkpoint");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(open(&dir), Err(JournalError::Damaged { .. })));
    fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    assert!(matches!(open(&dir), Err(JournalError::Damaged { .. })));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn concurrent_appends_share_fsyncs_and_all_survive() {
    let dir = temp_dir();
    {
        let (journal, _, _) = open(&dir).unwrap();
        write(&journal, preamble());
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
        let (journal, _, _) = open(&dir).unwrap();
        let mut changes = preamble();
        changes.push(commit("a", 1, 10));
        write(&journal, changes.clone());
        let generation = journal.rotate().unwrap();
        journal
            .write_checkpoint(generation, changes.into_iter())
            .unwrap();
        // A crash while rotating again: the next journal exists, headerless.
        fs::write(journal_path(&dir, generation + 1), b"HRBJ").unwrap();
    }
    let (journal, _, notes) = open(&dir).unwrap();
    assert!(
        notes.iter().any(|note| note.contains("recreated")),
        "{notes:?}"
    );
    write(&journal, vec![commit("b", 2, 10)]);
    drop(journal);
    assert_eq!(names(&dir), ["a", "b"]);
    fs::remove_dir_all(dir).unwrap();
}
