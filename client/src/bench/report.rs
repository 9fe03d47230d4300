//! What `harbour bench` prints: per phase, operations/s, MB/s (10^6 bytes)
//! and latency p50/p99/max, as a table or one JSON document.

use std::time::Duration;

use serde::Serialize;

use super::{BenchSpec, Phase, WorkerOutcome};

#[derive(Serialize)]
pub struct Report {
    pub files: u64,
    pub size_bytes: u64,
    pub workers: usize,
    pub phases: Vec<PhaseReport>,
}

#[derive(Serialize)]
pub struct PhaseReport {
    pub phase: &'static str,
    /// Operations that succeeded.
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency_ms: Latency,
    /// The first failure, which stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Serialize, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Report {
    pub fn new(spec: &BenchSpec) -> Report {
        Report {
            files: spec.files,
            size_bytes: spec.size_bytes,
            workers: spec.workers,
            phases: Vec::new(),
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("a report always serialises")
            );
            return;
        }
        println!(
            "harbour bench: {} files of {} bytes, {} workers",
            self.files, self.size_bytes, self.workers
        );
        println!(
            "{:<8} {:>9} {:>9} {:>11} {:>10} {:>9} {:>9} {:>9}",
            "PHASE", "OPS", "SECONDS", "OPS/S", "MB/S", "P50 MS", "P99 MS", "MAX MS"
        );
        for phase in &self.phases {
            println!(
                "{:<8} {:>9} {:>9.2} {:>11.1} {:>10.2} {:>9.2} {:>9.2} {:>9.2}",
                phase.phase,
                phase.ops,
                phase.seconds,
                phase.ops_per_sec,
                phase.mb_per_sec,
                phase.latency_ms.p50,
                phase.latency_ms.p99,
                phase.latency_ms.max
            );
        }
    }
}

impl PhaseReport {
    pub fn new(
        phase: Phase,
        spec: &BenchSpec,
        elapsed: Duration,
        outcomes: Vec<WorkerOutcome>,
    ) -> PhaseReport {
        let first_error = outcomes
            .iter()
            .find_map(|outcome| outcome.first_error.clone());
        let mut latencies: Vec<Duration> = outcomes
            .into_iter()
            .flat_map(|outcome| outcome.latencies)
            .collect();
        latencies.sort_unstable();
        let ops = latencies.len() as u64;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let moved_bytes = match phase {
            Phase::Create | Phase::Read => ops * spec.size_bytes,
            Phase::Delete => 0,
        };
        PhaseReport {
            phase: match phase {
                Phase::Create => "create",
                Phase::Read => "read",
                Phase::Delete => "delete",
            },
            ops,
            seconds,
            ops_per_sec: ops as f64 / seconds,
            mb_per_sec: moved_bytes as f64 / 1e6 / seconds,
            latency_ms: latency(&latencies),
            first_error,
        }
    }
}

/// p50, p99 and max of sorted `latencies`, in milliseconds.
fn latency(latencies: &[Duration]) -> Latency {
    let Some(&max) = latencies.last() else {
        return Latency::default();
    };
    let at = |percent: usize| {
        let rank = (latencies.len() * percent).div_ceil(100).max(1) - 1;
        latencies[rank].as_secs_f64() * 1e3
    };
    Latency {
        p50: at(50),
        p99: at(99),
        max: max.as_secs_f64() * 1e3,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::latency;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let found = latency(&latencies);
        assert_eq!((found.p50, found.p99, found.max), (50.0, 99.0, 100.0));
        let one = latency(&[Duration::from_millis(7)]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(latency(&[]).max, 0.0);
    }
}
