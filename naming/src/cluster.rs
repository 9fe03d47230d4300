//! The storage servers the naming server knows, what it last heard from
//! each (liveness, used and capacity bytes), and the heartbeat that keeps
//! that fresh. A server is alive while it answered within `dead_after`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::api::ServerStatus;

use crate::error::ApiError;
use crate::limits::STORAGE_SERVERS_MAX;
use crate::metadata::ServerId;
use crate::placement::{self, Candidate, PlacementError};
use crate::storage_client::StorageClient;

pub struct Cluster {
    /// Slots for `STORAGE_SERVERS_MAX` servers, filled in id order and
    /// never emptied, so `&StorageServer`s stay valid without a lock while
    /// servers join.
    servers: Box<[OnceLock<Box<StorageServer>>]>,
    servers_count: AtomicUsize,
    /// Serialises joins.
    join_lock: Mutex<()>,
    pub replication: usize,
    dead_after: Duration,
    /// Budget of one status probe, well below `dead_after`: a heartbeat
    /// round waits for its slowest probe, and must not let a frozen server
    /// make the healthy ones look dead.
    probe_timeout: Duration,
    /// Advanced once per placed batch, so batches start on different servers.
    rotation: AtomicUsize,
}

struct StorageServer {
    url: String,
    health: Mutex<Health>,
    /// Being emptied before removal: gets no new chunks, and its replicas
    /// are copied elsewhere.
    draining: AtomicBool,
}

#[derive(Clone, Default)]
struct Health {
    last_heard: Option<Instant>,
    used_bytes: u64,
    capacity_bytes: Option<u64>,
    chunks: u64,
}

impl Cluster {
    pub fn new(
        urls: &[String],
        replication: usize,
        dead_after: Duration,
        probe_timeout: Duration,
    ) -> Cluster {
        assert!(probe_timeout < dead_after);
        assert!(replication >= 1);
        assert!(urls.len() <= STORAGE_SERVERS_MAX);
        let cluster = Cluster {
            servers: (0..STORAGE_SERVERS_MAX).map(|_| OnceLock::new()).collect(),
            servers_count: AtomicUsize::new(0),
            join_lock: Mutex::new(()),
            replication,
            dead_after,
            probe_timeout,
            rotation: AtomicUsize::new(0),
        };
        for url in urls {
            cluster.add(url).expect("bounded above");
        }
        cluster
    }

    /// Adds the server at `url` unless it is known; returns its id and
    /// whether it is new. `None` when the table is full.
    pub fn add(&self, url: &str) -> Option<(ServerId, bool)> {
        let _join = self
            .join_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(id) = self.id_of(url) {
            return Some((id, false));
        }
        let count = self.servers_count.load(Ordering::Acquire);
        let slot = self.servers.get(count)?;
        let server = StorageServer {
            url: url.to_owned(),
            health: Mutex::new(Health::default()),
            draining: AtomicBool::new(false),
        };
        assert!(
            slot.set(Box::new(server)).is_ok(),
            "slots fill in order under the join lock"
        );
        self.servers_count.store(count + 1, Ordering::Release);
        Some((
            ServerId::try_from(count).expect("STORAGE_SERVERS_MAX fits ServerId"),
            true,
        ))
    }

    fn server(&self, id: ServerId) -> &StorageServer {
        self.servers[usize::from(id)]
            .get()
            .expect("ids below the count are filled")
    }

    /// Every live server and the bytes it can still take.
    fn live_candidates(&self) -> Vec<Candidate> {
        self.ids()
            .filter(|&id| self.is_alive(id) && !self.is_draining(id))
            .map(|id| {
                let health = self.server(id).lock();
                let free_bytes = match health.capacity_bytes {
                    Some(capacity) => capacity.saturating_sub(health.used_bytes),
                    None => u64::MAX,
                };
                Candidate { id, free_bytes }
            })
            .collect()
    }

    pub fn is_draining(&self, id: ServerId) -> bool {
        self.server(id).draining.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, id: ServerId) {
        self.server(id).draining.store(true, Ordering::Relaxed);
    }

