//! The routes, one module per group: `/api/observability/...`, `/api/workflows/...`,
//! `/api/openapi.json`.

mod health;
pub mod openapi;
mod ratelimiters;
mod workflows;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

use crate::error::{ApiError, json_errors};
use crate::state::AppState;

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// The routes under `/api/observability`, without the service-wide layers; for nesting
/// into an application that brings its own.
pub fn observability_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/rate-limiters", get(ratelimiters::list))
        .method_not_allowed_fallback(method_not_allowed)
}

/// The whole API, ready to serve or to merge into another router: routes, JSON errors for
/// every failure (404, 405, 413, ...), the body limit and bearer-token checks.
pub fn router(state: AppState) -> Router {
    let workflows = Router::new()
        .route("/{workflow_id}/execute", post(workflows::execute))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api/observability", observability_routes())
        .nest("/api/workflows", workflows)
        .route("/api/openapi.json", get(openapi::document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(state.body_limit()))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}
