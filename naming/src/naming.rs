//! The naming server's shared state: the namespace and its journal, the
//! cluster view, the storage client, pending chunk deletions and counters.
//! One per process, shared by every worker behind an `Arc`. Invariant:
//! every change to the namespace is journaled under the metadata lock (so
//! journal order is apply order) and durable before it is acknowledged or
//! its consequences (chunk deletions) happen.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use common::chunk::BlobId;
use common::name::FileName;

use crate::cluster::Cluster;
use crate::garbage::Garbage;
use crate::journal::record::Record;
use crate::journal::{Journal, Lsn};
use crate::limits::BLOB_RESERVATION_COUNT;
use crate::metadata::{FileVersion, Metadata, NameTaken, ServerId};
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::storage_client::StorageClient;

pub struct Naming {
    metadata: Mutex<Metadata>,
    journal: Journal,
    pub cluster: Cluster,
    pub storage: StorageClient,
    pub garbage: Garbage,
    pub reconciler: Reconciler,
    pub metrics: Metrics,
    next_blob: AtomicU64,
    /// Blob ids below this are journaled as possibly handed out. Raised
    /// only under the metadata lock.
    blobs_reserved_up_to: AtomicU64,
    /// A checkpoint is taken once the journal has grown by this much.
    checkpoint_bytes: u64,
}

/// A blob being written; ends its in-flight mark when dropped.
pub struct BlobInFlight<'a> {
    naming: &'a Naming,
    pub blob: BlobId,
}

impl Drop for BlobInFlight<'_> {
    fn drop(&mut self) {
        self.naming.metadata().end_blob(self.blob);
    }
}

/// How the naming server is put together at start-up.
pub struct Setup<'a> {
    pub meta_dir: &'a Path,
    /// Storage servers from the configuration.
    pub storage_servers: &'a [String],
    pub replication: usize,
    pub dead_after: std::time::Duration,
    pub checkpoint_bytes: u64,
    pub storage: StorageClient,
}

impl Naming {
    /// Replays the journal in `meta_dir` and builds the state. Returns
    /// what replay found, for the log.
    pub fn open(setup: Setup<'_>) -> Result<(Naming, Vec<String>), String> {
        let (journal, recovered) =
            Journal::open(setup.meta_dir).map_err(|err| format!("metadata journal: {err}"))?;
        let mut notes = recovered.notes;
        // Server ids in the runs are positions in this table: it only grows,
        // so reordering STORAGE_SERVERS never changes what an id means.
        let mut servers = recovered.servers;
        let mut last_lsn = 0;
        for url in setup.storage_servers {
            if !servers.contains(url) {
                let id = ServerId::try_from(servers.len())
                    .map_err(|_| "too many storage servers".to_owned())?;
                last_lsn = journal.append(&Record::Server {
                    id,
                    url: url.clone(),
                });
                servers.push(url.clone());
            }
        }
        let first_blob = recovered.blobs_reserved_up_to;
        let reserved_up_to = first_blob + BLOB_RESERVATION_COUNT;
        last_lsn = last_lsn.max(journal.append(&Record::ReserveBlobs {
            up_to: reserved_up_to,
        }));
        journal
            .sync(last_lsn)
            .map_err(|err| format!("metadata journal: {err}"))?;
        notes.push(format!(
            "metadata: {} files, {} chunks, {} storage servers known",
            recovered.metadata.files_count(),
            recovered.metadata.chunks_count(),
            servers.len()
        ));
        let draining = recovered.draining;
        let naming = Naming {
            metadata: Mutex::new(recovered.metadata),
            journal,
            cluster: Cluster::new(
                &servers,
                setup.replication,
                setup.dead_after,
                // A probe waits at most a third of `dead_after`, so a round
                // held up by a frozen server still hears the healthy ones
                // well before they would count as dead.
                setup.dead_after / 3,
            ),
            storage: setup.storage,
            garbage: Garbage::default(),
            reconciler: Reconciler::default(),
            metrics: Metrics::default(),
            next_blob: AtomicU64::new(first_blob),
            blobs_reserved_up_to: AtomicU64::new(reserved_up_to),
            checkpoint_bytes: setup.checkpoint_bytes,
        };
        for id in draining {
            naming.cluster.set_draining(id);
        }
        Ok((naming, notes))
    }

