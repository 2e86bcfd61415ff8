//! A run's checkpoints: where a run resumes, and fenced saves so that two writers of one run
//! (two replicas on one PostgreSQL, two processes on one folder) cannot fork its history.
//!
//! Each checkpoint of a run belongs to the agent whose step it records (its `agent_id`); the
//! run id is its `workflow_id`. The checkpoint store orders and fences checkpoints per
//! `(agent_id, workflow_id)`, so the journal keeps, per agent of the workflow, the newest
//! checkpoint it saw (its *head*), and every save expects exactly that head
//! ([`Parent::Expect`]): a save fails with a conflict when anybody else saved under that agent
//! since. Heads are read *before* the resume point is chosen, so a head is never newer than
//! the checkpoint the run resumes from.
//!
//! Why this is enough: from a given resume point the step schedule is fixed, so two writers
//! resuming from the same point save the same next step under the same agent, expecting the
//! same head; the store lets exactly one of them through (PostgreSQL atomically; the
//! filesystem store across processes by its lock). A writer that resumed from an older point
//! expects an older head of the agent it saves under next, which the faster writer has
//! already replaced. A new run first saves its start (no step done yet) expecting an empty
//! history, so two replicas starting one run at once decide who runs before any step runs.
//!
//! The run-level order across agents is kept in each checkpoint's labels: `run.step` (steps
//! done) and `run.previous` (the run's checkpoint before this one).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bulwark::checkpoint::ListFilter;
//! use bulwark_server::{AppState, config::Config, router};
//! use tower::ServiceExt;
//!
//! let dir = std::env::temp_dir().join(format!("bulwark-journal-doc-{}", std::process::id()));
//! let mut config = Config::default();
//! config.server.data_dir = dir.clone();
//! config.demo.failure_rate = 0.0;
//! let state = AppState::from_config(&config).await?;
//! let request = axum::http::Request::post("/api/workflows/run-7/execute")
//!     .body(axum::body::Body::empty())?;
//! let reply = router(state.clone()).oneshot(request).await?;
//! assert_eq!(reply.status(), 200);
//! // The start, then one checkpoint per step, each owned by the step's agent.
//! let mut items = state.checkpoint_manager().list(&ListFilter::all().workflow_id("run-7")).await?.items;
//! items.sort_by_key(|m| m.labels["run.step"].parse::<u32>().unwrap());
//! let agents: Vec<&str> = items.iter().map(|m| m.agent_id.as_str()).collect();
//! assert_eq!(agents, ["researcher", "researcher", "analyst", "writer", "reviewer"]);
//! for pair in items.windows(2) {
//!     assert_eq!(pair[1].labels["run.previous"], pair[0].id.to_string()); // one chain
//! }
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;

use bulwark::checkpoint::{
    CheckpointError, CheckpointId, ListFilter, Parent, SaveOptions, StateCheckpointManager,
    StoreError,
};

use super::runner::RunState;
use crate::error::ApiError;

/// Label holding the number of steps a checkpoint's state has completed.
pub const STEP_LABEL: &str = "run.step";
/// Label holding the id of the run's checkpoint before this one (any agent).
pub const PREVIOUS_LABEL: &str = "run.previous";

/// The checkpoints of one run, as one writer sees them.
#[derive(Debug)]
pub(crate) struct Journal {
    manager: StateCheckpointManager,
    run_id: String,
    heads: HashMap<String, Option<CheckpointId>>,
    last: Option<CheckpointId>,
}

/// Where a run resumes: its newest valid checkpoint and the state in it.
#[derive(Debug)]
pub(crate) struct Resumed {
    pub(crate) id: CheckpointId,
    pub(crate) state: RunState,
}

impl Journal {
    /// Reads the heads of `agents` for `run_id`, then the run's newest valid checkpoint of
    /// any agent (corrupt ones are skipped and logged).
    pub(crate) async fn open(
        manager: &StateCheckpointManager,
        run_id: &str,
        agents: Vec<String>,
    ) -> Result<(Self, Option<Resumed>), ApiError> {
        let mut heads = HashMap::new();
        for agent in agents {
            if heads.contains_key(&agent) {
                continue;
            }
            let filter = ListFilter::workflow(&agent, run_id).newest_first().limit(1);
            let page = manager
                .list(&filter)
                .await
                .map_err(crate::api::checkpoint_error)?;
            heads.insert(agent, page.items.first().map(|m| m.id));
        }
        let resumed = newest_valid(manager, run_id).await?;
        let journal = Self {
            manager: manager.clone(),
            run_id: run_id.to_owned(),
            heads,
            last: resumed.as_ref().map(|r| r.id),
        };
        Ok((journal, resumed))
    }

    /// The run's newest checkpoint as this writer knows it.
    pub(crate) fn last(&self) -> Option<CheckpointId> {
        self.last
    }

    /// Saves `state` under `agent`, fenced on the agent's head; a conflict (another writer
    /// saved first) is a 409 and stores nothing.
    pub(crate) async fn save(
        &mut self,
        agent: &str,
        state: &RunState,
    ) -> Result<CheckpointId, ApiError> {
        let expected = match self.heads.get(agent) {
            Some(head) => *head,
            None => {
                // An agent not named at open time: its head now is the best fence left.
                let filter = ListFilter::workflow(agent, &self.run_id)
                    .newest_first()
                    .limit(1);
                let page = self
                    .manager
                    .list(&filter)
                    .await
                    .map_err(crate::api::checkpoint_error)?;
                page.items.first().map(|m| m.id)
            }
        };
        let mut options = SaveOptions::default()
            .parent(Parent::Expect(expected))
            .label(STEP_LABEL, state.steps_completed.to_string());
        if let Some(previous) = self.last {
            options = options.label(PREVIOUS_LABEL, previous.to_string());
        }
        let saved = self
            .manager
            .save_with(state, agent, &self.run_id, options)
            .await
            .map_err(|error| save_error(&self.run_id, error))?;
        self.heads.insert(agent.to_owned(), Some(saved.id));
        self.last = Some(saved.id);
        Ok(saved.id)
    }
}

fn save_error(run_id: &str, error: CheckpointError) -> ApiError {
    match error {
        CheckpointError::Store(StoreError::Conflict { .. }) => {
            tracing::warn!(run = run_id, %error, "another writer advanced the run first");
            ApiError::Conflict(format!(
                "workflow run {run_id:?} was advanced by another writer at the same time \
                 (another replica or process); nothing was saved by this call. Call again to \
                 resume from its latest checkpoint"
            ))
        }
        other => crate::api::checkpoint_error(other),
    }
}

async fn newest_valid(
    manager: &StateCheckpointManager,
    run_id: &str,
) -> Result<Option<Resumed>, ApiError> {
    let mut filter = ListFilter::all()
        .workflow_id(run_id)
        .newest_first()
        .limit(16);
    loop {
        let page = manager
            .list(&filter)
            .await
            .map_err(crate::api::checkpoint_error)?;
        for meta in page.items {
            match manager.load_checkpoint::<RunState>(&meta.id).await {
                Ok(state) => return Ok(Some(Resumed { id: meta.id, state })),
                // Deleted since it was listed.
                Err(CheckpointError::NotFound { .. }) => {}
                Err(error) if error.is_corruption() => {
                    tracing::warn!(checkpoint = %meta.id, %error, "skipping a corrupt checkpoint");
                }
                Err(error) => return Err(crate::api::checkpoint_error(error)),
            }
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return Ok(None),
        }
    }
}
