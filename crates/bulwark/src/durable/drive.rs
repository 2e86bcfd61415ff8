//! The driver: runs a run's steps from its record until it completes, fails, waits or is
//! cancelled, saving the record at every transition.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;
use tracing::field::Empty;

use crate::clock::Clock;

use super::context::StepContext;
use super::definition::{
    BranchFailure, BranchNode, BranchOutcome, ErasedStep, Join, Node, WorkflowDef,
};
use super::error::{DurableError, ErrorClass, StepError};
use super::live::{RunShared, SaveFailed};
use super::record::{
    BranchRecord, InterruptKind, PendingInterrupt, RunRecord, RunStatus, unix_millis,
};
use super::retry::StepPolicy;

/// How a step (or a branch) ended in this executor.
enum Outcome {
    Done(Value),
    Failed(StepError),
    Paused(StepError),
}

/// Why a driver must stop before its step ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Nothing: go on.
    Go,
    /// [`Executor::cancel`](super::Executor::cancel): checkpoint the run as cancelled.
    Cancel,
    /// The lease is lost: stop without writing.
    LeaseLost,
}

/// Completes with the reason once `stop` leaves [`Stop::Go`]; never if its sender is gone.
async fn stopped(stop: &mut watch::Receiver<Stop>) -> Stop {
    let reason = stop.wait_for(|stop| *stop != Stop::Go).await.map(|r| *r);
    match reason {
        Ok(reason) => reason,
        Err(_) => std::future::pending().await,
    }
}

fn failure(run: &RunShared, _: SaveFailed) -> DurableError {
    run.take_failure()
        .unwrap_or_else(|| DurableError::Conflict {
            run_id: run.run_id.to_string(),
            expected: None,
            actual: None,
        })
}

/// Runs `run` until it stops; returns its final record.
pub(crate) async fn drive<C: Clock>(
    def: Arc<WorkflowDef>,
    run: Arc<RunShared>,
    clock: C,
    mut stop: watch::Receiver<Stop>,
) -> Result<RunRecord, DurableError> {
    loop {
        let record = run.snapshot().await;
        if record.status != RunStatus::Running {
            return Ok(record);
        }
        let Some(node) = def.nodes.get(record.position) else {
            let agent = def.nodes.last().map_or("", Node::agent);
            run.update(agent, |r| {
                r.current_step = None;
                r.finish(RunStatus::Completed);
                ((), true)
            })
            .await
            .map_err(|e| failure(&run, e))?;
            continue;
        };
        let span = tracing::info_span!(
            "workflow.step",
            step = node.name(),
            agent = node.agent(),
            run.id = %run.run_id,
            workflow.trace_id = %run.trace_id,
            otel.status_code = Empty,
        );
        let position = record.position;
        let work = run_node(node, &run, &clock, record).instrument(span.clone());
        let outcome = tokio::select! {
            biased;
            reason = stopped(&mut stop) => {
                if reason == Stop::LeaseLost {
                    return Err(DurableError::LeaseLost { run_id: run.run_id.to_string() });
                }
                None
            }
            outcome = work => Some(outcome),
        };
        if let Some(error) = run.take_failure() {
            return Err(error);
        }
        let name = node.name().to_owned();
        let next = def.nodes.get(position + 1).map(|n| n.name().to_owned());
        let updated = match outcome {
            None => {
                tracing::info!(parent: &span, "run cancelled mid-step");
                run.update(node.agent(), move |r| {
                    r.interrupt = None;
                    r.last_error = Some(format!("cancelled during step {name:?}"));
                    r.finish(RunStatus::Cancelled);
                    ((), true)
                })
                .await
            }
            Some(Outcome::Done(state)) => {
                run.update(node.agent(), move |r| {
                    r.state = state;
                    r.position += 1;
                    r.attempts = 0;
                    r.branches.clear();
                    r.last_error = None;
                    r.timings.step_started_at_ms = next.is_some().then(unix_millis);
                    r.current_step = next;
                    if r.current_step.is_none() {
                        r.finish(RunStatus::Completed);
                    }
                    ((), true)
                })
                .await
            }
            Some(Outcome::Failed(error)) => {
                mark_error(&span, &error);
                run.update(node.agent(), move |r| {
                    r.last_error = Some(format!("step {name:?}: {error}"));
                    r.interrupt = None;
                    r.finish(RunStatus::Failed);
                    ((), true)
                })
                .await
            }
            Some(Outcome::Paused(error)) => {
                run.update(node.agent(), move |r| {
                    r.status = RunStatus::Waiting;
                    r.last_error = Some(error.message.clone());
                    if r.interrupt.is_none() {
                        r.interrupt = Some(PendingInterrupt {
                            name: name.clone(),
                            step: name,
                            kind: InterruptKind::PausedOnError,
                            payload: Value::String(error.message),
                        });
                    }
                    ((), true)
                })
                .await
            }
        };
        updated.map_err(|e| failure(&run, e))?;
    }
}

