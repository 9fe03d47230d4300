//! harbour-naming: wiring only. Parse the config, build the shared state,
//! start the heartbeat and garbage threads, serve the public API.

mod api;
mod cluster;
mod config;
mod download;
mod error;
mod garbage;
mod journal;
mod metadata;
mod metrics;
mod naming;
mod placement;
mod reconcile;
mod repair;
mod replicate;
mod storage_client;
mod upload;

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use common::limits::{CHECKPOINT_CHECK_INTERVAL, GARBAGE_INTERVAL, QUEUE_DEPTH_MAX};
use common::server::{self, ServerConfig, ServerStats};

use crate::config::Config;
use crate::naming::{Naming, Setup};
use crate::storage_client::StorageClient;

fn main() -> ExitCode {
    common::config::server_main(config::parse, |config: &Config| config.listen, run)
}

fn run(config: &Config) -> Result<(), String> {
    for line in &config.effective_lines {
        println!("{line}");
    }
    let storage = StorageClient::new(config.storage_timeout, config.workers_count);
    let setup = Setup {
        meta_dir: &config.meta_dir,
        storage_servers: &config.storage_servers,
        replication: config.replication,
        dead_after: config.dead_after,
        checkpoint_bytes: config.checkpoint_bytes,
        storage,
    };
    let (naming, notes) = Naming::open(setup)?;
    for note in notes {
        println!("recovery: {note}");
    }
    let naming = Arc::new(naming);
    // Know which servers are up before the first request is placed.
    naming.cluster.heartbeat_round(&naming.storage);
    spawn_background(Arc::clone(&naming), config);
    let server_config = ServerConfig {
        listen: config.listen,
        workers_count: config.workers_count,
        queue_depth: QUEUE_DEPTH_MAX,
        io_timeout: config.io_timeout,
    };
    let stats = Arc::new(ServerStats::default());
    let api = api::Api {
        naming,
        stats: Arc::clone(&stats),
    };
    server::serve(&server_config, &api, &stats).map_err(|err| err.to_string())
}

/// The heartbeat, the garbage sweep, reconciliation, re-replication and the
/// checkpointer:
/// service threads that live as long
/// as the process, each doing bounded work per tick.
fn spawn_background(naming: Arc<Naming>, config: &Config) {
    let heartbeat = crossbeam_channel::tick(config.heartbeat_interval);
    let heartbeat_naming = Arc::clone(&naming);
    thread::spawn(move || {
        for _ in heartbeat.iter() {
            heartbeat_naming
                .cluster
                .heartbeat_round(&heartbeat_naming.storage);
        }
    });
    let sweep = crossbeam_channel::tick(GARBAGE_INTERVAL);
    let sweep_naming = Arc::clone(&naming);
    thread::spawn(move || {
        for _ in sweep.iter() {
            sweep_naming.garbage.sweep(&sweep_naming);
        }
    });
    let reconcile_naming = Arc::clone(&naming);
    let reconcile_interval = config.reconcile_interval;
    thread::spawn(move || {
        // A first pass at start-up finds what a crash left behind.
        for _ in
            std::iter::once(()).chain(crossbeam_channel::tick(reconcile_interval).iter().map(drop))
        {
            let report = reconcile_naming
                .reconciler
                .pass(&reconcile_naming, reconcile_interval);
            if report.orphans_deleted > 0 || report.missing > 0 {
                println!("reconcile: {report:?}");
            }
            let metrics = &reconcile_naming.metrics;
            metrics.count(
                &metrics.orphan_blobs_deleted_total,
                report.orphans_deleted as u64,
            );
        }
    });
    let repair_naming = Arc::clone(&naming);
    let repair_tick = crossbeam_channel::tick(config.heartbeat_interval);
    let mut throttle = repair::Throttle::new(config.replication_bytes_per_sec);
    thread::spawn(move || {
        for _ in repair_tick.iter() {
            let repaired = repair::pass(&repair_naming, &mut throttle);
            let metrics = &repair_naming.metrics;
            metrics.count(&metrics.chunks_re_replicated_total, repaired);
        }
    });
    let checkpoint = crossbeam_channel::tick(CHECKPOINT_CHECK_INTERVAL);
    thread::spawn(move || {
        for _ in checkpoint.iter() {
            if let Err(err) = naming.checkpoint_if_due() {
                // The journal still holds everything: a failed checkpoint
                // costs restart time, not data. Try again next tick.
                eprintln!("checkpoint failed: {err}");
            }
        }
    });
}
