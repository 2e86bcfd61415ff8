//! Runs and workflows as the HTTP API answers them, and durable errors as HTTP errors.

use bulwark::durable::{
    DurableError, HistoryEntry, InterruptKind, RunRecord, RunStatus, RunSummary, WorkflowInfo,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiError;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatusView {
    /// Being executed (or left so by a process that died; recovery continues it).
    Running,
    /// Waiting for input: an interrupt, or a step that gave up and waits for a person (or
    /// another `execute`/`resume` call) to run it again.
    Waiting,
    /// Every step is done.
    Completed,
    /// A step failed for good (a fatal error); fork it to try again.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl From<RunStatus> for RunStatusView {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Running => Self::Running,
            RunStatus::Waiting => Self::Waiting,
            RunStatus::Completed => Self::Completed,
            RunStatus::Cancelled => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

impl From<RunStatusView> for RunStatus {
    fn from(status: RunStatusView) -> Self {
        match status {
            RunStatusView::Running => Self::Running,
            RunStatusView::Waiting => Self::Waiting,
            RunStatusView::Completed => Self::Completed,
            RunStatusView::Failed => Self::Failed,
            RunStatusView::Cancelled => Self::Cancelled,
        }
    }
}

/// The answer of `POST /api/workflows/{workflow_id}/execute`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct RunOutcome {
    /// Where the run is now.
    pub status: RunStatusView,
    /// The run's id (the path parameter).
    pub workflow_id: String,
    /// The workflow definition that ran.
    pub workflow: String,
    /// The trace of this call (32 hex digits), holding the run's spans, when telemetry is on.
    pub trace_id: Option<String>,
    /// The run's latest checkpoint.
    pub checkpoint_id: Option<String>,
    /// Steps done in total, including those done by earlier calls.
    #[schema(minimum = 0)]
    pub steps_completed: usize,
    /// Steps this call executed.
    #[schema(minimum = 0)]
    pub steps_executed: usize,
    /// Steps in the workflow.
    #[schema(minimum = 0)]
    pub steps_total: usize,
    /// The checkpoint this call went on from, if the run existed.
    pub resumed_from: Option<String>,
    /// Why the run stopped or waits, when it did not complete.
    pub error: Option<String>,
}

impl RunOutcome {
    pub(crate) fn new(
        record: &RunRecord,
        checkpoint_id: Option<String>,
        steps_total: usize,
        before: Option<(usize, String)>,
    ) -> Self {
        let (done_before, resumed_from) = before.map_or((0, None), |(p, id)| (p, Some(id)));
        let done = if record.status == RunStatus::Completed {
            steps_total
        } else {
            record.position
        };
        Self {
            status: record.status.into(),
            workflow_id: record.run_id.clone(),
            workflow: record.workflow.clone(),
            trace_id: None,
            checkpoint_id,
            steps_completed: done,
            steps_executed: done.saturating_sub(done_before),
            steps_total,
            resumed_from,
            error: (record.status != RunStatus::Completed)
                .then(|| record.last_error.clone())
                .flatten(),
        }
    }
}

/// A run, as `GET /api/workflows/runs/{run_id}` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct RunView {
    /// The run's id.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Where it is.
    pub status: RunStatusView,
    /// 1 for its first checkpoint, +1 for each one after.
    #[schema(minimum = 0)]
    pub revision: u64,
    /// Steps done.
    #[schema(minimum = 0)]
    pub position: usize,
    /// The current step (`null` once completed).
    pub current_step: Option<String>,
    /// Failed attempts at the current step so far.
    #[schema(minimum = 0)]
    pub attempts: u32,
    /// The latest error.
    pub last_error: Option<String>,
    /// The run's trace id.
    pub trace_id: String,
    /// Where a fork comes from.
    pub origin: Option<OriginView>,
    /// What a waiting run waits on.
    pub waiting_on: Option<InterruptView>,
    /// Unix milliseconds: started (or forked).
    #[schema(minimum = 0)]
    pub created_at_ms: u64,
    /// Unix milliseconds: last saved.
    #[schema(minimum = 0)]
    pub updated_at_ms: u64,
    /// Unix milliseconds: completed, failed or cancelled.
    #[schema(minimum = 0)]
    pub finished_at_ms: Option<u64>,
    /// The workflow's state before the current step.
    #[schema(value_type = Object)]
    pub state: Value,
    /// The run's checkpoints, oldest first (fork from any of them).
    pub history: Vec<HistoryView>,
}

/// Where a fork comes from.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct OriginView {
    /// The run forked.
    pub run_id: String,
    /// The checkpoint it was forked at.
    pub checkpoint_id: String,
    /// The origin run's trace id.
    pub trace_id: String,
}

/// What a waiting run waits on.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct InterruptView {
    /// The interrupt's (or effect's) name.
    pub name: String,
    /// The step (`step/branch` in a fan-out) that asked.
    pub step: String,
    /// `interrupt`, `unknown_effect` or `paused_on_error`.
    pub kind: String,
    /// What the step shows the person.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// One checkpoint of a run.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct HistoryView {
    /// The checkpoint (fork from it).
    pub checkpoint_id: String,
    /// The record's revision.
    #[schema(minimum = 0)]
    pub revision: u64,
    /// The run's status in it.
    pub status: RunStatusView,
    /// The current step in it.
    pub step: Option<String>,
    /// The agent that wrote it.
    pub agent: String,
    /// Unix milliseconds.
    #[schema(minimum = 0)]
    pub created_at_ms: u64,
}

