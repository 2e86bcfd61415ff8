//! Durable agent workflows: runs that survive crashes, pause for a person, and fork.
//!
//! **Model.** A [`Workflow<S>`] is a name and steps over a `serde` state `S`. Each step is
//! owned by an agent and is an async function of a [`StepContext`] and the state, returning
//! the next state; a [`FanOut`] step runs several branches (each its own agent) at once and
//! joins on all of them or on the first N ([`Join`]), each branch failing its step or being
//! handed to the join ([`BranchFailure`]). An [`Executor`] runs registered workflows over a
//! [`StateCheckpointManager`](crate::checkpoint::StateCheckpointManager).
//!
//! **Runs are data.** A run is a [`RunRecord`] (status, current step, attempts, last error,
//! timings, trace id, origin of a fork, the effect ledger, the pending interrupt, the state),
//! and every transition saves the whole record as a checkpoint: `workflow_id` is the run id,
//! `agent_id` the agent of the step that wrote it. Saves are fenced (`Parent::Expect` on the
//! writing agent's head, the run's other heads compared just before), so an executor whose
//! view is stale stops with [`DurableError::Conflict`] instead of forking the history. A
//! run resumes from its latest checkpoint ([`Executor::recover`]); a step that was running
//! then runs again from its start.
//!
//! **Effects.** [`StepContext::effect`] records "started" durably, calls, then records the
//! result durably before the step goes on. On any later attempt, resume or fork, a recorded
//! result is returned without calling. A started effect without a result has an *unknown
//! outcome* (the process died during the call, or the attempt was cut off) and its
//! [`OnUnknown`] policy decides: call again with the same idempotency key (default), ask a
//! check, or pause the run for a person. The key is `run/step/effect`, the same in every
//! attempt.
//!
//! * Exactly once: the *recording* of an effect's result, and so everything the workflow does
//!   with it; the call itself when the provider deduplicates by the idempotency key, or when
//!   the policy is a check or a person.
//! * At least once: an effect whose outcome was unknown and is re-run, and all code of a step
//!   outside `effect` (a step runs again from its start after a crash, a retry or a resume).
//!
//! **Interrupts.** [`StepContext::interrupt`] checkpoints the run as waiting and ends the step;
//! the run holds no task. [`Executor::resume`] records the input and runs the step again: its
//! effects replay from the ledger, and the interrupt returns the input.
//!
//! **Policy.** Per step ([`StepPolicy`]): retries with exponential backoff and full jitter,
//! never sooner than an error's `retry_after` (breaker and limiter refusals convert into a
//! [`StepError`] carrying theirs), a per-attempt and a per-step timeout on the executor's
//! [`Clock`](crate::clock::Clock), and errors classed retryable, fatal or pause
//! ([`ErrorClass`]). Cancel, list, history and fork are [`Executor`] methods.
//!
//! **Replicas.** With [`ExecutorBuilder::leases`] (PostgreSQL: `PostgresLeases`, feature
//! `postgres`) an executor drives a run only under its lease, renewed every third of its time
//! to live; a run leased by a live replica is refused with
//! [`DurableError::LeasedElsewhere`] naming it, an expired lease is taken over, and a replica
//! that loses its lease stops the run without writing ([`DurableError::LeaseLost`]).
//!
//! **Trace.** Each drive of a run is a `workflow.run` span carrying the run's trace id (kept
//! in the record across resumes; a fork records its origin's) with `workflow.step` and
//! `workflow.attempt` spans below; failures set `otel.status_code = "ERROR"` and emit an
//! ERROR event, which the telemetry layer records as an `exception` (a pause is not an
//! error). [`ExecutorBuilder::on_run_span`] hands each run span and record to a hook, where a
//! service using `bulwark::telemetry` can make the span continue the run's trace.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bulwark::checkpoint::StateCheckpointManager;
//! use bulwark::durable::{Executor, RunStatus, StepError, Workflow};
//! use serde::{Deserialize, Serialize};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Refund { amount: u32, paid: Option<String> }
//!
//! let charges = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&charges);
//! let refund = Workflow::new("refund").step("pay", "billing-agent", move |ctx, mut r: Refund| {
//!     let counter = Arc::clone(&counter);
//!     async move {
//!         let approved: bool = ctx.interrupt("approve", &r.amount).await?;
//!         if !approved {
//!             return Err(StepError::fatal("refused"));
//!         }
//!         let paid = ctx.effect("pay-out", |key| async move {
//!             counter.fetch_add(1, Ordering::SeqCst);
//!             Ok::<_, StepError>(format!("paid with key {key}"))
//!         }).await?;
//!         r.paid = Some(paid);
//!         Ok(r)
//!     }
//! });
//!
//! let dir = tempfile::tempdir()?;
//! let manager = StateCheckpointManager::open(dir.path()).await?;
//! let executor = Executor::builder(manager).workflow(refund).build()?;
//! let run = executor.start_with_id("refund", "r-1", &Refund { amount: 40, paid: None }).await?;
//! assert_eq!(run.status, RunStatus::Waiting);
//!
//! let run = executor.resume("r-1", serde_json::json!(true)).await?;
//! assert_eq!(run.status, RunStatus::Completed);
//! assert_eq!(run.state_as::<Refund>()?.paid.as_deref(), Some("paid with key r-1/pay/pay-out"));
//! assert_eq!(charges.load(Ordering::SeqCst), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod builder;
mod context;
mod definition;
mod drive;
mod error;
mod executor;
mod fork;
mod lease;
mod live;
mod record;
mod retry;
mod store;

pub use builder::ExecutorBuilder;
pub use context::{OnUnknown, Resolution, StepContext, UnknownCheck};
pub use definition::{
    BoxFuture, BranchFailure, BranchOutcome, FanOut, Join, StepInfo, Workflow, WorkflowInfo,
};
pub use error::{DurableError, ErrorClass, MAX_RUN_ID_LEN, StepError};
pub use executor::Executor;
#[cfg(feature = "postgres")]
pub use lease::PostgresLeases;
pub use lease::{Acquired, LeaseError, LeaseStore};
pub use record::{
    BranchRecord, EffectRecord, EffectState, HistoryEntry, InterruptKind, Origin, PendingInterrupt,
    RunRecord, RunStatus, RunSummary, Timings,
};
pub use retry::{RetryPolicy, StepPolicy};
