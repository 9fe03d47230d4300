//! The command line: subcommand, then flags and settings, then free
//! arguments, into a typed `Command`.

use std::time::Duration;

use common::config::{
    CA_FILE, ConfigReader, Fallback, Param, help_text, parse_base_urls, parse_millis,
};
use common::tls::ClientTls;

use crate::docs::{self, CommandDoc};

/// The variable holding the API token itself (`--token-file` names a file).
const TOKEN_ENV: &str = "HARBOUR_TOKEN";

use crate::bench::{BENCH_FILES_MAX, BENCH_WORKERS_MAX, BenchSpec, Phase};
use crate::error::ClientError;
use crate::mount::{CACHE_BYTES_DEFAULT, MountSpec};

pub struct Invocation {
    pub command: Command,
    /// The naming servers, tried in order (`--server A,B`).
    pub servers: Vec<String>,
    /// The same, as the user gave them: for messages.
    pub server: String,
    pub timeout: Duration,
    pub json: bool,
    /// No progress bar, no line saying what was done (`--quiet`).
    pub quiet: bool,
    /// Sizes as exact byte counts, not human units (`--bytes`).
    pub bytes: bool,
    /// The API token sent as `Authorization: Bearer`, if any.
    pub token: Option<String>,
    /// Whom an `https://` naming server is verified against.
    pub tls: ClientTls,
}

