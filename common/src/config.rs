//! Configuration by flag, environment variable and default, in that order of
//! precedence, for every binary. The only place that reads `std::env`.
//! Each binary lists its settings as `Param`s; values are parsed here with
//! their source recorded, so start-up can print where each one came from,
//! and a bad value names both spellings in its error.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use crate::cluster_auth::ClusterKey;
use crate::limits::{CONNECTIONS_MAX_DEFAULT, INBOUND_IO_TIMEOUT_MS_DEFAULT};
use crate::log::LogSettings;
use crate::probe::Listening;
use crate::tls::{ClientTls, IdentityError, ServerIdentity};

/// One setting: its flag, its environment variable, its default and a
/// line of help.
pub struct Param {
    pub flag: &'static str,
    pub env: &'static str,
    pub default: Fallback,
    pub help: &'static str,
}

/// What a setting is when neither its flag nor its variable is given.
/// Numbers name the constant they come from, so a default is defined once.
#[derive(Clone, Copy, Debug)]
pub enum Fallback {
    /// No default: the setting is absent.
    Unset,
    Text(&'static str),
    Number(u64),
}

/// What a server's command line asks for.
pub enum Parsed<C> {
    Run(C),
    Help(String),
}

/// The whole `main` of a server: parse the settings (a bad one exits 2),
/// print `--help` or run, and turn a failure into one `error:` line and a
/// non-zero exit. With `--health-check` it instead asks the server its
/// settings describe (`listening_of`) for `GET /health` and succeeds if it
/// answers 200: a container health check that needs no extra tools.
pub fn server_main<C>(
    parse: impl FnOnce(pico_args::Arguments) -> Result<Parsed<C>, ConfigError>,
    listening_of: impl FnOnce(&C) -> Listening,
    run: impl FnOnce(&C) -> Result<(), String>,
) -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    let health_check = args.contains("--health-check");
    let config = match parse(args) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            println!(
                "\n  --health-check       ask the running server for GET /health; exit 0 if healthy"
            );
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let outcome = if health_check {
        crate::probe::health_check(&listening_of(&config))
    } else {
        run(&config)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    Default,
}

#[derive(Debug)]
pub enum ConfigError {
    /// A value that does not parse or does not make sense.
    Invalid {
        flag: &'static str,
        env: &'static str,
        message: String,
    },
    /// A flag given without its value, or an argument nobody asked for.
    Usage(String),
}

/// Reads `Param`s from the command line and the environment.
pub struct ConfigReader {
    args: pico_args::Arguments,
    effective: Vec<(&'static str, String, Source)>,
}

impl ConfigReader {
    pub fn new(args: pico_args::Arguments) -> ConfigReader {
        ConfigReader {
            args,
            effective: Vec::new(),
        }
    }

    /// The arguments still unread (subcommands and free arguments).
    pub fn args_mut(&mut self) -> &mut pico_args::Arguments {
        &mut self.args
    }

    /// The value of `param` from its flag, else its environment variable,
    /// else its default, parsed by `parse`; `None` only when it has no default.
    pub fn get<T>(
        &mut self,
        param: &Param,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let from_flag: Option<String> = self
            .args
            .opt_value_from_str(param.flag)
            .map_err(|err| ConfigError::Usage(format!("{}: {err}", param.flag)))?;
        let (raw, source) = match from_flag {
            Some(value) => (value, Source::Flag),
            None => match std::env::var_os(param.env) {
                Some(value) => (os_to_string(param, value)?, Source::Env),
                None => match param.default.as_text() {
                    Some(value) => (value, Source::Default),
                    None => return Ok(None),
                },
            },
        };
        let value =
            parse(raw.trim()).map_err(|message| invalid(param, format!("{raw:?}: {message}")))?;
        self.effective.push((param.flag, raw, source));
        Ok(Some(value))
    }

    /// Lines saying each setting read so far, its value and where it came from.
    pub fn effective_lines(&self) -> Vec<String> {
        self.effective
            .iter()
            .map(|(flag, value, source)| {
                let source = match source {
                    Source::Flag => "flag",
                    Source::Env => "env",
                    Source::Default => "default",
                };
                format!(
                    "config: {} = {value} ({source})",
                    flag.trim_start_matches('-')
                )
            })
            .collect()
    }

