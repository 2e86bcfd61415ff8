//! Budgets inside durable runs: an exhausted hard budget pauses the run for a person instead
//! of failing it, and a reservation kept in the run's state survives a restart counted once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod durable_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::budget::{BudgetSpec, Charge, Ledger, Period, ReservationRecord, Unit, Usage};
use bulwark::clock::ManualClock;
use bulwark::durable::{RunStatus, StepError, Workflow};
use durable_support::executor_at;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Agent {
    reservation: Option<ReservationRecord>,
    answer: Option<String>,
}

type Shared = Arc<Mutex<Ledger<ManualClock>>>;

fn ledger(clock: &ManualClock, limit: u64) -> Ledger<ManualClock> {
    Ledger::builder()
        .clock(clock.clone())
        .budget(BudgetSpec::new("run", Unit::Tokens, limit, Period::Never))
        .build()
        .unwrap()
}

/// reserve → (approval) → call: the reservation travels in the state between the steps.
fn workflow(ledger: &Shared) -> Workflow<Agent> {
    let (first, second) = (Arc::clone(ledger), Arc::clone(ledger));
    Workflow::new("agent")
        .step("reserve", "planner", move |ctx, mut agent: Agent| {
            let ledger = first.lock().unwrap().clone();
            async move {
                let run = ledger
                    .budget("run", ctx.run_id())
                    .map_err(StepError::fatal)?;
                let reservation = ledger
                    .reserve(&[run], &Charge::tokens(Usage::estimate(1_000, 2_000)))
                    // An exhausted hard budget is for a person to decide on, not a failure.
                    .map_err(|e| match e.exceeded() {
                        Some(_) => StepError::pause(e),
                        None => StepError::fatal(e),
                    })?;
                agent.reservation = Some(reservation.into_record());
                Ok(agent)
            }
        })
        .step("call", "writer", move |ctx, mut agent: Agent| {
            let ledger = second.lock().unwrap().clone();
            async move {
                let _approved: bool = ctx.interrupt("send", &"ok to call?").await?;
                let record = agent
                    .reservation
                    .take()
                    .ok_or_else(|| StepError::fatal("none"))?;
                let reservation = ledger.restore(&record).map_err(StepError::fatal)?;
                reservation.settle(Usage::new(1_000, 500));
                agent.answer = Some("done".into());
                Ok(agent)
            }
        })
}

#[tokio::test]
async fn an_exhausted_budget_pauses_the_run_and_a_raised_limit_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let shared: Shared = Arc::new(Mutex::new(ledger(&clock, 2_000)));
    let executor = executor_at(dir.path(), &clock, |b| b.workflow(workflow(&shared))).await;
    let run = executor
        .start_with_id("agent", "run-1", &Agent::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.current_step.as_deref(), Some("reserve"));
    let message = run.last_error.clone().unwrap_or_default();
    assert!(
        message.contains("budget `run` for run-1 exceeded"),
        "{message}"
    );

    let ledger = shared.lock().unwrap().clone();
    let handle = ledger.budget("run", "run-1").unwrap();
    assert_eq!(ledger.snapshot_of(handle).unwrap().reserved, 0);
    ledger.set_limit(handle, Some(10_000));
    let run = executor.resume("run-1", json!(null)).await.unwrap();
    assert_eq!(run.status, RunStatus::Waiting, "now at the approval");
    assert_eq!(ledger.snapshot_of(handle).unwrap().reserved, 3_000);
}

#[tokio::test]
async fn a_reservation_in_the_checkpoint_survives_a_restart_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let shared: Shared = Arc::new(Mutex::new(ledger(&clock, 10_000)));
    {
        let executor = executor_at(dir.path(), &clock, |b| b.workflow(workflow(&shared))).await;
        let run = executor
            .start_with_id("agent", "run-2", &Agent::default())
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Waiting);
        assert_eq!(run.current_step.as_deref(), Some("call"));
    }
    // A new process: a fresh ledger and executor over the same checkpoints.
    let fresh = ledger(&clock, 10_000);
    *shared.lock().unwrap() = fresh.clone();
    let executor = executor_at(dir.path(), &clock, |b| b.workflow(workflow(&shared))).await;
    let run = executor.resume("run-2", json!(true)).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let handle = fresh.budget("run", "run-2").unwrap();
    let snap = fresh.snapshot_of(handle).unwrap();
    assert_eq!((snap.spent, snap.reserved), (1_500, 0));
    clock.advance(Duration::from_secs(3_600));
    fresh.expire_stale();
    assert_eq!(fresh.snapshot_of(handle).unwrap().spent, 1_500);
}