    /// The id of the server at `url`, if it is one of ours.
    pub fn id_of(&self, url: &str) -> Option<ServerId> {
        self.ids().find(|&id| self.url(id) == url)
    }

    pub fn url(&self, id: ServerId) -> &str {
        &self.server(id).url
    }

    pub fn is_alive(&self, id: ServerId) -> bool {
        let health = self.server(id).lock();
        health
            .last_heard
            .is_some_and(|heard| heard.elapsed() < self.dead_after)
    }

    /// Chooses the servers for a batch of `batch_bytes`.
    pub fn place(&self, batch_bytes: u64) -> Result<Vec<ServerId>, ApiError> {
        let live = self.live_candidates();
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

    /// Chooses `count` more live servers with room for `batch_bytes`, none
    /// of them in `excluded`; `None` if there are not that many.
    pub fn place_excluding(
        &self,
        count: usize,
        batch_bytes: u64,
        excluded: &[ServerId],
    ) -> Option<Vec<ServerId>> {
        let candidates: Vec<Candidate> = self
            .live_candidates()
            .into_iter()
            .filter(|candidate| !excluded.contains(&candidate.id))
            .collect();
        let rotation = self.rotation.fetch_add(1, Ordering::Relaxed);
        placement::choose(&candidates, count, batch_bytes, rotation).ok()
    }

    /// Forgets that `id` was heard from: it is dead to placement and reads
    /// until the next heartbeat reaches it.
    pub fn mark_unreachable(&self, id: ServerId) {
        self.server(id).lock().last_heard = None;
    }

    /// Counts bytes just stored on `id`, so placement sees them before the
    /// next heartbeat does.
    pub fn note_stored(&self, id: ServerId, bytes: u64, chunks: u64) {
        let mut health = self.server(id).lock();
        health.used_bytes += bytes;
        health.chunks += chunks;
    }

    /// Asks every server for its status, in parallel; each call is bounded
    /// by the client's timeout.
    pub fn heartbeat_round(&self, client: &StorageClient) {
        thread::scope(|scope| {
            for id in self.ids() {
                let server = self.server(id);
                scope.spawn(move || server.refresh(client, self.probe_timeout));
            }
        });
    }

    /// Asks the given servers for their status now, in parallel: after a
    /// failed create's chunks were deleted, placement should see the room.
    pub fn refresh(&self, ids: &[ServerId], client: &StorageClient) {
        thread::scope(|scope| {
            for &id in ids {
                let server = self.server(id);
                scope.spawn(move || server.refresh(client, self.probe_timeout));
            }
        });
    }

    /// Every server's id.
    pub fn ids(&self) -> impl Iterator<Item = ServerId> + use<> {
        let count = self.servers_count.load(Ordering::Acquire);
        (0..count).map(|idx| ServerId::try_from(idx).expect("STORAGE_SERVERS_MAX fits ServerId"))
    }

    /// Every server's URL, in id order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.ids().map(|id| self.url(id))
    }

    pub fn servers_count(&self) -> usize {
        self.servers_count.load(Ordering::Acquire)
    }

    pub fn status_rows(&self) -> Vec<ServerStatus> {
        self.ids()
            .map(|id| {
                let server = self.server(id);
                let alive = self.is_alive(id);
                let health = server.lock().clone();
                ServerStatus {
                    url: server.url.clone(),
                    alive,
                    used_bytes: health.used_bytes,
                    capacity_bytes: health.capacity_bytes,
                    chunks: health.chunks,
                    draining: self.is_draining(id),
                    placed_chunks: 0,
                    last_heard_ms: health.last_heard.map(|heard| {
                        u64::try_from(heard.elapsed().as_millis()).unwrap_or(u64::MAX)
                    }),
                }
            })
            .collect()
    }
}

impl StorageServer {
    fn refresh(&self, client: &StorageClient, timeout: Duration) {
        if let Ok(status) = client.status(&self.url, timeout) {
            let mut health = self.lock();
            health.last_heard = Some(Instant::now());
            health.used_bytes = status.used_bytes;
            health.capacity_bytes = status.capacity_bytes;
            health.chunks = status.chunks;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        // Health is a plain record; a poisoned lock still holds a usable one.
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