/// Marks `span` as failed the way OpenTelemetry reads it: an ERROR status and an
/// `exception` event (an ERROR-level event in the span).
fn mark_error(span: &tracing::Span, error: &StepError) {
    span.record("otel.status_code", "ERROR");
    tracing::error!(parent: span, class = ?error.class, "{error}");
}

async fn run_node<C: Clock>(
    node: &Node,
    run: &Arc<RunShared>,
    clock: &C,
    record: RunRecord,
) -> Outcome {
    match node {
        Node::Step {
            name,
            agent,
            policy,
            run: f,
        } => {
            let task = Attempts {
                run: Arc::clone(run),
                clock: clock.clone(),
                policy: *policy,
                step: name.as_str().into(),
                agent: agent.as_str().into(),
                f: Arc::clone(f),
                persist: true,
            };
            task.run(record.state, record.attempts).await
        }
        Node::FanOut {
            name,
            policy,
            join,
            branches,
            merge,
            ..
        } => {
            let outcomes = match fan_out(run, clock, name, *policy, *join, branches, &record).await
            {
                Ok(outcomes) => outcomes,
                Err(outcome) => return outcome,
            };
            match merge(record.state, outcomes) {
                Ok(state) => Outcome::Done(state),
                Err(error) if error.class == ErrorClass::Pause => Outcome::Paused(error),
                Err(error) => Outcome::Failed(error),
            }
        }
    }
}

/// Runs the branches not settled yet; `Ok` with the settled branches' outcomes (in
/// definition order) once the join is satisfied.
async fn fan_out<C: Clock>(
    run: &Arc<RunShared>,
    clock: &C,
    name: &str,
    policy: StepPolicy,
    join: Join,
    branches: &[BranchNode],
    record: &RunRecord,
) -> Result<Vec<BranchOutcome<Value>>, Outcome> {
    let mut successes = record
        .branches
        .values()
        .filter(|b| b.outcome.is_ok())
        .count();
    let mut tasks = JoinSet::new();
    for (index, branch) in branches.iter().enumerate() {
        if record.branches.contains_key(&branch.name) {
            continue;
        }
        let span = tracing::info_span!("workflow.branch", branch = %branch.name, agent = %branch.agent, otel.status_code = Empty);
        let attempts = Attempts {
            run: Arc::clone(run),
            clock: clock.clone(),
            policy,
            step: format!("{name}/{}", branch.name).into(),
            agent: branch.agent.as_str().into(),
            f: Arc::clone(&branch.run),
            persist: false,
        };
        let input = record.state.clone();
        let task = async move { (index, attempts.run(input, 0).await) };
        tasks.spawn(task.instrument(span));
    }
    let mut paused = None;
    loop {
        if let Join::First(n) = join {
            if successes >= n {
                tasks.abort_all();
                // A branch that paused meanwhile does not hold the run: the join is satisfied.
                let _ = run.update(name, |r| ((r.interrupt = None), false)).await;
                paused = None;
                break;
            }
            let possible = successes + tasks.len();
            if possible < n && paused.is_none() {
                tasks.abort_all();
                return Err(Outcome::Failed(StepError::fatal(format!(
                    "only {possible} branches can succeed, the join needs {n}"
                ))));
            }
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, outcome) = match joined {
            Ok(joined) => joined,
            Err(error) => {
                return Err(Outcome::Failed(StepError::fatal(format!(
                    "a branch task ended: {error}"
                ))));
            }
        };
        let branch = &branches[index];
        let settled = match outcome {
            Outcome::Done(value) => {
                successes += 1;
                Ok(value)
            }
            Outcome::Failed(error) => Err(error),
            Outcome::Paused(error) => {
                paused.get_or_insert(error);
                continue;
            }
        };
        let failed = settled.as_ref().err().cloned();
        let branch_name = branch.name.clone();
        let saved = run
            .update(&branch.agent, move |r| {
                let outcome = settled.map_err(|e| e.to_string());
                r.branches.insert(branch_name, BranchRecord { outcome });
                ((), true)
            })
            .await;
        if saved.is_err() {
            return Err(Outcome::Failed(StepError::fatal(
                "the run's checkpoint could not be saved",
            )));
        }
        if let Some(error) = failed
            && branch.on_failure == BranchFailure::FailStep
        {
            tasks.abort_all();
            return Err(Outcome::Failed(StepError {
                message: format!("branch {:?}: {}", branch.name, error.message),
                ..error
            }));
        }
    }
    if let Some(error) = paused {
        return Err(Outcome::Paused(error));
    }
    let record = run.snapshot().await;
    Ok(branches
        .iter()
        .filter_map(|b| {
            record.branches.get(&b.name).map(|settled| BranchOutcome {
                branch: b.name.clone(),
                result: settled.outcome.clone(),
            })
        })
        .collect())
}

