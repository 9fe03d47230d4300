//! Re-replication: chunks with fewer healthy replicas than the replication
//! factor (a replica is healthy on a live server that is not known to lack
//! it) are copied from a healthy replica to other live servers, those with
//! the fewest healthy replicas first, at a bounded rate so client traffic
//! keeps flowing. A draining server's replicas count as missing, so its
//! chunks move elsewhere (read from it while it still serves them) without
//! ever dropping below the replication factor. Each repaired range is
//! journaled before it counts.

use std::time::{Duration, Instant};

use common::chunk::BlobId;
use common::limits::{BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES};
use common::wire::encode_batch;

use crate::metadata::ServerId;
use crate::naming::Naming;

/// Ranges looked at per pass: bounds the memory and the lock hold of a scan.
const TASKS_PER_PASS_MAX: usize = 10_000;

/// A range of one blob that lacks healthy replicas.
struct Task {
    blob: BlobId,
    first_index: u32,
    count: u32,
    healthy: Vec<ServerId>,
    /// Replicas to copy from: the healthy ones and a draining server's.
    sources: Vec<ServerId>,
}

/// Paces copies to `bytes_per_sec`.
pub struct Throttle {
    bytes_per_sec: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl Throttle {
    pub fn new(bytes_per_sec: u64) -> Throttle {
        assert!(bytes_per_sec >= 1);
        Throttle {
            bytes_per_sec,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Counts `bytes` copied and waits until the rate is respected.
    fn spend(&mut self, bytes: u64) {
        self.window_bytes += bytes;
        let due = Duration::from_secs_f64(self.window_bytes as f64 / self.bytes_per_sec as f64);
        let elapsed = self.window_start.elapsed();
        if due > elapsed {
            // A timer channel, not a sleep: the wait is bounded by `due`.
            let _ = crossbeam_channel::after(due - elapsed).recv();
        }
        if self.window_start.elapsed() > Duration::from_secs(10) {
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
    }
}

/// One pass: finds under-replicated ranges and repairs what it can.
/// Returns the number of chunks given a new replica.
pub fn pass(naming: &Naming, throttle: &mut Throttle) -> u64 {
    // A healthy cluster needs no scan of the whole namespace (which holds
    // the metadata lock): only a dead or draining server, or a replica
    // known missing, can leave chunks short of replicas.
    let cluster = &naming.cluster;
    let all_well = cluster
        .ids()
        .all(|id| cluster.is_alive(id) && !cluster.is_draining(id))
        && naming.reconciler.missing_count() == 0;
    if all_well {
        return 0;
    }
    let mut repaired = 0;
    for task in find_tasks(naming) {
        let mut first = task.first_index;
        let end = task.first_index + task.count;
        while first < end {
            let count = (end - first).min(BATCH_CHUNKS_MAX as u32);
            match repair_range(naming, &task, first, count, throttle) {
                Some(chunks) => repaired += chunks,
                None => break,
            }
            first += count;
        }
    }
    repaired
}

fn find_tasks(naming: &Naming) -> Vec<Task> {
    let cluster = &naming.cluster;
    let reconciler = &naming.reconciler;
    let metadata = naming.metadata();
    let mut tasks: Vec<Task> = Vec::new();
    for version in metadata.versions() {
        for run in &version.runs {
            // Replicas that can be read: on a live server that holds them.
            let sources: Vec<ServerId> = run
                .replicas
                .iter()
                .copied()
                .filter(|&id| cluster.is_alive(id) && !reconciler.is_missing(id, version.blob))
                .collect();
            // Of those, the ones that count: a draining server's do not.
            let healthy: Vec<ServerId> = sources
                .iter()
                .copied()
                .filter(|&id| !cluster.is_draining(id))
                .collect();
            // With no readable replica there is nothing to copy from.
            if healthy.len() < cluster.replication && !sources.is_empty() {
                tasks.push(Task {
                    blob: version.blob,
                    first_index: run.first_index,
                    count: run.count,
                    healthy,
                    sources,
                });
                if tasks.len() == TASKS_PER_PASS_MAX {
                    break;
                }
            }
        }
    }
    tasks.sort_by_key(|task| task.healthy.len());
    tasks
}

/// Copies chunks `first..first + count` of the task's blob from a healthy
/// replica to new servers and journals the move. `None` if it cannot (no
/// source served it, no server can take it, or the file is gone).
fn repair_range(
    naming: &Naming,
    task: &Task,
    first: u32,
    count: u32,
    throttle: &mut Throttle,
) -> Option<u64> {
    let needed = naming.cluster.replication - task.healthy.len();
    let bytes = u64::from(count) * CHUNK_SIZE_BYTES as u64;
    // A live server that lost its copy (scrubbed as corrupt, say) may take
    // it back; only the healthy replicas are excluded.
    let targets = naming
        .cluster
        .place_excluding(needed, bytes, &task.healthy)?;
    let chunks = task.sources.iter().find_map(|&source| {
        naming
            .storage
            .get_run(naming.cluster.url(source), task.blob, first, count)
            .ok()
    })?;
    let batch = encode_batch(&chunks);
    let stored = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&target| {
                let batch = &batch;
                scope.spawn(move || {
                    naming
                        .storage
                        .put_batch(naming.cluster.url(target), batch)
                        .is_ok()
                })
            })
            .collect();
        handles
            .into_iter()
            .all(|handle| handle.join().unwrap_or(false))
    });
    throttle.spend(batch.len() as u64 * targets.len() as u64);
    if !stored {
        // Copies that landed are orphans now; reconciliation reclaims them.
        return None;
    }
    let mut replicas = task.healthy.clone();
    replicas.extend(targets);
    let relocated = naming.relocate(task.blob, first, count, replicas.clone());
    // The servers that took copies hold them whole now: until the next
    // reconciliation says otherwise, they are not missing it.
    for target in &replicas[task.healthy.len()..] {
        naming.reconciler.clear_missing(*target, task.blob);
    }
    relocated.then_some(u64::from(count))
}
