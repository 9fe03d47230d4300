//! Where requests ask the compaction thread for a pass and wait for it,
//! bounded by `REQUEST_WAIT`; and where the thread waits for work, its
//! interval, or a stop.

use std::mem;
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use common::limits::STORAGE_TIMEOUT_MS_DEFAULT;

use super::plan::Order;

/// How often the compaction thread looks for work when nobody asks.
pub const COMPACTION_INTERVAL: Duration = Duration::from_millis(1000);

/// How long a put or delete waits for the pass it asked for. Well under the
/// naming server's budget per call, so a slow pass costs a 507 or a late
/// room, never a timed-out call.
pub const REQUEST_WAIT: Duration = Duration::from_millis(1000);

const _: () = assert!((REQUEST_WAIT.as_millis() as u64) * 2 <= STORAGE_TIMEOUT_MS_DEFAULT);

/// Where requests ask the compaction thread for a pass and wait for it.
#[derive(Default)]
pub struct Schedule {
    requests: Mutex<Requests>,
    /// The compaction thread waits here for a request or its interval.
    wake: Condvar,
    /// Requesters wait here for the pass they asked for.
    done: Condvar,
    /// Passes run and segment bytes they freed, for `/metrics`.
    pub passes_total: AtomicU64,
    pub bytes_freed_total: AtomicU64,
}

#[derive(Default)]
struct Requests {
    /// A compaction thread serves requests; without one, nobody waits.
    serving: bool,
    stopping: bool,
    /// Tickets handed out; a pass serves every ticket up to the count when
    /// it started, and sees every delete made before.
    requested: u64,
    started: u64,
    completed: u64,
    /// The largest reclaim asked by tickets no pass has started on yet.
    reclaim_bytes: u64,
}

impl Schedule {
    /// Asks for a pass that also frees `reclaim_bytes` if it can, and waits
    /// until it is done, at most `REQUEST_WAIT`. Returns at once when no
    /// compaction thread runs.
    pub fn request_pass(&self, reclaim_bytes: u64) {
        let mut requests = self.lock();
        if !requests.serving || requests.stopping {
            return;
        }
        requests.requested += 1;
        let ticket = requests.requested;
        requests.reclaim_bytes = requests.reclaim_bytes.max(reclaim_bytes);
        self.wake.notify_all();
        let _ = self
            .done
            .wait_timeout_while(requests, REQUEST_WAIT, |requests| {
                requests.completed < ticket && requests.serving
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }

    #[cfg(test)]
    pub fn is_serving(&self) -> bool {
        self.lock().serving
    }

    /// Ends `run` after its current group.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// Waits for a request or the interval; `None` once stopping. Returns
    /// the order and the ticket it serves.
    pub(super) fn next_order(&self) -> Option<(Order, u64)> {
        let (mut requests, _) = self
            .wake
            .wait_timeout_while(self.lock(), COMPACTION_INTERVAL, |requests| {
                !requests.stopping && requests.requested == requests.started
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if requests.stopping {
            return None;
        }
        if requests.requested == requests.started {
            return Some((Order::BACKGROUND, requests.completed));
        }
        requests.started = requests.requested;
        let order = Order {
            urgent: true,
            reclaim_bytes: mem::take(&mut requests.reclaim_bytes),
        };
        Some((order, requests.started))
    }

    pub(super) fn finish(&self, ticket: u64) {
        let mut requests = self.lock();
        requests.completed = requests.completed.max(ticket);
        self.done.notify_all();
    }

    /// Whether a request is waiting for a pass that has not started.
    pub(super) fn urgent_pending(&self) -> bool {
        let requests = self.lock();
        requests.requested > requests.started || requests.stopping
    }

    /// Waits `duration`, or less if a request arrives or `stop` is called.
    pub(super) fn pause(&self, duration: Duration) {
        let _ = self
            .wake
            .wait_timeout_while(self.lock(), duration, |requests| {
                requests.requested == requests.started && !requests.stopping
            })
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }

    pub(super) fn set_serving(&self, serving: bool) {
        self.lock().serving = serving;
        self.done.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Requests> {
        // Plain counters: a poisoned lock still holds usable ones.
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Marks the schedule not served once the compaction thread ends, however
/// it ends, so nobody waits on a dead thread.
pub(super) struct Serving<'a>(pub(super) &'a Schedule);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.set_serving(false);
    }
}
