//! Clean shutdown. SIGTERM or SIGINT sets the stop flag; the server loop
//! then refuses new requests (503, `Connection: close`), closes its
//! listener, and waits for the requests in flight to be answered, at most
//! `SHUTDOWN_GRACE`. Past it the process exits anyway: a request still
//! running was not acknowledged, and everything acknowledged is already
//! durable (fsynced before its answer), so cutting it loses nothing. A
//! second signal exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ServerStats;

/// How long a shutdown waits for the requests in flight: under the 10 s
/// `docker stop` gives before its SIGKILL.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How often the server loop looks at the stop flag.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a shutdown looks at what is still in flight.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Exit status of a second signal during a shutdown (128 + SIGINT, as a
/// shell reports an interrupted program).
const FORCED_EXIT_STATUS: i32 = 130;

/// A flag SIGTERM and SIGINT set; a second one exits the process at once.
pub fn watch_stop_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Registered first, so it sees the flag as the earlier signal left it.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            FORCED_EXIT_STATUS,
            Arc::clone(&stop),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
        .map_err(|err| format!("cannot handle SIGTERM and SIGINT: {err}"))?;
    }
    Ok(stop)
}

/// Waits until no request is queued or being answered, at most
/// `SHUTDOWN_GRACE`; past it, exits the process with status 0.
pub(super) fn finish_in_flight(stats: &ServerStats) {
    let started = Instant::now();
    let in_flight = || stats.in_flight.load(Ordering::Relaxed);
    if in_flight() > 0 {
        log::info!(
            "shutting down: new requests refused; answering the {} in flight",
            in_flight()
        );
    }
    let tick = crossbeam_channel::tick(DRAIN_POLL_INTERVAL);
    while in_flight() > 0 {
        if started.elapsed() >= SHUTDOWN_GRACE {
            log::warn!(
                "shutting down: {} requests still unanswered after {SHUTDOWN_GRACE:?} are cut (none was acknowledged); exiting",
                in_flight()
            );
            std::process::exit(0);
        }
        let _ = tick.recv();
    }
}
