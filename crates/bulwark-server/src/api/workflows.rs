//! `/api/workflows`: the definitions, `execute` (start or go on), and the runs as data —
//! list, show, resume, cancel, fork — all through the server's durable executor.

use axum::Json;
use axum::extract::State;
use bulwark::checkpoint::CheckpointId;
use bulwark::durable::RunStatus;
use bulwark::ratelimit::RateLimitError;
use bulwark::telemetry::SpanExt;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::state::AppState;
use crate::workflow::{
    DEMO_WORKFLOW, RunList, RunOutcome, RunStatusView, RunSummaryView, RunView, WorkflowList,
    WorkflowView, durable_error, valid_run_id,
};

/// The optional body of `execute`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteRequest {
    /// The registered workflow definition to run; default `demo`.
    workflow: Option<String>,
    /// For a new run: its initial state (default `{}`).
    #[schema(value_type = Object)]
    state: Option<Value>,
    /// For a waiting run: what the interrupt it waits on returns.
    #[schema(value_type = Object)]
    input: Option<Value>,
}

/// The optional body of `resume`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeRequest {
    /// What the interrupt returns (for an effect of unknown outcome: `{"done": <result>}` or
    /// `"rerun"`); `null` when absent.
    #[schema(value_type = Object)]
    input: Option<Value>,
}

/// The body of `fork`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForkRequest {
    /// One of the run's checkpoints (see its `history`).
    checkpoint_id: String,
    /// A JSON merge patch (RFC 7386) applied to the state at that checkpoint.
    #[schema(value_type = Object)]
    patch: Option<Value>,
}

/// `GET /api/workflows/runs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs in this status.
    status: Option<RunStatusView>,
}

fn check_run_id(run_id: &str) -> Result<(), ApiError> {
    if valid_run_id(run_id) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "invalid run id {run_id:?}: use 1-128 of A-Z a-z 0-9 . _ - (not starting with a dot)"
        )))
    }
}

/// Runs `drive` as a task of its own, so that a client hanging up does not cut a checkpoint
/// save short; graceful shutdown waits for it through the task token.
async fn in_task<T, F>(state: &AppState, drive: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
{
    let token = state.tasks().token(state);
    let handle = tokio::spawn(
        async move {
            let _token = token;
            drive.await
        }
        .instrument(tracing::Span::current()),
    );
    handle.await.map_err(ApiError::internal)?
}

/// Starts run `workflow_id`, or takes it on from where it is: recovers it when it was left
/// running, resumes it when it waits, answers it as it is when it completed.
#[utoipa::path(
    post,
    path = "/api/workflows/{workflow_id}/execute",
    tag = "workflows",
    params(("workflow_id" = String, Path,
        description = "The run: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with a dot")),
    request_body(content = Option<ExecuteRequest>, description = "Which workflow to run", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run stopped: completed, or waiting (a step gave up or asked for input; call again or resume to go on)", body = RunOutcome),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such workflow definition", body = ErrorBody),
        (status = 409, description = "The run is executing (here or on the named replica), another writer advanced it first, it failed or was cancelled, or it belongs to another workflow", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Workflow rate limit reached", body = ErrorBody),
        (status = 503, description = "The shared rate limiter, the checkpoint store or the lease store cannot decide", body = ErrorBody),
    )
)]
pub(crate) async fn execute(
    State(state): State<AppState>,
    ApiPath(workflow_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ExecuteRequest>,
) -> Result<Json<RunOutcome>, ApiError> {
    check_run_id(&workflow_id)?;
    let body = body.unwrap_or_default();
    let name = body.workflow.unwrap_or_else(|| DEMO_WORKFLOW.to_owned());
    if !state.workflows().names().contains(&name) {
        return Err(ApiError::NotFound(format!(
            "no workflow named {name:?}; registered: {}",
            state.workflows().names().join(", ")
        )));
    }
    match state.workflow_limiter().check(&workflow_id, 1).await {
        Ok(_) => {}
        Err(RateLimitError::Limited(limited)) => return Err(ApiError::RateLimited(limited)),
        Err(RateLimitError::Unavailable(reason)) => {
            return Err(ApiError::Unavailable(format!(
                "the workflow rate limiter cannot decide: {reason}"
            )));
        }
        Err(other) => return Err(ApiError::internal(other)),
    }
    let workflows = state.workflows().clone();
    let input = body.input.unwrap_or(Value::Null);
    let start = body
        .state
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let mut outcome = in_task(&state, async move {
        workflows.execute(&workflow_id, &name, start, input).await
    })
    .await?;
    // The run's spans are in this request's trace (which continues an incoming
    // `traceparent`); the run's own trace id stays in its record.
    outcome.trace_id = tracing::Span::current()
        .trace_context()
        .map(|context| context.trace_id.to_string());
    Ok(Json(outcome))
}

/// The registered workflow definitions.
#[utoipa::path(
    get,
    path = "/api/workflows",
    tag = "workflows",
    responses((status = 200, description = "The definitions, by name", body = WorkflowList))
)]
pub(crate) async fn definitions(State(state): State<AppState>) -> Json<WorkflowList> {
    let workflows = state.workflows().executor().workflows();
    Json(WorkflowList {
        workflows: workflows.into_iter().map(WorkflowView::from).collect(),
    })
}

