//! The server's workflows: a thin user of [`bulwark::durable`]. The demo and any workflow a
//! service registers are [`Workflow`](bulwark::durable::Workflow)s on one
//! [`Executor`](bulwark::durable::Executor) over the server's checkpoint manager (with
//! PostgreSQL leases when checkpoints are in PostgreSQL, so replicas share runs); the HTTP
//! routes of [`crate::api`] call it, and [`Workflows::recover`] continues the runs a dead
//! process left `running`.
//!
//! `POST /api/workflows/{id}/execute` is "start or go on": a new id starts a run; a run left
//! `running` by nobody here is recovered; a `waiting` one (an interrupt, or a step that gave up
//! with a `pause` error, as the demo's steps do once their pipeline gives up) is resumed; a
//! completed one is answered as it is; one running here, leased by another replica, failed or
//! cancelled is a 409 saying so.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bulwark::durable::{RunStatus, StepError, Workflow};
//! use bulwark_server::AppState;
//! use serde_json::{Value, json};
//!
//! let dir = tempfile::tempdir()?;
//! let state = AppState::new(dir.path()).await?;
//! state.workflows().register(
//!     Workflow::new("greet")
//!         .description("says hello, then goodbye")
//!         .step("hello", "greeter", |ctx, mut s: Value| async move {
//!             let who: String = ctx
//!                 .effect("lookup", |_key| async { Ok::<_, StepError>("world".to_owned()) })
//!                 .await?;
//!             s["hello"] = json!(who);
//!             Ok(s)
//!         })
//!         .step("goodbye", "greeter", |_ctx, mut s: Value| async move {
//!             s["goodbye"] = json!("moon");
//!             Ok(s)
//!         }),
//! )?;
//! assert_eq!(state.workflows().names(), ["demo", "greet"]);
//! let run = state.workflows().executor().start_with_id("greet", "g-1", &json!({})).await?;
//! assert_eq!(run.status, RunStatus::Completed);
//! assert_eq!(run.state["hello"], "world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod counted;
mod demo;
mod drive;
mod outcome;

use bulwark::durable::{DurableError, Executor, Workflow};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use counted::counted_workflow;
pub use counted::{COUNTED_WORKFLOW, Counted};
pub use demo::{DEMO_WORKFLOW, FlakyTool, ToolError, demo_workflow};
pub(crate) use outcome::durable_error;
pub use outcome::{
    BranchView, HistoryView, InterruptView, OriginView, RunList, RunOutcome, RunStatusView,
    RunSummaryView, RunView, StepView, WorkflowList, WorkflowView,
};

/// The server's workflows and the executor that runs them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Workflows {
    executor: Executor,
    replica: String,
    metrics: bulwark::telemetry::metrics::MetricsRegistry,
}

impl Workflows {
    pub(crate) fn new(
        executor: Executor,
        replica: String,
        metrics: bulwark::telemetry::metrics::MetricsRegistry,
    ) -> Self {
        Self {
            executor,
            replica,
            metrics,
        }
    }

    /// Counts a step of `workflow` in `bulwark_workflow_steps_total` (as completed or failed).
    pub(crate) fn record_step(&self, workflow: &str, step: &str, ok: bool) {
        use crate::telemetry::WORKFLOW_STEPS_TOTAL;
        let outcome = if ok { "completed" } else { "failed" };
        let labels = [("workflow", workflow), ("step", step), ("outcome", outcome)];
        if let Err(error) = self
            .metrics
            .increment_counter(WORKFLOW_STEPS_TOTAL, &labels)
        {
            tracing::debug!(%error, "step counter refused");
        }
    }

    /// Registers a workflow next to the demo; refused when the name is taken or the
    /// definition is invalid (no steps, a repeated step name, a bad join).
    pub fn register<S>(&self, workflow: Workflow<S>) -> Result<(), DurableError>
    where
        S: Serialize + DeserializeOwned + Send + 'static,
    {
        self.executor.register(workflow)
    }

    /// Every registered workflow's name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.executor
            .workflows()
            .into_iter()
            .map(|info| info.name)
            .collect()
    }

    /// The executor (start, resume, cancel, fork, list and history of runs).
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// This replica's name: the owner of the leases it takes, and what a 409 names.
    pub fn replica(&self) -> &str {
        &self.replica
    }
}

/// Whether `id` may name a workflow run (and so a checkpoint key): 1 to 128 characters from
/// `A-Z a-z 0-9 . _ -`, not starting with a dot (so never `.` or `..`).
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
