//! What the naming server last heard from each storage server: liveness,
//! used and capacity bytes, chunk count. A server is alive while it
//! answered within `dead_after`. The server table itself (URLs, drains) is
//! durable state and lives in `Metadata`; this is the volatile view beside
//! it, indexed by the same ids.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::api::StorageStatus;

use crate::error::ApiError;
use crate::limits::STORAGE_SERVERS_MAX;
use crate::metadata::version::ServerId;
use crate::placement::{self, Candidate, PlacementError};

pub struct Cluster {
    /// One slot per possible server id, so lookups need no table lock.
    health: Box<[Mutex<Health>]>,
    pub replication: usize,
    dead_after: Duration,
    /// Budget of one status probe, well below `dead_after`: a heartbeat
    /// round waits for its slowest probe, and must not let a frozen server
    /// make the healthy ones look dead.
    probe_timeout: Duration,
    /// Advanced once per placed batch, so batches start on different servers.
    rotation: AtomicUsize,
}

#[derive(Clone, Default)]
pub struct Health {
    pub last_heard: Option<Instant>,
    pub used_bytes: u64,
    pub capacity_bytes: Option<u64>,
    /// Bytes it can still take, as it last said.
    pub free_bytes: Option<u64>,
    pub chunks: u64,
    /// Chunks its scrub found corrupt since it started, as it last said.
    pub corrupt_chunks_found: u64,
    /// The last heartbeat failed for a setup fault (credentials refused,
    /// a certificate not trusted): said once in the log, not every round.
    pub setup_fault_logged: bool,
    /// Alive or dead as the log last said (`None`: not said yet).
    pub logged_alive: Option<bool>,
}

impl Cluster {
    pub fn new(replication: usize, dead_after: Duration) -> Cluster {
        // A probe waits at most a third of `dead_after`, so a round held
        // up by a frozen server still hears the healthy ones well before
        // they would count as dead.
        let probe_timeout = dead_after / 3;
        assert!(probe_timeout < dead_after);
        assert!(replication >= 1);
        Cluster {
            health: (0..STORAGE_SERVERS_MAX)
                .map(|_| Mutex::new(Health::default()))
                .collect(),
            replication,
            dead_after,
            probe_timeout,
            rotation: AtomicUsize::new(0),
        }
    }

    pub fn dead_after(&self) -> Duration {
        self.dead_after
    }

    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }

    pub fn is_alive(&self, id: ServerId) -> bool {
        self.lock(id)
            .last_heard
            .is_some_and(|heard| heard.elapsed() < self.dead_after)
    }

    pub fn health(&self, id: ServerId) -> Health {
        self.lock(id).clone()
    }

    /// A status answer from `id`.
    pub fn heard_from(&self, id: ServerId, status: &StorageStatus) {
        let mut health = self.lock(id);
        health.last_heard = Some(Instant::now());
        health.used_bytes = status.used_bytes;
        health.capacity_bytes = status.capacity_bytes;
        health.free_bytes = status.free_bytes;
        health.chunks = status.chunks;
        health.corrupt_chunks_found = status.corrupt_chunks_found;
        health.setup_fault_logged = false;
    }

    /// Whether `id` is alive, when that differs from what the log last
    /// said (and is now said): `None` when nothing changed.
    pub fn liveness_change(&self, id: ServerId) -> Option<bool> {
        let alive = self.is_alive(id);
        let mut health = self.lock(id);
        match health.logged_alive.replace(alive) {
            Some(was) if was == alive => None,
            _ => Some(alive),
        }
    }

    /// A heartbeat to `id` failed for a setup fault; true the first time
    /// in a row, when it is worth a log line.
    pub fn setup_fault(&self, id: ServerId) -> bool {
        !std::mem::replace(&mut self.lock(id).setup_fault_logged, true)
    }

    /// Forgets that `id` was heard from: it is dead to placement and reads
    /// until the next heartbeat reaches it.
    pub fn mark_unreachable(&self, id: ServerId) {
        self.lock(id).last_heard = None;
    }

    /// Counts bytes just stored on `id`, so placement sees them before the
    /// next heartbeat does.
    pub fn note_stored(&self, id: ServerId, bytes: u64, chunks: u64) {
        let mut health = self.lock(id);
        health.used_bytes += bytes;
        health.chunks += chunks;
    }

    /// Chooses, among the `accepting` servers that are alive, the
    /// `replication` servers of a batch of `batch_bytes`.
    pub fn place(
        &self,
        accepting: &[ServerId],
        batch_bytes: u64,
    ) -> Result<Vec<ServerId>, ApiError> {
        let live = self.live_candidates(accepting);
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        placement::choose(&live, self.replication, batch_bytes, rotation).map_err(|err| match err {
            PlacementError::NotEnoughServers { live, needed } => ApiError::NotEnoughServers { live, needed },
            PlacementError::NotEnoughSpace { with_room, needed } => ApiError::InsufficientStorage {
                detail: format!(
                    "only {with_room} live storage servers have room for {batch_bytes} more bytes, {needed} are needed"
                ),
            },
        })
    }

    /// Chooses `count` more live servers among `accepting` with room for
    /// `batch_bytes`, none of them in `excluded`; `None` if there are not
    /// that many.
    pub fn place_excluding(
        &self,
        accepting: &[ServerId],
        count: usize,
        batch_bytes: u64,
        excluded: &[ServerId],
    ) -> Option<Vec<ServerId>> {
        let candidates: Vec<Candidate> = self
            .live_candidates(accepting)
            .into_iter()
            .filter(|candidate| !excluded.contains(&candidate.id))
            .collect();
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        placement::choose(&candidates, count, batch_bytes, rotation).ok()
    }

    /// The live servers among `ids` and the bytes each can still take.
    fn live_candidates(&self, ids: &[ServerId]) -> Vec<Candidate> {
        ids.iter()
            .filter(|&&id| self.is_alive(id))
            .map(|&id| {
                let health = self.lock(id);
                let free_bytes = match health.capacity_bytes {
                    Some(capacity) => capacity.saturating_sub(health.used_bytes),
                    None => u64::MAX,
                };
                Candidate { id, free_bytes }
            })
            .collect()
    }

    fn lock(&self, id: ServerId) -> MutexGuard<'_, Health> {
        // Health is a plain record; a poisoned lock still holds a usable one.
        self.health[usize::from(id)]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
