//! harbour-naming: wiring only. Parse the config, build the shared state,
//! start the heartbeat and garbage threads, serve the public API.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::cluster_auth::Verifier;
use common::limits::QUEUE_DEPTH_MAX;
use common::probe::Listening;
use common::server::{self, ServerConfig, ServerStats};

use common::pacer::Pacer;

use naming::cluster::Cluster;
use naming::config::Config;
use naming::limits::{
    BLOB_RESERVATION_COUNT, CHECKPOINT_CHECK_INTERVAL, GARBAGE_INTERVAL,
    TOKENS_RELOAD_CHECK_INTERVAL,
};
use naming::meta_store::MetaStore;
use naming::meta_store::etcd::EtcdStore;
use naming::meta_store::etcd::client::EtcdClient;
use naming::meta_store::local::{LocalSettings, LocalStore};
use naming::naming::Naming;
use naming::s3::S3Api;
use naming::storage_client::StorageClient;
use naming::tokens::ApiTokens;
use naming::{api, config, repair};

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
            common::config::insecure_warning(
                "calls to storage carry no credentials (storage servers with a secret refuse them) and anyone can register a storage server"
            )
        );
    }
    match &config.api_tokens {
        Some(tokens) => log::info!(
            "api tokens: {} in force; every public endpoint but /health needs one",
            tokens.count()
        ),
        None => log::info!(
            "api tokens: none (no --api-tokens-file): the public API is open to anyone who can reach it"
        ),
    }
    match &config.tls {
        Some(_) => log::info!("tls: the public API is served over HTTPS"),
        None => log::info!("tls: none (no --tls-cert-file): the public API is plain HTTP"),
    }
    log::info!(
        "tls: https:// storage servers are verified against {}",
        config.storage_tls.source
    );
    if config.migrate_to_etcd {
        return migrate_to_etcd(config);
    }
    let store = open_store(config)?;
    let naming = Naming::new(
        store,
        Cluster::new(config.replication, config.dead_after),
        StorageClient::new(
            config.storage_timeout,
            config.workers_count,
            cluster_key,
            &config.storage_tls,
        ),
    );
    // Server ids in the runs are positions in the durable table: it only
    // grows, so reordering STORAGE_SERVERS never changes what an id means.
    for url in &config.storage_servers {
        naming.register(url).map_err(|err| err.to_string())?;
    }
    {
        let metadata = naming.metadata();
        log::info!(
            "metadata: {} files, {} chunks, {} storage servers known",
            metadata.files_count(),
            metadata.chunks_count(),
            metadata.servers_count()
        );
    }
    let naming = Arc::new(naming);
    // Know which servers are up before the first request is placed.
    naming.heartbeat_round();
    spawn_background(Arc::clone(&naming), config);
    let server_config = ServerConfig {
        listen: config.listen,
        workers_count: config.workers_count,
        queue_depth: QUEUE_DEPTH_MAX,
        io_timeout: config.io_timeout,
        connections_max: config.connections_max,
        tls: config.tls.clone(),
    };
    let stats = Arc::new(ServerStats::default());
    let api = api::Api {
        naming,
        stats: Arc::clone(&stats),
        cluster_verifier: cluster_key.cloned().map(Verifier::new),
        tokens: config.api_tokens.clone(),
    };
    let stop = server::shutdown::watch_stop_signals()?;
    // The public API binds first: its `listening on` line is the one that
    // says the server is up.
    let listener = server::bind(&server_config).map_err(|err| err.to_string())?;
    let s3 = match &config.s3 {
        Some(s3) => {
            let s3_config = ServerConfig {
                listen: s3.listen,
                tls: config.tls.clone(),
                ..server_config.clone()
            };
            let s3_listener =
                server::bind_announcing(&s3_config, "S3 API on").map_err(|err| err.to_string())?;
            log::info!("s3: {} access keys, region {}", s3.keys.count(), s3.region);
            let api = S3Api::new(Arc::clone(&api.naming), s3.keys.clone(), s3.region.clone());
            Some((s3_listener, s3_config, api))
        }
        None => None,
    };
    thread::scope(|scope| {
        // Both listeners stop on the same signal; their requests share
        // one set of counters (the endpoints tell S3 apart in /metrics).
        let s3_served = s3.map(|(listener, s3_config, s3_api)| {
            let (stats, stop) = (&stats, &stop);
            scope.spawn(move || server::serve_on(listener, &s3_config, &s3_api, stats, stop))
        });
        let served = server::serve_on(listener, &server_config, &api, &stats, &stop);
        let s3_served = match s3_served.map(|handle| handle.join()) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(server::ServeError::Accept(std::io::Error::other(
                "the S3 listener's thread panicked",
            ))),
            None => Ok(()),
        };
        served.and(s3_served)
    })
    .map_err(|err| err.to_string())?;
    // Every acknowledged change is already durable; the journal is left
    // ending at its last record, so the next start cuts nothing.
    api.naming
        .store()
        .close()
        .map_err(|err| format!("closing the metadata journal: {err}"))?;
    log::info!("stopped cleanly");
    Ok(())
}

