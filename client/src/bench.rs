//! `harbour bench`: a load generator for any running cluster, the `weed
//! benchmark` of Harbour. N files of S bytes are created, read back (every
//! byte verified) and deleted by C workers over keep-alive connections;
//! each phase reports operations/s, MB/s and latency p50/p99/max. What it
//! wrote is removed at the end, also after an error or an interrupt (the
//! first SIGINT/SIGTERM stops the workers and cleans up, a second one
//! exits at once).

mod content;
mod report;

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::ClientError;
use crate::naming_client::NamingClient;

use self::content::{Content, ContentReader};
use self::report::{PhaseReport, Report};

/// The most files one run creates: its bookkeeping is a few bytes a file.
pub const BENCH_FILES_MAX: u64 = 10_000_000;

/// The most workers one run starts.
pub const BENCH_WORKERS_MAX: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Create,
    Read,
    Delete,
}

/// What a run does.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub files: u64,
    pub size_bytes: u64,
    pub workers: usize,
    /// Every name the run uses starts with this (unique per run).
    pub prefix: String,
    pub phases: Vec<Phase>,
    /// Leave the files of a run that ends well (another run with the same
    /// prefix reads or deletes them); a failed or interrupted run still
    /// removes what it wrote.
    pub keep: bool,
}

/// The state the workers of a run share.
struct Run<'a> {
    client: &'a NamingClient,
    spec: &'a BenchSpec,
    content: Content,
    /// Whether file `i` may exist on the cluster now (for the clean-up).
    written: Vec<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// Runs `spec` against `client`'s cluster and prints the report.
pub fn run(client: &NamingClient, spec: &BenchSpec, json: bool) -> Result<(), ClientError> {
    assert!(spec.files <= BENCH_FILES_MAX);
    assert!((1..=BENCH_WORKERS_MAX).contains(&spec.workers));
    let stop = interrupt_flag()?;
    // Files a run reads or deletes without creating them were written by
    // an earlier run with the same prefix, which kept them.
    let creates = spec.phases.contains(&Phase::Create);
    let run = Run {
        client,
        spec,
        content: Content::new(&spec.prefix),
        written: (0..spec.files).map(|_| AtomicBool::new(!creates)).collect(),
        stop,
    };
    let mut report = Report::new(spec);
    let mut failure = None;
    for &phase in &spec.phases {
        let phase_report = run.phase(phase);
        let first_error = phase_report.first_error.clone();
        report.phases.push(phase_report);
        if let Some(error) = first_error {
            failure = Some(format!("{phase:?} failed: {error}"));
            break;
        }
        if run.stop.load(Ordering::Relaxed) {
            failure = Some("interrupted".to_owned());
            break;
        }
    }
    let leftovers = match (spec.keep, &failure) {
        (true, None) => 0,
        _ => run.clean_up(),
    };
    report.print(json);
    if leftovers > 0 {
        eprintln!(
            "error: {leftovers} files under {} could not be deleted",
            spec.prefix
        );
    }
    match failure {
        Some(failure) => Err(ClientError::Failed(format!("bench: {failure}"))),
        None => Ok(()),
    }
}