    /// Fails on anything left on the command line.
    pub fn finish(self) -> Result<(), ConfigError> {
        let rest = self.args.finish();
        match rest.first() {
            None => Ok(()),
            Some(arg) => Err(ConfigError::Usage(format!(
                "unexpected argument {:?} (see --help)",
                arg.to_string_lossy()
            ))),
        }
    }
}

/// An error about `param`, naming both of its spellings.
pub fn invalid(param: &Param, message: String) -> ConfigError {
    ConfigError::Invalid {
        flag: param.flag,
        env: param.env,
        message,
    }
}

/// `--help` text: a line of what the binary is, then every setting.
pub fn help_text(usage: &str, params: &[Param]) -> String {
    let mut text = format!(
        "{usage}\n\nSettings (a flag beats its environment variable, which beats the default):\n"
    );
    for param in params {
        let default = param.default.as_text().unwrap_or_else(|| "none".to_owned());
        text.push_str(&format!(
            "  {:<20} {:<20} default {default}\n      {}\n",
            param.flag, param.env, param.help
        ));
    }
    text
}

impl Fallback {
    /// The default as it would be typed; `None` when there is none.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Fallback::Unset => None,
            Fallback::Text(text) => Some((*text).to_owned()),
            Fallback::Number(number) => Some(number.to_string()),
        }
    }
}

/// `--io-timeout-ms`: the same for both servers.
pub const IO_TIMEOUT: Param = Param {
    flag: "--io-timeout-ms",
    env: "IO_TIMEOUT_MS",
    default: Fallback::Number(INBOUND_IO_TIMEOUT_MS_DEFAULT),
    help: "an inbound connection that stalls this long is closed",
};

/// `--connections-max`: the same for both servers.
pub const CONNECTIONS_MAX: Param = Param {
    flag: "--connections-max",
    env: "CONNECTIONS_MAX",
    default: Fallback::Number(CONNECTIONS_MAX_DEFAULT),
    help: "connections served at once; past it a new one is answered 503 and closed",
};

/// Parses a connection bound.
pub fn parse_connections(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(count @ 1..=1_000_000) => Ok(count),
        _ => Err("must be a whole number from 1 to 1000000".to_owned()),
    }
}

/// `--cluster-secret-file`: where the cluster secret is, for both servers.
/// `CLUSTER_SECRET` holds the secret itself instead; `--insecure` runs
/// without one (see `ConfigReader::cluster_key`).
pub const CLUSTER_SECRET_FILE: Param = Param {
    flag: "--cluster-secret-file",
    env: "CLUSTER_SECRET_FILE",
    default: Fallback::Unset,
    help: "file holding the cluster secret (only its owner may read it), or the secret itself in CLUSTER_SECRET; calls between the servers carry an HMAC of it. Without one, --insecure is needed",
};

/// The variable that holds the cluster secret itself.
pub const CLUSTER_SECRET_ENV: &str = "CLUSTER_SECRET";

/// The flag that runs a server without a cluster secret.
pub const INSECURE_FLAG: &str = "--insecure";

/// The lines `--help` adds after the settings for `--insecure`.
pub const INSECURE_HELP: &str = "  --insecure           run without a cluster secret: anyone who can reach the servers can read, change and delete every chunk
";

/// What a server trusts its peers by.
#[derive(Debug)]
pub enum ClusterSecret {
    Key(ClusterKey),
    /// `--insecure`: no credentials asked or given.
    Insecure,
    /// Neither: the server refuses to run (but `--health-check` works).
    Missing,
}

impl ClusterSecret {
    /// The key, `None` when insecure; an error when missing, which stops
    /// the server at start-up.
    pub fn require(&self) -> Result<Option<&ClusterKey>, String> {
        match self {
            ClusterSecret::Key(key) => Ok(Some(key)),
            ClusterSecret::Insecure => Ok(None),
            ClusterSecret::Missing => Err(format!(
                "no cluster secret: give --cluster-secret-file PATH or set {CLUSTER_SECRET_ENV} (the same on every server of the cluster), or run with {INSECURE_FLAG} to let anyone change the data"
            )),
        }
    }
}

