//! The routes, one module per group, joined under `/api/observability`.

mod health;

use axum::Router;
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole API, ready to serve or to merge into another router.
pub fn router(state: AppState) -> Router {
    let observability = Router::new()
        .route("/health", get(health::health))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    Router::new()
        .nest("/api/observability", observability)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
}