/// The metadata store the config names: etcd's, or the journal in
/// `META_DIR`.
fn open_store(config: &Config) -> Result<Box<dyn MetaStore>, String> {
    if let Some(etcd) = &config.etcd {
        let client = EtcdClient::new(etcd.endpoints.clone(), etcd.credentials.clone(), &etcd.tls);
        let store = EtcdStore::open(client, &etcd.prefix, BLOB_RESERVATION_COUNT)?;
        log::info!(
            "metadata: in etcd at {} under {:?} (--meta-dir is not used)",
            etcd.endpoints.join(","),
            etcd.prefix
        );
        return Ok(Box::new(store));
    }
    let (store, notes) = LocalStore::open(&config.meta_dir, local_settings(config))?;
    for note in notes {
        log::info!("recovery: {note}");
    }
    Ok(Box::new(store))
}

fn local_settings(config: &Config) -> LocalSettings {
    LocalSettings {
        checkpoint_bytes: config.checkpoint_bytes,
        reservation_count: BLOB_RESERVATION_COUNT,
    }
}

/// `--migrate-to-etcd`: the journal in `META_DIR`, replayed, becomes the
/// state in etcd's empty prefix.
fn migrate_to_etcd(config: &Config) -> Result<(), String> {
    let etcd = config.etcd.as_ref().expect("checked by the config");
    let (store, notes) = LocalStore::open(&config.meta_dir, local_settings(config))?;
    for note in notes {
        log::info!("recovery: {note}");
    }
    let client = EtcdClient::new(etcd.endpoints.clone(), etcd.credentials.clone(), &etcd.tls);
    let written = {
        let state = store.state();
        EtcdStore::migrate(&client, &etcd.prefix, &state)?
    };
    store
        .close()
        .map_err(|err| format!("closing the metadata journal: {err}"))?;
    log::info!(
        "migrated {written} entries of {} into etcd under {:?}; start the naming server with ETCD_ENDPOINTS now",
        config.meta_dir.display(),
        etcd.prefix
    );
    Ok(())
}