    pub fn metadata(&self) -> MutexGuard<'_, Metadata> {
        // Metadata methods assert before they change anything, so a panic
        // under the lock leaves it consistent.
        self.metadata
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A blob id never handed out before, across restarts too (a new file
    /// must never adopt an old one's leftover chunks), marked in flight
    /// until the guard drops, so reconciliation leaves its chunks alone.
    pub fn new_blob(&self) -> BlobInFlight<'_> {
        let id = self.next_blob.fetch_add(1, Ordering::Relaxed);
        let mut metadata = self.metadata();
        let reserved = self.blobs_reserved_up_to.load(Ordering::Acquire);
        let reservation = (id >= reserved).then(|| {
            let up_to = id + BLOB_RESERVATION_COUNT;
            (self.journal.append(&Record::ReserveBlobs { up_to }), up_to)
        });
        metadata.begin_blob(BlobId(id));
        drop(metadata);
        if let Some((lsn, up_to)) = reservation {
            self.durable(lsn);
            self.blobs_reserved_up_to.fetch_max(up_to, Ordering::AcqRel);
        }
        BlobInFlight {
            naming: self,
            blob: BlobId(id),
        }
    }

    /// Makes `version` the file `name`, durably. Returns the version it
    /// replaced, whose chunks the caller may now delete.
    pub fn commit(
        &self,
        name: &FileName,
        overwrite: bool,
        version: Arc<FileVersion>,
    ) -> Result<Option<Arc<FileVersion>>, NameTaken> {
        let (replaced, lsn) = {
            let mut metadata = self.metadata();
            let replaced = metadata.commit_create(name, overwrite, Arc::clone(&version))?;
            (
                replaced,
                self.journal.append(&Record::Commit {
                    name: name.clone(),
                    version,
                }),
            )
        };
        self.durable(lsn);
        Ok(replaced)
    }

    /// Removes the file `name`, durably; returns its version.
    pub fn delete(&self, name: &FileName) -> Option<Arc<FileVersion>> {
        let (removed, lsn) = {
            let mut metadata = self.metadata();
            let removed = metadata.remove(name)?;
            (
                removed,
                self.journal.append(&Record::Delete { name: name.clone() }),
            )
        };
        self.durable(lsn);
        Some(removed)
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
        let lsn = {
            let mut metadata = self.metadata();
            if !metadata.relocate(blob, first_index, count, &replicas) {
                return false;
            }
            self.journal.append(&Record::Relocate {
                blob,
                first_index,
                count,
                replicas,
            })
        };
        self.durable(lsn);
        true
    }

    /// Adds the storage server at `url` to the cluster, durably (a server
    /// started with `--join`); known servers are left as they are.
    pub fn join(&self, url: &str) -> Option<ServerId> {
        let (id, lsn) = {
            let _metadata = self.metadata();
            let (id, new) = self.cluster.add(url)?;
            (
                id,
                new.then(|| {
                    self.journal.append(&Record::Server {
                        id,
                        url: url.to_owned(),
                    })
                }),
            )
        };
        if let Some(lsn) = lsn {
            self.durable(lsn);
            println!("storage server {url} joined as id {id}");
        }
        self.cluster.refresh(&[id], &self.storage);
        Some(id)
    }

    /// Starts draining the server at `url`, durably; `None` if no server
    /// has that URL.
    pub fn drain(&self, url: &str) -> Option<ServerId> {
        let id = self.cluster.id_of(url)?;
        let lsn = {
            let _metadata = self.metadata();
            self.journal.append(&Record::Drain { id })
        };
        self.durable(lsn);
        self.cluster.set_draining(id);
        Some(id)
    }

    /// Writes a checkpoint if the journal has grown past `checkpoint_bytes`.
    pub fn checkpoint_if_due(&self) -> io::Result<()> {
        if self.journal.bytes_since_checkpoint() < self.checkpoint_bytes {
            return Ok(());
        }
        self.checkpoint()
    }

    /// Snapshots the namespace into a checkpoint and drops the journal
    /// before it. The lock is held only to rotate the journal and take the
    /// snapshot (cheap `Arc` clones), not while writing it.
    pub fn checkpoint(&self) -> io::Result<()> {
        let (generation, records) = {
            let metadata = self.metadata();
            let generation = self.journal.rotate()?;
            let mut records: Vec<Record> = self
                .cluster
                .urls()
                .enumerate()
                .map(|(id, url)| Record::Server {
                    id: ServerId::try_from(id).expect("the table holds ServerIds"),
                    url: url.to_owned(),
                })
                .collect();
            records.extend(
                self.cluster
                    .ids()
                    .filter(|&id| self.cluster.is_draining(id))
                    .map(|id| Record::Drain { id }),
            );
            records.push(Record::ReserveBlobs {
                up_to: self.blobs_reserved_up_to.load(Ordering::Acquire),
            });
            records.extend(metadata.files().map(|(name, version)| Record::Commit {
                name: name.clone(),
                version: Arc::clone(version),
            }));
            (generation, records)
        };
        self.journal
            .write_checkpoint(generation, records.into_iter())
    }

    /// Waits for `lsn` to be durable. A journal that cannot be written
    /// makes every later acknowledgement a lie: stop the process instead.
    fn durable(&self, lsn: Lsn) {
        if let Err(err) = self.journal.sync(lsn) {
            eprintln!("fatal: the metadata journal cannot be made durable: {err}");
            std::process::exit(1);
        }
    }
}
