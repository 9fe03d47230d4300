//! The naming server's settings: flag, then environment, then default.
//! Bad values stop the server at start-up with one line naming the setting.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::config::{
    CA_FILE, CLUSTER_SECRET_FILE, CONNECTIONS_MAX, ClusterSecret, ConfigError, ConfigReader,
    Fallback, INSECURE_HELP, IO_TIMEOUT, LOG_FORMAT, LOG_LEVEL, Param, Parsed, TLS_CERT_FILE,
    TLS_KEY_FILE, help_text, invalid, parse_base_url, parse_base_urls, parse_connections,
    parse_millis, parse_positive, parse_workers,
};
use common::limits::STORAGE_TIMEOUT_MS_DEFAULT;
use common::log::LogSettings;
use common::tls::{ClientTls, ServerIdentity};

use crate::limits::{
    CHECKPOINT_BYTES_DEFAULT, DEAD_AFTER_HEARTBEATS_MIN, DEAD_AFTER_MS_DEFAULT,
    HEARTBEAT_MS_DEFAULT, NAMING_WORKERS_COUNT, RECONCILE_MS_DEFAULT,
    REPLICATION_BYTES_PER_SEC_DEFAULT, REPLICATION_DEFAULT, REPLICATION_MAX, STORAGE_SERVERS_MAX,
    UPLOAD_EXPIRY_DEFAULT,
};
use crate::s3::keys::S3Keys;
use crate::tokens::ApiTokens;

pub struct Config {
    pub listen: SocketAddr,
    pub storage_servers: Vec<String>,
    pub replication: usize,
    pub meta_dir: PathBuf,
    /// Budget of each naming → storage call.
    pub storage_timeout: Duration,
    pub io_timeout: Duration,
    pub connections_max: usize,
    pub workers_count: usize,
    pub heartbeat_interval: Duration,
    /// The journal grows by this much between checkpoints.
    pub checkpoint_bytes: u64,
    /// How often storage servers' blobs are reconciled with the metadata;
    /// an orphan is deleted after staying orphaned this long.
    pub reconcile_interval: Duration,
    /// The most bytes per second re-replication copies.
    pub replication_bytes_per_sec: u64,
    pub dead_after: Duration,
    /// What calls to storage carry, and `--join` registrations must.
    pub cluster: ClusterSecret,
    /// The public API's tokens; `None`: the API is open.
    pub api_tokens: Option<Arc<ApiTokens>>,
    /// Serve the public API over HTTPS with this; plain HTTP when `None`.
    pub tls: Option<ServerIdentity>,
    pub logging: LogSettings,
    /// Whom `https://` storage servers are verified against.
    pub storage_tls: ClientTls,
    pub effective_lines: Vec<String>,
    /// The S3 API, when `S3_LISTEN_ADDR` is set.
    pub s3: Option<S3Config>,
    /// The metadata in etcd, when `ETCD_ENDPOINTS` is set; else in
    /// `meta_dir`.
    pub etcd: Option<EtcdConfig>,
    /// `--migrate-to-etcd`: copy `meta_dir` into etcd's empty prefix, exit.
    pub migrate_to_etcd: bool,
}

pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    /// Every key of this cluster starts with it.
    pub prefix: String,
    /// A user and password for etcd's auth API.
    pub credentials: Option<(String, String)>,
    /// Whom `https://` endpoints are verified against.
    pub tls: ClientTls,
}

pub struct S3Config {
    pub listen: SocketAddr,
    pub keys: S3Keys,
    pub region: String,
    /// Unfinished multipart uploads are abandoned this long after they began.
    pub upload_expiry: Duration,
}

