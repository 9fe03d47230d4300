//! The server loop's counters and their part of `/metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::metrics::{Page, RequestMetrics};

/// Counters of the server loop, for `/metrics`.
#[derive(Default)]
pub struct ServerStats {
    pub requests_total: AtomicU64,
    pub errors_4xx_total: AtomicU64,
    pub errors_5xx_total: AtomicU64,
    pub busy_rejections_total: AtomicU64,
    pub panics_total: AtomicU64,
    /// Requests queued or being answered.
    pub in_flight: AtomicUsize,
    /// Requests a worker is answering.
    pub running: AtomicUsize,
    /// By endpoint, method and status.
    pub requests: RequestMetrics,
}

impl ServerStats {
    /// The server loop's part of a `/metrics` page.
    pub fn render(&self, page: &mut Page) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        page.counter(
            "harbour_http_requests_total",
            "HTTP requests received.",
            load(&self.requests_total),
        );
        page.counter(
            "harbour_http_client_errors_total",
            "Requests answered 4xx.",
            load(&self.errors_4xx_total),
        );
        page.counter(
            "harbour_http_server_errors_total",
            "Requests answered 5xx.",
            load(&self.errors_5xx_total),
        );
        page.counter(
            "harbour_http_busy_rejections_total",
            "Requests answered 503 at once because the workers' queue was full.",
            load(&self.busy_rejections_total),
        );
        page.counter(
            "harbour_http_handler_panics_total",
            "Handler panics answered 500.",
            load(&self.panics_total),
        );
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let running = self.running.load(Ordering::Relaxed);
        page.gauge(
            "harbour_http_requests_running",
            "Requests a worker is answering now.",
            running as f64,
        );
        page.gauge(
            "harbour_http_requests_queued",
            "Requests waiting in the workers' queue.",
            in_flight.saturating_sub(running) as f64,
        );
        self.requests.render(page);
    }
}
