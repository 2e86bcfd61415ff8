//! Every request counted and timed; names of the server's own metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bulwark::telemetry::metrics::MetricsRegistry;
use bulwark::telemetry::propagation::{OTHER, method_label};
use bulwark::telemetry::{Evictions, TraceStoreStats};

use crate::state::AppState;

/// Requests served, by method, route template and status.
pub const HTTP_REQUESTS_TOTAL: &str = "bulwark_http_requests_total";
/// Request latency in seconds, by method and route template.
pub const HTTP_REQUEST_SECONDS: &str = "bulwark_http_request_duration_seconds";
/// Workflow steps run, by workflow, step and outcome.
pub const WORKFLOW_STEPS_TOTAL: &str = "bulwark_workflow_steps_total";
/// Workflow step latency in seconds (retries included), by workflow and step.
pub const WORKFLOW_STEP_SECONDS: &str = "bulwark_workflow_step_duration_seconds";
/// The trace store's estimated size in bytes (what its byte budget bounds).
pub const TRACE_STORE_BYTES: &str = "bulwark_trace_store_bytes";
/// Spans the trace store evicted, by `reason`: `age`, `count` (the span cap), `bytes` (the
/// byte budget).
pub const TRACE_STORE_EVICTIONS_TOTAL: &str = "bulwark_trace_store_evictions_total";

/// The trace store's evictions already added to [`TRACE_STORE_EVICTIONS_TOTAL`], so that
/// each request adds only what is new.
#[derive(Debug, Default)]
pub(crate) struct TraceStoreReported {
    age: AtomicU64,
    count: AtomicU64,
    bytes: AtomicU64,
}

impl TraceStoreReported {
    /// Brings the trace store's metrics up to `stats`.
    fn report(&self, metrics: &MetricsRegistry, stats: &TraceStoreStats) {
        let bytes = stats.bytes as f64;
        if let Err(error) = metrics.set_gauge(TRACE_STORE_BYTES, bytes, &[]) {
            tracing::debug!(%error, "trace store gauge refused");
        }
        let Evictions {
            age, count, bytes, ..
        } = stats.evicted;
        for (reason, seen, now) in [
            ("age", &self.age, age),
            ("count", &self.count, count),
            ("bytes", &self.bytes, bytes),
        ] {
            let before = seen.fetch_max(now, Ordering::Relaxed);
            if now > before
                && let Err(error) = metrics.add_counter(
                    TRACE_STORE_EVICTIONS_TOTAL,
                    now - before,
                    &[("reason", reason)],
                )
            {
                tracing::debug!(%error, "trace store counter refused");
            }
        }
    }
}

/// Counts and times a request under its route template and method, never its raw path or
/// an unknown method: both become `_OTHER`, so that what clients send cannot grow the label
/// set. Also brings the trace store's metrics up to date before the request is served (so
/// a scrape sees them).
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| OTHER.to_owned(), |path| path.as_str().to_owned());
    let metrics = state.metrics();
    state
        .trace_store_reported()
        .report(metrics, &state.trace_store().stats());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let labels = [
        ("method", method),
        ("route", route.as_str()),
        ("status", status.as_str()),
    ];
    if let Err(error) = metrics.increment_counter(HTTP_REQUESTS_TOTAL, &labels) {
        tracing::debug!(%error, "request counter refused");
    }
    if let Err(error) = metrics.record_histogram(
        HTTP_REQUEST_SECONDS,
        started.elapsed().as_secs_f64(),
        &labels[..2],
    ) {
        tracing::debug!(%error, "request histogram refused");
    }
    response
}
