//! `GET /rate-limiters`: every registered limiter with its state now.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::state::AppState;

/// One limiter.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RateLimiterView {
    /// The registered name.
    name: String,
    /// `global` (one bucket) or `keyed` (one bucket per key).
    kind: &'static str,
    /// `{max_requests, time_window, burst_size}`.
    #[schema(value_type = Object)]
    config: bulwark::ratelimit::RateLimitConfig,
    /// Tokens a full bucket holds.
    capacity: u32,
    /// Tokens available now (global limiters).
    available: Option<u32>,
    /// Keys held in memory (keyed limiters).
    tracked_keys: Option<usize>,
}

/// The list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RateLimiterList {
    rate_limiters: Vec<RateLimiterView>,
}

/// Lists the rate limiters.
#[utoipa::path(
    get,
    path = "/api/observability/rate-limiters",
    tag = "observability",
    responses(
        (status = 200, description = "Every limiter, sorted by name", body = RateLimiterList),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<RateLimiterList> {
    let rate_limiters = state
        .ratelimiters()
        .list()
        .into_iter()
        .map(|info| RateLimiterView {
            name: info.name,
            kind: info.kind,
            config: info.config,
            capacity: info.capacity,
            available: info.available,
            tracked_keys: info.tracked_keys,
        })
        .collect();
    Json(RateLimiterList { rate_limiters })
}
