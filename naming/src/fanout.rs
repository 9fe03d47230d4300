//! The one way to ask several storage servers at once: every call of a
//! round runs at the same moment, one scoped thread per target (the last
//! one on the calling thread), so a round costs its slowest call, each
//! bounded by the storage client's timeouts, and no thread outlives it.
//! Replication, repair, garbage collection and heartbeats all go through
//! here; what a failure means (mark the server, replace it, retry later)
//! is the caller's, decided in one place each (`replicate::store_batch`
//! for data written).

use std::sync::Arc;
use std::thread;

use crate::metadata::version::ServerId;
use crate::storage_client::CallError;

/// Calls `call(id, url)` on every target at once; the answers come back in
/// the order of `targets`.
pub fn call_each<T: Send>(
    targets: &[(ServerId, Arc<str>)],
    call: impl Fn(ServerId, &str) -> Result<T, CallError> + Sync,
) -> Vec<(ServerId, Result<T, CallError>)> {
    let Some(((last_id, last_url), others)) = targets.split_last() else {
        return Vec::new();
    };
    let call = &call;
    thread::scope(|scope| {
        let handles: Vec<_> = others
            .iter()
            .map(|(id, url)| (*id, scope.spawn(move || call(*id, url))))
            .collect();
        let last = call(*last_id, last_url);
        let mut answers: Vec<(ServerId, Result<T, CallError>)> = handles
            .into_iter()
            .map(|(id, handle)| (id, handle.join().unwrap_or(Err(CallError::Panicked))))
            .collect();
        answers.push((*last_id, last));
        answers
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::call_each;
    use crate::storage_client::CallError;

    #[test]
    fn every_target_is_called_once_and_answers_keep_their_order() {
        let targets: Vec<(u16, Arc<str>)> = (0..5u16)
            .map(|id| (id, Arc::from(format!("http://s{id}"))))
            .collect();
        let calls = AtomicUsize::new(0);
        let answers = call_each(&targets, |_, url| {
            calls.fetch_add(1, Ordering::Relaxed);
            match url {
                "http://s3" => Err(CallError::Timeout),
                url => Ok(url.len()),
            }
        });
        assert_eq!(calls.load(Ordering::Relaxed), 5);
        let ids: Vec<u16> = answers.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert!(matches!(answers[3].1, Err(CallError::Timeout)));
        assert!(matches!(answers[4].1, Ok(9)));
        assert!(call_each(&[], |_, _| Ok(())).is_empty());
    }

    #[test]
    fn a_call_that_panics_is_an_error_of_its_target_only() {
        let targets: Vec<(u16, Arc<str>)> =
            vec![(0, Arc::from("http://a")), (1, Arc::from("http://b"))];
        let answers = call_each(&targets, |_, url| {
            assert_ne!(url, "http://a", "a test panic");
            Ok(())
        });
        assert!(matches!(answers[0].1, Err(CallError::Panicked)));
        assert!(answers[1].1.is_ok());
    }
}
