//! Catch-ups shared by concurrent readers: a request must see every change
//! acknowledged before it arrived, so it needs a catch-up that *started*
//! after it arrived, not one of its own. While one runs, requests arriving
//! wait for the next, which one of them runs for all: one etcd round trip
//! serves every request that arrived during the one before.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::client::EtcdError;

/// How often a waiter looks again, whatever it was woken for.
const WAIT_CHECK: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    done: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Catch-ups started, and finished (numbered from 1).
    started: u64,
    finished: u64,
    running: bool,
    /// How the last finished one ended.
    last: Option<Result<(), EtcdError>>,
}

impl Gate {
    /// Returns once a run of `catch_up` that started after this call has
    /// finished, with its outcome; runs it if no one else does.
    pub fn pass(&self, catch_up: impl Fn() -> Result<(), EtcdError>) -> Result<(), EtcdError> {
        let mut gate = self.lock();
        // A run under way started before this call: the next one is ours.
        let wanted = gate.started + 1;
        loop {
            if gate.finished >= wanted {
                return gate.last.clone().unwrap_or(Ok(()));
            }
            if !gate.running {
                gate.running = true;
                gate.started += 1;
                let number = gate.started;
                drop(gate);
                let outcome = catch_up();
                gate = self.lock();
                gate.running = false;
                gate.finished = number;
                gate.last = Some(outcome);
                self.done.notify_all();
                continue;
            }
            gate = self
                .done
                .wait_timeout(gate, WAIT_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Gate;

    #[test]
    fn every_pass_sees_what_was_written_before_it_and_runs_are_shared() {
        let gate = Gate::default();
        let runs = AtomicU64::new(0);
        let written = AtomicU64::new(0);
        let observed = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let mine = written.fetch_add(1, Ordering::SeqCst) + 1;
                        gate.pass(|| {
                            runs.fetch_add(1, Ordering::Relaxed);
                            observed.fetch_max(written.load(Ordering::SeqCst), Ordering::SeqCst);
                            Ok(())
                        })
                        .expect("no error");
                        assert!(observed.load(Ordering::SeqCst) >= mine);
                    }
                });
            }
        });
        assert!(runs.load(Ordering::Relaxed) <= 400);
    }
}
