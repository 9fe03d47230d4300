//! The naming server's shared state: the namespace, the cluster view, the
//! storage client, pending chunk deletions and counters. One per process,
//! shared by every worker behind an `Arc`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use common::chunk::BlobId;

use crate::cluster::Cluster;
use crate::garbage::Garbage;
use crate::metadata::Metadata;
use crate::metrics::Metrics;
use crate::storage_client::StorageClient;

pub struct Naming {
    metadata: Mutex<Metadata>,
    pub cluster: Cluster,
    pub storage: StorageClient,
    pub garbage: Garbage,
    pub metrics: Metrics,
    next_blob: AtomicU64,
}

impl Naming {
    pub fn new(cluster: Cluster, storage: StorageClient) -> Naming {
        // Blob ids must never repeat, across restarts too, or a new file
        // could adopt an old one's leftover chunks. Until the journal keeps
        // the counter, it starts from the clock: 4096 ids per microsecond.
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_micros());
        let first_blob = u64::try_from(micros).unwrap_or(u64::MAX >> 12) << 12;
        Naming {
            metadata: Mutex::new(Metadata::default()),
            cluster,
            storage,
            garbage: Garbage::default(),
            metrics: Metrics::default(),
            next_blob: AtomicU64::new(first_blob),
        }
    }

    pub fn metadata(&self) -> MutexGuard<'_, Metadata> {
        // Metadata methods assert before they change anything, so a panic
        // under the lock leaves it consistent.
        self.metadata
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn new_blob(&self) -> BlobId {
        BlobId(self.next_blob.fetch_add(1, Ordering::Relaxed))
    }
}
