//! The observability API's bodies as JSON text (the same serde shapes `bulwark serve`
//! answers), for the FastAPI router in `bulwark.fastapi`.

use bulwark::breaker::BreakerRegistry;
use bulwark::ratelimit::RateLimiterRegistry;
use bulwark::telemetry::metrics::MetricsRegistry;
use bulwark::telemetry::{TraceFilter, TraceId};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn text<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `{"rate_limiters": [...]}`: the named limiters.
#[pyfunction]
fn rate_limiters_json() -> PyResult<String> {
    text(&serde_json::json!({ "rate_limiters": RateLimiterRegistry::global().list() }))
}

/// `{"circuit_breakers": [...]}`: every breaker's snapshot.
#[pyfunction]
fn circuit_breakers_json() -> PyResult<String> {
    text(&serde_json::json!({ "circuit_breakers": BreakerRegistry::global().snapshot() }))
}

/// One breaker's snapshot, or None.
#[pyfunction]
fn circuit_breaker_json(name: &str) -> PyResult<Option<String>> {
    BreakerRegistry::global()
        .get(name)
        .map(|b| text(&b.snapshot()))
        .transpose()
}

/// `{"traces": [...]}`: recent trace summaries, newest first.
#[pyfunction]
#[pyo3(signature = (name = None, has_error = None, min_duration_ms = None, limit = 100))]
fn traces_json(
    name: Option<String>,
    has_error: Option<bool>,
    min_duration_ms: Option<u64>,
    limit: usize,
) -> PyResult<String> {
    let filter = TraceFilter {
        name_contains: name,
        has_error,
        min_duration_nanos: min_duration_ms.map(|ms| ms.saturating_mul(1_000_000)),
        since_unix_nanos: None,
        limit: Some(limit),
    };
    text(&serde_json::json!({ "traces": crate::telemetry::store().recent_traces(&filter) }))
}

/// One trace as a span tree, or None when unknown; `ValueError` for a malformed id.
#[pyfunction]
fn trace_json(trace_id: &str) -> PyResult<Option<String>> {
    let id: TraceId = trace_id
        .parse()
        .map_err(|e| PyValueError::new_err(format!("invalid trace id {trace_id:?}: {e}")))?;
    crate::telemetry::store()
        .get_trace(id)
        .map(|t| text(&t))
        .transpose()
}

/// Counts of the trace store, for the health route.
#[pyfunction]
fn trace_store_stats_json() -> PyResult<String> {
    let store = crate::telemetry::store();
    text(&serde_json::json!({
        "spans": store.len(),
        "traces": store.trace_count(),
        "stats": store.stats(),
    }))
}

/// The metrics registry as JSON.
#[pyfunction]
fn metrics_json() -> PyResult<String> {
    text(&MetricsRegistry::global().snapshot())
}

/// The metrics registry as Prometheus text.
#[pyfunction]
fn metrics_prometheus() -> String {
    MetricsRegistry::global().render_prometheus()
}

/// Zeroes counters and histograms (gauges stay).
#[pyfunction]
fn metrics_reset() {
    MetricsRegistry::global().reset();
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rate_limiters_json, m)?)?;
    m.add_function(wrap_pyfunction!(circuit_breakers_json, m)?)?;
    m.add_function(wrap_pyfunction!(circuit_breaker_json, m)?)?;
    m.add_function(wrap_pyfunction!(traces_json, m)?)?;
    m.add_function(wrap_pyfunction!(trace_json, m)?)?;
    m.add_function(wrap_pyfunction!(trace_store_stats_json, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_json, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_prometheus, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_reset, m)?)?;
    Ok(())
}
