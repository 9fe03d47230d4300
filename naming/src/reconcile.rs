//! Reconciliation: each storage server's list of blobs is compared with the
//! metadata. Blobs that no committed file or stored upload part references and no create is
//! writing (left by a crash mid-create, or a delete whose storage call
//! failed) are deleted once they have stayed orphaned for a grace period;
//! replicas the metadata expects but a server lacks are recorded as
//! missing, and count as under-replicated in `status`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::chunk::BlobId;

use crate::fanout;
use crate::metadata::Metadata;
use crate::metadata::version::ServerId;
use crate::naming::Naming;

/// What reconciliation has learned, kept between passes.
#[derive(Default)]
pub struct Reconciler {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Orphans seen, with when they were first seen orphaned.
    orphans: HashMap<(ServerId, BlobId), Instant>,
    /// Replicas the metadata expects that the server does not hold whole.
    missing: HashSet<(ServerId, BlobId)>,
    /// Blobs a server holds more chunks of than placed there, with when
    /// that was first seen.
    surplus: HashMap<(ServerId, BlobId), Instant>,
}

/// What one pass found and did, for the log and the metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    pub servers_listed: usize,
    pub orphans_deleted: usize,
    pub orphans_waiting: usize,
    pub surplus_dropped: usize,
    pub missing: usize,
}

impl Reconciler {
    /// One pass over every live server: list, compare, act.
    pub fn pass(&self, naming: &Naming, grace: Duration) -> PassReport {
        let mut report = PassReport::default();
        // List first, then look at the metadata: a blob committed in
        // between is referenced by then, and one still being written is in
        // flight, so neither is taken for an orphan.
        let live: Vec<ServerId> = naming
            .server_ids()
            .into_iter()
            .filter(|&id| naming.cluster.is_alive(id))
            .collect();
        let listings: Vec<(ServerId, Vec<(BlobId, u32)>)> =
            fanout::call_each(&naming.addresses(&live), |_, url| {
                naming.storage.list_blobs(url)
            })
            .into_iter()
            .filter_map(|(id, blobs)| Some((id, blobs.ok()?)))
            .collect();
        report.servers_listed = listings.len();
        // Blobs being written, and dropped versions a read may still be
        // streaming (the garbage queue deletes those once it is done), are
        // never orphans here. In flight is read before the metadata: a
        // create marks its blob in flight before it writes and unmarks it
        // after it commits, so every listed blob of a create is in one of
        // the two.
        let in_flight = naming.blobs_in_flight();
        // And other naming servers' creates, if they share the metadata.
        let elsewhere_from = naming.store().in_flight_elsewhere_from();
        let expected = expected_chunks(&naming.metadata());
        let queued = naming.garbage.blobs();
        let now = Instant::now();
        let mut doomed: Vec<(ServerId, BlobId)> = Vec::new();
        let mut surplus: Vec<(ServerId, BlobId)> = Vec::new();
        let mut state = self.lock();
        let listed_servers: HashSet<ServerId> = listings.iter().map(|(id, _)| *id).collect();
        state
            .orphans
            .retain(|(server, _), _| listed_servers.contains(server));
        state
            .missing
            .retain(|(server, _)| !listed_servers.contains(server));
        for (server, blobs) in &listings {
            let held: HashMap<BlobId, u32> = blobs.iter().copied().collect();
            for (&(expected_server, blob), &chunks) in &expected {
                if expected_server == *server && held.get(&blob).copied().unwrap_or(0) < chunks {
                    state.missing.insert((*server, blob));
                }
            }
            for &(blob, held_chunks) in blobs {
                let key = (*server, blob);
                if in_flight.contains(&blob) || queued.contains(&blob) || blob.0 >= elsewhere_from {
                    state.orphans.remove(&key);
                    continue;
                }
                if let Some(&expected_chunks) = expected.get(&key) {
                    // More chunks than placed here: surplus replicas, left
                    // by a server that was dead while they were copied
                    // elsewhere. Dropped after the same grace as orphans.
                    if held_chunks > expected_chunks {
                        let first_seen = *state.surplus.entry(key).or_insert(now);
                        if now.duration_since(first_seen) >= grace {
                            surplus.push(key);
                        }
                    } else {
                        state.surplus.remove(&key);
                    }
                    state.orphans.remove(&key);
                    continue;
                }
                let first_seen = *state.orphans.entry(key).or_insert(now);
                if now.duration_since(first_seen) >= grace {
                    doomed.push(key);
                }
            }
        }
        for key in &doomed {
            state.orphans.remove(key);
        }
        for key in &surplus {
            state.surplus.remove(key);
        }
        report.orphans_waiting = state.orphans.len();
        report.missing = state.missing.len();
        drop(state);
        for (server, blob) in surplus {
            drop_surplus(naming, server, blob);
            report.surplus_dropped += 1;
        }
        for (server, blob) in doomed {
            naming.garbage.discard_now(naming, blob, [server].into());
            report.orphans_deleted += 1;
        }
        report
    }

    /// Whether `server` is known to lack chunks of `blob` it should hold.
    pub fn is_missing(&self, server: ServerId, blob: BlobId) -> bool {
        self.lock().missing.contains(&(server, blob))
    }

    /// Forgets that `server` lacks `blob`: a repair just gave it a copy.
    pub fn clear_missing(&self, server: ServerId, blob: BlobId) {
        self.lock().missing.remove(&(server, blob));
    }

    pub fn missing_count(&self) -> usize {
        self.lock().missing.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain sets; a poisoned lock still holds usable ones.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Asks `server` to drop the chunks of `blob` that the metadata does not
/// place on it: every run of the blob's file without `server` among its
/// replicas.
fn drop_surplus(naming: &Naming, server: ServerId, blob: BlobId) {
    let ranges: Vec<(u32, u32)> = {
        let metadata = naming.metadata();
        let Some(piece) = metadata.piece_of(blob) else {
            return;
        };
        piece
            .runs
            .iter()
            .filter(|run| !run.replicas.contains(&server))
            .map(|run| (run.first_index, run.count))
            .collect()
    };
    let url = naming.metadata().server_url(server);
    for (first, count) in ranges {
        if let Err(err) = naming.storage.drop_surplus(&url, blob, first, count) {
            log::warn!("reconcile: dropping surplus {blob}:{first}+{count} on {url}: {err}");
        }
    }
}

/// For every (server, blob) the metadata places chunks on, how many.
fn expected_chunks(metadata: &Metadata) -> HashMap<(ServerId, BlobId), u32> {
    let mut expected = HashMap::new();
    for piece in metadata.pieces() {
        for run in &piece.runs {
            for &server in run.replicas.iter() {
                *expected.entry((server, piece.blob)).or_insert(0) += run.count;
            }
        }
    }
    expected
}
