//! Metrics: the JSON snapshot and reset under `/api/observability`, Prometheus text at the
//! root `/metrics` for scraping.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::state::AppState;

/// The Prometheus text exposition content type.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric with its series, as JSON.
#[utoipa::path(
    get,
    path = "/api/observability/metrics",
    tag = "telemetry",
    responses((status = 200, description = "`{metrics: [{name, kind, help, series, overflowed}]}`", body = Object))
)]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
) -> Json<bulwark::telemetry::metrics::MetricsSnapshot> {
    Json(state.metrics().snapshot())
}

/// What a reset did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reset {
    reset: bool,
}

/// Sets every counter and histogram back to zero (series stay registered); gauges keep
/// their values, since they describe the present (a breaker's state gauge still reads 1).
#[utoipa::path(
    post,
    path = "/api/observability/metrics/reset",
    tag = "telemetry",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reset", body = Reset),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    )
)]
pub(crate) async fn reset(State(state): State<AppState>) -> Json<Reset> {
    state.metrics().reset();
    tracing::info!("metrics reset through the API");
    Json(Reset { reset: true })
}

/// Prometheus text exposition, for scraping.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "telemetry",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"))
)]
pub(crate) async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        state.metrics().render_prometheus(),
    )
}
