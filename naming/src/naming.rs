//! The naming server's shared context, one per process behind an `Arc`:
//! the metadata store (the one door for durable changes), what is in
//! flight (creates under way, blobs being written), the cluster's health,
//! the storage client, pending chunk deletions and counters. Its methods
//! are the operations the API and the background work need, each turned
//! into one `Change` for the door.
//!
//! Locks: the store's state lock comes before `in_flight` when both are
//! held; no other lock is held while taking the state lock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use common::api::ServerStatus;
use common::chunk::BlobId;
use common::name::FileName;

use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::garbage::Garbage;
use crate::meta_store::{MetaStore, StateRef};
use crate::metadata::change::{Applied, Change, Refusal};
use crate::metadata::version::{FileVersion, ServerId};
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::storage_client::{CallError, StorageClient};

pub struct Naming {
    store: Box<dyn MetaStore>,
    in_flight: Mutex<InFlight>,
    pub cluster: Cluster,
    pub storage: StorageClient,
    pub garbage: Garbage,
    pub reconciler: Reconciler,
    pub metrics: Metrics,
}

/// What this process has under way; not durable (a restart forgets it, and
/// reconciliation reclaims what an interrupted create wrote).
#[derive(Default)]
struct InFlight {
    /// Names with a create (without overwrite) under way: a second one
    /// fails at once.
    creating: HashSet<FileName>,
    /// Blobs being written by creates that have not committed (or failed)
    /// yet: reconciliation must not take them for orphans.
    blobs: HashSet<BlobId>,
}

/// A blob being written; ends its in-flight mark when dropped.
pub struct BlobInFlight<'a> {
    naming: &'a Naming,
    pub blob: BlobId,
}

impl Drop for BlobInFlight<'_> {
    fn drop(&mut self) {
        let removed = self.naming.lock_in_flight().blobs.remove(&self.blob);
        assert!(removed);
    }
}

/// Why a create cannot start or commit: the name is taken.
#[derive(Debug, PartialEq, Eq)]
pub struct NameTaken;

impl Naming {
    pub fn new(store: Box<dyn MetaStore>, cluster: Cluster, storage: StorageClient) -> Naming {
        Naming {
            store,
            in_flight: Mutex::new(InFlight::default()),
            cluster,
            storage,
            garbage: Garbage::default(),
            reconciler: Reconciler::default(),
            metrics: Metrics::default(),
        }
    }

