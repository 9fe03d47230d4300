//! `--join`: the storage server registers itself with the naming server,
//! so a cluster grows without restarting it. It keeps registering at a slow
//! pace (registering again is harmless), so a naming server that was
//! unreachable at first, or lost track of it, still learns of it. Given
//! several naming servers (sharing their metadata in etcd), each attempt
//! goes to them in turn until one accepts, starting from the last that
//! did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster_auth::Signer;
use common::percent;
use common::tls::ClientTls;

/// Between attempts until the first success, and after it.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a wait between registrations looks at the stop flag.
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Registers `advertise` with one of `namings` until `stop`; each attempt
/// carries fresh cluster credentials from `signer` (none with
/// `--insecure`), and an `https://` naming server is verified against
/// `tls`.
pub fn keep_registered(
    namings: &[String],
    advertise: &str,
    signer: Option<Signer>,
    tls: &ClientTls,
    stop: &AtomicBool,
) {
    let mut config = tls.configure(ureq::Agent::config_builder());
    if let Some(signer) = signer {
        config = config.middleware(signer);
    }
    let config = config
        .timeout_global(Some(CALL_TIMEOUT))
        .http_status_as_error(false)
        .proxy(None)
        .build();
    let agent = common::transport::agent(config);
    assert!(!namings.is_empty(), "--join names a naming server");
    let query = format!("/servers?url={}", percent::encode(advertise, false));
    let mut registered = false;
    let mut first = 0;
    while !stop.load(Ordering::Relaxed) {
        for step in 0..namings.len() {
            let index = (first + step) % namings.len();
            let naming = &namings[index];
            match agent.post(format!("{naming}{query}")).send_empty() {
                Ok(response) if response.status() == 200 => {
                    if !registered {
                        log::info!("joined the cluster of {naming} as {advertise}");
                    }
                    registered = true;
                    first = index;
                    break;
                }
                Ok(response) => log::warn!(
                    "join: {naming} answered {} to registering {advertise}",
                    response.status()
                ),
                Err(err) => log::warn!("join: cannot register with {naming}: {err}"),
            }
        }
        let wait = if registered {
            REFRESH_INTERVAL
        } else {
            RETRY_INTERVAL
        };
        // Timer channels, not a sleep, looking at `stop` every
        // STOP_CHECK_INTERVAL: a clean shutdown does not wait out the 30 s.
        let deadline = crossbeam_channel::after(wait);
        let check = crossbeam_channel::tick(STOP_CHECK_INTERVAL);
        while !stop.load(Ordering::Relaxed) {
            crossbeam_channel::select! {
                recv(deadline) -> _ => break,
                recv(check) -> _ => {}
            }
        }
    }
}
