//! Every request counted and timed; breaker events as metrics.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bulwark::breaker::{
    BreakerListener, CallEvent, CallOutcome, State as BreakerState, Transition,
};
use bulwark::telemetry::metrics::{BreakerMetrics, MetricsRegistry};

use crate::state::AppState;

/// Requests served, by method, route template and status.
pub const HTTP_REQUESTS_TOTAL: &str = "bulwark_http_requests_total";
/// Request latency in seconds, by method and route template.
pub const HTTP_REQUEST_SECONDS: &str = "bulwark_http_request_duration_seconds";
/// Workflow steps run, by workflow, step and outcome.
pub const WORKFLOW_STEPS_TOTAL: &str = "bulwark_workflow_steps_total";
/// Workflow step latency in seconds (retries included), by workflow and step.
pub const WORKFLOW_STEP_SECONDS: &str = "bulwark_workflow_step_duration_seconds";

/// Counts and times a request under its route template (never its raw path, so that ids in
/// paths cannot grow the label set).
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = state.metrics();
    let status = response.status();
    let labels = [
        ("method", method.as_str()),
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

/// Publishes every breaker's state, transitions and calls to a metrics registry.
pub(crate) struct BreakerMetricsListener {
    registry: MetricsRegistry,
    handles: RwLock<HashMap<String, Arc<BreakerMetrics>>>,
}

impl std::fmt::Debug for BreakerMetricsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerMetricsListener")
            .finish_non_exhaustive()
    }
}

impl BreakerMetricsListener {
    pub(crate) fn new(registry: &MetricsRegistry) -> Self {
        Self {
            registry: registry.clone(),
            handles: RwLock::default(),
        }
    }

    fn handles(&self, breaker: &str) -> Arc<BreakerMetrics> {
        if let Some(handles) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(breaker)
        {
            return Arc::clone(handles);
        }
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        let entry = handles.entry(breaker.to_owned()).or_insert_with(|| {
            let metrics = Arc::new(BreakerMetrics::new(&self.registry, breaker));
            metrics.state(state_name(BreakerState::Closed));
            metrics
        });
        Arc::clone(entry)
    }
}

fn state_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
        BreakerState::ForcedOpen => "forced_open",
        _ => "disabled",
    }
}

impl BreakerListener for BreakerMetricsListener {
    fn on_transition(&self, transition: &Transition<'_>) {
        let handles = self.handles(transition.breaker);
        handles.transition(state_name(transition.from), state_name(transition.to));
        handles.state(state_name(transition.to));
    }

    fn on_call(&self, event: &CallEvent<'_>) {
        let handles = self.handles(event.breaker);
        match event.outcome {
            CallOutcome::Success => handles.call("successful", event.duration),
            CallOutcome::Rejected => handles.not_permitted(),
            _ => handles.call("failed", event.duration),
        }
    }
}
