//! `/circuit-breakers`: every breaker's state, one breaker, and the manual controls: reset,
//! force-open and disable (each behind the token).

use axum::Json;
use axum::extract::State;
use bulwark::breaker::{BreakerSnapshot, CircuitBreaker};
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

fn find(state: &AppState, name: &str) -> Result<CircuitBreaker, ApiError> {
    state
        .breakers()
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("no circuit breaker named {name:?}")))
}

/// Applies a manual control to breaker `name` and answers its snapshot after it.
fn control(
    state: &AppState,
    name: &str,
    done: &str,
    action: impl FnOnce(&CircuitBreaker),
) -> Result<Json<BreakerSnapshot>, ApiError> {
    let breaker = find(state, name)?;
    action(&breaker);
    tracing::warn!(breaker = %name, "circuit breaker {done} through the API");
    Ok(Json(breaker.snapshot()))
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
    control(&state, &name, "reset", CircuitBreaker::reset)
}

/// Opens a breaker by hand: every call is rejected until `reset` (state `FORCED_OPEN`), e.g.
/// to stop traffic to a dependency under maintenance.
#[utoipa::path(
    post,
    path = "/api/observability/circuit-breakers/{name}/force-open",
    tag = "circuit-breakers",
    params(("name" = String, Path, description = "The breaker's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Its snapshot, now FORCED_OPEN", body = Object),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such breaker", body = ErrorBody),
    )
)]
pub(crate) async fn force_open(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<BreakerSnapshot>, ApiError> {
    control(&state, &name, "forced open", CircuitBreaker::force_open)
}

/// Disables a breaker: every call passes and it never trips until `reset` (state
/// `DISABLED`; calls are still counted).
#[utoipa::path(
    post,
    path = "/api/observability/circuit-breakers/{name}/disable",
    tag = "circuit-breakers",
    params(("name" = String, Path, description = "The breaker's name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Its snapshot, now DISABLED", body = Object),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such breaker", body = ErrorBody),
    )
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<BreakerSnapshot>, ApiError> {
    control(&state, &name, "disabled", CircuitBreaker::disable)
}