const LISTEN: Param = Param {
    flag: "--listen",
    env: "LISTEN_ADDR",
    default: Fallback::Text("0.0.0.0:8000"),
    help: "address and port of the public API",
};
const STORAGE_SERVERS: Param = Param {
    flag: "--storage-servers",
    env: "STORAGE_SERVERS",
    default: Fallback::Unset,
    help: "comma-separated storage base URLs, e.g. http://127.0.0.1:8001,http://127.0.0.1:8002",
};
const REPLICATION: Param = Param {
    flag: "--replication",
    env: "REPLICATION_FACTOR",
    default: Fallback::Number(REPLICATION_DEFAULT),
    help: "distinct storage servers that hold every chunk",
};
const META_DIR: Param = Param {
    flag: "--meta-dir",
    env: "META_DIR",
    default: Fallback::Text("./harbour-meta"),
    help: "folder of the naming server's metadata; created if missing",
};
const TIMEOUT: Param = Param {
    flag: "--timeout-ms",
    env: "REQUEST_TIMEOUT_MS",
    default: Fallback::Number(STORAGE_TIMEOUT_MS_DEFAULT),
    help: "budget of every call to a storage server",
};
const WORKERS: Param = Param {
    flag: "--workers",
    env: "WORKERS",
    default: Fallback::Number(NAMING_WORKERS_COUNT),
    help: "request worker threads (each create or read holds one while it streams)",
};
const HEARTBEAT: Param = Param {
    flag: "--heartbeat-ms",
    env: "HEARTBEAT_MS",
    default: Fallback::Number(HEARTBEAT_MS_DEFAULT),
    help: "how often each storage server is asked for its status",
};
const DEAD_AFTER: Param = Param {
    flag: "--dead-after-ms",
    env: "DEAD_AFTER_MS",
    default: Fallback::Number(DEAD_AFTER_MS_DEFAULT),
    help: "a storage server silent this long is considered dead",
};
const CHECKPOINT_BYTES: Param = Param {
    flag: "--checkpoint-bytes",
    env: "CHECKPOINT_BYTES",
    default: Fallback::Number(CHECKPOINT_BYTES_DEFAULT),
    help: "journal growth after which the metadata is checkpointed (bounds restart time)",
};
const RECONCILE: Param = Param {
    flag: "--reconcile-ms",
    env: "RECONCILE_MS",
    default: Fallback::Number(RECONCILE_MS_DEFAULT),
    help: "how often storage servers' blobs are compared with the metadata (orphans are deleted after this long)",
};
const REPLICATION_RATE: Param = Param {
    flag: "--replication-max-bytes-per-sec",
    env: "REPLICATION_MAX_BYTES_PER_SEC",
    default: Fallback::Number(REPLICATION_BYTES_PER_SEC_DEFAULT),
    help: "the most bytes per second re-replication copies, so client traffic keeps flowing",
};
const API_TOKENS_FILE: Param = Param {
    flag: "--api-tokens-file",
    env: "API_TOKENS_FILE",
    default: Fallback::Unset,
    help: "file of API tokens, lines `TOKEN read|write|admin [LABEL]` (only its owner may read it); read again on SIGHUP. Without it the public API is open",
};
const S3_LISTEN: Param = Param {
    flag: "--s3-listen",
    env: "S3_LISTEN_ADDR",
    default: Fallback::Unset,
    help: "address and port of the S3 API (off when unset); needs S3 keys",
};
const S3_ACCESS_KEY_ID: Param = Param {
    flag: "--s3-access-key-id",
    env: "S3_ACCESS_KEY_ID",
    default: Fallback::Unset,
    help: "the S3 access key id of the one key with every right; its secret in S3_SECRET_ACCESS_KEY or the file of --s3-secret-access-key-file",
};
const S3_SECRET_FILE: Param = Param {
    flag: "--s3-secret-access-key-file",
    env: "S3_SECRET_ACCESS_KEY_FILE",
    default: Fallback::Unset,
    help: "file holding the secret of --s3-access-key-id (only its owner may read it)",
};
const S3_KEYS_FILE: Param = Param {
    flag: "--s3-keys-file",
    env: "S3_KEYS_FILE",
    default: Fallback::Unset,
    help: "file of S3 keys instead, lines `ACCESS_KEY_ID SECRET read|write [BUCKET,...]` (only its owner may read it)",
};
const S3_REGION: Param = Param {
    flag: "--s3-region",
    env: "S3_REGION",
    default: Fallback::Text(crate::s3::REGION_DEFAULT),
    help: "the region S3 clients sign for",
};
const S3_UPLOAD_EXPIRY: Param = Param {
    flag: "--s3-upload-expiry-ms",
    env: "S3_UPLOAD_EXPIRY_MS",
    default: Fallback::Number(UPLOAD_EXPIRY_DEFAULT.as_millis() as u64),
    help: "an S3 multipart upload neither completed nor aborted this long after it began is abandoned, its parts deleted",
};
const ETCD_ENDPOINTS: Param = Param {
    flag: "--etcd-endpoints",
    env: "ETCD_ENDPOINTS",
    default: Fallback::Unset,
    help: "comma-separated http:// or https:// URLs of etcd members: keep the metadata in etcd (several naming servers may share it) instead of --meta-dir",
};
const ETCD_PREFIX: Param = Param {
    flag: "--etcd-prefix",
    env: "ETCD_PREFIX",
    default: Fallback::Text("/harbour/"),
    help: "the prefix of every etcd key of this cluster (clusters sharing one etcd use distinct prefixes)",
};
const ETCD_USERNAME: Param = Param {
    flag: "--etcd-username",
    env: "ETCD_USERNAME",
    default: Fallback::Unset,
    help: "etcd user (etcd's auth API); its password from --etcd-password-file or ETCD_PASSWORD",
};
const ETCD_PASSWORD_FILE: Param = Param {
    flag: "--etcd-password-file",
    env: "ETCD_PASSWORD_FILE",
    default: Fallback::Unset,
    help: "file holding the etcd user's password (readable by its owner only)",
};
const ETCD_CA_FILE: Param = Param {
    flag: "--etcd-ca-file",
    env: "ETCD_CA_FILE",
    default: Fallback::Unset,
    help: "PEM certificates https:// etcd members are verified against (default: the system's roots)",
};
/// The variable holding the etcd user's password itself.
const ETCD_PASSWORD_ENV: &str = "ETCD_PASSWORD";
const MIGRATE_FLAG: &str = "--migrate-to-etcd";
const MIGRATE_HELP: &str = "\n  --migrate-to-etcd\n      copy the metadata of --meta-dir into the empty --etcd-prefix of ETCD_ENDPOINTS, then exit\n";

