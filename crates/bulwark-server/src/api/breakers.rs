//! `/circuit-breakers`: every breaker's state, one breaker, manual reset.

use axum::Json;
use axum::extract::State;
use bulwark::breaker::BreakerSnapshot;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::state::AppState;

/// Every breaker.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BreakerList {
    /// Snapshots sorted by name: state, config, counts, time to the next trial.
    #[schema(value_type = Vec<Object>)]
    circuit_breakers: Vec<BreakerSnapshot>,
}

fn find(state: &AppState, name: &str) -> Result<bulwark::breaker::CircuitBreaker, ApiError> {
    state
        .breakers()
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("no circuit breaker named {name:?}")))
}

/// Lists the circuit breakers.
#[utoipa::path(
    get,
    path = "/api/observability/circuit-breakers",
    tag = "circuit-breakers",
    responses((status = 200, description = "Every breaker", body = BreakerList))
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<BreakerList> {
    Json(BreakerList {
        circuit_breakers: state.breakers().snapshot(),
    })
}

/// One breaker.
#[utoipa::path(
    get,
    path = "/api/observability/circuit-breakers/{name}",
    tag = "circuit-breakers",
    params(("name" = String, Path, description = "The breaker's name")),
    responses(
        (status = 200, description = "Its snapshot", body = Object),
        (status = 404, description = "No such breaker", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<BreakerSnapshot>, ApiError> {
    Ok(Json(find(&state, &name)?.snapshot()))
}

/// Closes a breaker (also leaves FORCED_OPEN and DISABLED) and clears its counts.
#[utoipa::path(
    post,
    path = "/api/observability/circuit-breakers/{name}/reset",
    tag = "circuit-breakers",
    params(("name" = String, Path, description = "The breaker's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Its snapshot after the reset", body = Object),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such breaker", body = ErrorBody),
    )
)]
pub(crate) async fn reset(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<BreakerSnapshot>, ApiError> {
    let breaker = find(&state, &name)?;
    breaker.reset();
    tracing::info!(breaker = %name, "circuit breaker reset through the API");
    Ok(Json(breaker.snapshot()))
}