impl ConfigReader {
    /// A secret: the text of the file `file_param` names (flag or
    /// variable), else the value of the variable `value_env` itself (an
    /// empty one counts as unset: `X=${X}` in a compose file, with nothing
    /// set). Trimmed. The effective lines say where it came from, never
    /// what it is.
    pub fn secret(
        &mut self,
        file_param: &Param,
        value_env: &'static str,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(text) = self.get(file_param, read_secret_file)? {
            return Ok(Some(text));
        }
        let Some(value) = std::env::var_os(value_env) else {
            return Ok(None);
        };
        let value = os_to_string(file_param, value)?.trim().to_owned();
        if value.is_empty() {
            return Ok(None);
        }
        let note = format!("({} bytes from {value_env})", value.len());
        self.effective.push((value_env, note, Source::Env));
        Ok(Some(value))
    }

    /// The cluster secret, from `--cluster-secret-file` (or its variable),
    /// else from `CLUSTER_SECRET`; `--insecure` cannot be combined with one.
    pub fn cluster_secret(&mut self) -> Result<ClusterSecret, ConfigError> {
        let insecure = self.args.contains(INSECURE_FLAG);
        let key = match self.secret(&CLUSTER_SECRET_FILE, CLUSTER_SECRET_ENV)? {
            Some(text) => Some(
                ClusterKey::new(&text).map_err(|message| invalid(&CLUSTER_SECRET_FILE, message))?,
            ),
            None => None,
        };
        match (key, insecure) {
            (Some(_), true) => Err(ConfigError::Usage(format!(
                "{INSECURE_FLAG} and a cluster secret: choose one"
            ))),
            (Some(key), false) => Ok(ClusterSecret::Key(key)),
            (None, true) => {
                self.effective
                    .push((INSECURE_FLAG, "yes".to_owned(), Source::Flag));
                Ok(ClusterSecret::Insecure)
            }
            (None, false) => Ok(ClusterSecret::Missing),
        }
    }
}

/// `--log-level`: the same for both servers.
pub const LOG_LEVEL: Param = Param {
    flag: "--log-level",
    env: "LOG_LEVEL",
    default: Fallback::Text("info"),
    help: "error, warn, info or debug (debug adds a line per request)",
};

/// `--log-format`: the same for both servers.
pub const LOG_FORMAT: Param = Param {
    flag: "--log-format",
    env: "LOG_FORMAT",
    default: Fallback::Text("text"),
    help: "text, or json (one JSON object per line, with a timestamp)",
};

impl ConfigReader {
    /// `--log-level` and `--log-format`.
    pub fn log_settings(&mut self) -> Result<LogSettings, ConfigError> {
        let level = self.get(&LOG_LEVEL, crate::log::parse_level)?;
        let format = self.get(&LOG_FORMAT, crate::log::parse_format)?;
        Ok(LogSettings {
            level: level.expect("has a default"),
            format: format.expect("has a default"),
        })
    }
}

/// `--tls-cert-file`: both servers serve HTTPS with it (and the key).
pub const TLS_CERT_FILE: Param = Param {
    flag: "--tls-cert-file",
    env: "TLS_CERT_FILE",
    default: Fallback::Unset,
    help: "PEM certificate chain to serve HTTPS with, server certificate first (with --tls-key-file); plain HTTP without",
};

/// `--tls-key-file`: the private key of `--tls-cert-file`.
pub const TLS_KEY_FILE: Param = Param {
    flag: "--tls-key-file",
    env: "TLS_KEY_FILE",
    default: Fallback::Unset,
    help: "PEM private key of --tls-cert-file (only its owner may read it)",
};

/// `--ca-file`: whom a process trusts when it calls an `https://` URL.
pub const CA_FILE: Param = Param {
    flag: "--ca-file",
    env: "TLS_CA_FILE",
    default: Fallback::Unset,
    help: "PEM CA certificates that https:// peers are verified against; without it, the system's trusted roots",
};

impl ConfigReader {
    /// The certificate and key to serve HTTPS with: both or neither.
    pub fn server_identity(&mut self) -> Result<Option<ServerIdentity>, ConfigError> {
        let certificate = self.get(&TLS_CERT_FILE, |path| {
            std::fs::read(path).map_err(|err| format!("{path}: {err}"))
        })?;
        let key = self.get(&TLS_KEY_FILE, |path| {
            read_secret_file(path).map(String::into_bytes)
        })?;
        match (certificate, key) {
            (None, None) => Ok(None),
            (Some(certificate), Some(key)) => match ServerIdentity::new(certificate, key) {
                Ok(identity) => Ok(Some(identity)),
                Err(IdentityError::Certificate(message)) => Err(invalid(&TLS_CERT_FILE, message)),
                Err(IdentityError::Key(message)) => Err(invalid(&TLS_KEY_FILE, message)),
            },
            (Some(_), None) => Err(invalid(
                &TLS_KEY_FILE,
                "missing: --tls-cert-file needs it".to_owned(),
            )),
            (None, Some(_)) => Err(invalid(
                &TLS_CERT_FILE,
                "missing: --tls-key-file needs it".to_owned(),
            )),
        }
    }