/// The variable holding the secret of `S3_ACCESS_KEY_ID` itself.
const S3_SECRET_ENV: &str = "S3_SECRET_ACCESS_KEY";

const PARAMS: [Param; 31] = [
    LISTEN,
    STORAGE_SERVERS,
    REPLICATION,
    META_DIR,
    TIMEOUT,
    IO_TIMEOUT,
    CONNECTIONS_MAX,
    WORKERS,
    HEARTBEAT,
    DEAD_AFTER,
    CHECKPOINT_BYTES,
    RECONCILE,
    REPLICATION_RATE,
    CLUSTER_SECRET_FILE,
    API_TOKENS_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    CA_FILE,
    LOG_LEVEL,
    LOG_FORMAT,
    S3_LISTEN,
    S3_ACCESS_KEY_ID,
    S3_SECRET_FILE,
    S3_KEYS_FILE,
    S3_REGION,
    S3_UPLOAD_EXPIRY,
    ETCD_ENDPOINTS,
    ETCD_PREFIX,
    ETCD_USERNAME,
    ETCD_PASSWORD_FILE,
    ETCD_CA_FILE,
];

pub fn parse(mut args: pico_args::Arguments) -> Result<Parsed<Config>, ConfigError> {
    if args.contains(["-h", "--help"]) {
        let usage = "harbour-naming: the Harbour naming server (metadata, placement, public API)\n\nUsage: harbour-naming [SETTINGS]";
        return Ok(Parsed::Help(
            help_text(usage, &PARAMS) + INSECURE_HELP + MIGRATE_HELP,
        ));
    }
    let migrate_to_etcd = args.contains(MIGRATE_FLAG);
    let mut reader = ConfigReader::new(args);
    let listen = reader.get(&LISTEN, |raw| {
        raw.parse::<SocketAddr>().map_err(|err| err.to_string())
    })?;
    let storage_servers = reader
        .get(&STORAGE_SERVERS, parse_server_list)?
        .unwrap_or_default();
    let replication = reader.get(&REPLICATION, |raw| match raw.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) if count > REPLICATION_MAX => Err(format!("must be at most {REPLICATION_MAX}")),
        Ok(count) => Ok(count),
        Err(_) => Err("not a whole number".to_owned()),
    })?;
    let replication = replication.expect("has a default");
    if replication > storage_servers.len() {
        return Err(invalid(
            &REPLICATION,
            format!(
                "{replication} exceeds the {} storage servers (see --storage-servers / STORAGE_SERVERS)",
                storage_servers.len()
            ),
        ));
    }
    let meta_dir = reader.get(&META_DIR, |raw| match raw {
        "" => Err("must not be empty".to_owned()),
        raw => Ok(PathBuf::from(raw)),
    })?;
    let meta_dir = meta_dir.expect("has a default");
    check_writable_dir(&meta_dir).map_err(|message| invalid(&META_DIR, message))?;
    let storage_timeout = reader.get(&TIMEOUT, parse_millis)?.expect("has a default");
    let connections_max = reader
        .get(&CONNECTIONS_MAX, parse_connections)?
        .expect("has a default");
    let io_timeout = reader
        .get(&IO_TIMEOUT, parse_millis)?
        .expect("has a default");
    let workers_count = reader.get(&WORKERS, parse_workers)?;
    let heartbeat_ms = reader
        .get(&HEARTBEAT, parse_millis)?
        .expect("has a default");
    let dead_after_ms = reader
        .get(&DEAD_AFTER, parse_millis)?
        .expect("has a default");
    if dead_after_ms < DEAD_AFTER_HEARTBEATS_MIN * heartbeat_ms {
        return Err(invalid(
            &DEAD_AFTER,
            format!(
                "{dead_after_ms} ms must be at least {DEAD_AFTER_HEARTBEATS_MIN} heartbeats of {heartbeat_ms} ms"
            ),
        ));
    }
    let checkpoint_bytes = reader.get(&CHECKPOINT_BYTES, |raw| parse_positive(raw, "bytes"))?;
    let reconcile_ms = reader
        .get(&RECONCILE, parse_millis)?
        .expect("has a default");
    let replication_bytes_per_sec = reader.get(&REPLICATION_RATE, |raw| {
        parse_positive(raw, "bytes per second")
    })?;
    let cluster = reader.cluster_secret()?;
    let api_tokens = reader.get(&API_TOKENS_FILE, |raw| ApiTokens::load(raw).map(Arc::new))?;
    let tls = reader.server_identity()?;
    let logging = reader.log_settings()?;
    // Always the system's roots without a CA file: a storage server may
    // join with an https:// URL at any time.
    let storage_tls = reader.client_tls(true)?;
    let s3 = s3_config(&mut reader)?;
    let etcd = etcd_config(&mut reader)?;
    if migrate_to_etcd && etcd.is_none() {
        return Err(invalid(
            &ETCD_ENDPOINTS,
            format!("{MIGRATE_FLAG} needs the etcd to copy into"),
        ));
    }
    let effective_lines = reader.effective_lines();
    reader.finish()?;
    Ok(Parsed::Run(Config {
        listen: listen.expect("has a default"),
        storage_servers,
        replication,
        meta_dir,
        storage_timeout: Duration::from_millis(storage_timeout),
        io_timeout: Duration::from_millis(io_timeout),
        connections_max,
        workers_count: workers_count.expect("has a default"),
        heartbeat_interval: Duration::from_millis(heartbeat_ms),
        checkpoint_bytes: checkpoint_bytes.expect("has a default"),
        reconcile_interval: Duration::from_millis(reconcile_ms),
        replication_bytes_per_sec: replication_bytes_per_sec.expect("has a default"),
        dead_after: Duration::from_millis(dead_after_ms),
        cluster,
        api_tokens,
        tls,
        logging,
        storage_tls,
        effective_lines,
        s3,
        etcd,
        migrate_to_etcd,
    }))
}

