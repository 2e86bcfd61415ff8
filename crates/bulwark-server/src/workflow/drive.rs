//! Start-or-go-on for `execute`, and recovery of the runs nobody drives.

use std::time::Duration;

use bulwark::durable::{DurableError, RunStatus};
use serde_json::Value;

use super::Workflows;
use super::outcome::{RunOutcome, durable_error};
use crate::error::ApiError;

impl Workflows {
    /// Starts run `run_id` of `workflow` on `start`, or takes it on from where it is: a run left
    /// `running` by nobody here is recovered, a `waiting` one resumed with `input`, a
    /// completed one answered as it is. Failed and cancelled runs, and runs of another
    /// workflow, are refused (409) without writing.
    pub(crate) async fn execute(
        &self,
        run_id: &str,
        workflow: &str,
        start: Value,
        input: Value,
    ) -> Result<RunOutcome, ApiError> {
        let executor = self.executor();
        let error = |e: DurableError| durable_error(e, self.replica());
        let steps: Vec<String> = executor
            .workflows()
            .into_iter()
            .find(|info| info.name == workflow)
            .map(|info| info.steps.into_iter().map(|s| s.name).collect())
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no workflow named {workflow:?}; registered: {}",
                    self.names().join(", ")
                ))
            })?;
        let (record, before) = match executor.get_with_checkpoint(run_id).await {
            Err(DurableError::RunNotFound { .. }) => {
                let record = executor
                    .start_with_id(workflow, run_id, &start)
                    .await
                    .map_err(error)?;
                (record, None)
            }
            Err(other) => return Err(error(other)),
            Ok((record, checkpoint)) => {
                if record.workflow != workflow {
                    return Err(ApiError::Conflict(format!(
                        "workflow run {run_id:?} belongs to workflow {:?}, not {workflow:?}",
                        record.workflow
                    )));
                }
                let before = Some((record.position, checkpoint.to_string()));
                let record = match record.status {
                    RunStatus::Running => executor.recover(run_id).await.map_err(error)?,
                    RunStatus::Waiting => executor.resume(run_id, input).await.map_err(error)?,
                    RunStatus::Completed => record,
                    status => {
                        return Err(ApiError::Conflict(format!(
                            "workflow run {run_id:?} is {status}; fork it from one of its \
                             checkpoints to run it again"
                        )));
                    }
                };
                (record, before)
            }
        };
        let steps_total = steps.len();
        let done_before = before.as_ref().map_or(0, |(position, _)| *position);
        let done = if record.status == RunStatus::Completed {
            steps_total
        } else {
            record.position
        };
        for step in steps.iter().take(done).skip(done_before) {
            self.record_step(workflow, step, true);
        }
        if matches!(record.status, RunStatus::Waiting | RunStatus::Failed)
            && let Some(step) = steps.get(done)
        {
            self.record_step(workflow, step, false);
        }
        let latest = match executor.get_with_checkpoint(run_id).await {
            Ok((_, checkpoint)) => Some(checkpoint.to_string()),
            Err(e) => {
                tracing::warn!(run_id, error = %e, "cannot read the run's latest checkpoint");
                None
            }
        };
        Ok(RunOutcome::new(&record, latest, steps_total, before))
    }

    /// Every `every`, continues each run left `running` that nobody drives: here, the
    /// runs of a process that died; with leases, also those of a replica whose lease
    /// expired (a run leased by a live replica is refused by its lease and left to it).
    /// Each recovered run holds a task token of `state`, so shutdown waits for it.
    pub(crate) async fn recover_forever(self, state: crate::state::AppState, every: Duration) {
        loop {
            match self
                .executor()
                .list_runs(None, Some(RunStatus::Running))
                .await
            {
                Ok(runs) => {
                    for run in runs {
                        if self.executor().is_running_here(&run.run_id) {
                            continue;
                        }
                        let (workflows, token) = (self.clone(), state.tasks().token(&state));
                        tokio::spawn(async move {
                            let _token = token;
                            match workflows.executor().recover(&run.run_id).await {
                                Ok(record) => tracing::info!(
                                    run_id = run.run_id,
                                    status = %record.status,
                                    "recovered run stopped"
                                ),
                                Err(
                                    DurableError::LeasedElsewhere { .. }
                                    | DurableError::AlreadyRunning { .. }
                                    | DurableError::WrongStatus { .. },
                                ) => {}
                                Err(e) => {
                                    tracing::warn!(run_id = run.run_id, error = %e, "recovery failed")
                                }
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list the runs to recover"),
            }
            tokio::time::sleep(every).await;
        }
    }
}
