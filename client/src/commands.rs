//! One function per subcommand.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use common::api::{ClusterStatus, Created, FileEntry, FileStat};
use common::percent;

use crate::cli::{Command, Invocation};
use crate::error::ClientError;
use crate::naming_client::{NamingClient, Refusal};
use crate::output::{self, Units};
use crate::progress::{Counted, Progress};

pub fn run(invocation: Invocation) -> Result<(), ClientError> {
    // A bench keeps a connection per worker alive, a mount one per
    // kernel thread; other commands need one.
    let connections = match &invocation.command {
        Command::Bench(spec) => spec.workers,
        Command::Mount(_) => crate::mount::MOUNT_THREADS,
        _ => 1,
    };
    let client = NamingClient::new(
        &invocation.servers,
        invocation.timeout,
        connections,
        invocation.token.as_deref(),
        &invocation.tls,
    );
    let json = invocation.json;
    let quiet = invocation.quiet;
    let units = Units {
        exact: invocation.bytes,
    };
    match invocation.command {
        Command::Create {
            name,
            local_path,
            overwrite,
        } => create(&client, &name, &local_path, overwrite, quiet),
        Command::Read { name, out_path } => read(&client, &name, &out_path, quiet),
        Command::Size { name } => size(&client, &name, json),
        Command::Delete { name } => delete(&client, &name, quiet),
        Command::List { prefix, long } => list(&client, &prefix, json, long, units),
        Command::Stat { name } => stat(&client, &name, json, units),
        Command::Status => status(&client, json, units),
        Command::Drain { server_url } => drain(&client, &server_url, json),
        Command::MakeDir { name } => dir(&client, "POST", &name, quiet),
        Command::RemoveDir { name } => dir(&client, "DELETE", &name, quiet),
        Command::Move {
            from,
            to,
            overwrite,
        } => rename(&client, &from, &to, overwrite, quiet),
        Command::Bench(spec) => crate::bench::run(&client, &spec, json),
        Command::Mount(spec) => crate::mount::run(client, spec, &invocation.server),
        Command::Help(None) => {
            print!("{}", crate::cli::help_page());
            Ok(())
        }
        Command::Help(Some(doc)) => {
            print!("{}", crate::docs::command_help(doc));
            Ok(())
        }
        Command::Completions(shell) => {
            let script = crate::docs::completions(&shell).map_err(ClientError::Usage)?;
            print!("{script}");
            Ok(())
        }
    }
}

fn create(
    client: &NamingClient,
    name: &str,
    local_path: &str,
    overwrite: bool,
    quiet: bool,
) -> Result<(), ClientError> {
    let mut url = client.file_url(name);
    if overwrite {
        url.push_str("?overwrite=true");
    }
    let answer = if local_path == "-" {
        let mut progress = Progress::new(None, quiet);
        let mut body = Counted {
            inner: io::stdin().lock(),
            progress: &mut progress,
        };
        client.put(&url, &mut body, None)?
    } else {
        let file = File::open(local_path).map_err(|err| {
            ClientError::Failed(format!("{local_path}: cannot open: {}", io_reason(&err)))
        })?;
        let len = file
            .metadata()
            .map_err(|err| ClientError::Failed(format!("{local_path}: {}", io_reason(&err))))?
            .len();
        let mut progress = Progress::new(Some(len), quiet);
        let mut body = Counted {
            inner: file,
            progress: &mut progress,
        };
        client.put(&url, &mut body, Some(len))?
    };
    let mut response = answer.map_err(|refusal| refused(name, refusal))?;
    let created: Created = read_json(client, &mut response)?;
    if !quiet {
        eprintln!(
            "created {} ({} bytes, {} chunks)",
            created.name, created.size, created.chunks
        );
    }
    Ok(())
}