    /// Whom to trust for `https://` calls: the CA file's certificates if
    /// one is given; else the system's roots when `https_expected`, else
    /// nobody (a process that calls no `https://` URL loads no roots).
    pub fn client_tls(&mut self, https_expected: bool) -> Result<ClientTls, ConfigError> {
        let from_file = self.get(&CA_FILE, |path| ClientTls::from_ca_file(Path::new(path)))?;
        Ok(match from_file {
            Some(tls) => tls,
            None if https_expected => ClientTls::system(),
            None => ClientTls::none(),
        })
    }
}

/// The text of a file holding a secret (trimmed), which only its owner may
/// read, like an ssh key: a secret others can read protects nothing.
pub fn read_secret_file(path: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|err| format!("{path}: {err}"))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{path}: readable by others (mode {:o}); chmod 600 it",
            mode & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|err| format!("{path}: {err}"))?;
    Ok(text.trim().to_owned())
}

/// The loud line a server prints at start-up without a cluster secret.
pub fn insecure_warning(what_is_open: &str) -> String {
    format!(
        "WARNING: running with {INSECURE_FLAG}, without a cluster secret: {what_is_open}. Give every server the same --cluster-secret-file to close it."
    )
}

/// Parses a worker thread count.
pub fn parse_workers(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(count @ 1..=1024) => Ok(count),
        _ => Err("must be a whole number from 1 to 1024".to_owned()),
    }
}

/// Parses a positive whole number of `unit` (bytes, bytes per second).
pub fn parse_positive(raw: &str, unit: &str) -> Result<u64, String> {
    match raw.parse::<u64>() {
        Ok(value) if value >= 1 => Ok(value),
        _ => Err(format!("must be a positive whole number of {unit}")),
    }
}

/// Parses a positive whole number of milliseconds.
pub fn parse_millis(raw: &str) -> Result<u64, String> {
    match raw.parse::<u64>() {
        Ok(0) => Err("must be at least 1 ms".to_owned()),
        Ok(millis) => Ok(millis),
        Err(_) => Err("not a whole number of milliseconds".to_owned()),
    }
}

/// Parses a base URL such as `http://127.0.0.1:8001` or
/// `https://storage1:8001`, without a trailing `/`.
pub fn parse_base_url(raw: &str) -> Result<String, String> {
    let (scheme, rest) = if let Some(rest) = raw.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = raw.strip_prefix("https://") {
        ("https", rest)
    } else {
        return Err("must start with http:// or https://".to_owned());
    };
    let rest = rest.trim_end_matches('/');
    let well_formed = !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '@'])
        && rest.chars().all(|c| c.is_ascii_graphic());
    if !well_formed {
        return Err(format!("must be {scheme}://HOST[:PORT] with no path"));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// One base URL or several, comma-separated (`--server A,B`, `--join A,B`,
/// `ETCD_ENDPOINTS`), each as `parse_base_url` takes it: the servers to try
/// in turn. At least one.
pub fn parse_base_urls(raw: &str) -> Result<Vec<String>, String> {
    let urls = raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| parse_base_url(part).map_err(|err| format!("{part:?}: {err}")))
        .collect::<Result<Vec<String>, String>>()?;
    match urls.is_empty() {
        true => Err("names no server".to_owned()),
        false => Ok(urls),
    }
}

fn os_to_string(param: &Param, value: OsString) -> Result<String, ConfigError> {
    value
        .into_string()
        .map_err(|_| invalid(param, "is not valid UTF-8".to_owned()))
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { flag, env, message } => write!(f, "{flag} / {env}: {message}"),
            ConfigError::Usage(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{parse_base_url, parse_base_urls};

    #[test]
    fn several_base_urls_are_comma_separated_in_order() {
        assert_eq!(
            parse_base_urls(" http://a:1/, https://b:2 ,").unwrap(),
            ["http://a:1", "https://b:2"]
        );
        assert!(
            parse_base_urls("http://a:1,b:2")
                .unwrap_err()
                .contains("\"b:2\"")
        );
        assert!(parse_base_urls(" , ").is_err());
    }

    #[test]
    fn base_urls_are_http_or_https_hosts() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8001/").unwrap(),
            "http://127.0.0.1:8001"
        );
        assert_eq!(
            parse_base_url("http://storage1:8001").unwrap(),
            "http://storage1:8001"
        );
        assert_eq!(
            parse_base_url("https://storage1:8001/").unwrap(),
            "https://storage1:8001"
        );
        for bad in [
            "127.0.0.1:8001",
            "ftp://a",
            "https:/a",
            "https://",
            "https://a/b",
            "http://",
            "http://a/b",
            "http://a b",
            "http://u@h",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
