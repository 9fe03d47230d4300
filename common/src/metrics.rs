//! `/metrics` in the Prometheus text format (0.0.4) for both servers: a
//! `Page` that writes `# HELP`, `# TYPE`, labels and their escaping right
//! once; a lock-free `Histogram`; and `RequestMetrics`, the per-endpoint
//! counts, latencies and bytes the server loop records for every request.
//! Names follow Prometheus's conventions: `harbour_` first, base units
//! (seconds, bytes), `_total` on counters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: a 1 KiB read on
/// loopback (~0.1 ms) to a large file (seconds).
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Distinct (endpoint, method, status) series kept; past it a request is
/// counted under `other` (a bound, not a policy: a server has a few dozen).
const REQUEST_SERIES_MAX: usize = 512;

/// Observations in `LATENCY_BUCKETS_SECONDS`, counted without a lock.
#[derive(Default)]
pub struct Histogram {
    /// Observations at most each bound; the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
}

/// A histogram's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket (not cumulative), the last for `+Inf`.
    pub buckets: Vec<u64>,
    pub sum_micros: u64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// What one (endpoint, method, status) series holds.
#[derive(Default)]
struct RequestSeries {
    latency: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

type SeriesKey = (&'static str, &'static str, u16);

/// Requests by endpoint (a route's name, such as `/files/{name}`, never a
/// raw path: a label per file name would grow without bound), method and
/// status.
#[derive(Default)]
pub struct RequestMetrics {
    series: RwLock<HashMap<SeriesKey, Arc<RequestSeries>>>,
}

impl RequestMetrics {
    /// Counts one answered request.
    pub fn record(
        &self,
        endpoint: &'static str,
        method: &str,
        status: u16,
        took: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let key = (endpoint, method_label(method), status);
        let series = self.series_of(key);
        series.latency.observe(took);
        series.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        series.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    fn series_of(&self, key: SeriesKey) -> Arc<RequestSeries> {
        if let Some(series) = self
            .series
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
        {
            return Arc::clone(series);
        }
        let mut all = self
            .series
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = if all.len() >= REQUEST_SERIES_MAX && !all.contains_key(&key) {
            ("other", "other", 0)
        } else {
            key
        };
        Arc::clone(all.entry(key).or_default())
    }

    /// The request series on `page`.
    pub fn render(&self, page: &mut Page) {
        let mut rows: Vec<(SeriesKey, Arc<RequestSeries>)> = self
            .series
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(key, series)| (*key, Arc::clone(series)))
            .collect();
        rows.sort_by_key(|(key, _)| *key);
        let labels = |(endpoint, method, status): SeriesKey| {
            vec![
                ("endpoint", endpoint.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ]
        };
        page.family(
            "harbour_http_request_duration_seconds",
            "Time to answer a request, by endpoint, method and status.",
            "histogram",
        );
        for (key, series) in &rows {
            page.histogram_series(
                "harbour_http_request_duration_seconds",
                &labels(*key),
                &series.latency.snapshot(),
            );
        }
        for (name, help, pick) in [
            (
                "harbour_http_request_bytes_total",
                "Request body bytes announced, by endpoint, method and status.",
                0,
            ),
            (
                "harbour_http_response_bytes_total",
                "Response body bytes sent, by endpoint, method and status.",
                1,
            ),
        ] {
            page.family(name, help, "counter");
            for (key, series) in &rows {
                let counter = if pick == 0 {
                    &series.bytes_in
                } else {
                    &series.bytes_out
                };
                page.sample(name, &labels(*key), counter.load(Ordering::Relaxed) as f64);
            }
        }
    }
}

/// A method as a label from a fixed set, so a client cannot make series.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        _ => "other",
    }
}

/// A `/metrics` page being written.
#[derive(Default)]
pub struct Page {
    out: String,
}

impl Page {
    /// Starts the family `name`: its help line and type.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.out.push_str(name);
        push_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter");
        self.sample(name, &[], value as f64);
    }

    /// A family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, "gauge");
        self.sample(name, &[], value);
    }

    /// A histogram family with one unlabelled series.
    pub fn histogram(&mut self, name: &str, help: &str, snapshot: &HistogramSnapshot) {
        self.family(name, help, "histogram");
        self.histogram_series(name, &[], snapshot);
    }

    /// One series of the histogram family just started: cumulative
    /// buckets, `+Inf`, sum and count.
    pub fn histogram_series(
        &mut self,
        name: &str,
        labels: &[(&str, String)],
        snapshot: &HistogramSnapshot,
    ) {
        let mut cumulative = 0;
        for (idx, count) in snapshot.buckets.iter().enumerate() {
            cumulative += count;
            let bound = LATENCY_BUCKETS_SECONDS
                .get(idx)
                .map_or_else(|| "+Inf".to_owned(), |bound| number(*bound));
            let _ = write!(self.out, "{name}_bucket");
            push_labels(&mut self.out, labels, Some(&bound));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        push_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(snapshot.sum_micros as f64 / 1e6));
        let _ = write!(self.out, "{name}_count");
        push_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn push_labels(out: &mut String, labels: &[(&str, String)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let le = le.map(|bound| ("le", bound.to_owned()));
    for (name, value) in labels.iter().chain(le.as_ref()) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{name}=\"{}\"", escape_label(value));
    }
    out.push('}');
}

/// A label value escaped as the format asks: `\`, `"` and newlines.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text escaped as the format asks: `\` and newlines.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: whole numbers without a fraction.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Histogram, Page, RequestMetrics};

    #[test]
    fn a_histogram_page_is_cumulative_with_inf_sum_and_count() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(100));
        let mut page = Page::default();
        page.histogram("x_seconds", "A \\ help\nline.", &histogram.snapshot());
        let text = page.finish();
        assert!(
            text.starts_with("# HELP x_seconds A \\\\ help\\nline.\n# TYPE x_seconds histogram\n")
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_bucket{le=\"30\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_sum 100.00305\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
    }

    #[test]
    fn request_series_are_bounded_and_labels_escaped() {
        let metrics = RequestMetrics::default();
        metrics.record("/a\"b", "GET", 200, Duration::ZERO, 0, 0);
        for status in 0..2000u16 {
            metrics.record("/x", "BREW", status, Duration::ZERO, 1, 2);
        }
        let mut page = Page::default();
        metrics.render(&mut page);
        let text = page.finish();
        let series = text
            .lines()
            .filter(|line| line.starts_with("harbour_http_request_bytes_total{"))
            .count();
        assert!(series <= super::REQUEST_SERIES_MAX + 1, "{series}");
        assert!(text.contains("endpoint=\"other\",method=\"other\",status=\"0\""));
        assert!(!text.contains("BREW"));
        assert!(
            text.contains(r#"endpoint="/a\"b",method="GET",status="200""#),
            "{text}"
        );
    }
}