/// The attempts at one step or branch, with its policy's retries and timeouts.
struct Attempts<C> {
    run: Arc<RunShared>,
    clock: C,
    policy: StepPolicy,
    step: Arc<str>,
    agent: Arc<str>,
    f: ErasedStep,
    /// Whether each failed attempt is checkpointed (for steps; a branch's end is).
    persist: bool,
}

impl<C: Clock> Attempts<C> {
    async fn run(self, input: Value, mut failed: u32) -> Outcome {
        let deadline = self.policy.step_timeout.map(|t| self.clock.now() + t);
        loop {
            let attempt = failed + 1;
            let context = StepContext {
                run: Arc::clone(&self.run),
                step: Arc::clone(&self.step),
                agent: Arc::clone(&self.agent),
                attempt,
            };
            let remaining = deadline.map(|d| d.saturating_sub(self.clock.now()));
            let limit = match (self.policy.attempt_timeout, remaining) {
                (Some(a), Some(r)) => Some(a.min(r)),
                (a, r) => a.or(r),
            };
            let span = tracing::info_span!("workflow.attempt", attempt, otel.status_code = Empty);
            // The timer starts before the attempt, so its deadline is fixed when the step begins.
            let timer = limit.map(|limit| (limit, self.clock.sleep(limit)));
            let call = (self.f)(context, input.clone()).instrument(span.clone());
            let result = match timer {
                None => call.await,
                Some((limit, timer)) => tokio::select! {
                    biased;
                    result = call => result,
                    () = timer => Err(self.timed_out(limit, deadline)),
                },
            };
            let error = match result {
                Ok(value) => return Outcome::Done(value),
                Err(error) => error,
            };
            if error.class == ErrorClass::Pause {
                // Waiting for a person's input is not a failure of the attempt; a pause
                // because something failed (a dependency down after its retries) is.
                if error.for_input {
                    tracing::info!(parent: &span, reason = %error, "step paused");
                } else {
                    mark_error(&span, &error);
                }
                return Outcome::Paused(error);
            }
            mark_error(&span, &error);
            failed += 1;
            // Fixed before anything else waits, so the retry is due a fixed time after the failure.
            let delay = self.policy.retry.delay(failed, error.retry_after);
            let due = self.clock.now() + delay;
            if self.persist {
                let message = error.to_string();
                let saved = self
                    .run
                    .update(&self.agent, move |r| {
                        r.attempts = failed;
                        r.last_error = Some(message);
                        ((), true)
                    })
                    .await;
                if let Err(e) = saved {
                    return Outcome::Failed(e.into());
                }
            }
            if error.class == ErrorClass::Fatal {
                return Outcome::Failed(error);
            }
            if failed >= self.policy.retry.max_attempts {
                return Outcome::Failed(StepError {
                    message: format!("{} (after {failed} attempts)", error.message),
                    ..error
                });
            }
            if let Some(deadline) = deadline
                && due >= deadline
            {
                return Outcome::Failed(StepError::fatal(format!(
                    "step timed out: the retry after {} ms would pass its {} ms budget ({error})",
                    delay.as_millis(),
                    self.policy.step_timeout.unwrap_or_default().as_millis()
                )));
            }
            tracing::info!(parent: &span, delay_ms = delay.as_millis() as u64, "retrying");
            self.clock.sleep(due.saturating_sub(self.clock.now())).await;
        }
    }

    fn timed_out(&self, limit: Duration, deadline: Option<Duration>) -> StepError {
        match deadline {
            Some(deadline) if self.clock.now() >= deadline => StepError::fatal(format!(
                "step timed out after {} ms",
                self.policy.step_timeout.unwrap_or_default().as_millis()
            )),
            _ => StepError::retryable(format!("attempt timed out after {} ms", limit.as_millis())),
        }
    }
}