/// Where etcd is, when the metadata is kept there.
fn etcd_config(reader: &mut ConfigReader) -> Result<Option<EtcdConfig>, ConfigError> {
    let endpoints = reader.get(&ETCD_ENDPOINTS, parse_base_urls)?;
    let prefix = reader
        .get(&ETCD_PREFIX, |raw| match raw {
            "" => Err("must not be empty".to_owned()),
            raw => Ok(raw.to_owned()),
        })?
        .expect("has a default");
    let username = reader.get(&ETCD_USERNAME, |raw| Ok(raw.to_owned()))?;
    let password = reader.secret(&ETCD_PASSWORD_FILE, ETCD_PASSWORD_ENV)?;
    let tls = reader.get(&ETCD_CA_FILE, |path| {
        ClientTls::from_ca_file(std::path::Path::new(path))
    })?;
    let Some(endpoints) = endpoints else {
        return Ok(None);
    };
    let credentials = match (username, password) {
        (None, None) => None,
        (Some(user), Some(password)) => Some((user, password)),
        (Some(_), None) => {
            return Err(invalid(
                &ETCD_USERNAME,
                format!("needs a password (--etcd-password-file or {ETCD_PASSWORD_ENV})"),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                &ETCD_PASSWORD_FILE,
                "a password needs --etcd-username".to_owned(),
            ));
        }
    };
    Ok(Some(EtcdConfig {
        endpoints,
        prefix,
        credentials,
        tls: tls.unwrap_or_else(ClientTls::system),
    }))
}