impl From<HistoryEntry> for HistoryView {
    fn from(entry: HistoryEntry) -> Self {
        Self {
            checkpoint_id: entry.checkpoint_id.to_string(),
            revision: entry.revision,
            status: entry.status.into(),
            step: entry.step,
            agent: entry.agent,
            created_at_ms: entry.created_at_ms,
        }
    }
}

impl RunView {
    pub(crate) fn new(record: RunRecord, history: Vec<HistoryEntry>) -> Self {
        Self {
            status: record.status.into(),
            revision: record.revision,
            position: record.position,
            current_step: record.current_step,
            attempts: record.attempts,
            last_error: record.last_error,
            trace_id: record.trace_id,
            origin: record.origin.map(|o| OriginView {
                run_id: o.run_id,
                checkpoint_id: o.checkpoint_id.to_string(),
                trace_id: o.trace_id,
            }),
            waiting_on: record.interrupt.map(|i| InterruptView {
                name: i.name,
                step: i.step,
                kind: match i.kind {
                    InterruptKind::Interrupt => "interrupt",
                    InterruptKind::UnknownEffect => "unknown_effect",
                    _ => "paused_on_error",
                }
                .to_owned(),
                payload: i.payload,
            }),
            created_at_ms: record.timings.created_at_ms,
            updated_at_ms: record.timings.updated_at_ms,
            finished_at_ms: record.timings.finished_at_ms,
            state: record.state,
            history: history.into_iter().map(HistoryView::from).collect(),
            run_id: record.run_id,
            workflow: record.workflow,
        }
    }
}

/// `GET /api/workflows/runs`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct RunList {
    /// The runs, as their newest checkpoints say.
    pub runs: Vec<RunSummaryView>,
}

/// A run in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct RunSummaryView {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Its status.
    pub status: RunStatusView,
    /// Its current step.
    pub step: Option<String>,
    /// Its newest checkpoint.
    pub checkpoint_id: String,
    /// That checkpoint's revision.
    #[schema(minimum = 0)]
    pub revision: u64,
}

impl From<RunSummary> for RunSummaryView {
    fn from(run: RunSummary) -> Self {
        Self {
            run_id: run.run_id,
            workflow: run.workflow,
            status: run.status.into(),
            step: run.step,
            checkpoint_id: run.checkpoint_id.to_string(),
            revision: run.revision,
        }
    }
}

/// `GET /api/workflows`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct WorkflowList {
    /// The registered workflows, by name.
    pub workflows: Vec<WorkflowView>,
}

/// A registered workflow.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct WorkflowView {
    /// Its name (what `execute`'s `workflow` selects).
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its steps, in order.
    pub steps: Vec<StepView>,
}

/// A step of a workflow.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct StepView {
    /// Its name.
    pub name: String,
    /// The agent that owns it (for a fan-out, the one that joins).
    pub agent: String,
    /// A fan-out's branches; empty for a plain step.
    pub branches: Vec<BranchView>,
}

/// A branch of a fan-out step.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[non_exhaustive]
pub struct BranchView {
    /// Its name.
    pub name: String,
    /// Its agent.
    pub agent: String,
}

impl From<WorkflowInfo> for WorkflowView {
    fn from(info: WorkflowInfo) -> Self {
        Self {
            name: info.name,
            description: info.description,
            steps: info
                .steps
                .into_iter()
                .map(|step| StepView {
                    name: step.name,
                    agent: step.agent,
                    branches: step
                        .branches
                        .into_iter()
                        .map(|(name, agent)| BranchView { name, agent })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A durable error as the HTTP answer: refusals of the request are 4xx (nothing was written),
/// a run running elsewhere 409 naming where, a store or lease failure 503 or 500.
pub(crate) fn durable_error(error: DurableError, replica: &str) -> ApiError {
    match error {
        DurableError::UnknownWorkflow { .. } | DurableError::RunNotFound { .. } => {
            ApiError::NotFound(error.to_string())
        }
        DurableError::InvalidRunId { .. }
        | DurableError::BadState { .. }
        | DurableError::BadInput { .. } => ApiError::BadRequest(error.to_string()),
        DurableError::AlreadyRunning { run_id } => ApiError::Conflict(format!(
            "workflow run {run_id:?} is already executing on this replica ({replica:?})"
        )),
        DurableError::LeasedElsewhere { run_id, owner } => ApiError::Conflict(format!(
            "workflow run {run_id:?} is running on replica {owner:?}"
        )),
        // A checkpoint that exists but is another run's: the request is well formed, it
        // conflicts with what the checkpoint is.
        DurableError::RunExists { .. }
        | DurableError::WrongStatus { .. }
        | DurableError::ForeignCheckpoint { .. } => ApiError::Conflict(error.to_string()),
        DurableError::Conflict { run_id, .. } => ApiError::Conflict(format!(
            "workflow run {run_id:?} was advanced by another writer at the same time (another \
             replica or process); this call stopped without saving. Call again to go on from \
             its latest checkpoint"
        )),
        DurableError::LeaseLost { .. } | DurableError::Lease(_) => {
            ApiError::Unavailable(error.to_string())
        }
        DurableError::Checkpoint(error) => crate::api::checkpoint_error(error),
        other => ApiError::internal(other),
    }
}