fn read(client: &NamingClient, name: &str, out_path: &str, quiet: bool) -> Result<(), ClientError> {
    let response = client
        .get(&client.file_url(name))?
        .map_err(|refusal| refused(name, refusal))?;
    let expected_bytes = content_length(&response);
    let mut progress = Progress::new(expected_bytes, quiet);
    let mut body = Counted {
        inner: response.into_body().into_reader(),
        progress: &mut progress,
    };
    if out_path == "-" {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let copied = copy_body(client, name, &mut body, &mut out)?;
        out.flush().map_err(|err| {
            ClientError::Failed(format!("writing stdout failed: {}", io_reason(&err)))
        })?;
        return check_complete(name, copied, expected_bytes);
    }
    let target = Path::new(out_path);
    if fs::metadata(target).is_ok_and(|meta| !meta.is_file() && !meta.is_dir()) {
        // A device, FIFO or socket (`/dev/null`, a named pipe): there is no
        // file to replace, and renaming over it would replace the device
        // itself. The bytes stream into it, as with "-".
        let mut out = OpenOptions::new().write(true).open(target).map_err(|err| {
            ClientError::Failed(format!("{out_path}: cannot write: {}", io_reason(&err)))
        })?;
        let copied = copy_body(client, name, &mut body, &mut out)?;
        check_complete(name, copied, expected_bytes)?;
        body.progress.finish();
        if !quiet {
            body.progress.finish();
            if !quiet {
                eprintln!("read {name} ({copied} bytes) into {out_path}");
            }
        }
        return Ok(());
    }
    // Write next to the target and rename at the end, so a failed read
    // never leaves a partial OUT_PATH behind.
    let partial = partial_path(target);
    let mut file = File::create(&partial).map_err(|err| {
        ClientError::Failed(format!("{out_path}: cannot write: {}", io_reason(&err)))
    })?;
    let written = copy_body(client, name, &mut body, &mut file)
        .and_then(|copied| check_complete(name, copied, expected_bytes).map(|()| copied))
        .and_then(|copied| {
            file.sync_all()
                .map_err(|err| ClientError::Failed(format!("{out_path}: {}", io_reason(&err))))?;
            fs::rename(&partial, target).map_err(|err| {
                ClientError::Failed(format!("{out_path}: cannot write: {}", io_reason(&err)))
            })?;
            Ok(copied)
        });
    match written {
        Ok(copied) => {
            body.progress.finish();
            if !quiet {
                body.progress.finish();
                if !quiet {
                    eprintln!("read {name} ({copied} bytes) into {out_path}");
                }
            }
            Ok(())
        }
        Err(err) => {
            let _ = fs::remove_file(&partial);
            Err(err)
        }
    }
}

fn size(client: &NamingClient, name: &str, json: bool) -> Result<(), ClientError> {
    let response = client
        .head(&client.file_url(name))?
        .map_err(|refusal| refused(name, refusal))?;
    let size = content_length(&response)
        .ok_or_else(|| ClientError::Failed(format!("{name}: the server sent no size")))?;
    output::size(name, size, json);
    Ok(())
}

fn delete(client: &NamingClient, name: &str, quiet: bool) -> Result<(), ClientError> {
    client
        .delete(&client.file_url(name))?
        .map_err(|refusal| refused(name, refusal))?;
    if !quiet {
        eprintln!("deleted {name}");
    }
    Ok(())
}

/// `mkdir` (POST) or `rmdir` (DELETE) of `name`.
fn dir(client: &NamingClient, method: &str, name: &str, quiet: bool) -> Result<(), ClientError> {
    let trimmed = name.trim_end_matches('/');
    let url = client.url(&format!("/dirs/{}", percent::encode(trimmed, true)));
    let answer = match method {
        "POST" => client.post(&url)?,
        _ => client.delete(&url)?,
    };
    answer.map_err(|refusal| match (method, refusal.status) {
        ("POST", 409) => ClientError::Failed(format!("{trimmed}/: already exists")),
        (_, 409) => ClientError::Failed(format!("{trimmed}/: the directory is not empty")),
        (_, 404) => ClientError::Failed(format!("{trimmed}/: no such directory")),
        _ => refused(name, refusal),
    })?;
    if !quiet {
        match method {
            "POST" => eprintln!("made {trimmed}/"),
            _ => eprintln!("removed {trimmed}/"),
        }
    }
    Ok(())
}

fn rename(
    client: &NamingClient,
    from: &str,
    to: &str,
    overwrite: bool,
    quiet: bool,
) -> Result<(), ClientError> {
    let mut path = format!(
        "/rename?from={}&to={}",
        percent::encode(from, false),
        percent::encode(to, false)
    );
    if overwrite {
        path.push_str("&overwrite=true");
    }
    let mut response = client.post(&client.url(&path))?.map_err(|refusal| {
        match (refusal.status, from.ends_with('/')) {
            (404, true) => ClientError::Failed(format!("{from}: no file is under it")),
            (409, true) => ClientError::Failed(format!("{to}: some names under it already exist")),
            (409, false) => ClientError::Failed(format!("{to}: already exists (use --overwrite)")),
            _ => refused(from, refusal),
        }
    })?;
    let renamed: serde_json::Value = read_json(client, &mut response)?;
    if !quiet {
        match renamed["renamed"].as_u64() {
            Some(count) if from.ends_with('/') => {
                eprintln!("renamed {from} to {to} ({count} files)")
            }
            _ => eprintln!("renamed {from} to {to}"),
        }
    }
    Ok(())
}

