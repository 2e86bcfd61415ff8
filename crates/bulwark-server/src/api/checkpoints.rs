//! `/checkpoints`: list, inspect (metadata and verification), delete, clean up.

use axum::Json;
use axum::extract::State;
use bulwark::checkpoint::{
    CheckpointError, CheckpointId, CheckpointMetadata, CleanupReport, ListFilter, RetentionPolicy,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Most items one page may hold.
pub(crate) const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 50;

/// `GET /checkpoints` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this agent's checkpoints (for workflow runs: the workflow definition's name).
    agent_id: Option<String>,
    /// Only this workflow's checkpoints (for workflow runs: the run id).
    workflow_id: Option<String>,
    /// Page size, 1 to 1000; default 50.
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of checkpoints, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckpointList {
    /// Metadata of each checkpoint.
    #[schema(value_type = Vec<Object>)]
    items: Vec<CheckpointMetadata>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// A checkpoint's metadata and whether its stored bytes verify.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckpointDetail {
    #[schema(value_type = Object)]
    metadata: CheckpointMetadata,
    verification: Verification,
}

/// The result of reading the checkpoint back and checking CRC, lengths and SHA-256.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verification {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What `DELETE` removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    deleted: String,
}

fn parse_id(raw: &str) -> Result<CheckpointId, ApiError> {
    raw.parse::<CheckpointId>()
        .map_err(|error| ApiError::BadRequest(format!("invalid checkpoint id {raw:?}: {error}")))
}

/// Lists checkpoints, filtered and paged.
#[utoipa::path(
    get,
    path = "/api/observability/checkpoints",
    tag = "checkpoints",
    params(ListQuery),
    responses(
        (status = 200, description = "One page", body = CheckpointList),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<CheckpointList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let mut filter = ListFilter::all().limit(limit);
    if let Some(agent_id) = query.agent_id {
        filter = filter.agent(agent_id);
    }
    if let Some(workflow_id) = query.workflow_id {
        filter = filter.workflow_id(workflow_id);
    }
    if let Some(cursor) = query.cursor {
        filter = filter.after(parse_id(&cursor)?);
    }
    let page = state
        .checkpoint_manager()
        .list(&filter)
        .await
        .map_err(super::checkpoint_error)?;
    Ok(Json(CheckpointList {
        items: page.items,
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}

/// A checkpoint's metadata and verification result.
#[utoipa::path(
    get,
    path = "/api/observability/checkpoints/{checkpoint_id}",
    tag = "checkpoints",
    params(("checkpoint_id" = String, Path, description = "A checkpoint id (UUIDv7)")),
    responses(
        (status = 200, description = "Metadata and verification", body = CheckpointDetail),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such checkpoint", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<CheckpointDetail>, ApiError> {
    let id = parse_id(&raw)?;
    let manager = state.checkpoint_manager();
    let metadata = manager
        .metadata(&id)
        .await
        .map_err(super::checkpoint_error)?;
    let verification = match manager.verify(&id).await {
        Ok(_) => Verification {
            valid: true,
            error: None,
        },
        Err(error @ CheckpointError::Corrupt { .. }) => Verification {
            valid: false,
            error: Some(error.to_string()),
        },
        Err(other) => return Err(super::checkpoint_error(other)),
    };
    Ok(Json(CheckpointDetail {
        metadata,
        verification,
    }))
}

/// Deletes a checkpoint.
#[utoipa::path(
    delete,
    path = "/api/observability/checkpoints/{checkpoint_id}",
    tag = "checkpoints",
    params(("checkpoint_id" = String, Path, description = "A checkpoint id (UUIDv7)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such checkpoint", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let id = parse_id(&raw)?;
    let removed = state
        .checkpoint_manager()
        .delete(&id)
        .await
        .map_err(super::checkpoint_error)?;
    if !removed {
        return Err(ApiError::NotFound(format!("no checkpoint {id}")));
    }
    Ok(Json(Deleted {
        deleted: id.to_string(),
    }))
}

/// Applies a retention policy; `dry_run` only reports. A workflow's latest valid checkpoint
/// is always kept.
#[utoipa::path(
    post,
    path = "/api/observability/checkpoints/cleanup",
    tag = "checkpoints",
    request_body(content = Object, description = "`{keep_last, max_age, max_total_bytes, dry_run}`; max_age like \"7d\"", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was (or would be) removed", body = Object),
        (status = 400, description = "Invalid policy or JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn cleanup(
    State(state): State<AppState>,
    ApiJson(policy): ApiJson<RetentionPolicy>,
) -> Result<Json<CleanupReport>, ApiError> {
    if policy.keep_last.is_none() && policy.max_age.is_none() && policy.max_total_bytes.is_none() {
        return Err(ApiError::BadRequest(
            "a cleanup policy needs at least one of keep_last, max_age, max_total_bytes".into(),
        ));
    }
    let report = state
        .checkpoint_manager()
        .cleanup(&policy)
        .await
        .map_err(super::checkpoint_error)?;
    Ok(Json(report))
}
