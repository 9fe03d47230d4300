//! The local metadata store, the default: the `Metadata` behind one lock,
//! and the journal in `META_DIR` (write-ahead log, group commit,
//! checkpoints). A change is applied and appended under the lock, so the
//! journal's order is the apply order and a checkpoint, which snapshots
//! the state and rotates the journal under the same lock, always holds
//! exactly the changes of the generations it replaces; the fsync is waited
//! for outside the lock, where concurrent changes share it.

use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use common::chunk::BlobId;

use crate::journal::{Journal, Lsn};
use crate::meta_store::{MetaStore, StateRef, StoreStats, expect_valid};
use crate::metadata::Metadata;
use crate::metadata::change::{Applied, Change, Refusal};

pub struct LocalStore {
    state: Mutex<Metadata>,
    journal: Journal,
    /// Taken before `state` when both are held.
    blobs: Mutex<BlobCursor>,
    settings: LocalSettings,
    /// When the last checkpoint was written (start-up until one is).
    last_checkpoint: Mutex<Instant>,
}

#[derive(Clone, Copy, Debug)]
pub struct LocalSettings {
    /// A checkpoint is written once the journal has grown by this much.
    pub checkpoint_bytes: u64,
    /// Blob ids reserved by one journaled change.
    pub reservation_count: u64,
}

/// Where blob ids are handed out from (not durable: a restart starts past
/// the durable reservation).
struct BlobCursor {
    next: u64,
    /// The change that reserved `next`; an id is handed out only once it
    /// is durable.
    reserved_at: Lsn,
}

impl LocalStore {
    /// Replays the journal in `dir` into a fresh state and reserves a
    /// fresh range of blob ids. Returns what replay found, for the log.
    pub fn open(dir: &Path, settings: LocalSettings) -> Result<(LocalStore, Vec<String>), String> {
        assert!(settings.reservation_count >= 1);
        let mut state = Metadata::default();
        let mut replay = |change: Change| {
            // Journals of older releases may hold commits past the
            // reservation they recorded: a committed blob was handed out.
            if let Change::Commit { version, .. } = &change {
                let past_blob = Change::ReserveBlobs {
                    up_to: version.blobs().map(|blob| blob.0).max().unwrap_or(0) + 1,
                };
                state
                    .apply(&past_blob)
                    .map_err(|refusal| refusal.to_string())?;
            }
            state
                .apply(&change)
                .map(drop)
                .map_err(|refusal| refusal.to_string())
        };
        let (journal, notes) =
            Journal::open(dir, &mut replay).map_err(|err| format!("metadata journal: {err}"))?;
        if let Err(err) = state.check_invariants() {
            return Err(format!(
                "metadata journal: replay broke an invariant: {err}"
            ));
        }
        let first_blob = state.blobs_reserved_up_to();
        let store = LocalStore {
            state: Mutex::new(state),
            journal,
            blobs: Mutex::new(BlobCursor {
                next: first_blob,
                reserved_at: 0,
            }),
            settings,
            last_checkpoint: Mutex::new(Instant::now()),
        };
        // Everything below `first_blob` may have been handed out before.
        let reserved = store.apply(Change::ReserveBlobs {
            up_to: first_blob + settings.reservation_count,
        });
        assert_eq!(reserved, Ok(Applied::Changed));
        Ok((store, notes))
    }

    /// Snapshots the state into a checkpoint and drops the journal before
    /// it. The lock is held only to rotate the journal and take the
    /// snapshot (cheap `Arc` clones), not while writing it.
    pub fn checkpoint(&self) -> io::Result<()> {
        let (generation, changes) = {
            let state = self.lock_state();
            let generation = self.journal.rotate()?;
            (generation, state.snapshot())
        };
        let entries = changes.len();
        self.journal
            .write_checkpoint(generation, changes.into_iter())?;
        *self
            .last_checkpoint
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        log::info!(
            "checkpoint {generation}: {entries} entries written; the journal before it is dropped"
        );
        Ok(())
    }

    /// The journal, for tests that pause a syncer.
    #[cfg(test)]
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn lock_state(&self) -> MutexGuard<'_, Metadata> {
        // `Metadata::apply` checks before it changes anything, so a panic
        // under the lock leaves the state consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for `lsn` to be durable. A journal that cannot be written
    /// makes every later acknowledgement a lie: stop the process instead.
    fn durable(&self, lsn: Lsn) {
        if let Err(err) = self.journal.sync(lsn) {
            log::error!("the metadata journal cannot be made durable, exiting: {err}");
            std::process::exit(1);
        }
    }
}

impl MetaStore for LocalStore {
    fn apply(&self, change: Change) -> Result<Applied, Refusal> {
        let (applied, lsn) = {
            let mut state = self.lock_state();
            if let Change::Commit { version, .. } = &change {
                for blob in version.blobs() {
                    assert!(
                        blob.0 < state.blobs_reserved_up_to(),
                        "blob {blob} was never handed out"
                    );
                }
            }
            let applied = state.apply(&change).map_err(expect_valid)?;
            // What the state already said may not be durable yet (a second
            // drain right after the first): wait for everything before.
            let lsn = match applied {
                Applied::Unchanged => self.journal.last_lsn(),
                _ => self.journal.append(&change),
            };
            (applied, lsn)
        };
        self.durable(lsn);
        Ok(applied)
    }

    fn new_blob(&self) -> Result<BlobId, Refusal> {
        let (id, lsn) = {
            let mut cursor = self
                .blobs
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let id = cursor.next;
            cursor.next += 1;
            let mut state = self.lock_state();
            if id >= state.blobs_reserved_up_to() {
                let reserve = Change::ReserveBlobs {
                    up_to: id + self.settings.reservation_count,
                };
                let applied = state.apply(&reserve).map_err(expect_valid);
                assert_eq!(applied, Ok(Applied::Changed));
                cursor.reserved_at = self.journal.append(&reserve);
            }
            assert!(id < state.blobs_reserved_up_to());
            (id, cursor.reserved_at)
        };
        self.durable(lsn);
        Ok(BlobId(id))
    }

    fn state(&self) -> StateRef<'_> {
        StateRef::new(self.lock_state())
    }

    fn maintain(&self, _in_flight_min: &dyn Fn() -> Option<BlobId>) -> io::Result<()> {
        if self.journal.bytes_since_checkpoint() < self.settings.checkpoint_bytes {
            return Ok(());
        }
        self.checkpoint()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            journal_bytes: self.journal.bytes_since_checkpoint(),
            checkpoint_age: self
                .last_checkpoint
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .elapsed(),
            sync_latency: self.journal.sync_latency(),
        }
    }

    fn close(&self) -> io::Result<()> {
        self.journal.close()
    }
}
