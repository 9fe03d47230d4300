//! The one pacer of background work (re-replication, scrubbing,
//! compaction), in the spirit of Garage's tranquilizer: work reports the
//! bytes it moved, and the pacer says how long to wait so that the rate
//! stays at most `bytes_per_sec`. Credit left unused (an idle stretch)
//! lasts at most `PACER_WINDOW`, so a pause never turns into a burst.
//! Waiting is the caller's: compaction waits on a condition a request can
//! cut short, the others on a timer channel (`Pacer::wait`).

use std::time::{Duration, Instant};

/// The longest stretch over which a rate is averaged.
pub const PACER_WINDOW: Duration = Duration::from_secs(10);

pub struct Pacer {
    bytes_per_sec: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl Pacer {
    pub fn new(bytes_per_sec: u64) -> Pacer {
        assert!(bytes_per_sec >= 1);
        Pacer {
            bytes_per_sec,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Counts `bytes` done at `now`; returns how long to wait before more.
    pub fn delay(&mut self, bytes: u64, now: Instant) -> Option<Duration> {
        if now.saturating_duration_since(self.window_start) >= PACER_WINDOW {
            self.window_start = now;
            self.window_bytes = 0;
        }
        self.window_bytes += bytes;
        let due = Duration::from_secs_f64(self.window_bytes as f64 / self.bytes_per_sec as f64);
        due.checked_sub(now.saturating_duration_since(self.window_start))
            .filter(|wait| !wait.is_zero())
    }

    /// Counts `bytes` done now and waits as long as `delay` says, on a
    /// timer channel (bounded; no sleep in product code).
    pub fn wait(&mut self, bytes: u64) {
        if let Some(wait) = self.delay(bytes, Instant::now()) {
            let _ = crossbeam_channel::after(wait).recv();
        }
    }

    /// Starts a fresh window: what was done before no longer counts.
    pub fn restart(&mut self) {
        self.window_start = Instant::now();
        self.window_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{PACER_WINDOW, Pacer};

    #[test]
    fn work_ahead_of_the_rate_waits_for_it() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1000);
        pacer.window_start = start;
        assert_eq!(pacer.delay(500, start), Some(Duration::from_millis(500)));
        // Half a second later the first 500 bytes are paid for.
        let later = start + Duration::from_millis(500);
        assert_eq!(pacer.delay(250, later), Some(Duration::from_millis(250)));
        assert_eq!(pacer.delay(0, start + Duration::from_secs(1)), None);
    }

    #[test]
    fn idle_time_banks_at_most_one_window_of_credit() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1000);
        pacer.window_start = start;
        // Long idle: a new window starts, so a burst still waits.
        let after_idle = start + 3 * PACER_WINDOW;
        assert_eq!(pacer.delay(2000, after_idle), Some(Duration::from_secs(2)));
    }
}
