//! Fan-out of one batch to its replica servers: one scoped thread per
//! target, all over the shared Agent, so a batch costs one round trip, not
//! `replication` of them. No thread outlives the call.

use std::thread;

use crate::error::ApiError;
use crate::metadata::ServerId;
use crate::naming::Naming;

/// Stores `batch` on every target; Ok only if all of them acknowledged it.
pub fn replicate(naming: &Naming, targets: &[ServerId], batch: &[u8]) -> Result<(), ApiError> {
    let outcomes: Vec<Result<(), ApiError>> = thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&target| {
                scope.spawn(move || {
                    let url = naming.cluster.url(target);
                    naming
                        .storage
                        .put_batch(url, batch)
                        .map_err(|err| naming.storage.api_error(url, err))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(ApiError::Internal(
                        "a replication thread panicked".to_owned(),
                    ))
                })
            })
            .collect()
    });
    // Report the failure a user can act on first: a full cluster, then a
    // timeout, then anything else.
    let mut errors: Vec<ApiError> = outcomes.into_iter().filter_map(Result::err).collect();
    errors.sort_by_key(|err| match err {
        ApiError::InsufficientStorage { .. } => 0,
        ApiError::StorageTimeout { .. } => 1,
        _ => 2,
    });
    match errors.into_iter().next() {
        None => Ok(()),
        Some(err) => Err(err),
    }
}
