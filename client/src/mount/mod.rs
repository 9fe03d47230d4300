//! `harbour mount MOUNTPOINT`: the cluster (or one prefix of it) as a file
//! system, over FUSE with the `fuser` crate (synchronous; its own mount
//! code, through `fusermount3` when not root). It runs in the foreground
//! until unmounted (`fusermount3 -u`) or given SIGINT/SIGTERM, when it
//! uploads what it holds and unmounts.
//!
//! - `kernel`: fuser's `Filesystem`, decoding and replying;
//! - `core`: what each operation does, on paths (`changes`: those that
//!   change the namespace);
//! - `inodes`: inode numbers ↔ paths;
//! - `open_files`, `staging`: files being written, staged on local disk
//!   and uploaded whole (one atomic create or overwrite) on close/fsync;
//! - `write_behind`: the upload of a large sequential writer, streamed
//!   as it writes;
//! - `read_ahead`: ranged GETs, streamed for sequential readers;
//! - `dir_stream`: directories read a page at a time;
//! - `remote`: the naming API, with the one HTTP-status → errno mapping.

mod changes;
mod core;
mod dir_stream;
mod inodes;
mod kernel;
mod open_files;
mod read_ahead;
mod remote;
mod staging;
mod write_behind;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuser::{Config, MountOption, Session};

use crate::error::ClientError;
use crate::naming_client::NamingClient;

pub use staging::CACHE_BYTES_DEFAULT;

/// Event loops serving the kernel at once: each blocks on its own call to
/// the naming server, so this many operations run in parallel.
pub const MOUNT_THREADS: usize = 8;

/// How often the signal watcher looks at the stop flag.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct MountSpec {
    pub mountpoint: PathBuf,
    /// A directory of the cluster to mount instead of its root.
    pub prefix: String,
    pub read_only: bool,
    /// Where staging files go (a folder of this mount's own is made in it).
    pub cache_dir: PathBuf,
    pub cache_bytes: u64,
}

pub fn run(client: NamingClient, spec: MountSpec, server: &str) -> Result<(), ClientError> {
    let failed = |what: String| ClientError::Failed(what);
    let mountpoint = &spec.mountpoint;
    if !mountpoint.is_dir() {
        return Err(failed(format!(
            "{}: the mount point must be an existing directory",
            mountpoint.display()
        )));
    }
    let prefix = match spec.prefix.trim_matches('/') {
        "" => String::new(),
        dir => format!("{dir}/"),
    };
    let remote = remote::Remote::new(client, prefix.clone());
    // A mount that cannot reach its server says so now, not at first use.
    remote.status().map_err(|_| {
        failed(format!(
            "cannot mount: the naming server at {server} does not answer (or refuses the token)"
        ))
    })?;
    let cache_dir = spec
        .cache_dir
        .join(format!("harbour-mount-{}", std::process::id()));
    let staging = staging::Staging::new(cache_dir.clone(), spec.cache_bytes).map_err(|err| {
        failed(format!(
            "{}: cannot make the write cache: {err}",
            cache_dir.display()
        ))
    })?;
    let owner = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let core = Arc::new(core::Core::new(remote, staging, spec.read_only, owner));
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("harbour:{prefix}")),
        MountOption::Subtype("harbour".to_owned()),
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        if spec.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.n_threads = Some(MOUNT_THREADS);
    let filesystem = kernel::HarbourFs {
        core: Arc::clone(&core),
    };
    let mut session = Session::new(filesystem, mountpoint, &config)
        .map_err(|err| failed(format!("cannot mount {}: {err}", mountpoint.display())))?;
    let mut unmounter = session.unmount_callable();
    let stop = common::server::shutdown::watch_stop_signals().map_err(failed)?;
    eprintln!(
        "harbour mount: {server}/{prefix} on {}{}; stop with fusermount3 -u {} or Ctrl-C",
        mountpoint.display(),
        if spec.read_only { " (read-only)" } else { "" },
        mountpoint.display()
    );
    let ended = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        for _ in 0..write_behind::WRITE_BEHIND_STREAMS {
            scope.spawn(|| core.uploaders.serve(&core.remote));
        }
        scope.spawn(|| {
            let tick = crossbeam_channel::tick(STOP_POLL_INTERVAL);
            while !ended.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    core.flush_all();
                    if unmounter.unmount().is_err() {
                        // Busy (a shell inside, a file open): detach now;
                        // the kernel ends the session once it is let go.
                        lazy_unmount(mountpoint);
                    }
                    return;
                }
                let _ = tick.recv();
            }
        });
        let outcome = session.run();
        ended.store(true, Ordering::Relaxed);
        core.flush_all();
        core.uploaders.close();
        outcome
    });
    drop(core);
    match outcome {
        Ok(()) => {}
        // A lazy unmount (ours after a signal, or `fusermount3 -u -z`) may
        // end the session with the connection aborted rather than a
        // DESTROY: the mount is gone either way, and what it held uploaded.
        Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => {}
        Err(err) => return Err(failed(format!("the mount ended with an error: {err}"))),
    }
    eprintln!("harbour mount: unmounted {}", mountpoint.display());
    Ok(())
}

fn lazy_unmount(mountpoint: &std::path::Path) {
    let detached = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .status()
        .is_ok_and(|status| status.success());
    if !detached {
        eprintln!(
            "harbour mount: cannot unmount {}; try fusermount3 -u -z",
            mountpoint.display()
        );
    }
}
