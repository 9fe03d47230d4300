//! The door under concurrency: changes, blob reservations, checkpoints and
//! restarts interleaved, and checked against what was acknowledged.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::name::FileName;
use common::rng::Rng;

use super::MetaStore;
use super::local::{LocalSettings, LocalStore};
use crate::metadata::change::{Applied, Change, Refusal};
use crate::metadata::version::{FileVersion, Piece, ServerId, push_run};

const SERVERS_COUNT: u16 = 6;

fn temp_dir() -> PathBuf {
    common::testing::fresh_dir("door-test")
}

/// A store whose reservations and checkpoints come often.
fn open(dir: &Path) -> LocalStore {
    let settings = LocalSettings {
        checkpoint_bytes: 4096,
        reservation_count: 3,
    };
    let (store, _) = LocalStore::open(dir, settings).unwrap();
    store
}

fn add_servers(store: &LocalStore) {
    for id in 0..SERVERS_COUNT {
        let add = Change::AddServer {
            id,
            url: format!("http://s{id}:1"),
        };
        assert!(store.apply(add).is_ok());
    }
}

fn commit(
    store: &LocalStore,
    name: &str,
    blob: common::chunk::BlobId,
    size_bytes: u64,
) -> Result<Applied, Refusal> {
    let mut runs = Vec::new();
    let chunks = size_bytes.div_ceil(1024) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, &[0, 1]);
    }
    store.apply(Change::Commit {
        name: FileName::parse(name).unwrap(),
        version: Arc::new(FileVersion::whole(
            Piece {
                blob,
                size_bytes,
                runs,
            },
            0,
            None,
        )),
        overwrite: true,
    })
}

/// Runs `during` while another thread is paused inside the journal's sync
/// of the change `make` appends: the window between a change's append and
/// its fsync, where a checkpoint once lost it.
fn in_the_sync_window<T: Send>(
    store: &LocalStore,
    make: impl FnOnce() -> T + Send,
    during: impl FnOnce(),
) -> T {
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    *store.journal().pause_before_sync.lock().unwrap() = Some(Box::new(move || {
        paused_tx.send(()).unwrap();
        resume_rx.recv().unwrap();
    }));
    std::thread::scope(|scope| {
        let making = scope.spawn(make);
        paused_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the change to reach its fsync");
        {
            // Resumes the paused thread however `during` ends, so a failed
            // check cannot leave the scope waiting for it.
            let _resume = Resume(resume_tx);
            during();
        }
        making.join().unwrap()
    })
}

