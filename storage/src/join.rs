//! `--join`: the storage server registers itself with the naming server,
//! so a cluster grows without restarting it. It keeps registering at a slow
//! pace (registering again is harmless), so a naming server that was
//! unreachable at first, or lost track of it, still learns of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster_auth::Signer;
use common::percent;

/// Between attempts until the first success, and after it.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Registers `advertise` with `naming` until `stop`; each attempt carries
/// fresh cluster credentials from `signer` (none with `--insecure`).
pub fn keep_registered(naming: &str, advertise: &str, signer: Option<&Signer>, stop: &AtomicBool) {
    let path = format!("/servers?url={}", percent::encode(advertise, false));
    let mut registered = false;
    while !stop.load(Ordering::Relaxed) {
        let authorization = signer.map(|signer| signer.authorization("POST", &path));
        match common::server::post_empty(naming, &path, authorization.as_deref(), CALL_TIMEOUT) {
            Ok(200) => {
                if !registered {
                    println!("joined the cluster of {naming} as {advertise}");
                }
                registered = true;
            }
            Ok(status) => eprintln!("join: {naming} answered {status} to registering {advertise}"),
            Err(err) => eprintln!("join: cannot register with {err}"),
        }
        let wait = if registered {
            REFRESH_INTERVAL
        } else {
            RETRY_INTERVAL
        };
        // A timer channel, not a sleep: bounded, and checked for stop after.
        let _ = crossbeam_channel::after(wait).recv();
    }
}
