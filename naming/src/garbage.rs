//! Chunks that no committed file needs any more: versions replaced or
//! deleted, and the partial writes of failed creates. They are deleted from
//! their servers once no read still streams them, retried while a server
//! does not answer, and given up on after `DELETE_ATTEMPTS_MAX` (start-up
//! reconciliation is the backstop for those).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use common::chunk::BlobId;
use common::limits::BLOB_DELETES_PER_CALL_MAX;

use crate::fanout;
use crate::limits::GARBAGE_QUEUE_MAX;
use crate::metadata::version::{FileVersion, Piece, ServerId};
use crate::naming::Naming;

/// Sweeps a doomed blob is retried before it is left to reconciliation.
const DELETE_ATTEMPTS_MAX: u32 = 300;

#[derive(Default)]
pub struct Garbage {
    queue: Mutex<VecDeque<Doomed>>,
}

/// The blobs of one dropped version (or piece), with the servers that may
/// still hold each.
struct Doomed {
    blobs: BTreeMap<BlobId, BTreeSet<ServerId>>,
    /// The dropped version, held until no reader holds it.
    version: Option<Arc<FileVersion>>,
    attempts: u32,
}

impl Doomed {
    fn is_done(&self) -> bool {
        self.blobs.is_empty()
    }
}

impl Garbage {
    /// Queues the chunks of a version that was just deleted or replaced.
    pub fn drop_version(&self, version: Arc<FileVersion>) {
        let blobs = version
            .pieces
            .iter()
            .map(|piece| (piece.blob, piece.servers().collect()))
            .collect();
        self.push(Doomed {
            blobs,
            version: Some(version),
            attempts: 0,
        });
    }

    /// Queues the chunks of pieces no version holds (parts of an upload
    /// aborted, replaced or left out of its completion): no read streams
    /// them.
    pub fn drop_pieces(&self, pieces: Vec<Piece>) {
        if pieces.is_empty() {
            return;
        }
        let blobs = pieces
            .iter()
            .map(|piece| (piece.blob, piece.servers().collect()))
            .collect();
        self.push(Doomed {
            blobs,
            version: None,
            attempts: 0,
        });
    }

    /// Deletes the chunks a failed create wrote, now; what fails is queued.
    pub fn discard_now(&self, naming: &Naming, blob: BlobId, servers: BTreeSet<ServerId>) {
        let mut doomed = Doomed {
            blobs: BTreeMap::from([(blob, servers.clone())]),
            version: None,
            attempts: 0,
        };
        delete_from_servers(naming, std::slice::from_mut(&mut doomed));
        let left = doomed.blobs.get(&blob).cloned().unwrap_or_default();
        let cleaned: Vec<ServerId> = servers.difference(&left).copied().collect();
        naming.heartbeat(&cleaned);
        if !doomed.is_done() {
            self.push(doomed);
        }
    }

    /// One pass over the queue: deletes what no reader holds.
    pub fn sweep(&self, naming: &Naming) {
        let ready: Vec<Doomed> = {
            let mut queue = self.lock();
            let (ready, waiting): (Vec<Doomed>, Vec<Doomed>) =
                queue.drain(..).partition(|doomed| {
                    doomed
                        .version
                        .as_ref()
                        .is_none_or(|version| Arc::strong_count(version) == 1)
                });
            queue.extend(waiting);
            ready
        };
        let mut ready = ready;
        let blobs_before: usize = ready.iter().map(|doomed| doomed.blobs.len()).sum();
        delete_from_servers(naming, &mut ready);
        let blobs_after: usize = ready.iter().map(|doomed| doomed.blobs.len()).sum();
        naming.metrics.count(
            &naming.metrics.blobs_reclaimed_total,
            (blobs_before - blobs_after) as u64,
        );
        for mut doomed in ready.into_iter().filter(|doomed| !doomed.is_done()) {
            doomed.attempts += 1;
            if doomed.attempts < DELETE_ATTEMPTS_MAX {
                self.push(doomed);
            } else {
                for (blob, servers) in &doomed.blobs {
                    log::warn!(
                        "garbage: giving up deleting blob {blob} on {} servers",
                        servers.len()
                    );
                }
            }
        }
    }

    /// Blobs queued here: their deletion waits for readers, so nobody else
    /// may take them for orphans and delete them under a read.
    pub fn blobs(&self) -> HashSet<BlobId> {
        self.lock()
            .iter()
            .flat_map(|doomed| doomed.blobs.keys().copied())
            .collect()
    }

    pub fn pending_count(&self) -> usize {
        self.lock().len()
    }

    fn push(&self, mut doomed: Doomed) {
        // A blob on no server (an empty piece) has nothing to delete.
        doomed.blobs.retain(|_, servers| !servers.is_empty());
        if doomed.is_done() {
            return;
        }
        let mut queue = self.lock();
        if queue.len() >= GARBAGE_QUEUE_MAX
            && let Some(oldest) = queue.pop_front()
        {
            log::warn!(
                "garbage: queue full, leaving {} blobs to reconciliation",
                oldest.blobs.len()
            );
        }
        queue.push_back(doomed);
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Doomed>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Deletes every doomed blob from its servers: one call per server for up
/// to `BLOB_DELETES_PER_CALL_MAX` of its blobs (one write and one fsync
/// there), the servers in parallel. Each doomed blob keeps the servers
/// whose call failed.
fn delete_from_servers(naming: &Naming, doomed: &mut [Doomed]) {
    let mut by_server: BTreeMap<ServerId, Vec<BlobId>> = BTreeMap::new();
    for (&blob, servers) in doomed.iter().flat_map(|doomed| doomed.blobs.iter()) {
        for &server in servers {
            by_server.entry(server).or_default().push(blob);
        }
    }
    let servers: Vec<ServerId> = by_server.keys().copied().collect();
    let answers = fanout::call_each(&naming.addresses(&servers), |server, url| {
        // A server either took every piece or is retried for all of them.
        by_server[&server]
            .chunks(BLOB_DELETES_PER_CALL_MAX)
            .try_for_each(|blobs| naming.storage.delete_blobs(url, blobs))
    });
    for (server, answer) in answers {
        if answer.is_ok() {
            for one in doomed.iter_mut() {
                for servers in one.blobs.values_mut() {
                    servers.remove(&server);
                }
                one.blobs.retain(|_, servers| !servers.is_empty());
            }
        }
    }
}