struct Resume(mpsc::Sender<()>);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn a_checkpoint_between_a_reservation_and_its_fsync_reissues_no_blob() {
    let dir = temp_dir();
    let store = open(&dir);
    // Use up the reservation `open` made; the next id needs a new one.
    let mut handed_out: Vec<u64> = (0..3).map(|_| store.new_blob().unwrap().0).collect();
    let reserving = in_the_sync_window(
        &store,
        || store.new_blob().unwrap(),
        || store.checkpoint().unwrap(),
    );
    handed_out.push(reserving.0);
    drop(store);
    let store = open(&dir);
    let next = store.new_blob().unwrap().0;
    let highest = *handed_out.iter().max().unwrap();
    assert!(
        next > highest,
        "blob {next} handed out again (up to {highest} were)"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_checkpoint_between_a_drain_and_its_fsync_forgets_no_drain() {
    let dir = temp_dir();
    let store = open(&dir);
    add_servers(&store);
    let drained = in_the_sync_window(
        &store,
        || store.apply(Change::Drain { id: 2 }),
        || store.checkpoint().unwrap(),
    );
    assert_eq!(drained, Ok(Applied::Changed));
    drop(store);
    let store = open(&dir);
    assert!(store.state().is_draining(2), "the drain was forgotten");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_repeated_drain_is_acknowledged_only_once_the_first_is_durable() {
    let dir = temp_dir();
    let store = open(&dir);
    add_servers(&store);
    // The second drain finds the flag set while the first still waits for
    // its fsync: it must make the first durable before it answers, or its
    // acknowledgement is a lie.
    let first = in_the_sync_window(
        &store,
        || store.apply(Change::Drain { id: 1 }),
        || {
            let appended = store.journal().last_lsn();
            assert!(store.journal().durable_lsn() < appended);
            assert_eq!(store.apply(Change::Drain { id: 1 }), Ok(Applied::Unchanged));
            assert!(store.journal().durable_lsn() >= appended);
        },
    );
    assert_eq!(first, Ok(Applied::Changed));
    fs::remove_dir_all(dir).unwrap();
}

/// What one worker thread had acknowledged.
#[derive(Default)]
struct Acknowledged {
    files: BTreeMap<String, (u64, u64)>,
    drains: BTreeSet<ServerId>,
    blobs: Vec<u64>,
}

/// One worker: creates, overwrites and deletes its own names, drains
/// servers, with a fixed seed; records what was acknowledged.
fn work(store: &LocalStore, thread: u64, round: u64, acknowledged: &Mutex<Acknowledged>) {
    let mut rng = Rng::new(round * 100 + thread);
    for _ in 0..60 {
        let name = format!("t{thread}/f{}", rng.below(8));
        match rng.below(10) {
            0..=5 => {
                let blob = store.new_blob().unwrap();
                let size_bytes = rng.below(5000);
                commit(store, &name, blob, size_bytes).unwrap();
                let mut acknowledged = acknowledged.lock().unwrap();
                acknowledged.blobs.push(blob.0);
                acknowledged.files.insert(name, (blob.0, size_bytes));
            }
            6 | 7 => {
                let deleted = store.apply(Change::Delete {
                    name: FileName::parse(&name).unwrap(),
                });
                let mut acknowledged = acknowledged.lock().unwrap();
                match deleted {
                    Ok(_) => assert!(acknowledged.files.remove(&name).is_some()),
                    Err(refusal) => {
                        assert_eq!(refusal, Refusal::NoSuchFile);
                        assert!(!acknowledged.files.contains_key(&name));
                    }
                }
            }
            _ => {
                let id = rng.below(u64::from(SERVERS_COUNT)) as ServerId;
                store.apply(Change::Drain { id }).unwrap();
                acknowledged.lock().unwrap().drains.insert(id);
            }
        }
    }
}

#[test]
fn creates_drains_checkpoints_and_restarts_interleaved_forget_nothing_and_reissue_nothing() {
    let dir = temp_dir();
    let mut files: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut drains: BTreeSet<ServerId> = BTreeSet::new();
    let mut every_blob: HashSet<u64> = HashSet::new();
    add_servers(&open(&dir));
    for round in 0..12 {
        let store = open(&dir);
        {
            // What the restart found is exactly what was acknowledged.
            let metadata = store.state();
            metadata.check_invariants().unwrap();
            let found: BTreeMap<String, (u64, u64)> = metadata
                .list("")
                .into_iter()
                .map(|entry| {
                    let version = metadata
                        .get(&FileName::parse(&entry.name).unwrap())
                        .unwrap();
                    (entry.name, (version.first_blob().0, version.size_bytes))
                })
                .collect();
            assert_eq!(found, files, "round {round}");
            let found_drains: BTreeSet<ServerId> = metadata
                .server_ids()
                .filter(|&id| metadata.is_draining(id))
                .collect();
            assert_eq!(found_drains, drains, "round {round}");
            let highest = every_blob.iter().max().copied().unwrap_or(0);
            assert!(every_blob.is_empty() || metadata.blobs_reserved_up_to() > highest);
        }
        let threads: Vec<Mutex<Acknowledged>> = (0..4)
            .map(|thread| {
                let mine = files
                    .iter()
                    .filter(|(name, _)| name.starts_with(&format!("t{thread}/")))
                    .map(|(name, held)| (name.clone(), *held))
                    .collect();
                Mutex::new(Acknowledged {
                    files: mine,
                    ..Acknowledged::default()
                })
            })
            .collect();
        std::thread::scope(|scope| {
            for (thread, acknowledged) in threads.iter().enumerate() {
                let store = &store;
                scope.spawn(move || work(store, thread as u64, round, acknowledged));
            }
            scope.spawn(|| {
                for _ in 0..30 {
                    store.checkpoint().unwrap();
                }
            });
            scope.spawn(|| {
                for _ in 0..100 {
                    store.maintain(&|| None).unwrap();
                }
            });
        });
        files.clear();
        for acknowledged in threads {
            let acknowledged = acknowledged.into_inner().unwrap();
            files.extend(acknowledged.files);
            drains.extend(acknowledged.drains);
            for blob in acknowledged.blobs {
                assert!(every_blob.insert(blob), "blob {blob} handed out twice");
            }
        }
        // A restart: the store goes away with whatever it had not synced.
        drop(store);
    }
    fs::remove_dir_all(dir).unwrap();
}
