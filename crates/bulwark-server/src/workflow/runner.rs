//! Runs a workflow: resume, a fenced start, steps with retries, checkpoints, spans.

use std::sync::Arc;

use bulwark::telemetry::SpanExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;
use utoipa::ToSchema;

use super::definition::{StepContext, StepError, WorkflowDefinition};
use super::journal::{Journal, Resumed};
use crate::error::ApiError;
use crate::state::AppState;

/// What a run's checkpoints hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunState {
    /// The workflow definition being run.
    pub workflow: String,
    /// Steps done, in order from the first.
    pub steps_completed: usize,
    /// The state the steps pass along.
    pub data: Value,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Every step is done.
    Completed,
    /// A step failed after its retries (or its dependency's breaker is open); the run can be
    /// resumed by calling the endpoint again with the same `workflow_id`.
    Failed,
}

/// The answer of `POST /api/workflows/{workflow_id}/execute`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct RunOutcome {
    /// How the run ended.
    pub status: RunStatus,
    /// The run's id (the path parameter).
    pub workflow_id: String,
    /// The workflow definition that ran.
    pub workflow: String,
    /// The trace of this call (32 hex digits), when telemetry is on.
    pub trace_id: Option<String>,
    /// The run's latest checkpoint, to resume from.
    pub checkpoint_id: Option<String>,
    /// Steps done in total, including those done by earlier calls.
    pub steps_completed: usize,
    /// Steps this call executed.
    pub steps_executed: usize,
    /// Steps in the workflow.
    pub steps_total: usize,
    /// The checkpoint this call resumed from, if it resumed.
    pub resumed_from: Option<String>,
    /// Why the run stopped, when it failed.
    pub error: Option<String>,
}

/// Runs (or resumes) `workflow_id` with `definition`. A failed run marks its span as an
/// error with the reason as an `exception` event.
pub(crate) async fn run(
    app: &AppState,
    definition: Arc<WorkflowDefinition>,
    workflow_id: String,
) -> Result<RunOutcome, ApiError> {
    let span = tracing::info_span!(
        "workflow.run",
        workflow.id = %workflow_id,
        workflow.name = %definition.name(),
    );
    let outcome = run_inner(app, definition, workflow_id)
        .instrument(span.clone())
        .await;
    match &outcome {
        Ok(RunOutcome {
            error: Some(reason),
            ..
        }) => span.record_error(&RunFailed(reason.clone())),
        Err(error) => span.record_error(error),
        Ok(_) => {}
    }
    outcome
}

/// Why a run stopped, for its span.
#[derive(Debug, thiserror::Error)]
#[error("workflow run failed: {0}")]
struct RunFailed(String);

async fn run_inner(
    app: &AppState,
    definition: Arc<WorkflowDefinition>,
    workflow_id: String,
) -> Result<RunOutcome, ApiError> {
    let steps = definition.steps();
    let settings = app.run_settings();
    // Each checkpoint belongs to the agent whose step it records; the run id is its workflow id.
    let (mut journal, resumed) = Journal::open(
        app.checkpoint_manager(),
        &workflow_id,
        steps.iter().map(|step| step.agent().to_owned()).collect(),
    )
    .await?;
    let resumed_from = resumed.as_ref().map(|r| r.id.to_string());
    let mut run = match resumed {
        Some(Resumed { id, state }) => {
            if state.workflow != definition.name() {
                return Err(ApiError::Conflict(format!(
                    "workflow run {workflow_id:?} belongs to workflow {:?}, not {:?}",
                    state.workflow,
                    definition.name()
                )));
            }
            tracing::info!(checkpoint = %id, "resuming from the latest checkpoint");
            state
        }
        None => {
            let start = RunState {
                workflow: definition.name().to_owned(),
                steps_completed: 0,
                data: Value::Object(Default::default()),
            };
            // The start is checkpointed (fenced on an empty history) before any step runs: a
            // store that cannot write, or another replica starting the same run, stops the
            // run here, before any step's side effects.
            if let Some(first) = steps.first() {
                journal.save(first.agent(), &start).await?;
            }
            start
        }
    };
    let mut executed = 0;
    let mut unsaved = 0;
    let mut error = None;
    while run.steps_completed < steps.len() {
        let step = &steps[run.steps_completed];
        let step_span =
            tracing::info_span!("workflow.step", step = step.name(), agent = step.agent());
        let started = std::time::Instant::now();
        let mut outcome = Err(StepError::failed("not attempted"));
        for attempt in 1..=settings.max_attempts {
            let context = StepContext {
                run_id: workflow_id.as_str().into(),
                step: step.name().into(),
                agent: step.agent().into(),
                attempt,
                guard: app.dependency_guard(),
            };
            outcome = step
                .run(context, run.data.clone())
                .instrument(step_span.clone())
                .await;
            match &outcome {
                Ok(_) => break,
                Err(step_error) => {
                    // Every failed attempt is an error event on the step's span (and makes
                    // it an error span), retried or not.
                    step_span.record_error(step_error);
                    tracing::warn!(parent: &step_span, attempt, error = %step_error, "step failed");
                    if matches!(step_error, StepError::Unavailable { .. }) {
                        break;
                    }
                }
            }
        }
        app.record_step(
            definition.name(),
            step.name(),
            outcome.is_ok(),
            started.elapsed(),
        );
        match outcome {
            Ok(data) => {
                run.data = data;
                run.steps_completed += 1;
                executed += 1;
                unsaved += 1;
                if unsaved >= settings.checkpoint_every {
                    journal
                        .save(step.agent(), &run)
                        .instrument(step_span)
                        .await?;
                    unsaved = 0;
                }
            }
            Err(step_error) => {
                error = Some(format!("step {:?}: {step_error}", step.name()));
                break;
            }
        }
    }
    // The final checkpoint (also on failure, so that no completed step is lost), owned by
    // the agent of the last step done.
    if unsaved > 0
        && let Some(last_done) = run.steps_completed.checked_sub(1).map(|i| &steps[i])
    {
        journal.save(last_done.agent(), &run).await?;
    }
    let status = if run.steps_completed == steps.len() {
        RunStatus::Completed
    } else {
        RunStatus::Failed
    };
    Ok(RunOutcome {
        status,
        workflow_id,
        workflow: definition.name().to_owned(),
        trace_id: app.current_trace_id(),
        checkpoint_id: journal.last().map(|id| id.to_string()),
        steps_completed: run.steps_completed,
        steps_executed: executed,
        steps_total: steps.len(),
        resumed_from,
        error,
    })
}
