//! Re-replication: chunks with fewer healthy replicas than the replication
//! factor (a replica is healthy on a live server that is not known to lack
//! it) are copied from a healthy replica to other live servers, those with
//! the fewest healthy replicas first, at a bounded rate so client traffic
//! keeps flowing. A draining server's replicas count as missing, so its
//! chunks move elsewhere (read from it while it still serves them) without
//! ever dropping below the replication factor. Copies are stored the way a
//! create stores a batch (`replicate::store_batch`: a failed target is
//! marked and replaced), and each repaired range is journaled before it
//! counts.

use common::chunk::BlobId;
use common::limits::BATCH_CHUNKS_MAX;
use common::pacer::Pacer;

use crate::metadata::version::ServerId;
use crate::naming::Naming;
use crate::replicate::{self, Batch};

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

/// What the log says of re-replication: when it starts copying, and when
/// a pass finds nothing more to copy, with the total.
#[derive(Default)]
pub struct Progress {
    copied: u64,
    active: bool,
}

impl Progress {
    /// Takes the count of one `pass`.
    pub fn after_pass(&mut self, repaired: u64) {
        match (self.active, repaired) {
            (false, 0) => {}
            (false, _) => {
                log::info!("re-replication started: {repaired} chunks given a new replica so far");
                self.active = true;
                self.copied = repaired;
            }
            (true, 0) => {
                log::info!(
                    "re-replication done: {} chunks given a new replica, nothing more to copy now (`harbour status` counts any still short of replicas)",
                    self.copied
                );
                self.active = false;
                self.copied = 0;
            }
            (true, _) => self.copied += repaired,
        }
    }
}

/// One pass: finds under-replicated ranges and repairs what it can.
/// Returns the number of chunks given a new replica.
pub fn pass(naming: &Naming, pacer: &mut Pacer) -> u64 {
    // A healthy cluster needs no scan of the whole namespace (which holds
    // the metadata lock): only a dead or draining server, or a replica
    // known missing, can leave chunks short of replicas.
    let all_well = {
        let metadata = naming.metadata();
        metadata
            .server_ids()
            .all(|id| naming.cluster.is_alive(id) && !metadata.is_draining(id))
    } && naming.reconciler.missing_count() == 0;
    if all_well {
        return 0;
    }
    let mut repaired = 0;
    for task in find_tasks(naming) {
        let mut first = task.first_index;
        let end = task.first_index + task.count;
        while first < end {
            let count = (end - first).min(BATCH_CHUNKS_MAX as u32);
            match repair_range(naming, &task, first, count, pacer) {
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
    'scan: for piece in metadata.pieces() {
        for run in &piece.runs {
            // Replicas that can be read: on a live server that holds them.
            let sources: Vec<ServerId> = run
                .replicas
                .iter()
                .copied()
                .filter(|&id| cluster.is_alive(id) && !reconciler.is_missing(id, piece.blob))
                .collect();
            // Of those, the ones that count: a draining server's do not.
            let healthy: Vec<ServerId> = sources
                .iter()
                .copied()
                .filter(|&id| !metadata.is_draining(id))
                .collect();
            // With no readable replica there is nothing to copy from.
            if healthy.len() < cluster.replication && !sources.is_empty() {
                tasks.push(Task {
                    blob: piece.blob,
                    first_index: run.first_index,
                    count: run.count,
                    healthy,
                    sources,
                });
                if tasks.len() == TASKS_PER_PASS_MAX {
                    break 'scan;
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
    pacer: &mut Pacer,
) -> Option<u64> {
    let needed = naming.cluster.replication - task.healthy.len();
    let sources = naming.addresses(&task.sources);
    // The batch a source serves is checked chunk by chunk, and forwarded
    // to the new replicas as it came.
    let (encoded, data_bytes) = sources.iter().find_map(|(_, url)| {
        naming
            .storage
            .get_run_batch(url, task.blob, first, count)
            .ok()
    })?;
    let batch = Batch {
        encoded: &encoded,
        data_bytes,
        chunks_count: u64::from(count),
    };
    // A live server that lost its copy (scrubbed as corrupt, say) may take
    // it back; only the healthy replicas are excluded.
    let targets = naming.place_excluding(needed, batch.data_bytes, &task.healthy)?;
    let replicated = replicate::store_batch(naming, targets, &batch);
    pacer.wait(encoded.len() as u64 * replicated.attempted.len() as u64);
    // On failure, copies that landed are orphans now; reconciliation
    // reclaims them.
    let targets = replicated.outcome.ok()?;
    let mut replicas = task.healthy.clone();
    replicas.extend(targets);
    let relocated = naming.relocate(task.blob, first, count, replicas.clone());
    // The servers that took copies hold them whole now: until the next
    // reconciliation says otherwise, they are not missing it.
    for target in &replicas[task.healthy.len()..] {
        naming.reconciler.clear_missing(*target, task.blob);
    }
    if relocated {
        let copies = (replicas.len() - task.healthy.len()) as u64;
        naming.metrics.count(
            &naming.metrics.bytes_re_replicated_total,
            batch.data_bytes * copies,
        );
    }
    relocated.then_some(u64::from(count))
}