/// The runs, as their newest checkpoints say, by workflow and status.
#[utoipa::path(
    get,
    path = "/api/workflows/runs",
    tag = "workflows",
    params(RunsQuery),
    responses(
        (status = 200, description = "The runs", body = RunList),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 404, description = "No such workflow definition", body = ErrorBody),
        (status = 503, description = "The checkpoint store cannot answer", body = ErrorBody),
    )
)]
pub(crate) async fn runs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    let workflows = state.workflows();
    let runs = workflows
        .executor()
        .list_runs(query.workflow.as_deref(), query.status.map(RunStatus::from))
        .await
        .map_err(|e| durable_error(e, workflows.replica()))?;
    Ok(Json(RunList {
        runs: runs.into_iter().map(RunSummaryView::from).collect(),
    }))
}

async fn run_view(state: &AppState, run_id: &str) -> Result<RunView, ApiError> {
    let workflows = state.workflows();
    let error = |e| durable_error(e, workflows.replica());
    let record = workflows.executor().get(run_id).await.map_err(error)?;
    let history = workflows.executor().history(run_id).await.map_err(error)?;
    Ok(RunView::new(record, history))
}

/// One run: status, current step, attempts, last error, timings, trace id, origin, what it
/// waits on, its state and its checkpoint history.
#[utoipa::path(
    get,
    path = "/api/workflows/runs/{run_id}",
    tag = "workflows",
    params(("run_id" = String, Path, description = "The run")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 400, description = "Malformed run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "The checkpoint store cannot answer", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<RunView>, ApiError> {
    check_run_id(&run_id)?;
    Ok(Json(run_view(&state, &run_id).await?))
}

/// Delivers input to a waiting run and drives it on until it stops again.
#[utoipa::path(
    post,
    path = "/api/workflows/runs/{run_id}/resume",
    tag = "workflows",
    params(("run_id" = String, Path, description = "The run")),
    request_body(content = Option<ResumeRequest>, description = "The input", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run stopped again", body = RunView),
        (status = 400, description = "Malformed id, body or input", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is not waiting, or runs elsewhere", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "The checkpoint or lease store cannot answer", body = ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    OptionalJson(body): OptionalJson<ResumeRequest>,
) -> Result<Json<RunView>, ApiError> {
    check_run_id(&run_id)?;
    let input = body.unwrap_or_default().input.unwrap_or(Value::Null);
    let task_state = state.clone();
    let view = in_task(&state, async move {
        let workflows = task_state.workflows();
        workflows
            .executor()
            .resume(&run_id, input)
            .await
            .map_err(|e| durable_error(e, workflows.replica()))?;
        run_view(&task_state, &run_id).await
    })
    .await?;
    Ok(Json(view))
}

/// Cancels a run: its step in flight here is cancelled and the run checkpointed as cancelled.
#[utoipa::path(
    post,
    path = "/api/workflows/runs/{run_id}/cancel",
    tag = "workflows",
    params(("run_id" = String, Path, description = "The run")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cancelled run", body = RunView),
        (status = 400, description = "Malformed run id", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is finished already, or runs elsewhere", body = ErrorBody),
        (status = 503, description = "The checkpoint or lease store cannot answer", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
) -> Result<Json<RunView>, ApiError> {
    check_run_id(&run_id)?;
    let workflows = state.workflows();
    workflows
        .executor()
        .cancel(&run_id)
        .await
        .map_err(|e| durable_error(e, workflows.replica()))?;
    Ok(Json(run_view(&state, &run_id).await?))
}

/// Forks a new run from one of the run's checkpoints, with an optional state patch, and
/// drives it until it stops.
#[utoipa::path(
    post,
    path = "/api/workflows/runs/{run_id}/fork",
    tag = "workflows",
    params(("run_id" = String, Path, description = "The run forked")),
    request_body(content = ForkRequest, description = "Where to fork, and the state patch", content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new run, stopped", body = RunView),
        (status = 400, description = "Malformed id or body, or a patch the state type refuses", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such run or checkpoint", body = ErrorBody),
        (status = 409, description = "The checkpoint is another run's, or the new run exists", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 503, description = "The checkpoint or lease store cannot answer", body = ErrorBody),
    )
)]
pub(crate) async fn fork(
    State(state): State<AppState>,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body): ApiJson<ForkRequest>,
) -> Result<Json<RunView>, ApiError> {
    check_run_id(&run_id)?;
    let checkpoint: CheckpointId = body.checkpoint_id.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid checkpoint_id {:?}: expected a UUIDv7",
            body.checkpoint_id
        ))
    })?;
    let task_state = state.clone();
    let view = in_task(&state, async move {
        let workflows = task_state.workflows();
        let forked = workflows
            .executor()
            .fork(&run_id, checkpoint, body.patch)
            .await
            .map_err(|e| durable_error(e, workflows.replica()))?;
        run_view(&task_state, &forked.run_id).await
    })
    .await?;
    Ok(Json(view))
}
