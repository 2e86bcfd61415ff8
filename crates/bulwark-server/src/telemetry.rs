//! Every request counted and timed; names of the server's own metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

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