/// The S3 API's settings: its address, its keys (one from the
/// environment, or a file of them, never both) and its region.
fn s3_config(reader: &mut ConfigReader) -> Result<Option<S3Config>, ConfigError> {
    let listen = reader.get(&S3_LISTEN, |raw| {
        raw.parse::<SocketAddr>().map_err(|err| err.to_string())
    })?;
    let access_key_id = reader.get(&S3_ACCESS_KEY_ID, |raw| Ok(raw.to_owned()))?;
    let secret = reader.secret(&S3_SECRET_FILE, S3_SECRET_ENV)?;
    let from_file = reader.get(&S3_KEYS_FILE, |raw| {
        let text = common::config::read_secret_file(raw)?;
        S3Keys::parse(&text)
    })?;
    let region = reader
        .get(&S3_REGION, |raw| {
            let good = !raw.is_empty()
                && raw
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
            match good {
                true => Ok(raw.to_owned()),
                false => Err("a region is lower-case letters, digits and hyphens".to_owned()),
            }
        })?
        .expect("has a default");
    let upload_expiry = reader
        .get(&S3_UPLOAD_EXPIRY, parse_millis)?
        .expect("has a default");
    let keys = match (access_key_id, secret, from_file) {
        (None, None, None) => None,
        (Some(id), Some(secret), None) => Some(
            S3Keys::single(&id, &secret).map_err(|message| invalid(&S3_ACCESS_KEY_ID, message))?,
        ),
        (None, None, Some(keys)) => Some(keys),
        (Some(_), None, None) | (None, Some(_), None) => {
            return Err(invalid(
                &S3_ACCESS_KEY_ID,
                format!("an S3 key needs both S3_ACCESS_KEY_ID and {S3_SECRET_ENV}"),
            ));
        }
        (_, _, Some(_)) => {
            return Err(invalid(
                &S3_KEYS_FILE,
                "give S3 keys in a file or as S3_ACCESS_KEY_ID, not both".to_owned(),
            ));
        }
    };
    match (listen, keys) {
        (Some(listen), Some(keys)) => Ok(Some(S3Config {
            listen,
            keys,
            region,
            upload_expiry: Duration::from_millis(upload_expiry),
        })),
        (Some(_), None) => Err(invalid(
            &S3_LISTEN,
            format!("the S3 API needs keys: S3_ACCESS_KEY_ID and {S3_SECRET_ENV}, or S3_KEYS_FILE"),
        )),
        (None, _) => Ok(None),
    }
}

fn parse_server_list(raw: &str) -> Result<Vec<String>, String> {
    let mut urls: Vec<String> = Vec::new();
    for part in raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let url = parse_base_url(part).map_err(|err| format!("{part:?} {err}"))?;
        if urls.contains(&url) {
            return Err(format!("{url} is listed twice"));
        }
        urls.push(url);
    }
    if urls.len() > STORAGE_SERVERS_MAX {
        return Err(format!("at most {STORAGE_SERVERS_MAX} storage servers"));
    }
    Ok(urls)
}

/// Creates the folder if needed and proves it writable, so a bad META_DIR
/// fails at start-up rather than at the first create.
fn check_writable_dir(dir: &PathBuf) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let probe = dir.join(".harbour-write-probe");
    fs::write(&probe, b"").map_err(|err| format!("cannot write in {}: {err}", dir.display()))?;
    fs::remove_file(&probe).map_err(|err| format!("cannot write in {}: {err}", dir.display()))
}
