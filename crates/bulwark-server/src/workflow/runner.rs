//! Runs a workflow: resume, steps with retries, checkpoints, spans.

use std::sync::Arc;

use bulwark::checkpoint::AutoCheckpointer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;
use utoipa::ToSchema;

use super::definition::{StepContext, StepError, WorkflowDefinition};
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

/// Runs (or resumes) `workflow_id` with `definition`.
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
    run_inner(app, definition, workflow_id)
        .instrument(span)
        .await
}

async fn run_inner(
    app: &AppState,
    definition: Arc<WorkflowDefinition>,
    workflow_id: String,
) -> Result<RunOutcome, ApiError> {
    let steps = definition.steps();
    let settings = app.run_settings();
    // The definition's name is the checkpoints' agent id, the run id their workflow id.
    let mut auto = AutoCheckpointer::new(
        app.checkpoint_manager().clone(),
        definition.name(),
        &workflow_id,
        settings.checkpoint_every,
    )
    .map_err(crate::api::checkpoint_error)?;
    let resumed: Option<RunState> = auto
        .resume_latest()
        .await
        .map_err(crate::api::checkpoint_error)?;
    let resumed_from = auto.last_checkpoint().map(|id| id.to_string());
    if let Some(from) = &resumed_from {
        tracing::info!(checkpoint = %from, "resuming from the latest checkpoint");
    }
    let mut run = resumed.unwrap_or_else(|| RunState {
        workflow: definition.name().to_owned(),
        steps_completed: 0,
        data: Value::Object(Default::default()),
    });
    let mut executed = 0;
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
                Ok(_) | Err(StepError::Unavailable { .. }) => break,
                Err(StepError::Failed(message)) => {
                    tracing::warn!(parent: &step_span, attempt, %message, "step failed");
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
                auto.maybe_checkpoint(&run)
                    .instrument(step_span)
                    .await
                    .map_err(crate::api::checkpoint_error)?;
            }
            Err(step_error) => {
                error = Some(format!("step {:?}: {step_error}", step.name()));
                break;
            }
        }
    }
    // The final checkpoint (also on failure, so that no completed step is lost).
    if auto.operations_since_checkpoint() > 0 {
        auto.force_checkpoint(&run)
            .await
            .map_err(crate::api::checkpoint_error)?;
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
        checkpoint_id: auto.last_checkpoint().map(|id| id.to_string()),
        steps_completed: run.steps_completed,
        steps_executed: executed,
        steps_total: steps.len(),
        resumed_from,
        error,
    })
}