/// The heartbeat, the garbage sweep, reconciliation, re-replication, the
/// expiry of S3 multipart uploads and the checkpointer:
/// service threads that live as long
/// as the process, each doing bounded work per tick.
fn spawn_background(naming: Arc<Naming>, config: &Config) {
    let heartbeat = crossbeam_channel::tick(config.heartbeat_interval);
    let heartbeat_naming = Arc::clone(&naming);
    thread::spawn(move || {
        for _ in heartbeat.iter() {
            heartbeat_naming.heartbeat_round();
        }
    });
    let sweep = crossbeam_channel::tick(GARBAGE_INTERVAL);
    let sweep_naming = Arc::clone(&naming);
    thread::spawn(move || {
        for _ in sweep.iter() {
            sweep_naming.garbage.sweep(&sweep_naming);
        }
    });
    // Reconciliation and re-replication share one thread on purpose: a
    // repair copies chunks onto a server and then relocates them, and a
    // reconciliation pass running in between could take the fresh copies
    // for orphans and delete them. Run one after the other, neither sees
    // the other half-done.
    let upkeep_naming = Arc::clone(&naming);
    let upkeep_tick = crossbeam_channel::tick(config.heartbeat_interval);
    let reconcile_interval = config.reconcile_interval;
    let upload_expiry = config.s3.as_ref().map(|s3| s3.upload_expiry);
    let mut pacer = Pacer::new(config.replication_bytes_per_sec);
    let mut progress = repair::Progress::default();
    thread::spawn(move || {
        let naming = upkeep_naming;
        // The first pass runs at start-up: it finds what a crash left behind.
        let mut last_reconciled: Option<std::time::Instant> = None;
        loop {
            // With several naming servers, one leads this upkeep.
            if !naming.store().leads_upkeep() {
                last_reconciled = None;
                if upkeep_tick.recv().is_err() {
                    return;
                }
                continue;
            }
            if last_reconciled.is_none_or(|at| at.elapsed() >= reconcile_interval) {
                last_reconciled = Some(std::time::Instant::now());
                let report = naming.reconciler.pass(&naming, reconcile_interval);
                if report.orphans_deleted > 0 || report.missing > 0 || report.surplus_dropped > 0 {
                    log::info!("reconcile: {report:?}");
                }
                naming.metrics.count(
                    &naming.metrics.orphan_blobs_deleted_total,
                    report.orphans_deleted as u64,
                );
            }
            if let Some(expiry) = upload_expiry {
                naming::s3::uploads::expire(&naming, expiry);
            }
            let repaired = repair::pass(&naming, &mut pacer);
            progress.after_pass(repaired);
            naming
                .metrics
                .count(&naming.metrics.chunks_re_replicated_total, repaired);
            if upkeep_tick.recv().is_err() {
                return;
            }
        }
    });
    if let Some(tokens) = config.api_tokens.clone() {
        reload_tokens_on_sighup(tokens);
    }
    let checkpoint = crossbeam_channel::tick(CHECKPOINT_CHECK_INTERVAL);
    thread::spawn(move || {
        for _ in checkpoint.iter() {
            // Blobs being written, and dropped versions a read here may
            // still be streaming: another naming server's reconciliation
            // must take neither for an orphan.
            let in_flight_min = || {
                let writing = naming.blobs_in_flight().into_iter();
                writing.chain(naming.garbage.blobs()).min()
            };
            if let Err(err) = naming.store().maintain(&in_flight_min) {
                // The journal still holds everything: a failed checkpoint
                // costs restart time, not data. Try again next tick.
                log::error!("checkpoint failed: {err}");
            }
        }
    });
}

/// Reads the tokens file again after each SIGHUP (within
/// `TOKENS_RELOAD_CHECK_INTERVAL`), so a token is revoked without a restart.
fn reload_tokens_on_sighup(tokens: Arc<ApiTokens>) {
    let hangup = Arc::new(AtomicBool::new(false));
    if let Err(err) = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
    {
        log::warn!("api tokens: cannot watch SIGHUP ({err}); a restart reloads them");
        return;
    }
    let tick = crossbeam_channel::tick(TOKENS_RELOAD_CHECK_INTERVAL);
    thread::spawn(move || {
        for _ in tick.iter() {
            if !hangup.swap(false, Ordering::Relaxed) {
                continue;
            }
            match tokens.reload() {
                Ok(count) => log::info!("api tokens: reloaded on SIGHUP, {count} in force"),
                Err(err) => {
                    log::warn!("api tokens: reload failed, the previous tokens stay: {err}")
                }
            }
        }
    });
}