    /// The metadata, for reads; hold the guard briefly.
    pub fn metadata(&self) -> StateRef<'_> {
        self.store.state()
    }

    pub fn store(&self) -> &dyn MetaStore {
        &*self.store
    }

    /// Starts a create. Without `overwrite` the name must be free and not
    /// being created by someone else: of concurrent creates of one name
    /// exactly one gets past here.
    pub fn begin_create(&self, name: &FileName, overwrite: bool) -> Result<(), NameTaken> {
        if overwrite {
            return Ok(());
        }
        let metadata = self.metadata();
        let mut in_flight = self.lock_in_flight();
        if metadata.contains(name) || !in_flight.creating.insert(name.clone()) {
            return Err(NameTaken);
        }
        Ok(())
    }

    /// Ends a create that will not commit.
    pub fn abort_create(&self, name: &FileName, overwrite: bool) {
        if !overwrite {
            let removed = self.lock_in_flight().creating.remove(name);
            assert!(removed);
        }
    }

    /// A blob id never handed out before, marked in flight until the guard
    /// drops, so reconciliation leaves its chunks alone.
    pub fn new_blob(&self) -> Result<BlobInFlight<'_>, ApiError> {
        let blob = self.store.new_blob()?;
        let inserted = self.lock_in_flight().blobs.insert(blob);
        assert!(inserted, "blob {blob} handed out twice");
        Ok(BlobInFlight { naming: self, blob })
    }

    /// Blobs being written now.
    pub fn blobs_in_flight(&self) -> HashSet<BlobId> {
        self.lock_in_flight().blobs.clone()
    }

    /// Makes `version` the file `name`, durably, and ends the create.
    /// Returns the version it replaced, whose chunks the caller may now
    /// delete. Refused with `NameTaken`, or `Unavailable` (then the commit
    /// may yet have landed: the chunks must stay).
    pub fn commit(
        &self,
        name: &FileName,
        overwrite: bool,
        version: Arc<FileVersion>,
    ) -> Result<Option<Arc<FileVersion>>, Refusal> {
        let committed = self.store.apply(Change::Commit {
            name: name.clone(),
            version,
            overwrite,
        });
        // Only now: until the commit is applied, the reservation is what
        // keeps a second create of the name out.
        self.abort_create(name, overwrite);
        match committed {
            Ok(Applied::Committed { replaced }) => Ok(replaced),
            Err(refusal @ (Refusal::NameTaken | Refusal::Unavailable(_))) => Err(refusal),
            other => unreachable!("a commit answers {other:?}"),
        }
    }

    /// Removes the file `name`, durably; returns its version.
    pub fn delete(&self, name: &FileName) -> Result<Option<Arc<FileVersion>>, ApiError> {
        match self.store.apply(Change::Delete { name: name.clone() }) {
            Ok(Applied::Deleted { removed }) => Ok(Some(removed)),
            Err(Refusal::NoSuchFile) => Ok(None),
            Err(refusal @ Refusal::Unavailable(_)) => Err(refusal.into()),
            other => unreachable!("a delete answers {other:?}"),
        }
    }

    /// Renames the file `from` to `to`, durably (the chunks stay where they
    /// are); the version replaced at `to`, if any, is the caller's garbage.
    /// A create of `to` under way counts as `to` existing.
    pub fn rename(
        &self,
        from: &FileName,
        to: &FileName,
        overwrite: bool,
    ) -> Result<Option<Arc<FileVersion>>, Refusal> {
        if !overwrite && self.lock_in_flight().creating.contains(to) {
            return Err(Refusal::NameTaken);
        }
        let change = Change::Rename {
            from: from.clone(),
            to: to.clone(),
            overwrite,
        };
        match self.store.apply(change)? {
            Applied::Renamed { replaced } => Ok(replaced),
            Applied::Unchanged => Ok(None),
            other => unreachable!("a rename answers {other:?}"),
        }
    }

    /// Renames every file under the directory `from` to be under `to`, in
    /// one durable change; how many.
    pub fn rename_prefix(&self, from: &str, to: &str) -> Result<u64, Refusal> {
        let targets_creating = self
            .lock_in_flight()
            .creating
            .iter()
            .any(|name| name.as_str().starts_with(to));
        if targets_creating {
            return Err(Refusal::NameTaken);
        }
        let change = Change::RenamePrefix {
            from: from.to_owned(),
            to: to.to_owned(),
        };
        match self.store.apply(change)? {
            Applied::RenamedPrefix { count } => Ok(count),
            other => unreachable!("a directory rename answers {other:?}"),
        }
    }

    /// Makes the directory `path` (ending in `/`) explicit, durably.
    pub fn make_dir(&self, path: &str) -> Result<(), Refusal> {
        self.store
            .apply(Change::MakeDir {
                path: path.to_owned(),
            })
            .map(drop)
    }

    /// Removes the explicit directory `path`, durably, if it is empty
    /// (or `even_if_not_empty`: see `Change::RemoveDir`).
    pub fn remove_dir(&self, path: &str, even_if_not_empty: bool) -> Result<(), Refusal> {
        self.store
            .apply(Change::RemoveDir {
                path: path.to_owned(),
                even_if_not_empty,
            })
            .map(drop)
    }

    /// Moves a range of a blob's chunks to `replicas`, durably, if a file
    /// still has that blob; false if it was deleted or replaced meanwhile.
    pub fn relocate(
        &self,
        blob: BlobId,
        first_index: u32,
        count: u32,
        replicas: Vec<ServerId>,
    ) -> bool {
        let relocated = self.store.apply(Change::Relocate {
            blob,
            first_index,
            count,
            replicas,
        });
        match relocated {
            Ok(_) => true,
            Err(Refusal::BlobGone) => false,
            Err(Refusal::Unavailable(detail)) => {
                log::warn!("a relocation of blob {blob} is not recorded: {detail}");
                false
            }
            Err(other) => unreachable!("a relocation answers {other:?}"),
        }
    }

    /// A storage server started with `--join` registers: it is added to
    /// the table (`register`) and asked for its status at once, so
    /// placement can use it without waiting for the next heartbeat.
    pub fn join(&self, url: &str) -> Result<ServerId, ApiError> {
        let id = self.register(url)?;
        self.heartbeat(&[id]);
        Ok(id)
    }

    /// Adds the storage server at `url` to the table, durably; a known URL
    /// keeps its id.
    pub fn register(&self, url: &str) -> Result<ServerId, ApiError> {
        let table_full = || {
            ApiError::BadRequest(
                "the cluster has as many storage servers as it can hold".to_owned(),
            )
        };
        // Each round either finds the URL or takes the next id; a round
        // only fails because another join took that id first.
        for _ in 0..=crate::limits::STORAGE_SERVERS_MAX {
            let (id, known) = {
                let metadata = self.metadata();
                match metadata.server_id(url) {
                    Some(id) => (id, true),
                    None => {
                        let next = ServerId::try_from(metadata.servers_count())
                            .map_err(|_| table_full())?;
                        (next, false)
                    }
                }
            };
            let change = Change::AddServer {
                id,
                url: url.to_owned(),
            };
            match self.store.apply(change) {
                Ok(applied) => {
                    if !known && applied == Applied::Changed {
                        log::info!("storage server {url} added to the cluster as id {id}");
                    }
                    return Ok(id);
                }
                Err(Refusal::UnknownServer { .. }) => continue,
                Err(Refusal::TableFull) => return Err(table_full()),
                Err(refusal @ Refusal::Unavailable(_)) => return Err(refusal.into()),
                Err(other) => unreachable!("a join answers {other:?}"),
            }
        }
        unreachable!("every round but one takes an id of the bounded table")
    }

    /// Starts draining the server at `url`, durably; `None` if no server
    /// has that URL.
    pub fn drain(&self, url: &str) -> Result<Option<ServerId>, ApiError> {
        let Some(id) = self.metadata().server_id(url) else {
            return Ok(None);
        };
        match self.store.apply(Change::Drain { id }) {
            Ok(_) => Ok(Some(id)),
            Err(refusal @ Refusal::Unavailable(_)) => Err(refusal.into()),
            Err(other) => unreachable!("a drain of a known server answers {other:?}"),
        }
    }

    /// Chooses the servers for a new batch of `batch_bytes`.
    pub fn place(&self, batch_bytes: u64) -> Result<Vec<ServerId>, ApiError> {
        let accepting = self.metadata().accepting_servers();
        self.cluster.place(&accepting, batch_bytes)
    }

    /// Chooses `count` more servers for `batch_bytes`, none in `excluded`.
    pub fn place_excluding(
        &self,
        count: usize,
        batch_bytes: u64,
        excluded: &[ServerId],
    ) -> Option<Vec<ServerId>> {
        let accepting = self.metadata().accepting_servers();
        self.cluster
            .place_excluding(&accepting, count, batch_bytes, excluded)
    }

    /// `(id, URL)` of each of `ids`, for calls to them.
    pub fn addresses(&self, ids: &[ServerId]) -> Vec<(ServerId, Arc<str>)> {
        let metadata = self.metadata();
        ids.iter()
            .map(|&id| (id, metadata.server_url(id)))
            .collect()
    }

    /// Every server's id.
    pub fn server_ids(&self) -> Vec<ServerId> {
        self.metadata().server_ids().collect()
    }

    /// Asks the servers `ids` for their status now, in parallel, each
    /// bounded by the probe timeout; an answer refreshes its health.
    pub fn heartbeat(&self, ids: &[ServerId]) {
        let probe_timeout = self.cluster.probe_timeout();
        let answers = crate::fanout::call_each(&self.addresses(ids), |_, url| {
            self.storage.status(url, probe_timeout)
        });
        for (id, answer) in answers {
            match answer {
                Ok(status) => self.cluster.heard_from(id, &status),
                // A secret that differs, or a certificate not trusted, is a
                // setup error nothing else shows: the server just looks dead.
                Err(CallError::Refused {
                    status: 401,
                    message,
                }) if self.cluster.setup_fault(id) => {
                    log::warn!(
                        "storage server {} refuses this server's cluster credentials ({message}): do both have the same cluster secret?",
                        self.metadata().server_url(id)
                    );
                }
                Err(CallError::Tls(why)) if self.cluster.setup_fault(id) => {
                    log::warn!("storage server {}: {why}", self.metadata().server_url(id));
                }
                Err(_) => {}
            }
        }
    }

    /// Chunks with fewer healthy replicas than the replication factor: a
    /// replica counts when its server is alive and not known to lack it.
    /// A scan of the namespace under the metadata lock.
    pub fn under_replicated_chunks(&self) -> u64 {
        let cluster = &self.cluster;
        let reconciler = &self.reconciler;
        let metadata = self.metadata();
        metadata
            .pieces()
            .flat_map(|piece| piece.runs.iter().map(move |run| (piece.blob, run)))
            .filter(|(blob, run)| {
                let healthy = run
                    .replicas
                    .iter()
                    .filter(|&&id| cluster.is_alive(id) && !reconciler.is_missing(id, *blob))
                    .count();
                healthy < cluster.replication
            })
            .map(|(_, run)| u64::from(run.count))
            .sum()
    }

    /// Each server as `status` shows it: the table's URL and drain flag,
    /// and what was last heard from it.
    pub fn server_rows(&self) -> Vec<ServerStatus> {
        let servers: Vec<(ServerId, Arc<str>, bool)> = {
            let metadata = self.metadata();
            metadata
                .server_ids()
                .map(|id| (id, metadata.server_url(id), metadata.is_draining(id)))
                .collect()
        };
        servers
            .into_iter()
            .map(|(id, url, draining)| {
                let health = self.cluster.health(id);
                ServerStatus {
                    url: url.to_string(),
                    alive: self.cluster.is_alive(id),
                    used_bytes: health.used_bytes,
                    capacity_bytes: health.capacity_bytes,
                    free_bytes: health.free_bytes,
                    chunks: health.chunks,
                    draining,
                    placed_chunks: 0,
                    last_heard_ms: health.last_heard.map(|heard| {
                        u64::try_from(heard.elapsed().as_millis()).unwrap_or(u64::MAX)
                    }),
                }
            })
            .collect()
    }

    /// One heartbeat round over every server.
    pub fn heartbeat_round(&self) {
        let ids = self.server_ids();
        self.heartbeat(&ids);
        for id in ids {
            match self.cluster.liveness_change(id) {
                Some(true) => {
                    log::info!("storage server {} is alive", self.metadata().server_url(id))
                }
                Some(false) => log::warn!(
                    "storage server {} is dead (not heard from within {:?}): reads go to other replicas, and its chunks get new ones",
                    self.metadata().server_url(id),
                    self.cluster.dead_after()
                ),
                None => {}
            }
        }
    }

    fn lock_in_flight(&self) -> MutexGuard<'_, InFlight> {
        // Plain sets whose updates cannot panic half-way.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
