//! Group commit for the etcd store: changes that arrive while a
//! transaction is on its way wait, and the next transaction carries them
//! all, as the journal's group commit shares one fsync. One caller at a
//! time commits (the first to find no one committing); the others wait for
//! their slot's outcome.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::metadata::Metadata;
use crate::metadata::change::{Applied, Change, Refusal};

/// The most changes one committer takes from the queue at once (a batch
/// is cut further to fit one transaction).
const BATCH_CHANGES_MAX: usize = 256;

/// How often a waiter looks again, whatever it was woken for.
const WAIT_CHECK: Duration = Duration::from_millis(100);

/// What a change made of the state it lands on gave, or why not.
pub type Outcome = Result<(Change, Applied), Refusal>;

/// One change waiting to be committed: `make` builds it from the state it
/// will land on (a reservation past every other), each try again.
pub struct Slot {
    pub make: Box<dyn Fn(&Metadata) -> Change + Send + Sync>,
    outcome: Mutex<Option<Outcome>>,
}

impl Slot {
    pub fn new(make: Box<dyn Fn(&Metadata) -> Change + Send + Sync>) -> Arc<Slot> {
        Arc::new(Slot {
            make,
            outcome: Mutex::new(None),
        })
    }

    /// Settles the slot; the first outcome stands.
    pub fn resolve(&self, outcome: Outcome) {
        let mut held = self.lock();
        if held.is_none() {
            *held = Some(outcome);
        }
    }

    fn take(&self) -> Option<Outcome> {
        self.lock().take()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Outcome>> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub struct Batcher {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Slot>>,
    committing: bool,
}

impl Batcher {
    /// Queues `slot` and returns its outcome: committed by whoever commits
    /// next, perhaps this caller with `commit`, which must settle every
    /// slot it is given.
    pub fn submit(&self, slot: Arc<Slot>, commit: impl Fn(&[Arc<Slot>])) -> Outcome {
        let mut queue = self.lock();
        queue.waiting.push_back(Arc::clone(&slot));
        loop {
            if let Some(outcome) = slot.take() {
                return outcome;
            }
            if !queue.committing {
                queue.committing = true;
                let take = queue.waiting.len().min(BATCH_CHANGES_MAX);
                let batch: Vec<Arc<Slot>> = queue.waiting.drain(..take).collect();
                drop(queue);
                let guard = Committing {
                    batcher: self,
                    batch: &batch,
                };
                commit(&batch);
                drop(guard);
                queue = self.lock();
                continue;
            }
            queue = self
                .wake
                .wait_timeout(queue, WAIT_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ends a commit, also one that panicked: whatever it left unsettled is
/// refused, and the next waiter may commit.
struct Committing<'a> {
    batcher: &'a Batcher,
    batch: &'a [Arc<Slot>],
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        for slot in self.batch {
            slot.resolve(Err(Refusal::Unavailable(
                "the change's commit failed".to_owned(),
            )));
        }
        self.batcher.lock().committing = false;
        self.batcher.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Batcher, Slot};
    use crate::metadata::change::{Applied, Change};

    #[test]
    fn concurrent_changes_share_commits_and_each_gets_its_outcome() {
        let batcher = Batcher::default();
        let commits = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for idx in 0..16u64 {
                let (batcher, commits) = (&batcher, &commits);
                scope.spawn(move || {
                    let slot = Slot::new(Box::new(move |_| Change::ReserveBlobs { up_to: idx }));
                    let outcome = batcher.submit(slot, |batch| {
                        commits.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        for slot in batch {
                            let change = (slot.make)(&Default::default());
                            slot.resolve(Ok((change, Applied::Changed)));
                        }
                    });
                    assert_eq!(
                        outcome.map(|(change, _)| change),
                        Ok(Change::ReserveBlobs { up_to: idx })
                    );
                });
            }
        });
        assert!(commits.load(Ordering::Relaxed) <= 16);
    }

    #[test]
    fn a_commit_that_panics_refuses_its_batch_and_the_next_one_commits() {
        let batcher = Batcher::default();
        let slot = Slot::new(Box::new(|_| Change::ReserveBlobs { up_to: 1 }));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(batcher.submit(slot, |_| panic!("a bug")));
        }));
        assert!(panicked.is_err());
        let slot = Slot::new(Box::new(|_| Change::ReserveBlobs { up_to: 2 }));
        let outcome = batcher.submit(slot, |batch| {
            for slot in batch {
                slot.resolve(Ok((Change::ReserveBlobs { up_to: 2 }, Applied::Changed)));
            }
        });
        assert!(outcome.is_ok());
    }
}