pub enum Command {
    Create {
        name: String,
        local_path: String,
        overwrite: bool,
    },
    Read {
        name: String,
        out_path: String,
    },
    Size {
        name: String,
    },
    Delete {
        name: String,
    },
    List {
        prefix: String,
        /// `-l`: a size column in human units first.
        long: bool,
    },
    Stat {
        name: String,
    },
    Status,
    Drain {
        server_url: String,
    },
    MakeDir {
        name: String,
    },
    RemoveDir {
        name: String,
    },
    /// A rename: of a file, or of a directory when `from` ends in `/`.
    Move {
        from: String,
        to: String,
        overwrite: bool,
    },
    Bench(BenchSpec),
    Mount(MountSpec),
    Completions(String),
    /// `--help`: of one command, or the whole page.
    Help(Option<&'static CommandDoc>),
}

/// Default stall bound of client → naming transfers (SPEC: `REQUEST_TIMEOUT_MS`).
const CLIENT_TIMEOUT_MS_DEFAULT: u64 = 30_000;

const SERVER: Param = Param {
    flag: "--server",
    env: "NAME_SERVER",
    default: Fallback::Text("http://localhost:8000"),
    help: "base URL of the naming server, http:// or https:// (several, comma-separated: each tried in turn when one cannot be reached)",
};
const TIMEOUT: Param = Param {
    flag: "--timeout-ms",
    env: "REQUEST_TIMEOUT_MS",
    default: Fallback::Number(CLIENT_TIMEOUT_MS_DEFAULT),
    help: "connect timeout, and the longest the server may stay silent mid-transfer",
};

const TOKEN_FILE: Param = Param {
    flag: "--token-file",
    env: "HARBOUR_TOKEN_FILE",
    default: Fallback::Unset,
    help: "file holding the API token (only its owner may read it), or the token itself in HARBOUR_TOKEN",
};

const HEADER: &str = "harbour: the Harbour distributed file system client";

const OPTIONS: &str = "Options:
  --json        print one JSON document (size, list, stat, status)
  --overwrite   replace an existing file (create)
  -q, --quiet   no progress bar, and no line saying what was done (create, read, delete)
  --bytes       sizes as exact byte counts instead of KiB, MiB... (list -l, stat, status)
  --files N     bench: files to create (default 1000)
  --size BYTES  bench: size of each file, e.g. 1024, 64KiB, 256MiB (default 1KiB)
  --workers N   bench: concurrent workers over keep-alive connections (default 8)
  --phases P    bench: comma-separated, from create,read,delete (default all three)
  --prefix P    bench: names start with P (default harbour-bench-PID-TIME/)
  --keep        bench: leave the files of a run that ends well, for a later run
                with the same --prefix (say, --phases read,delete)

Exit status: 0 success, 2 usage error, 1 any other failure.";

pub fn parse(args: pico_args::Arguments) -> Result<Invocation, ClientError> {
    let mut args = args;
    let help = args.contains(["-h", "--help"]);
    let subcommand = args
        .subcommand()
        .map_err(|err| ClientError::Usage(err.to_string()))?;
    let json = args.contains("--json");
    let quiet = args.contains(["-q", "--quiet"]);
    let bytes = args.contains("--bytes");
    let long = args.contains(["-l", "--long"]);
    let overwrite = args.contains("--overwrite");
    let bench = match subcommand.as_deref() {
        Some("bench") => Some(bench_spec(&mut args)?),
        _ => None,
    };
    let mount = match subcommand.as_deref() {
        Some("mount") => Some(mount_options(&mut args)?),
        _ => None,
    };
    let mut reader = ConfigReader::new(args);
    let usage = |err: common::config::ConfigError| ClientError::Usage(err.to_string());
    let servers = reader
        .get(&SERVER, parse_base_urls)
        .map_err(usage)?
        .expect("has a default");
    let server = servers.join(",");
    let timeout_ms = reader
        .get(&TIMEOUT, parse_millis)
        .map_err(usage)?
        .expect("has a default");
    let token = reader.secret(&TOKEN_FILE, TOKEN_ENV).map_err(usage)?;
    let tls = reader
        .client_tls(servers.iter().any(|url| common::tls::is_https(url)))
        .map_err(usage)?;
    let free = free_arguments(reader.args_mut())?;
    reader.finish().map_err(usage)?;
    let command = match subcommand.as_deref() {
        None if help => Command::Help(None),
        Some(name) if help => Command::Help(docs::command_doc(name)),
        None => return Err(ClientError::Usage("missing command".to_owned())),
        Some("bench") => {
            if !free.is_empty() {
                return Err(ClientError::Usage("bench takes no arguments".to_owned()));
            }
            Command::Bench(bench.expect("parsed for bench"))
        }
        Some("mount") => match free.as_slice() {
            [mountpoint] => {
                let (prefix, read_only, cache_dir, cache_bytes) = mount.expect("parsed for mount");
                Command::Mount(MountSpec {
                    mountpoint: mountpoint.into(),
                    prefix,
                    read_only,
                    cache_dir,
                    cache_bytes,
                })
            }
            _ => {
                return Err(ClientError::Usage("mount takes one MOUNTPOINT".to_owned()));
            }
        },
        Some("completions") => match free.as_slice() {
            [shell] => Command::Completions(shell.clone()),
            _ => {
                return Err(ClientError::Usage(
                    "completions takes one of bash, zsh or fish".to_owned(),
                ));
            }
        },
        Some(subcommand) => command(subcommand, free, overwrite, long)?,
    };
    if overwrite && !matches!(command, Command::Create { .. } | Command::Move { .. }) {
        return Err(ClientError::Usage(
            "--overwrite only goes with create and mv".to_owned(),
        ));
    }
    Ok(Invocation {
        command,
        servers,
        server,
        timeout: std::time::Duration::from_millis(timeout_ms),
        json,
        quiet,
        bytes,
        token,
        tls,
    })
}

pub fn help_page() -> String {
    let usage = format!("{HEADER}\n\n{}\n{OPTIONS}", docs::usage_lines());
    help_text(&usage, &[SERVER, TIMEOUT, TOKEN_FILE, CA_FILE])
}

fn command(
    subcommand: &str,
    free: Vec<String>,
    overwrite: bool,
    long: bool,
) -> Result<Command, ClientError> {
    let arity = |wanted: &[&str]| -> Result<Vec<String>, ClientError> {
        if free.len() != wanted.len() {
            return Err(ClientError::Usage(format!(
                "{subcommand} takes {}, got {} argument{}",
                if wanted.is_empty() {
                    "no arguments".to_owned()
                } else {
                    wanted.join(" ")
                },
                free.len(),
                if free.len() == 1 { "" } else { "s" }
            )));
        }
        Ok(free.clone())
    };
    let command = match subcommand {
        "create" => {
            let [name, local_path] = take(arity(&["NAME", "LOCAL_PATH"])?);
            Command::Create {
                name,
                local_path,
                overwrite,
            }
        }
        "read" => {
            let [name, out_path] = take(arity(&["NAME", "OUT_PATH"])?);
            Command::Read { name, out_path }
        }
        "size" => Command::Size {
            name: one(arity(&["NAME"])?),
        },
        "delete" => Command::Delete {
            name: one(arity(&["NAME"])?),
        },
        "stat" => Command::Stat {
            name: one(arity(&["NAME"])?),
        },
        "status" => {
            arity(&[])?;
            Command::Status
        }
        "list" => match free.len() {
            0 => Command::List {
                prefix: String::new(),
                long,
            },
            1 => Command::List {
                prefix: free[0].clone(),
                long,
            },
            _ => {
                return Err(ClientError::Usage(
                    "list takes at most one PREFIX".to_owned(),
                ));
            }
        },
        "mkdir" => Command::MakeDir {
            name: one(arity(&["NAME"])?),
        },
        "rmdir" => Command::RemoveDir {
            name: one(arity(&["NAME"])?),
        },
        "mv" => {
            let [from, to] = take(arity(&["FROM", "TO"])?);
            Command::Move {
                from,
                to,
                overwrite,
            }
        }
        "drain" => Command::Drain {
            server_url: one(arity(&["STORAGE_URL"])?),
        },
        // `harbour help` and `harbour help COMMAND`.
        "help" => match free.as_slice() {
            [] => Command::Help(None),
            [name] => {
                Command::Help(Some(docs::command_doc(name).ok_or_else(|| {
                    ClientError::Usage(format!("unknown command {name:?}"))
                })?))
            }
            _ => return Err(ClientError::Usage("help takes one command".to_owned())),
        },
        other => return Err(ClientError::Usage(format!("unknown command {other:?}"))),
    };
    Ok(command)
}

/// `harbour bench`'s options, with their defaults.
fn bench_spec(args: &mut pico_args::Arguments) -> Result<BenchSpec, ClientError> {
    let usage = |flag: &str, err: pico_args::Error| ClientError::Usage(format!("{flag}: {err}"));
    let files: u64 = args
        .opt_value_from_str("--files")
        .map_err(|err| usage("--files", err))?
        .unwrap_or(1000);
    if !(1..=BENCH_FILES_MAX).contains(&files) {
        return Err(ClientError::Usage(format!(
            "--files must be 1 to {BENCH_FILES_MAX}"
        )));
    }
    let size_bytes = match args
        .opt_value_from_str::<_, String>("--size")
        .map_err(|err| usage("--size", err))?
    {
        Some(raw) => parse_size(&raw)
            .ok_or_else(|| ClientError::Usage(format!("--size: {raw:?} is not a size")))?,
        None => 1024,
    };
    let workers: usize = args
        .opt_value_from_str("--workers")
        .map_err(|err| usage("--workers", err))?
        .unwrap_or(8);
    if !(1..=BENCH_WORKERS_MAX).contains(&workers) {
        return Err(ClientError::Usage(format!(
            "--workers must be 1 to {BENCH_WORKERS_MAX}"
        )));
    }
    let phases = match args
        .opt_value_from_str::<_, String>("--phases")
        .map_err(|err| usage("--phases", err))?
    {
        None => vec![Phase::Create, Phase::Read, Phase::Delete],
        Some(raw) => raw
            .split(',')
            .map(|phase| match phase.trim() {
                "create" => Ok(Phase::Create),
                "read" => Ok(Phase::Read),
                "delete" => Ok(Phase::Delete),
                other => Err(ClientError::Usage(format!(
                    "--phases: {other:?} is not create, read or delete"
                ))),
            })
            .collect::<Result<_, _>>()?,
    };
    let prefix = match args
        .opt_value_from_str::<_, String>("--prefix")
        .map_err(|err| usage("--prefix", err))?
    {
        Some(prefix) => prefix,
        None => {
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis());
            format!("harbour-bench-{}-{started}/", std::process::id())
        }
    };
    let keep = args.contains("--keep");
    Ok(BenchSpec {
        files,
        size_bytes,
        workers,
        prefix,
        phases,
        keep,
    })
}

