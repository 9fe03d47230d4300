//! The one door for every durable change of the naming server. Whatever
//! keeps the metadata (the local journal today, etcd later), it takes a
//! `Change`, applies it to the one `Metadata` under the one lock, makes it
//! durable, and only then returns; readers look at the same `Metadata`.
//! Nothing else changes durable state.
//!
//! Invariants every store keeps:
//! - a change is acknowledged (returned) only once it is durable, and a
//!   refused change is neither applied nor recorded;
//! - the durable order of changes is the order they were applied in, so
//!   replay rebuilds exactly the state that was acknowledged;
//! - a blob id is handed out once, ever: its reservation is durable before
//!   `new_blob` returns it, and replay raises the reservation past every
//!   committed blob.

pub mod etcd;
pub mod local;

use std::io;
use std::ops::Deref;
use std::sync::MutexGuard;

use common::chunk::BlobId;

use crate::metadata::Metadata;
use crate::metadata::change::{Applied, Change, Refusal};

pub trait MetaStore: Send + Sync {
    /// Applies `change` and returns once it is durable. Refusals are the
    /// expected ones of `Refusal` (a taken name, a gone file...); a change
    /// that would break an invariant of the state is a bug and panics.
    fn apply(&self, change: Change) -> Result<Applied, Refusal>;

    /// A blob id never handed out before, across restarts too, so a new
    /// file never adopts an old one's leftover chunks. Refused only by a
    /// store that cannot be reached (`Refusal::Unavailable`).
    fn new_blob(&self) -> Result<BlobId, Refusal>;

    /// The state as of the last applied change, read-only. Hold the guard
    /// briefly: every change waits for it.
    fn state(&self) -> StateRef<'_>;

    /// Waits until the state holds every change acknowledged before the
    /// call, by this naming server or any other sharing the store: what a
    /// public request does before it reads. The local store has no other
    /// writer, so it always does.
    fn sync(&self) -> Result<(), Refusal> {
        Ok(())
    }

    /// Upkeep due now, called about once a second (the local store writes
    /// a checkpoint once its journal has grown enough; the etcd store
    /// catches up and renews its session). `in_flight_min` tells the
    /// lowest blob id this server is writing now, or still reading of a
    /// dropped version.
    fn maintain(&self, in_flight_min: &dyn Fn() -> Option<BlobId>) -> io::Result<()>;

    /// Whether this naming server runs the upkeep that must run once in a
    /// cluster (reconciliation, re-replication, upload expiry): always
    /// with the local store; with etcd, only the elected leader.
    fn leads_upkeep(&self) -> bool {
        true
    }

    /// The lowest blob id another naming server sharing the store may be
    /// writing (`u64::MAX`: none): reconciliation takes no blob from there
    /// on for an orphan.
    fn in_flight_elsewhere_from(&self) -> u64 {
        u64::MAX
    }

    /// What `/metrics` shows of the store.
    fn stats(&self) -> StoreStats;

    /// Leaves the durable state tidy for the next start, at a clean
    /// shutdown (the local store: its journal ends at its last record).
    /// Everything applied was already durable; a change applied after it
    /// still is.
    fn close(&self) -> io::Result<()>;
}

/// A store's figures for `/metrics`.
pub struct StoreStats {
    /// Bytes of journal since the last checkpoint (what a restart replays).
    pub journal_bytes: u64,
    /// Since the last checkpoint, or since start-up if none was written.
    pub checkpoint_age: std::time::Duration,
    /// How long each fsync of the journal took.
    pub sync_latency: common::metrics::HistogramSnapshot,
}

/// A read-only view of the state under its lock: changes go through
/// `MetaStore::apply`, so nothing outside a store can change durable state.
pub struct StateRef<'a>(MutexGuard<'a, Metadata>);

impl<'a> StateRef<'a> {
    fn new(guard: MutexGuard<'a, Metadata>) -> StateRef<'a> {
        StateRef(guard)
    }
}

impl Deref for StateRef<'_> {
    type Target = Metadata;

    fn deref(&self) -> &Metadata {
        &self.0
    }
}

/// Panics on a refusal that means a bug: the door is never asked for a
/// change that breaks the state's invariants.
fn expect_valid(refusal: Refusal) -> Refusal {
    if let Refusal::Invalid(detail) = &refusal {
        panic!("a change that breaks the metadata's invariants: {detail}");
    }
    refusal
}

#[cfg(test)]
mod tests;
