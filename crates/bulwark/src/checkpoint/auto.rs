//! [`AutoCheckpointer`]: checkpoint every N operations, or every T, without thinking about it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::{Parent, SaveOptions};
use super::error::CheckpointError;
use super::id::CheckpointId;
use super::manager::StateCheckpointManager;
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};

/// Saves a workflow's state every `checkpoint_interval` operations, and optionally whenever
/// `time_interval` has passed since the last save. Each save records the previous one as its
/// parent, so the workflow's history is a chain; after
/// [`resume_from`](Self::resume_from) an earlier checkpoint, the next save branches from it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use bulwark::checkpoint::{AutoCheckpointer, StateCheckpointManager};
///
/// let dir = tempfile::tempdir()?;
/// let manager = StateCheckpointManager::open(dir.path()).await?;
/// let mut auto = AutoCheckpointer::new(manager.clone(), "agent-1", "wf-1", 3)?;
/// let mut saved = 0;
/// for step in 0..7u32 {
///     if auto.maybe_checkpoint(&step).await?.is_some() {
///         saved += 1;
///     }
/// }
/// assert_eq!(saved, 2); // after operations 3 and 6
/// let latest = manager.get_latest_checkpoint("agent-1", "wf-1").await?.unwrap();
/// assert_eq!(manager.load_checkpoint::<u32>(&latest).await?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct AutoCheckpointer<C: Clock = MonotonicClock> {
    manager: StateCheckpointManager,
    agent_id: String,
    workflow_id: String,
    checkpoint_interval: u64,
    time_interval: Option<Duration>,
    clock: C,
    operations: u64,
    last_save_nanos: u64,
    last: Option<CheckpointId>,
}

impl<C: Clock> fmt::Debug for AutoCheckpointer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoCheckpointer")
            .field("agent_id", &self.agent_id)
            .field("workflow_id", &self.workflow_id)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("time_interval", &self.time_interval)
            .field("operations", &self.operations)
            .field("last", &self.last)
            .finish()
    }
}

impl AutoCheckpointer<MonotonicClock> {
    /// Checkpoints `agent_id`'s `workflow_id` every `checkpoint_interval` operations (at least 1).
    pub fn new(
        manager: StateCheckpointManager,
        agent_id: impl Into<String>,
        workflow_id: impl Into<String>,
        checkpoint_interval: u64,
    ) -> Result<Self, CheckpointError> {
        let agent_id = agent_id.into();
        let workflow_id = workflow_id.into();
        super::config::validate_name("agent_id", &agent_id)?;
        super::config::validate_name("workflow_id", &workflow_id)?;
        if checkpoint_interval == 0 {
            return Err(CheckpointError::InvalidInput {
                what: "checkpoint_interval",
                reason: "must be at least 1".into(),
            });
        }
        let clock = MonotonicClock::new();
        Ok(Self {
            manager,
            agent_id,
            workflow_id,
            checkpoint_interval,
            time_interval: None,
            last_save_nanos: clock.now_nanos(),
            clock,
            operations: 0,
            last: None,
        })
    }
}

impl<C: Clock> AutoCheckpointer<C> {
    /// Also checkpoints when `interval` has passed since the last save.
    ///
    /// The interval is checked only inside [`maybe_checkpoint`](Self::maybe_checkpoint): there
    /// is no timer, so an agent that stops calling it (idle, or blocked in a long call) saves
    /// nothing until its next call, however long that takes. Call
    /// [`force_checkpoint`](Self::force_checkpoint) before a long wait, or from your own timer
    /// (e.g. a `tokio::time::interval` in the task that owns the checkpointer), when the state
    /// must be saved on time.
    pub fn with_time_interval(mut self, interval: Duration) -> Self {
        self.time_interval = Some(interval);
        self
    }

    /// Measures the time interval on `clock` (a [`ManualClock`](crate::clock::ManualClock) in
    /// tests).
    pub fn with_clock<C2: Clock>(self, clock: C2) -> AutoCheckpointer<C2> {
        AutoCheckpointer {
            last_save_nanos: clock.now_nanos(),
            clock,
            manager: self.manager,
            agent_id: self.agent_id,
            workflow_id: self.workflow_id,
            checkpoint_interval: self.checkpoint_interval,
            time_interval: self.time_interval,
            operations: self.operations,
            last: self.last,
        }
    }

    /// Counts one operation and saves `state` when the operation count or the time interval
    /// says so; returns the new checkpoint's id when it saved.
    pub async fn maybe_checkpoint<T: Serialize + ?Sized>(
        &mut self,
        state: &T,
    ) -> Result<Option<CheckpointId>, CheckpointError> {
        self.operations = self.operations.saturating_add(1);
        let by_count = self.operations >= self.checkpoint_interval;
        let by_time = self.time_interval.is_some_and(|interval| {
            self.clock.now_nanos().saturating_sub(self.last_save_nanos)
                >= duration_to_nanos(interval)
        });
        if by_count || by_time {
            self.force_checkpoint(state).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Saves `state` now and restarts both counters.
    pub async fn force_checkpoint<T: Serialize + ?Sized>(
        &mut self,
        state: &T,
    ) -> Result<CheckpointId, CheckpointError> {
        let parent = self.last.map_or(Parent::Latest, Parent::Explicit);
        let save = |parent| {
            self.manager.save_with(
                state,
                &self.agent_id,
                &self.workflow_id,
                SaveOptions::default().parent(parent),
            )
        };
        let metadata = match save(parent).await {
            // The parent was removed meanwhile (by a retention policy, say): follow the newest.
            Err(CheckpointError::NotFound { id }) if Some(id) == self.last => {
                save(Parent::Latest).await?
            }
            other => other?,
        };
        self.operations = 0;
        self.last_save_nanos = self.clock.now_nanos();
        self.last = Some(metadata.id);
        Ok(metadata.id)
    }

    /// Loads checkpoint `id` and continues the history from it: the next save's parent is `id`.
    pub async fn resume_from<T>(&mut self, id: &CheckpointId) -> Result<T, CheckpointError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let state = self.manager.load_checkpoint(id).await?;
        self.last = Some(*id);
        self.operations = 0;
        self.last_save_nanos = self.clock.now_nanos();
        Ok(state)
    }

    /// Loads the workflow's newest valid checkpoint, if any, and continues from it.
    pub async fn resume_latest<T>(&mut self) -> Result<Option<T>, CheckpointError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        match self
            .manager
            .get_latest_checkpoint(&self.agent_id, &self.workflow_id)
            .await?
        {
            Some(id) => self.resume_from(&id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The last checkpoint this checkpointer saved or resumed from.
    pub fn last_checkpoint(&self) -> Option<CheckpointId> {
        self.last
    }

    /// Operations counted since the last save.
    pub fn operations_since_checkpoint(&self) -> u64 {
        self.operations
    }
}
