//! A run being executed: its record and heads behind one lock, changed and saved as a unit.

use std::sync::{Arc, Mutex, PoisonError};

use super::error::{DurableError, StepError};
use super::record::RunRecord;
use super::store::{Heads, RunStore};

struct Live {
    record: RunRecord,
    heads: Heads,
}

/// Shared by the driver and every [`StepContext`](super::StepContext) of one run.
pub(crate) struct RunShared {
    pub(crate) run_id: Arc<str>,
    pub(crate) trace_id: Arc<str>,
    store: RunStore,
    live: Arc<tokio::sync::Mutex<Live>>,
    /// The first save that failed; once set, every later update fails too.
    failure: Mutex<Option<DurableError>>,
}

/// A save of the run failed; the driver reports why ([`RunShared::take_failure`]).
#[derive(Debug)]
pub(crate) struct SaveFailed;

impl From<SaveFailed> for StepError {
    fn from(_: SaveFailed) -> Self {
        StepError::fatal("the run's checkpoint could not be saved")
    }
}

impl RunShared {
    pub(crate) fn new(store: RunStore, record: RunRecord, heads: Heads) -> Arc<Self> {
        Arc::new(Self {
            run_id: record.run_id.as_str().into(),
            trace_id: record.trace_id.as_str().into(),
            store,
            live: Arc::new(tokio::sync::Mutex::new(Live { record, heads })),
            failure: Mutex::new(None),
        })
    }

    /// A copy of the record as it is now.
    pub(crate) async fn snapshot(&self) -> RunRecord {
        self.live.lock().await.record.clone()
    }

    /// Runs `f` on the record and, when it returns `true` beside its result, saves the record
    /// under `agent`. Both happen in a task of their own that holds the lock throughout: a
    /// caller cancelled mid-save (a timed-out attempt, a cancelled run, a losing branch)
    /// cannot leave a save half done or let another one overtake it.
    pub(crate) async fn update<R, F>(&self, agent: &str, f: F) -> Result<R, SaveFailed>
    where
        R: Send + 'static,
        F: FnOnce(&mut RunRecord) -> (R, bool) + Send + 'static,
    {
        if self.failed() {
            return Err(SaveFailed);
        }
        let live = Arc::clone(&self.live);
        let store = self.store.clone();
        let agent = agent.to_owned();
        let task = tokio::spawn(async move {
            let mut guard = live.lock_owned().await;
            let live = &mut *guard;
            let (result, save) = f(&mut live.record);
            if save {
                store
                    .save(&mut live.record, &mut live.heads, &agent)
                    .await?;
            }
            Ok::<R, DurableError>(result)
        });
        match task.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => {
                self.fail(error);
                Err(SaveFailed)
            }
            Err(join) => {
                self.fail(DurableError::Checkpoint(
                    crate::checkpoint::CheckpointError::Store(
                        crate::checkpoint::StoreError::Task {
                            reason: join.to_string(),
                        },
                    ),
                ));
                Err(SaveFailed)
            }
        }
    }

    fn failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn fail(&self, error: DurableError) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_none() {
            tracing::warn!(run_id = %self.run_id, %error, "run stopped: its checkpoint could not be saved");
            *failure = Some(error);
        }
    }

    /// Why the run stopped on a failed save (the error itself the first time it is asked).
    pub(crate) fn stop_error(&self) -> DurableError {
        self.take_failure().unwrap_or_else(|| {
            DurableError::Checkpoint(crate::checkpoint::CheckpointError::Store(
                crate::checkpoint::StoreError::Task {
                    reason: format!("a save of run {:?} failed earlier", self.run_id),
                },
            ))
        })
    }

    /// Why a save failed, once one has.
    pub(crate) fn take_failure(&self) -> Option<DurableError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
