//! Runs as data: the [`RunRecord`] every checkpoint of a run holds, and its parts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::CheckpointId;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Being executed, or was when its executor died (then [`Executor::recover`](super::Executor::recover) continues it).
    Running,
    /// Paused at an interrupt (or a `pause` error) until [`Executor::resume`](super::Executor::resume).
    Waiting,
    /// Every step is done.
    Completed,
    /// A step failed for good.
    Failed,
    /// Cancelled by [`Executor::cancel`](super::Executor::cancel).
    Cancelled,
}

impl RunStatus {
    /// Completed, failed or cancelled: nothing will run any more.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Waiting,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the ledger knows of one memoized effect. An effect that is absent was never started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EffectState {
    /// Recorded before the call; still so after a crash: the outcome is unknown.
    Started,
    /// The call returned this result (serialized), recorded before the step went on.
    Done {
        /// The result.
        result: Value,
    },
    /// The call returned an error: it may be called again (with the same key).
    Failed {
        /// The error.
        error: String,
    },
}

/// One memoized effect in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EffectRecord {
    /// The idempotency key handed to the call (kept from the origin run in a fork).
    pub key: String,
    /// Where it is.
    #[serde(flatten)]
    pub state: EffectState,
    /// Calls started so far (more than one only when a call failed or its outcome was unknown).
    pub calls: u32,
}

/// Why a run waits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InterruptKind {
    /// `ctx.interrupt(name, payload)`: the resume input is the interrupt's answer.
    Interrupt,
    /// An effect's outcome is unknown and its policy asks a person: the resume input is a
    /// [`Resolution`](super::Resolution).
    UnknownEffect,
    /// A step failed with a `pause` error: resume runs it again (the input is ignored).
    PausedOnError,
}

/// The interrupt a waiting run waits on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PendingInterrupt {
    /// The interrupt's (or effect's) name.
    pub name: String,
    /// The step (for a fan-out branch, `step/branch`) that asked.
    pub step: String,
    /// Why the run waits.
    pub kind: InterruptKind,
    /// What the step shows the person (the interrupt's payload, the effect's key, the error).
    pub payload: Value,
}

/// Where a forked run comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Origin {
    /// The run forked.
    pub run_id: String,
    /// The checkpoint the fork started from.
    pub checkpoint_id: CheckpointId,
    /// That checkpoint's revision in the origin run.
    pub revision: u64,
    /// The origin run's trace id (the fork's trace links to it).
    pub trace_id: String,
}

/// When things happened, in Unix milliseconds (wall clock).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timings {
    /// The run was started (or forked).
    pub created_at_ms: u64,
    /// The record was last saved.
    pub updated_at_ms: u64,
    /// The current step's first attempt started.
    pub step_started_at_ms: Option<u64>,
    /// The run completed, failed or was cancelled.
    pub finished_at_ms: Option<u64>,
}

/// A settled branch of the current fan-out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BranchRecord {
    /// The branch's output (serialized), or its error after its retries.
    pub outcome: Result<Value, String>,
}

/// A run, as every one of its checkpoints stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunRecord {
    /// The run's id (its checkpoints' `workflow_id`).
    pub run_id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// Where it is.
    pub status: RunStatus,
    /// 1 for its first checkpoint, +1 for each one after.
    pub revision: u64,
    /// Index of the current step in the workflow (the number of steps done).
    pub position: usize,
    /// The current step's name (`None` once completed).
    pub current_step: Option<String>,
    /// Failed attempts at the current step so far.
    pub attempts: u32,
    /// The latest error (of an attempt, a step, or why the run stopped).
    pub last_error: Option<String>,
    /// When things happened.
    pub timings: Timings,
    /// The run's trace id (32 hex digits), kept across resumes; step spans record it.
    pub trace_id: String,
    /// Where a fork comes from.
    pub origin: Option<Origin>,
    /// The memoized effects, by `step/effect` (for a branch `step/branch/effect`).
    pub effects: BTreeMap<String, EffectRecord>,
    /// Inputs delivered by [`Executor::resume`](super::Executor::resume), by `step/interrupt`.
    pub inputs: BTreeMap<String, Value>,
    /// What a waiting run waits on.
    pub interrupt: Option<PendingInterrupt>,
    /// The current fan-out's settled branches, by branch name.
    pub branches: BTreeMap<String, BranchRecord>,
    /// The workflow's state before the current step (after the last one once completed).
    pub state: Value,
}

impl RunRecord {
    pub(crate) fn new(
        run_id: &str,
        workflow: &str,
        first_step: Option<&str>,
        state: Value,
    ) -> Self {
        let now = unix_millis();
        Self {
            run_id: run_id.to_owned(),
            workflow: workflow.to_owned(),
            status: RunStatus::Running,
            revision: 0,
            position: 0,
            current_step: first_step.map(str::to_owned),
            attempts: 0,
            last_error: None,
            timings: Timings {
                created_at_ms: now,
                updated_at_ms: now,
                step_started_at_ms: None,
                finished_at_ms: None,
            },
            trace_id: new_trace_id(),
            origin: None,
            effects: BTreeMap::new(),
            inputs: BTreeMap::new(),
            interrupt: None,
            branches: BTreeMap::new(),
            state,
        }
    }

    /// Deserializes the state as the workflow's state type.
    pub fn state_as<S: serde::de::DeserializeOwned>(&self) -> Result<S, serde_json::Error> {
        S::deserialize(&self.state)
    }

    pub(crate) fn finish(&mut self, status: RunStatus) {
        self.status = status;
        self.timings.finished_at_ms = Some(unix_millis());
    }
}

/// One checkpoint in a run's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The checkpoint (pass it to [`Executor::fork`](super::Executor::fork)).
    pub checkpoint_id: CheckpointId,
    /// The record's revision.
    pub revision: u64,
    /// The run's status in it.
    pub status: RunStatus,
    /// The current step in it.
    pub step: Option<String>,
    /// The agent that wrote it (the step's owner).
    pub agent: String,
    /// When it was saved, Unix milliseconds.
    pub created_at_ms: u64,
}

/// A run as [`Executor::list_runs`](super::Executor::list_runs) reports it, from its newest
/// checkpoint's metadata alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSummary {
    /// The run.
    pub run_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Its status.
    pub status: RunStatus,
    /// Its current step.
    pub step: Option<String>,
    /// Its newest checkpoint.
    pub checkpoint_id: CheckpointId,
    /// That checkpoint's revision.
    pub revision: u64,
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// 32 lowercase hex digits, never all zero (a UUIDv7: time-ordered and 74 random bits).
pub(crate) fn new_trace_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
