//! The command line: subcommand, then flags and settings, then free
//! arguments, into a typed `Command`.

use std::time::Duration;

use common::config::{ConfigReader, Fallback, Param, help_text, parse_base_url, parse_millis};

use crate::error::ClientError;

pub struct Invocation {
    pub command: Command,
    pub server: String,
    pub timeout: Duration,
    pub json: bool,
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
    },
    Stat {
        name: String,
    },
    Status,
    Drain {
        server_url: String,
    },
    Help,
}

/// Default stall bound of client → naming transfers (SPEC: `REQUEST_TIMEOUT_MS`).
const CLIENT_TIMEOUT_MS_DEFAULT: u64 = 30_000;

const SERVER: Param = Param {
    flag: "--server",
    env: "NAME_SERVER",
    default: Fallback::Text("http://localhost:8000"),
    help: "base URL of the naming server",
};
const TIMEOUT: Param = Param {
    flag: "--timeout-ms",
    env: "REQUEST_TIMEOUT_MS",
    default: Fallback::Number(CLIENT_TIMEOUT_MS_DEFAULT),
    help: "connect timeout, and the longest the server may stay silent mid-transfer",
};

const USAGE: &str = "harbour: the Harbour distributed file system client

Usage:
  harbour create NAME LOCAL_PATH [--overwrite]   # LOCAL_PATH \"-\" reads stdin
  harbour read   NAME OUT_PATH                   # OUT_PATH \"-\" writes stdout
  harbour size   NAME                            # first token: size in bytes
  harbour delete NAME
  harbour list   [PREFIX]                        # one name per line, with its size
  harbour stat   NAME                            # chunks, replicas and where they live
  harbour status                                 # servers, liveness, space, under-replicated chunks
  harbour drain  STORAGE_URL                     # move every chunk off a storage server before removing it

Options:
  --json        print one JSON document (size, list, stat, status)
  --overwrite   replace an existing file (create)

Exit status: 0 success, 2 usage error, 1 any other failure.";

pub fn parse(args: pico_args::Arguments) -> Result<Invocation, ClientError> {
    let mut args = args;
    let help = args.contains(["-h", "--help"]);
    let subcommand = args
        .subcommand()
        .map_err(|err| ClientError::Usage(err.to_string()))?;
    let json = args.contains("--json");
    let overwrite = args.contains("--overwrite");
    let mut reader = ConfigReader::new(args);
    let usage = |err: common::config::ConfigError| ClientError::Usage(err.to_string());
    let server = reader
        .get(&SERVER, parse_base_url)
        .map_err(usage)?
        .expect("has a default");
    let timeout_ms = reader
        .get(&TIMEOUT, parse_millis)
        .map_err(usage)?
        .expect("has a default");
    let free = free_arguments(reader.args_mut())?;
    reader.finish().map_err(usage)?;
    let command = match subcommand.as_deref() {
        None if help => Command::Help,
        _ if help => Command::Help,
        None => return Err(ClientError::Usage("missing command".to_owned())),
        Some(subcommand) => command(subcommand, free, overwrite)?,
    };
    if overwrite && !matches!(command, Command::Create { .. }) {
        return Err(ClientError::Usage(
            "--overwrite only goes with create".to_owned(),
        ));
    }
    Ok(Invocation {
        command,
        server,
        timeout: std::time::Duration::from_millis(timeout_ms),
        json,
    })
}

pub fn help_page() -> String {
    help_text(USAGE, &[SERVER, TIMEOUT])
}

fn command(subcommand: &str, free: Vec<String>, overwrite: bool) -> Result<Command, ClientError> {
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
            },
            1 => Command::List {
                prefix: free[0].clone(),
            },
            _ => {
                return Err(ClientError::Usage(
                    "list takes at most one PREFIX".to_owned(),
                ));
            }
        },
        "drain" => Command::Drain {
            server_url: one(arity(&["STORAGE_URL"])?),
        },
        "help" => Command::Help,
        other => return Err(ClientError::Usage(format!("unknown command {other:?}"))),
    };
    Ok(command)
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
