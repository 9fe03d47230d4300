//! The storage server's settings: flag, then environment, then default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::config::{
    CA_FILE, CLUSTER_SECRET_FILE, CONNECTIONS_MAX, ClusterSecret, ConfigError, ConfigReader,
    Fallback, INSECURE_HELP, IO_TIMEOUT, LOG_FORMAT, LOG_LEVEL, Param, Parsed, TLS_CERT_FILE,
    TLS_KEY_FILE, help_text, invalid, parse_base_url, parse_base_urls, parse_connections,
    parse_millis, parse_positive, parse_workers,
};
use common::log::LogSettings;
use common::tls::{ClientTls, ServerIdentity};

use crate::limits::{SCRUB_BYTES_PER_SEC_DEFAULT, STORAGE_WORKERS_COUNT};

pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub capacity_bytes: Option<u64>,
    pub io_timeout: Duration,
    pub connections_max: usize,
    pub workers_count: usize,
    /// The most bytes per second the background scrub reads.
    pub scrub_bytes_per_sec: u64,
    /// The naming server to register with (`--join`), and the URL it
    /// should use for this server (`None`: the bound address, over
    /// https:// when serving TLS).
    pub join: Option<(Vec<String>, Option<String>)>,
    /// Whom an `https://` naming server is verified against on `--join`.
    pub naming_tls: ClientTls,
    /// Serve HTTPS with this; plain HTTP when `None`.
    pub tls: Option<ServerIdentity>,
    pub logging: LogSettings,
    /// What calls to this server must carry, and its `--join` sends.
    pub cluster: ClusterSecret,
    /// Lines saying each effective value and its source, printed at start.
    pub effective_lines: Vec<String>,
}

const LISTEN: Param = Param {
    flag: "--listen",
    env: "LISTEN_ADDR",
    default: Fallback::Text("0.0.0.0:8001"),
    help: "address and port to serve the internal chunk API on",
};
const DATA_DIR: Param = Param {
    flag: "--data-dir",
    env: "DATA_DIR",
    default: Fallback::Text("./harbour-data"),
    help: "folder of the chunk segments; created if missing",
};
const CAPACITY: Param = Param {
    flag: "--capacity",
    env: "CAPACITY_BYTES",
    default: Fallback::Unset,
    help: "cap on the bytes of the segment files (dead records count until compacted), as if the volume were that small (default unlimited)",
};
const WORKERS: Param = Param {
    flag: "--workers",
    env: "WORKERS",
    default: Fallback::Number(STORAGE_WORKERS_COUNT),
    help: "request worker threads",
};
const SCRUB_RATE: Param = Param {
    flag: "--scrub-bytes-per-sec",
    env: "SCRUB_BYTES_PER_SEC",
    default: Fallback::Number(SCRUB_BYTES_PER_SEC_DEFAULT),
    help: "the most bytes per second the background scrub reads to find rotten chunks",
};
const JOIN: Param = Param {
    flag: "--join",
    env: "NAMING_SERVER",
    default: Fallback::Unset,
    help: "naming server URL to register with, so the cluster grows without restarting it (several, comma-separated: each tried in turn)",
};
const ADVERTISE: Param = Param {
    flag: "--advertise-url",
    env: "ADVERTISE_URL",
    default: Fallback::Unset,
    help: "this server's URL as the naming server should reach it (default http://LISTEN_ADDR, https:// with --tls-cert-file)",
};
const PARAMS: [Param; 15] = [
    LISTEN,
    DATA_DIR,
    CAPACITY,
    IO_TIMEOUT,
    CONNECTIONS_MAX,
    WORKERS,
    SCRUB_RATE,
    JOIN,
    ADVERTISE,
    CLUSTER_SECRET_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    CA_FILE,
    LOG_LEVEL,
    LOG_FORMAT,
];

pub fn parse(mut args: pico_args::Arguments) -> Result<Parsed<Config>, ConfigError> {
    if args.contains(["-h", "--help"]) {
        let usage = "harbour-storage: a Harbour storage server (keeps 1 KiB chunks on local disk)\n\nUsage: harbour-storage [SETTINGS]";
        return Ok(Parsed::Help(help_text(usage, &PARAMS) + INSECURE_HELP));
    }
    let mut reader = ConfigReader::new(args);
    let listen = reader.get(&LISTEN, |raw| {
        raw.parse::<SocketAddr>().map_err(|err| err.to_string())
    })?;
    let data_dir = reader.get(&DATA_DIR, |raw| match raw {
        "" => Err("must not be empty".to_owned()),
        raw => Ok(PathBuf::from(raw)),
    })?;
    let capacity_bytes = reader.get(&CAPACITY, |raw| parse_positive(raw, "bytes"))?;
    let io_timeout = reader.get(&IO_TIMEOUT, parse_millis)?;
    let connections_max = reader
        .get(&CONNECTIONS_MAX, parse_connections)?
        .expect("has a default");
    let workers_count = reader.get(&WORKERS, parse_workers)?;
    let scrub_bytes_per_sec =
        reader.get(&SCRUB_RATE, |raw| parse_positive(raw, "bytes per second"))?;
    let join = reader.get(&JOIN, parse_base_urls)?;
    let advertise = reader.get(&ADVERTISE, parse_base_url)?;
    let cluster = reader.cluster_secret()?;
    let tls = reader.server_identity()?;
    let logging = reader.log_settings()?;
    let naming_tls =
        reader.client_tls(join.iter().flatten().any(|url| common::tls::is_https(url)))?;
    let listen_addr: SocketAddr = listen.expect("has a default");
    let join = match (join, advertise) {
        (None, _) => None,
        (Some(naming), Some(advertise)) => Some((naming, Some(advertise))),
        (Some(_), None) if listen_addr.ip().is_unspecified() => {
            return Err(invalid(
                &ADVERTISE,
                format!(
                    "needed with --join when listening on {listen_addr}: which address should the naming server use?"
                ),
            ));
        }
        (Some(naming), None) => Some((naming, None)),
    };
    let effective_lines = reader.effective_lines();
    reader.finish()?;
    Ok(Parsed::Run(Config {
        listen: listen_addr,
        data_dir: data_dir.expect("has a default"),
        capacity_bytes,
        io_timeout: Duration::from_millis(io_timeout.expect("has a default")),
        connections_max,
        workers_count: workers_count.expect("has a default"),
        scrub_bytes_per_sec: scrub_bytes_per_sec.expect("has a default"),
        join,
        naming_tls,
        tls,
        logging,
        cluster,
        effective_lines,
    }))
}
