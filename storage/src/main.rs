//! harbour-storage: wiring only. Parse the config, open the chunk store,
//! serve its API.

mod api;
mod config;
mod error;
mod index;
mod store;

use std::fs::{self, File};
use std::process::ExitCode;

use common::limits::QUEUE_DEPTH_MAX;
use common::server::{self, ServerConfig, ServerStats};

use crate::config::Config;
use crate::store::Store;

fn main() -> ExitCode {
    common::config::server_main(config::parse, run)
}

fn run(config: &Config) -> Result<(), String> {
    for line in &config.effective_lines {
        println!("{line}");
    }
    let dir = &config.data_dir;
    fs::create_dir_all(dir).map_err(|err| {
        format!(
            "--data-dir / DATA_DIR: cannot create {}: {err}",
            dir.display()
        )
    })?;
    // One process per data folder: a second one would interleave segments.
    let lock_path = dir.join("LOCK");
    let lock = File::create(&lock_path).map_err(|err| {
        format!(
            "--data-dir / DATA_DIR: cannot write in {}: {err}",
            dir.display()
        )
    })?;
    lock.try_lock().map_err(|_| {
        format!(
            "--data-dir / DATA_DIR: {} is in use by another harbour-storage",
            dir.display()
        )
    })?;
    let (store, recovery) = Store::open(dir, config.capacity_bytes).map_err(|err| {
        format!(
            "--data-dir / DATA_DIR: cannot open the chunk store in {}: {err}",
            dir.display()
        )
    })?;
    for note in &recovery.notes {
        println!("recovery: {note}");
    }
    println!(
        "store: {} chunks ({} index runs) in {} segments",
        recovery.chunks_count, recovery.runs_count, recovery.segments_count
    );
    let server_config = ServerConfig {
        listen: config.listen,
        workers_count: config.workers_count,
        queue_depth: QUEUE_DEPTH_MAX,
        io_timeout: config.io_timeout,
    };
    let api = api::Api { store };
    let stats = ServerStats::default();
    server::serve(&server_config, &api, &stats).map_err(|err| err.to_string())?;
    drop(lock);
    Ok(())
}
