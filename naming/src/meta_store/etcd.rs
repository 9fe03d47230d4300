//! The etcd metadata store (`ETCD_ENDPOINTS`): the state lives in etcd, one
//! key per entity (`keys.rs`), so any number of naming servers can serve
//! one namespace; each keeps the whole state in memory as a cache of
//! those keys, as the local store keeps it.
//!
//! A change is applied to the cache, under its lock, and what it touched
//! is written in one etcd transaction that holds only if the sequence key
//! is still at the revision the cache has seen: no other naming server
//! changed anything since, so the checks the change passed still hold.
//! The transaction writes the sequence key too. If it does not hold, what
//! the change touched is put back, the cache catches up by watching the
//! state's range from its revision, and the change is tried again on the
//! fresher state. Changes are thus in one order across every naming
//! server: the etcd revisions of the sequence key.
//!
//! Changes that queue up while a transaction is on its way go together in
//! the next one (`batch.rs`, `commit.rs`), as the journal shares an fsync.
//!
//! A write whose answer was lost may have landed: each carries a token
//! (this server's id, a counter) written to the sequence key, and the
//! catch-up that follows recognises it.
//!
//! Reads are served from the cache; `sync` first catches it up to the
//! sequence key's latest revision, so a read after a write acknowledged by
//! another naming server sees it; requests that arrive during one catch-up
//! share the next (`gate.rs`).

mod batch;
pub mod client;
mod commit;
mod gate;
pub mod keys;
pub mod session;
mod whole;

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::chunk::BlobId;
use common::metrics::Histogram;

use self::batch::Batcher;
use self::client::{EtcdClient, EtcdError, Event};
use self::gate::Gate;
use self::keys::Keys;
use self::session::Session;
use crate::meta_store::{MetaStore, StateRef, StoreStats};
use crate::metadata::change::{Applied, Change, Refusal};
use crate::metadata::{Entity, Metadata};

/// Tries of one change before it is refused as unavailable: each lost try
/// means another naming server's change landed first.
const CHANGE_ATTEMPTS_MAX: u32 = 32;

/// The history etcd keeps of the changes: a naming server further behind
/// reads the state again whole. The upkeep leader compacts what is older,
/// so etcd's database does not grow with every change ever made.
pub const HISTORY_KEPT: Duration = Duration::from_secs(60);

/// etcd's default `--max-txn-ops`: a change that touches more keys (a
/// directory rename of that many names) is refused.
pub const TXN_OPS_MAX: usize = 128;

pub struct EtcdStore {
    client: EtcdClient,
    keys: Keys,
    state: Mutex<Metadata>,
    /// Where the cache stands; changed only under `state`'s lock.
    position: Mutex<Position>,
    /// Taken before `state` when both are held.
    blobs: Mutex<BlobRange>,
    reservation_count: u64,
    /// This server's id in the tokens of its writes.
    writer: String,
    writes: AtomicU64,
    txn_latency: Histogram,
    batcher: Batcher,
    /// Shares catch-ups among the requests waiting for one.
    gate: Gate,
    session: Session,
    /// Revisions seen by the maintenance tick, oldest first, to compact
    /// once they are `HISTORY_KEPT` old.
    history: Mutex<std::collections::VecDeque<(Instant, i64)>>,
}

/// What the cache has applied.
#[derive(Clone, Copy, Debug)]
struct Position {
    /// The sequence key's revision as of the last change applied (0: no
    /// change was ever made).
    seq_revision: i64,
    /// The store's revision the cache is known to be current at: the
    /// state's range has no change in `(seq_revision, revision]`.
    revision: i64,
}

/// The blob ids this server reserved and has not handed out yet.
struct BlobRange {
    next: u64,
    end: u64,
}

