//! harbour-storage: wiring only. Parse the config, open the chunk store,
//! start its compaction and scrub threads, serve its API.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::process::{self, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::cluster_auth::{Signer, Verifier};
use common::limits::QUEUE_DEPTH_MAX;
use common::probe::Listening;
use common::server::{self, ServerConfig, ServerStats};

use storage::config::Config;
use storage::store::Store;
use storage::{api, config, join, scrub, store};

fn main() -> ExitCode {
    common::config::server_main(config::parse, listening, run)
}

fn listening(config: &Config) -> Listening {
    Listening {
        addr: config.listen,
        https: config.tls.is_some(),
    }
}

fn run(config: &Config) -> Result<(), String> {
    common::log::init(config.logging);
    for line in &config.effective_lines {
        log::info!("{line}");
    }
    let cluster_key = config.cluster.require()?;
    if cluster_key.is_none() {
        log::warn!(
            "{}",
            common::config::insecure_warning(&format!(
                "anyone who can reach {} can read, overwrite and delete every chunk",
                config.listen
            ))
        );
    }
    match &config.tls {
        Some(_) => log::info!("tls: the chunk API is served over HTTPS"),
        None => log::info!("tls: none (no --tls-cert-file): the chunk API is plain HTTP"),
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
    let lock = common::own_files::open_or_create(&lock_path).map_err(|err| {
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
        log::info!("recovery: {note}");
    }
    log::info!(
        "store: {} chunks ({} index runs) in {} segments",
        recovery.chunks_count,
        recovery.runs_count,
        recovery.segments_count
    );
    let server_config = ServerConfig {
        listen: config.listen,
        workers_count: config.workers_count,
        queue_depth: QUEUE_DEPTH_MAX,
        io_timeout: config.io_timeout,
        connections_max: config.connections_max,
        tls: config.tls.clone(),
    };
    let store = Arc::new(store);
    let scrub_stats = Arc::new(scrub::ScrubStats::default());
    let stats = Arc::new(ServerStats::default());
    let api = api::Api {
        store: Arc::clone(&store),
        scrub: Arc::clone(&scrub_stats),
        verifier: cluster_key.cloned().map(Verifier::new),
        stats: Arc::clone(&stats),
    };
    let stop = server::shutdown::watch_stop_signals()?;
    let stopping = AtomicBool::new(false);
    let served = thread::scope(|scope| {
        scope.spawn(|| {
            // A failed check in compaction means the index may no longer
            // match the files: stop rather than serve from it. A restart
            // rebuilds the index from the files, which are always sound.
            if panic::catch_unwind(AssertUnwindSafe(|| store::compaction::run(&store))).is_err() {
                log::error!("compaction failed an internal check; exiting");
                process::exit(1);
            }
        });
        scope.spawn(|| scrub::run(&store, &scrub_stats, config.scrub_bytes_per_sec, &stopping));
        let listener = match server::bind(&server_config) {
            Ok(listener) => listener,
            Err(err) => {
                stopping.store(true, Ordering::Relaxed);
                store.compaction.stop();
                return Err(err);
            }
        };
        if let Some((naming, advertise)) = &config.join {
            let advertise = advertise
                .clone()
                .unwrap_or_else(|| format!("{}://{}", server_config.scheme(), listener.addr));
            let stopping = &stopping;
            let signer = cluster_key.cloned().map(Signer::new);
            let tls = &config.naming_tls;
            scope.spawn(move || {
                join::keep_registered(naming, &advertise, signer, tls, stopping);
            });
        }
        let served = server::serve_on(listener, &server_config, &api, &stats, &stop);
        store.compaction.stop();
        stopping.store(true, Ordering::Relaxed);
        served
    });
    served.map_err(|err| err.to_string())?;
    // Compaction and the scrub have stopped (the scope joined them); every
    // acknowledged batch was fsynced before its answer. The active segment
    // is left ending at its last record, so the next start cuts nothing.
    store
        .close()
        .map_err(|err| format!("closing the chunk store: {err}"))?;
    drop(lock);
    log::info!("stopped cleanly");
    Ok(())
}
