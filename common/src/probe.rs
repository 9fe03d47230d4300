//! `--health-check`: the server binary asks the server its settings
//! describe for `GET /health`, so a container health check needs no tools
//! (no curl in the image) and works over HTTPS as over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::ClientTls;

/// How long `--health-check` waits for the server's answer.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a server listens, as its settings say.
pub struct Listening {
    pub addr: SocketAddr,
    pub https: bool,
}

/// `GET /health` on the server at `listening` (a wildcard address means
/// this host): Ok when it answers 200 within `HEALTH_CHECK_TIMEOUT`. Over
/// HTTPS the certificate is not verified: the probe asks its own host's
/// process, by an address its certificate need not name, and sends nothing.
pub fn health_check(listening: &Listening) -> Result<(), String> {
    let addr = listening.addr;
    let target = match addr.ip().is_unspecified() {
        true => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        false => addr,
    };
    let (scheme, tls) = match listening.https {
        true => ("https", ClientTls::unverified()),
        false => ("http", ClientTls::none()),
    };
    let config = tls
        .configure(ureq::Agent::config_builder())
        .timeout_global(Some(HEALTH_CHECK_TIMEOUT))
        .http_status_as_error(false)
        .proxy(None)
        .build();
    let url = format!("{scheme}://{target}/health");
    match crate::transport::agent(config).get(&url).call() {
        Ok(response) if response.status() == 200 => Ok(()),
        Ok(response) => Err(format!(
            "health check: {url} answered {}",
            response.status()
        )),
        Err(err) => Err(format!("health check: {url}: {err}")),
    }
}
