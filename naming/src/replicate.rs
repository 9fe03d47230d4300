//! Storing one batch on `replication` servers, for creates and repairs
//! alike: the batch goes to every target at once (`fanout`), a target that
//! fails is marked unreachable (unless it is only full) and replaced for
//! this batch by another live server with room, as long as there is one;
//! only then does the batch fail. The bytes stored are counted on each
//! server that took them, so placement sees them before the next
//! heartbeat.

use crate::error::ApiError;
use crate::fanout;
use crate::metadata::version::ServerId;
use crate::naming::Naming;
use crate::storage_client::CallError;

/// Rounds of replacing failed targets before a batch gives up.
const REPLACEMENT_ROUNDS_MAX: usize = 3;

/// A batch to store: its encoding (`common::wire`) and what it holds.
pub struct Batch<'a> {
    pub encoded: &'a [u8],
    pub data_bytes: u64,
    pub chunks_count: u64,
}

/// Where a batch ended up, and every server that may hold a copy of it
/// (for cleanup if the create fails).
pub struct Replicated {
    pub outcome: Result<Vec<ServerId>, ApiError>,
    pub attempted: Vec<ServerId>,
}

/// Stores `batch` on `targets`, replacing the ones that fail, until it is
/// on as many servers as `targets` holds.
pub fn store_batch(naming: &Naming, targets: Vec<ServerId>, batch: &Batch<'_>) -> Replicated {
    let wanted = targets.len();
    let mut attempted = targets.clone();
    let mut stored: Vec<ServerId> = Vec::with_capacity(wanted);
    let mut pending = targets;
    for _ in 0..REPLACEMENT_ROUNDS_MAX {
        let addresses = naming.addresses(&pending);
        let answers = fanout::call_each(&addresses, |_, url| {
            naming.storage.put_batch(url, batch.encoded)
        });
        let mut failures = Vec::new();
        for ((id, answer), (_, url)) in answers.into_iter().zip(&addresses) {
            match answer {
                Ok(()) => {
                    naming
                        .cluster
                        .note_stored(id, batch.data_bytes, batch.chunks_count);
                    stored.push(id);
                }
                Err(err) => {
                    // A server that failed (other than by being full) gets
                    // no more batches until a heartbeat hears from it.
                    if !matches!(err, CallError::Full(_)) {
                        naming.cluster.mark_unreachable(id);
                    }
                    failures.push(naming.storage.api_error(url, err));
                }
            }
        }
        if failures.is_empty() {
            assert_eq!(stored.len(), wanted);
            return Replicated {
                outcome: Ok(stored),
                attempted,
            };
        }
        match naming.place_excluding(failures.len(), batch.data_bytes, &attempted) {
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