impl Run<'_> {
    /// Runs one phase over every file with the spec's workers.
    fn phase(&self, phase: Phase) -> PhaseReport {
        let next = AtomicU64::new(0);
        let started = Instant::now();
        let outcomes: Vec<WorkerOutcome> = thread::scope(|scope| {
            let workers: Vec<_> = (0..self.spec.workers)
                .map(|_| scope.spawn(|| self.work(phase, &next)))
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker.join().unwrap_or_else(|_| WorkerOutcome {
                        first_error: Some("a worker panicked".to_owned()),
                        ..WorkerOutcome::default()
                    })
                })
                .collect()
        });
        PhaseReport::new(phase, self.spec, started.elapsed(), outcomes)
    }

    /// One worker: takes the next file until none is left, an operation
    /// fails, or the run is interrupted.
    fn work(&self, phase: Phase, next: &AtomicU64) -> WorkerOutcome {
        let mut outcome = WorkerOutcome::default();
        let mut buffer = vec![0u8; content::BLOCK_BYTES];
        while !self.stop.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= self.spec.files {
                break;
            }
            let started = Instant::now();
            let done = match phase {
                Phase::Create => self.create(index),
                Phase::Read => self.read(index, &mut buffer),
                Phase::Delete => self.delete(index),
            };
            match done {
                Ok(()) => {
                    outcome.latencies.push(started.elapsed());
                }
                Err(error) => {
                    outcome.first_error = Some(error);
                    // The others stop too: a run with failures measures nothing.
                    self.stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        outcome
    }

    fn create(&self, index: u64) -> Result<(), String> {
        let url = self.url(index);
        self.written[index as usize].store(true, Ordering::Relaxed);
        let mut body = ContentReader::new(&self.content, index, self.spec.size_bytes);
        let answer = self
            .client
            .put(
                &format!("{url}?overwrite=true"),
                &mut body,
                Some(self.spec.size_bytes),
            )
            .map_err(|err| err.to_string())?;
        let mut response = answer
            .map_err(|refusal| format!("{url}: HTTP {}: {}", refusal.status, refusal.message))?;
        // Read the answer whole, so the connection goes back to the pool.
        io::copy(&mut response.body_mut().as_reader(), &mut io::sink())
            .map_err(|err| format!("{url}: {err}"))?;
        Ok(())
    }

    fn read(&self, index: u64, buffer: &mut [u8]) -> Result<(), String> {
        let url = self.url(index);
        let answer = self.client.get(&url).map_err(|err| err.to_string())?;
        let mut response = answer
            .map_err(|refusal| format!("{url}: HTTP {}: {}", refusal.status, refusal.message))?;
        let mut body = response.body_mut().as_reader();
        let mut expected = ContentReader::new(&self.content, index, self.spec.size_bytes);
        let mut expected_block = vec![0u8; buffer.len()];
        let mut offset = 0u64;
        loop {
            let read = body.read(buffer).map_err(|err| format!("{url}: {err}"))?;
            if read == 0 {
                break;
            }
            if offset + read as u64 > self.spec.size_bytes {
                return Err(format!("{url}: more than {} bytes", self.spec.size_bytes));
            }
            expected
                .read_exact(&mut expected_block[..read])
                .map_err(|err| format!("{url}: {err}"))?;
            if buffer[..read] != expected_block[..read] {
                return Err(format!("{url}: wrong bytes near offset {offset}"));
            }
            offset += read as u64;
        }
        if offset != self.spec.size_bytes {
            return Err(format!(
                "{url}: {offset} bytes of {} arrived",
                self.spec.size_bytes
            ));
        }
        Ok(())
    }

    fn delete(&self, index: u64) -> Result<(), String> {
        let url = self.url(index);
        let answer = self.client.delete(&url).map_err(|err| err.to_string())?;
        answer.map_err(|refusal| format!("{url}: HTTP {}: {}", refusal.status, refusal.message))?;
        self.written[index as usize].store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes every file the run may have left; returns how many could
    /// not be deleted.
    fn clean_up(&self) -> u64 {
        let left: Vec<u64> = (0..self.spec.files)
            .filter(|&index| self.written[index as usize].load(Ordering::Relaxed))
            .collect();
        if left.is_empty() {
            return 0;
        }
        eprintln!("bench: deleting the {} files it left", left.len());
        let next = AtomicU64::new(0);
        let failed = AtomicU64::new(0);
        thread::scope(|scope| {
            for _ in 0..self.spec.workers.min(left.len()) {
                scope.spawn(|| {
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(&index) = left.get(at) else {
                            return;
                        };
                        let gone = match self.client.delete(&self.url(index)) {
                            Ok(Ok(_)) => true,
                            Ok(Err(refusal)) => refusal.status == 404,
                            Err(_) => false,
                        };
                        if !gone {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        failed.load(Ordering::Relaxed)
    }

    fn url(&self, index: u64) -> String {
        self.client
            .file_url(&format!("{}{index:08}", self.spec.prefix))
    }
}

/// What one worker did in a phase.
#[derive(Default)]
pub struct WorkerOutcome {
    pub latencies: Vec<Duration>,
    pub first_error: Option<String>,
}

/// A flag the first SIGINT or SIGTERM sets; the second one exits at once
/// (status 130), in case the clean-up itself hangs.
fn interrupt_flag() -> Result<Arc<AtomicBool>, ClientError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let registered =
            signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
                .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
        registered
            .map_err(|err| ClientError::Failed(format!("cannot handle interrupts: {err}")))?;
    }
    Ok(stop)
}
