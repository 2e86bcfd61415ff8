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
    /// `global` (one bucket), `keyed` (one bucket per key) or `redis` (one shared bucket
    /// per key, in Redis).
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
    /// Backend errors, recoveries and fallback decisions (Redis limiters).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<bulwark::ratelimit::redis::RedisLimiterStats>,
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
    let mut rate_limiters: Vec<RateLimiterView> = state
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
            backend: None,
        })
        .collect();
    if let Some(redis) = state.redis_limiter() {
        rate_limiters.push(RateLimiterView {
            name: crate::state::WORKFLOW_LIMITER.to_owned(),
            kind: "redis",
            config: *redis.config(),
            capacity: u32::try_from(redis.config().capacity()).unwrap_or(u32::MAX),
            available: None,
            tracked_keys: None,
            backend: Some(redis.stats()),
        });
        rate_limiters.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Json(RateLimiterList { rate_limiters })
}
