//! `POST /api/workflows/{workflow_id}/execute`: run (or resume) a workflow with the whole
//! hardening stack.

use axum::Json;
use axum::extract::State;
use bulwark::ratelimit::RateLimitError;
use serde::Deserialize;
use tracing::Instrument;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, OptionalJson};
use crate::state::AppState;
use crate::workflow::{DEMO_WORKFLOW, RunOutcome, valid_run_id};

/// The optional request body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteRequest {
    /// The registered workflow definition to run; default `demo`.
    workflow: Option<String>,
}

/// Runs the steps of run `workflow_id` not done yet, resuming from its latest checkpoint.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/execute",
    tag = "workflows",
    params(("workflow_id" = String, Path,
        description = "The run: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with a dot")),
    request_body(content = Option<ExecuteRequest>, description = "Which workflow to run", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run ended (completed, or failed and resumable)", body = RunOutcome),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such workflow definition", body = ErrorBody),
        (status = 409, description = "This run is already executing here, another writer (replica) advanced it first, or the run belongs to another workflow", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Workflow rate limit reached", body = ErrorBody),
        (status = 503, description = "The shared rate limiter cannot decide", body = ErrorBody),
    )
)]
pub(crate) async fn execute(
    State(state): State<AppState>,
    ApiPath(workflow_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ExecuteRequest>,
) -> Result<Json<RunOutcome>, ApiError> {
    if !valid_run_id(&workflow_id) {
        return Err(ApiError::BadRequest(format!(
            "invalid workflow_id {workflow_id:?}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with a dot)"
        )));
    }
    let name = body
        .unwrap_or_default()
        .workflow
        .unwrap_or_else(|| DEMO_WORKFLOW.to_owned());
    let definition = state.workflows().get(&name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no workflow named {name:?}; registered: {}",
            state.workflows().names().join(", ")
        ))
    })?;
    match state.workflow_limiter().check(&workflow_id, 1).await {
        Ok(_) => {}
        Err(RateLimitError::Limited(limited)) => {
            return Err(ApiError::RateLimited(limited));
        }
        Err(RateLimitError::Unavailable(reason)) => {
            return Err(ApiError::Unavailable(format!(
                "the workflow rate limiter cannot decide: {reason}"
            )));
        }
        Err(other) => return Err(ApiError::internal(other)),
    }
    let running = state.start_run(&workflow_id).ok_or_else(|| {
        ApiError::Conflict(format!("workflow run {workflow_id:?} is already executing"))
    })?;
    // The run is its own task so that a client hanging up does not cut a checkpoint save
    // short; graceful shutdown waits for it through the task token.
    let token = state.tasks().token(&state);
    let task_state = state.clone();
    let handle = tokio::spawn(
        async move {
            let _running = running;
            let _token = token;
            crate::workflow::run(&task_state, definition, workflow_id).await
        }
        .instrument(tracing::Span::current()),
    );
    let outcome = handle.await.map_err(ApiError::internal)??;
    Ok(Json(outcome))
}