impl EtcdStore {
    /// Reads the whole state under `prefix` into the cache.
    pub fn open(
        client: EtcdClient,
        prefix: &str,
        reservation_count: u64,
    ) -> Result<EtcdStore, String> {
        assert!(reservation_count >= 1);
        let keys = Keys::new(prefix);
        let (state, position) =
            whole::load(&client, &keys).map_err(|err| format!("metadata from etcd: {err}"))?;
        let writer = format!(
            "{:016x}",
            common::rng::Rng::new(
                std::process::id() as u64
                    ^ std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |since| since.as_nanos() as u64)
            )
            .next_u64()
        );
        Ok(EtcdStore {
            client,
            keys,
            state: Mutex::new(state),
            position: Mutex::new(position),
            blobs: Mutex::new(BlobRange { next: 0, end: 0 }),
            reservation_count,
            writer,
            writes: AtomicU64::new(0),
            txn_latency: Histogram::default(),
            batcher: Batcher::default(),
            gate: Gate::default(),
            session: Session::default(),
            history: Mutex::default(),
        })
    }

    /// Writes every entity of `state` into an empty prefix (the move from
    /// a local `META_DIR`); refused if the prefix holds a state already.
    pub fn migrate(client: &EtcdClient, prefix: &str, state: &Metadata) -> Result<u64, String> {
        whole::migrate(client, &Keys::new(prefix), prefix, state)
    }

    fn lock_state(&self) -> MutexGuard<'_, Metadata> {
        // Changes are checked before they change anything, and a group is
        // put back whole: a panic under the lock leaves the state whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn position(&self) -> Position {
        *self
            .position
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_position(&self, position: Position) {
        *self
            .position
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = position;
    }

    /// Brings the cache up to the sequence key's revision `target`,
    /// applying every change since its own, one transaction at a time.
    /// Returns whether a change carrying `token` was among them.
    fn catch_up(&self, state: &mut Metadata, target: i64, token: &str) -> Result<bool, EtcdError> {
        let position = self.position();
        if target <= position.seq_revision {
            return Ok(false);
        }
        let seq = self.keys.seq();
        let mut group: Vec<(Entity, Option<Change>)> = Vec::new();
        let mut seen = false;
        let mut reached = position;
        let watched = self.client.watch_from(
            &self.keys.state_start(),
            &self.keys.state_end(),
            position.revision + 1,
            |event: Event| {
                if event.key == seq {
                    apply_group(state, std::mem::take(&mut group)).map_err(EtcdError::Refused)?;
                    seen |= event.value.as_deref() == Some(token.as_bytes());
                    reached = Position {
                        seq_revision: event.mod_revision,
                        revision: event.mod_revision,
                    };
                    return Ok(event.mod_revision >= target);
                }
                group.push(self.entity_of(&event)?);
                Ok(false)
            },
        );
        self.set_position(reached);
        match watched {
            Ok(()) => Ok(seen),
            Err(EtcdError::Compacted { .. }) => {
                // Too far behind for the history etcd keeps: read it all.
                let (fresh, position) = whole::load(&self.client, &self.keys)?;
                *state = fresh;
                self.set_position(position);
                log::warn!(
                    "etcd compacted the changes this server had not seen: the metadata was read again whole"
                );
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    fn entity_of(&self, event: &Event) -> Result<(Entity, Option<Change>), EtcdError> {
        let entity = self
            .keys
            .entity_of(&event.key)
            .map_err(EtcdError::Refused)?
            .ok_or_else(|| EtcdError::Refused("the sequence key in a group".to_owned()))?;
        let value = event
            .value
            .as_deref()
            .map(keys::decode)
            .transpose()
            .map_err(EtcdError::Refused)?;
        Ok((entity, value))
    }

    /// Compacts etcd's history to the revision this server had reached
    /// `HISTORY_KEPT` ago: every naming server syncs each second, so none
    /// needs older changes unless it was stopped that long.
    fn compact_history(&self) {
        let now = Instant::now();
        let revision = self.position().revision;
        let mut history = self
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if history.back().is_none_or(|&(_, last)| last < revision) {
            history.push_back((now, revision));
        }
        let mut due = None;
        while let Some(&(seen, old)) = history.front() {
            if now.duration_since(seen) < HISTORY_KEPT {
                break;
            }
            due = Some(old);
            history.pop_front();
        }
        if let Some(old) = due
            && let Err(err) = self.client.compact(old)
        {
            // Compacted already (by etcd's own auto-compaction, say).
            log::debug!("etcd: history not compacted to {old}: {err}");
        }
    }

    /// Catches the cache up to every change acknowledged before now.
    fn sync_now(&self) -> Result<(), EtcdError> {
        let (kvs, _, revision) = self.client.range(&self.keys.seq(), None, 0, 0)?;
        let latest = kvs.first().map_or(0, |kv| kv.mod_revision);
        let mut state = self.lock_state();
        self.catch_up(&mut state, latest, "")?;
        let position = self.position();
        if position.seq_revision >= latest && position.revision < revision {
            // Nothing of the state changed up to `revision`.
            self.set_position(Position {
                revision,
                ..position
            });
        }
        Ok(())
    }
}

impl MetaStore for EtcdStore {
    fn apply(&self, change: Change) -> Result<Applied, Refusal> {
        self.apply_with(move |_| change.clone())
            .map(|(_, applied)| applied)
    }

    fn new_blob(&self) -> Result<BlobId, Refusal> {
        let mut range = self
            .blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if range.next >= range.end {
            // Reserve past every other naming server's reservation.
            let count = self.reservation_count;
            let (change, _) = self.apply_with(move |state| Change::ReserveBlobs {
                up_to: state.blobs_reserved_up_to() + count,
            })?;
            let Change::ReserveBlobs { up_to } = change else {
                unreachable!("a reservation is a reservation");
            };
            *range = BlobRange {
                next: up_to - count,
                end: up_to,
            };
        }
        let id = range.next;
        range.next += 1;
        Ok(BlobId(id))
    }

    fn state(&self) -> StateRef<'_> {
        StateRef::new(self.lock_state())
    }

    fn sync(&self) -> Result<(), Refusal> {
        self.gate.pass(|| self.sync_now()).map_err(unavailable)
    }

    fn maintain(&self, in_flight_min: &dyn Fn() -> Option<BlobId>) -> io::Result<()> {
        // Upkeep looks at the state too: keep it within a second of etcd.
        if let Err(err) = self.sync_now() {
            log::warn!("metadata: cannot catch up with etcd: {err}");
        }
        // The next id first: one handed out after this read is above it,
        // one handed out before is in flight (or done).
        let next = self
            .blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .next;
        let floor = in_flight_min().map_or(next, |blob| blob.0.min(next));
        if let Err(err) = self
            .session
            .tick(&self.client, &self.keys, &self.writer, floor)
        {
            log::warn!("etcd: the session was not renewed: {err}");
        }
        if self.session.leads() {
            self.compact_history();
        }
        Ok(())
    }

    fn leads_upkeep(&self) -> bool {
        self.session.leads()
    }

    fn in_flight_elsewhere_from(&self) -> u64 {
        session::floor_of_others(&self.client, &self.keys, &self.writer)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            journal_bytes: 0,
            // etcd keeps its own snapshots.
            checkpoint_age: Duration::ZERO,
            sync_latency: self.txn_latency.snapshot(),
        }
    }

    fn close(&self) -> io::Result<()> {
        self.session.end(&self.client);
        Ok(())
    }
}

/// Applies one transaction's changes, as another naming server made them.
fn apply_group(state: &mut Metadata, group: Vec<(Entity, Option<Change>)>) -> Result<(), String> {
    // A transaction touches each entity once; an upload's range deletion
    // reports each part it removed.
    state
        .replace(group)
        .map_err(|err| format!("a change from etcd does not fit the state: {err}"))
}

fn unavailable(err: EtcdError) -> Refusal {
    Refusal::Unavailable(err.to_string())
}
