//! Group commit, the one way Harbour makes appends durable: writers append
//! without waiting, then each asks for its ticket (a position in its log)
//! to be durable. One fsync at a time runs; whoever runs it covers every
//! append made before it started, so the others usually find their ticket
//! covered when their turn comes and return without an fsync of their own.
//! The naming journal and the storage segments both commit this way.
//! Invariant: `durable()` never passes a position whose bytes are not on
//! stable storage.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::metrics::{Histogram, HistogramSnapshot};

pub struct GroupCommit<T> {
    /// Held by the one caller running an fsync.
    syncing: Mutex<()>,
    durable: Mutex<T>,
    /// How long each fsync took, for `/metrics`.
    sync_latency: Histogram,
}

impl<T: Copy + Ord> GroupCommit<T> {
    /// Everything up to `durable` is already on stable storage.
    pub fn new(durable: T) -> GroupCommit<T> {
        GroupCommit {
            syncing: Mutex::new(()),
            durable: Mutex::new(durable),
            sync_latency: Histogram::default(),
        }
    }

    /// Returns once `ticket` is durable. If no fsync since has covered it,
    /// runs `sync`, which must make everything appended so far durable and
    /// say how far that is.
    pub fn wait_durable(&self, ticket: T, sync: impl FnOnce() -> io::Result<T>) -> io::Result<()> {
        let _syncing = lock(&self.syncing);
        if *lock(&self.durable) >= ticket {
            return Ok(());
        }
        let started = Instant::now();
        let durable = sync()?;
        self.sync_latency.observe(started.elapsed());
        self.advance(durable);
        Ok(())
    }

    /// Runs `sync` alone (no other fsync runs meanwhile), for a step that
    /// must not race the appends being made durable, such as starting a
    /// new file; it returns how far everything is durable.
    pub fn sync_alone<R>(&self, sync: impl FnOnce() -> io::Result<(T, R)>) -> io::Result<R> {
        let _syncing = lock(&self.syncing);
        let started = Instant::now();
        let (durable, outcome) = sync()?;
        self.sync_latency.observe(started.elapsed());
        self.advance(durable);
        Ok(outcome)
    }

    /// The durations of the fsyncs so far.
    pub fn sync_latency(&self) -> HistogramSnapshot {
        self.sync_latency.snapshot()
    }

    /// How far everything is on stable storage.
    pub fn durable(&self) -> T {
        *lock(&self.durable)
    }

    fn advance(&self, through: T) {
        let mut durable = lock(&self.durable);
        assert!(through >= *durable, "durability never goes back");
        *durable = through;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both locks guard plain values set in one step: a poisoned lock still
    // holds a consistent one.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::GroupCommit;

    #[test]
    fn a_covered_ticket_costs_no_fsync_and_concurrent_tickets_share_them() {
        let commit = GroupCommit::new(0u64);
        let appended = AtomicU64::new(0);
        let fsyncs = AtomicU64::new(0);
        let sync = || {
            fsyncs.fetch_add(1, Ordering::Relaxed);
            Ok(appended.load(Ordering::SeqCst))
        };
        appended.store(3, Ordering::SeqCst);
        commit.wait_durable(2, sync).unwrap();
        commit.wait_durable(3, sync).unwrap();
        assert_eq!((commit.durable(), fsyncs.load(Ordering::Relaxed)), (3, 1));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        let ticket = appended.fetch_add(1, Ordering::SeqCst) + 1;
                        commit.wait_durable(ticket, sync).unwrap();
                        assert!(commit.durable() >= ticket);
                    }
                });
            }
        });
        assert_eq!(commit.durable(), 803);
        assert!(fsyncs.load(Ordering::Relaxed) <= 801);
    }

    #[test]
    fn a_failed_sync_advances_nothing() {
        let commit = GroupCommit::new(5u64);
        let failed = commit.wait_durable(6, || Err(std::io::Error::other("disk gone")));
        assert!(failed.is_err());
        assert_eq!(commit.durable(), 5);
        assert_eq!(commit.sync_alone(|| Ok((9, "rotated"))).unwrap(), "rotated");
        assert_eq!(commit.durable(), 9);
    }
}