/// `harbour mount`'s options: prefix, read-only, cache folder and bytes.
fn mount_options(
    args: &mut pico_args::Arguments,
) -> Result<(String, bool, std::path::PathBuf, u64), ClientError> {
    let usage = |flag: &str, err: pico_args::Error| ClientError::Usage(format!("{flag}: {err}"));
    let prefix: String = args
        .opt_value_from_str("--prefix")
        .map_err(|err| usage("--prefix", err))?
        .unwrap_or_default();
    let read_only = args.contains("--read-only");
    let cache_dir = args
        .opt_value_from_str::<_, std::path::PathBuf>("--cache-dir")
        .map_err(|err| usage("--cache-dir", err))?
        .unwrap_or_else(std::env::temp_dir);
    let cache_bytes = match args
        .opt_value_from_str::<_, String>("--cache-bytes")
        .map_err(|err| usage("--cache-bytes", err))?
    {
        Some(raw) => parse_size(&raw)
            .filter(|bytes| *bytes > 0)
            .ok_or_else(|| ClientError::Usage(format!("--cache-bytes: {raw:?} is not a size")))?,
        None => CACHE_BYTES_DEFAULT,
    };
    Ok((prefix, read_only, cache_dir, cache_bytes))
}

/// A size in bytes: a whole number, optionally with K/KiB, M/MiB or G/GiB
/// (powers of 1024).
fn parse_size(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let digits_end = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// Every remaining argument, in order; one that looks like a flag is a
/// mistake (a typo, or a flag this command does not have), except `-`.
fn free_arguments(args: &mut pico_args::Arguments) -> Result<Vec<String>, ClientError> {
    let mut free = Vec::new();
    loop {
        match args.opt_free_from_str::<String>() {
            Ok(Some(arg)) if arg.starts_with('-') && arg != "-" => {
                return Err(ClientError::Usage(format!("unknown option {arg:?}")));
            }
            Ok(Some(arg)) => free.push(arg),
            Ok(None) => return Ok(free),
            Err(err) => return Err(ClientError::Usage(err.to_string())),
        }
    }
}

fn take<const N: usize>(values: Vec<String>) -> [String; N] {
    values.try_into().expect("arity checked")
}

fn one(values: Vec<String>) -> String {
    let [value] = take(values);
    value
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        for bad in ["", "KiB", "1.5M", "-1", "1 KiB", "1kb"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