fn list(
    client: &NamingClient,
    prefix: &str,
    json: bool,
    long: bool,
    units: Units,
) -> Result<(), ClientError> {
    let url = client.url(&format!("/files?prefix={}", percent::encode(prefix, false)));
    let mut response = client
        .get(&url)?
        .map_err(|refusal| refused("list", refusal))?;
    let entries: Vec<FileEntry> = read_json(client, &mut response)?;
    output::list(&entries, json, long, units);
    Ok(())
}

fn stat(client: &NamingClient, name: &str, json: bool, units: Units) -> Result<(), ClientError> {
    let url = client.url(&format!("/stat/{}", percent::encode(name, true)));
    let mut response = client
        .get(&url)?
        .map_err(|refusal| refused(name, refusal))?;
    let stat: FileStat = read_json(client, &mut response)?;
    output::stat(&stat, json, units);
    Ok(())
}

fn status(client: &NamingClient, json: bool, units: Units) -> Result<(), ClientError> {
    let mut response = client
        .get(&client.url("/status"))?
        .map_err(|refusal| refused("status", refusal))?;
    let status: ClusterStatus = read_json(client, &mut response)?;
    output::status(&status, json, units);
    Ok(())
}

fn drain(client: &NamingClient, server_url: &str, json: bool) -> Result<(), ClientError> {
    let url = client.url(&format!(
        "/drain?server={}",
        percent::encode(server_url, false)
    ));
    let mut response = client.post(&url)?.map_err(|refusal| match refusal.status {
        404 => ClientError::Failed(format!(
            "{server_url}: not a storage server of this cluster"
        )),
        _ => refused(server_url, refusal),
    })?;
    let answer: serde_json::Value = read_json(client, &mut response)?;
    if json {
        println!("{answer}");
    } else {
        println!(
            "draining {server_url}: its chunks are being copied to other servers; `harbour status` shows them fall to 0"
        );
    }
    Ok(())
}

/// The user's sentence for a refusal of an operation on `what`.
fn refused(what: &str, refusal: Refusal) -> ClientError {
    let Refusal { status, message } = refusal;
    let detail = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    let sentence = match status {
        401 => format!(
            "{what}: the naming server needs an API token{detail} (give one in HARBOUR_TOKEN or --token-file)"
        ),
        403 => format!("{what}: not allowed{detail}"),
        404 => format!("{what}: no such file"),
        409 => format!("{what}: already exists (use --overwrite)"),
        507 => format!("{what}: insufficient storage on the cluster (HTTP 507){detail}"),
        503 => format!("{what}: not enough storage servers available (HTTP 503){detail}"),
        504 => format!("{what}: a storage server timed out (HTTP 504){detail}"),
        status => format!(
            "{what}: {} (HTTP {status})",
            if message.is_empty() {
                "request failed"
            } else {
                &message
            }
        ),
    };
    ClientError::Failed(sentence)
}

fn read_json<T: serde::de::DeserializeOwned>(
    client: &NamingClient,
    response: &mut ureq::http::Response<ureq::Body>,
) -> Result<T, ClientError> {
    let reader = response.body_mut().as_reader();
    serde_json::from_reader(io::BufReader::new(reader)).map_err(|err| {
        let _ = client;
        ClientError::Failed(format!(
            "the naming server sent an answer that is not the expected JSON: {err}"
        ))
    })
}

fn content_length(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    response
        .headers()
        .get("content-length")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn copy_body(
    client: &NamingClient,
    name: &str,
    body: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<u64, ClientError> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut copied = 0u64;
    loop {
        let read = match body.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                let _ = client;
                return Err(ClientError::Failed(format!(
                    "{name}: the transfer broke off: {}",
                    io_reason(&err)
                )));
            }
        };
        out.write_all(&buffer[..read]).map_err(|err| {
            ClientError::Failed(format!(
                "{name}: writing the output failed: {}",
                io_reason(&err)
            ))
        })?;
        copied += read as u64;
    }
}

fn check_complete(name: &str, copied: u64, expected_bytes: Option<u64>) -> Result<(), ClientError> {
    match expected_bytes {
        Some(expected) if expected != copied => Err(ClientError::Failed(format!(
            "{name}: the transfer broke off after {copied} of {expected} bytes"
        ))),
        _ => Ok(()),
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let file_name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(
        ".{file_name}.harbour-partial-{}",
        std::process::id()
    ))
}

/// An IO error in words, without Rust's "(os error N)" suffix.
fn io_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_lowercase(),
                None => text,
            }
        }
    }
}
