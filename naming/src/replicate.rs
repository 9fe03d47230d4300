//! Fan-out of one batch to its replica servers: one scoped thread per
//! target, all over the shared Agent, so a batch costs one round trip, not
//! `replication` of them. A target that fails is replaced for this batch by
//! another live server with room, as long as there is one; only then does
//! the batch fail. No thread outlives the call.

use std::thread;

use crate::error::ApiError;
use crate::metadata::ServerId;
use crate::naming::Naming;

/// Rounds of replacing failed targets before a batch gives up.
const REPLACEMENT_ROUNDS_MAX: usize = 3;

/// Where a batch ended up, and every server that may hold a copy of it
/// (for cleanup if the create fails).
pub struct Replicated {
    pub outcome: Result<Vec<ServerId>, ApiError>,
    pub attempted: Vec<ServerId>,
}

/// Stores `batch` (`batch_bytes` of file data) on `targets`, replacing the
/// ones that fail.
pub fn replicate(
    naming: &Naming,
    targets: Vec<ServerId>,
    batch: &[u8],
    batch_bytes: u64,
) -> Replicated {
    let mut attempted = targets.clone();
    let mut stored: Vec<ServerId> = Vec::with_capacity(targets.len());
    let mut pending = targets;
    for _ in 0..REPLACEMENT_ROUNDS_MAX {
        let mut failures = Vec::new();
        for (target, outcome) in store_on_each(naming, &pending, batch) {
            match outcome {
                Ok(()) => stored.push(target),
                Err(err) => {
                    // A server that failed (other than by being full) gets
                    // no more batches until a heartbeat hears from it.
                    if !matches!(err, ApiError::InsufficientStorage { .. }) {
                        naming.cluster.mark_unreachable(target);
                    }
                    failures.push(err);
                }
            }
        }
        if failures.is_empty() {
            assert_eq!(stored.len(), naming.cluster.replication);
            return Replicated {
                outcome: Ok(stored),
                attempted,
            };
        }
        let replacements = naming
            .cluster
            .place_excluding(failures.len(), batch_bytes, &attempted);
        match replacements {
            Some(replacements) => {
                attempted.extend(replacements.iter().copied());
                pending = replacements;
            }
            None => {
                return Replicated {
                    outcome: Err(no_replacement(failures)),
                    attempted,
                };
            }
        }
    }
    let detail =
        format!("servers kept failing through {REPLACEMENT_ROUNDS_MAX} rounds of replacement");
    Replicated {
        outcome: Err(ApiError::ReplicasUnavailable { detail }),
        attempted,
    }
}

/// The error when failed targets cannot be replaced: a full cluster stays
/// a 507 (a full disk fails fast), anything else is "not enough servers".
fn no_replacement(failures: Vec<ApiError>) -> ApiError {
    let all_full = failures
        .iter()
        .all(|err| matches!(err, ApiError::InsufficientStorage { .. }));
    let mut failures = failures.into_iter();
    let first = failures.next().expect("called with failures");
    if all_full {
        return first;
    }
    ApiError::ReplicasUnavailable {
        detail: format!("{first}, and no other live storage server could take its place"),
    }
}

fn store_on_each(
    naming: &Naming,
    targets: &[ServerId],
    batch: &[u8],
) -> Vec<(ServerId, Result<(), ApiError>)> {
    thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&target| {
                let handle = scope.spawn(move || {
                    let url = naming.cluster.url(target);
                    naming
                        .storage
                        .put_batch(url, batch)
                        .map_err(|err| naming.storage.api_error(url, err))
                });
                (target, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(target, handle)| {
                let outcome = handle.join().unwrap_or_else(|_| {
                    Err(ApiError::Internal(
                        "a replication thread panicked".to_owned(),
                    ))
                });
                (target, outcome)
            })
            .collect()
    })
}
