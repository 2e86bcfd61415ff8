//! `/traces`: recent traces from the in-memory trace store, and one trace's span tree.

use axum::Json;
use axum::extract::State;
use bulwark::telemetry::{TraceFilter, TraceId, TraceSummary, TraceTree};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// `GET /traces` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TracesQuery {
    /// Only traces whose root span's name contains this.
    name: Option<String>,
    /// Only traces with (`true`) or without (`false`) an error span.
    has_error: Option<bool>,
    /// Only traces lasting at least this many milliseconds.
    min_duration_ms: Option<u64>,
    /// At most this many, newest first (1 to 1000; default 100).
    limit: Option<usize>,
}

/// Recent traces.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TraceList {
    #[schema(value_type = Vec<Object>)]
    traces: Vec<TraceSummary>,
}

/// Lists recent traces, newest first.
#[utoipa::path(
    get,
    path = "/api/observability/traces",
    tag = "telemetry",
    params(TracesQuery),
    responses(
        (status = 200, description = "Trace summaries", body = TraceList),
        (status = 400, description = "Bad filter", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<TracesQuery>,
) -> Result<Json<TraceList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=crate::api::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {}, got {limit}",
            crate::api::MAX_LIMIT
        )));
    }
    let filter = TraceFilter {
        name_contains: query.name,
        has_error: query.has_error,
        min_duration_nanos: query.min_duration_ms.map(|ms| ms.saturating_mul(1_000_000)),
        since_unix_nanos: None,
        limit: Some(limit),
    };
    Ok(Json(TraceList {
        traces: state.trace_store().recent_traces(&filter),
    }))
}

/// One trace as a span tree.
#[utoipa::path(
    get,
    path = "/api/observability/traces/{trace_id}",
    tag = "telemetry",
    params(("trace_id" = String, Path, description = "32 lowercase hex digits (W3C trace id)")),
    responses(
        (status = 200, description = "The span tree", body = Object),
        (status = 400, description = "Malformed trace id", body = ErrorBody),
        (status = 404, description = "Unknown or expired trace", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<TraceTree>, ApiError> {
    // All zeros is well-formed but never a trace (W3C): nothing to find, not a bad request.
    if raw.len() == 32 && raw.bytes().all(|b| b == b'0') {
        return Err(ApiError::NotFound(format!(
            "no trace {raw} (the invalid all-zero id)"
        )));
    }
    let trace_id: TraceId = raw.parse().map_err(|error| {
        ApiError::BadRequest(format!(
            "invalid trace id {:?}: {error}",
            crate::error::clip(&raw)
        ))
    })?;
    state
        .trace_store()
        .get_trace(trace_id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no trace {trace_id} (unknown or expired)")))
}
