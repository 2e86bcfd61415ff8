//! The routes, one module per group: `/api/observability/...`, `/api/workflows/...`,
//! `/api/openapi.json`.

mod alerts;
mod breakers;
mod budgets;
mod checkpoints;
mod events;
mod health;
mod metrics;
pub mod openapi;
mod ratelimiters;
mod traces;
mod workflows;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use bulwark::checkpoint::CheckpointError;
use bulwark::telemetry::TraceContextLayer;

use crate::error::{ApiError, json_errors};
use crate::state::AppState;

/// The largest `limit` a list takes (traces and checkpoints pages).
pub(crate) const MAX_LIMIT: usize = 1000;

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Maps a checkpoint error to its HTTP answer: bad ids and inputs are 400, missing ones
/// 404, a lost fenced save 409, a store that cannot read or write (a read-only or missing
/// folder, a database that is down) 503 `unavailable` with the reason; anything else
/// (corruption met outside a verification, a failed task) 500, logged and not shown.
pub(crate) fn checkpoint_error(error: CheckpointError) -> ApiError {
    use bulwark::checkpoint::StoreError;
    match error {
        CheckpointError::InvalidId(_) | CheckpointError::InvalidInput { .. } => {
            ApiError::BadRequest(error.to_string())
        }
        CheckpointError::NotFound { id } => ApiError::NotFound(format!("no checkpoint {id}")),
        CheckpointError::Store(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
            ApiError::Conflict(error.to_string())
        }
        CheckpointError::Store(StoreError::Io { .. } | StoreError::Backend(_)) => {
            tracing::warn!(%error, "checkpoint store unavailable");
            ApiError::Unavailable(format!("checkpoint store unavailable: {error}"))
        }
        other => ApiError::internal(other),
    }
}

/// The routes under `/api/observability`, without the service-wide layers; for nesting
/// into an application that brings its own.
pub fn observability_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/alerts", get(alerts::list))
        .route("/alert-rules", get(alerts::rules))
        .route("/rate-limiters", get(ratelimiters::list))
        .route("/budgets", get(budgets::list))
        .route("/checkpoints", get(checkpoints::list))
        .route("/checkpoints/cleanup", post(checkpoints::cleanup))
        .route(
            "/checkpoints/{checkpoint_id}",
            get(checkpoints::show).delete(checkpoints::delete),
        )
        .route(
            "/checkpoints/{checkpoint_id}/state",
            get(checkpoints::state),
        )
        .route("/events", get(events::stream))
        .route("/events/stats", get(events::stats))
        .route("/traces", get(traces::list))
        .route("/traces/{trace_id}", get(traces::show))
        .route("/metrics", get(metrics::snapshot))
        .route("/metrics/reset", post(metrics::reset))
        .route("/circuit-breakers", get(breakers::list))
        .route("/circuit-breakers/{name}", get(breakers::show))
        .route("/circuit-breakers/{name}/reset", post(breakers::reset))
        .route(
            "/circuit-breakers/{name}/force-open",
            post(breakers::force_open),
        )
        .route("/circuit-breakers/{name}/disable", post(breakers::disable))
        .method_not_allowed_fallback(method_not_allowed)
}

/// The whole API, ready to serve or to merge into another router: routes, JSON errors for
/// every failure (404, 405, 413, ...), the body limit, the host and cross-site checks of
/// [`crate::guard`] and bearer-token checks.
pub fn router(state: AppState) -> Router {
    let workflows = Router::new()
        .route("/runs", get(workflows::runs))
        .route("/runs/{run_id}", get(workflows::show))
        .route("/runs/{run_id}/resume", post(workflows::resume))
        .route("/runs/{run_id}/cancel", post(workflows::cancel))
        .route("/runs/{run_id}/fork", post(workflows::fork))
        .route("/{workflow_id}/execute", post(workflows::execute))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api/observability", observability_routes())
        .route("/api/workflows", get(workflows::definitions))
        .nest("/api/workflows", workflows)
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::prometheus))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::guard::guard,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit()))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::telemetry::observe,
        ))
        .layer(TraceContextLayer::new())
        .with_state(state)
}
