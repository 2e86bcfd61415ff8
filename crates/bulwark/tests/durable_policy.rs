//! Per-step policy on the manual clock (retries honour `retry_after`, per-attempt and per-step
//! timeouts, error classes), cancel, fork, and fencing against a second executor.

mod durable_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig};
use bulwark::clock::ManualClock;
use bulwark::durable::{
    DurableError, ErrorClass, Executor, InterruptKind, RetryPolicy, RunRecord, RunStatus,
    StepError, StepPolicy, Workflow,
};
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use durable_support::{Counter, Order, executor, executor_at, order};
use serde_json::json;
use tokio::sync::mpsc;

/// Waits (on real I/O, not on time) until the run's latest checkpoint satisfies `done`.
async fn until_saved(
    executor: &Executor<ManualClock>,
    run_id: &str,
    done: impl Fn(&RunRecord) -> bool,
) {
    for _ in 0..100_000 {
        if executor.get(run_id).await.is_ok_and(|r| done(&r)) {
            // Let the driver reach its next wait.
            settle().await;
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("run {run_id} never reached the expected checkpoint");
}

/// Builds an executor on `clock` and starts run `run_id` of `workflow` in a task.
async fn spawn_run(
    dir: &std::path::Path,
    clock: &ManualClock,
    workflow: Workflow<Order>,
    run_id: &'static str,
) -> (
    Executor<ManualClock>,
    tokio::task::JoinHandle<Result<RunRecord, DurableError>>,
) {
    let executor = executor_at(dir, clock, |b| b.workflow(workflow)).await;
    let task = tokio::spawn({
        let executor = executor.clone();
        async move {
            let name = executor.workflows()[0].name.clone();
            executor.start_with_id(&name, run_id, &order("o", 1)).await
        }
    });
    (executor, task)
}

/// Lets every task that is ready run (a wake-up after a clock advance included).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A step that reports each attempt and then behaves as `attempt` says.
fn probe<F>(policy: StepPolicy, attempts: mpsc::UnboundedSender<u32>, attempt: F) -> Workflow<Order>
where
    F: Fn(u32) -> Option<StepError> + Send + Sync + Copy + 'static,
{
    Workflow::new("probe").step_with("call", "caller", policy, move |ctx, o: Order| {
        let attempts = attempts.clone();
        async move {
            let _ = attempts.send(ctx.attempt());
            match attempt(ctx.attempt()) {
                Some(error) if error.message == "hang" => std::future::pending().await,
                Some(error) => Err(error),
                None => Ok(o),
            }
        }
    })
}

/// Backoff ceilings of 1 ms: any wait longer than that comes from a `retry_after`.
fn tiny_backoff(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts).backoff(Duration::from_millis(1), Duration::from_millis(1), 1.0)
}

#[tokio::test]
async fn a_retry_waits_for_the_errors_retry_after_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (tx, mut attempts) = mpsc::unbounded_channel();
    let workflow = probe(StepPolicy::new().retry(tiny_backoff(3)), tx, |n| {
        (n == 1).then(|| {
            StepError::retryable("429 Too Many Requests").with_retry_after(Duration::from_secs(10))
        })
    });
    let (executor, task) = spawn_run(dir.path(), &clock, workflow, "p").await;
    assert_eq!(attempts.recv().await, Some(1));
    until_saved(&executor, "p", |r| r.attempts == 1).await;
    let failed = executor.get("p").await.unwrap();
    assert_eq!(
        failed.last_error.as_deref(),
        Some("429 Too Many Requests (retry after 10000 ms)")
    );

    clock.advance(Duration::from_millis(9_999));
    settle().await;
    assert!(attempts.try_recv().is_err(), "retried before retry_after");
    clock.advance(Duration::from_millis(1));
    assert_eq!(attempts.recv().await, Some(2));
    let run = task.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
}

#[tokio::test]
async fn an_attempt_is_cut_off_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (tx, mut attempts) = mpsc::unbounded_channel();
    let policy = StepPolicy::new()
        .retry(RetryPolicy::none())
        .attempt_timeout(Duration::from_secs(5));
    let workflow = probe(policy, tx, |_| Some(StepError::fatal("hang")));
    let (_executor, task) = spawn_run(dir.path(), &clock, workflow, "t").await;
    assert_eq!(attempts.recv().await, Some(1));
    clock.advance(Duration::from_millis(4_999));
    settle().await;
    assert!(!task.is_finished(), "cut off before its timeout");
    clock.advance(Duration::from_millis(1));
    let run = task.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.last_error.unwrap();
    assert!(error.contains("attempt timed out after 5000 ms"), "{error}");
}

#[tokio::test]
async fn a_step_gives_up_when_its_next_retry_would_pass_the_step_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (tx, mut attempts) = mpsc::unbounded_channel();
    let policy = StepPolicy::new()
        .retry(tiny_backoff(10))
        .step_timeout(Duration::from_secs(10));
    let workflow = probe(policy, tx, |_| {
        Some(StepError::retryable("busy").with_retry_after(Duration::from_secs(4)))
    });
    let (executor, task) = spawn_run(dir.path(), &clock, workflow, "s").await;
    for attempt in 1..=2 {
        assert_eq!(attempts.recv().await, Some(attempt));
        until_saved(&executor, "s", |r| r.attempts == attempt).await;
        clock.advance(Duration::from_secs(4));
    }
    assert_eq!(attempts.recv().await, Some(3));
    // At 8 s the retry would come at 12 s, past the 10 s budget: no fourth attempt.
    let run = task.await.unwrap().unwrap();
    assert_eq!((run.status, run.attempts), (RunStatus::Failed, 3));
    assert!(run.last_error.unwrap().contains("step timed out"));
    assert!(attempts.try_recv().is_err());
}

#[tokio::test]
async fn a_fatal_error_is_not_retried_and_a_pause_waits_for_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut attempts) = mpsc::unbounded_channel();
    let fatal = probe(StepPolicy::new().retry(tiny_backoff(5)), tx, |_| {
        Some(StepError::fatal("400 Bad Request"))
    });
    let strict = executor(dir.path(), |b| b.workflow(fatal)).await;
    let run = strict
        .start_with_id("probe", "f", &order("o", 1))
        .await
        .unwrap();
    assert_eq!((run.status, run.attempts), (RunStatus::Failed, 1));
    assert_eq!(attempts.recv().await, Some(1));
    assert!(attempts.try_recv().is_err());

    let dir = tempfile::tempdir().unwrap();
    let (tx, _attempts) = mpsc::unbounded_channel();
    // Pauses on the first attempt only; the resumed step succeeds.
    let paused = probe(StepPolicy::new(), tx, |n| {
        (n == 1).then(|| StepError::pause("needs a human"))
    });
    let executor = executor(dir.path(), |b| b.workflow(paused)).await;
    let run = executor
        .start_with_id("probe", "h", &order("o", 1))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.interrupt.unwrap().kind, InterruptKind::PausedOnError);
    assert_eq!(run.last_error.as_deref(), Some("needs a human"));
    let run = executor.resume("h", json!(null)).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.last_error);
}

#[test]
fn breaker_and_limiter_refusals_are_retryable_after_their_own_delay() {
    let clock = ManualClock::new();
    let config = CircuitBreakerConfig {
        failure_threshold: 1,
        timeout: Duration::from_secs(30),
        ..CircuitBreakerConfig::default()
    };
    let breaker = CircuitBreaker::builder("payments", config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = breaker.call(|| Err::<(), _>("down"));
    let error: StepError = breaker.call(|| Ok::<(), &str>(())).unwrap_err().into();
    assert_eq!(
        (error.class, error.retry_after),
        (ErrorClass::Retryable, Some(Duration::from_secs(30)))
    );

    let limiter = RateLimiter::builder(RateLimitConfig::new(1, Duration::from_secs(60), 0))
        .clock(clock)
        .build()
        .unwrap();
    limiter.check(1).unwrap();
    let error: StepError = limiter.check(1).unwrap_err().into();
    assert_eq!(
        (error.class, error.retry_after),
        (ErrorClass::Retryable, Some(Duration::from_secs(60)))
    );
}

#[tokio::test]
async fn cancel_stops_the_step_in_flight_and_checkpoints_the_run_as_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut started) = mpsc::unbounded_channel();
    let workflow = probe(StepPolicy::new(), tx, |_| Some(StepError::fatal("hang"))).step(
        "never",
        "caller",
        |_, _| async { panic!("a cancelled run went on") },
    );
    let executor = executor(dir.path(), |b| b.workflow(workflow)).await;
    let task = tokio::spawn({
        let executor = executor.clone();
        async move { executor.start_with_id("probe", "c", &order("o", 1)).await }
    });
    assert_eq!(started.recv().await, Some(1));
    assert!(executor.is_running_here("c"));
    let cancelled = executor.cancel("c").await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(task.await.unwrap().unwrap(), cancelled);
    assert!(!executor.is_running_here("c"));
    assert_eq!(
        executor.get("c").await.unwrap().status,
        RunStatus::Cancelled
    );
    let err = executor.resume("c", json!(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            DurableError::WrongStatus {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_waiting_run_is_cancelled_without_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = Workflow::new("ask").step("ask", "support", |ctx, o: Order| async move {
        let _: bool = ctx.interrupt("ok?", &o.id).await?;
        Ok(o)
    });
    let executor = executor(dir.path(), |b| b.workflow(workflow)).await;
    let run = executor
        .start_with_id("ask", "w", &order("o", 1))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    let run = executor.cancel("w").await.unwrap();
    assert_eq!((run.status, run.interrupt), (RunStatus::Cancelled, None));
    assert_eq!(
        executor.get("w").await.unwrap().status,
        RunStatus::Cancelled
    );
}

/// Three steps; the second's effect depends on the amount.
fn pricing(quotes: Counter, charges: Counter) -> Workflow<Order> {
    Workflow::new("pricing")
        .step("quote", "sales", move |ctx, mut o: Order| {
            let quotes = quotes.clone();
            async move {
                let quote = ctx
                    .effect("quote", |_| async move {
                        Ok::<_, StepError>(format!("quote#{}", quotes.hit()))
                    })
                    .await?;
                o.log.push(quote);
                Ok(o)
            }
        })
        .step("charge", "payments", move |ctx, mut o: Order| {
            let charges = charges.clone();
            async move {
                let amount = o.amount;
                let charged = ctx
                    .effect("charge", |key| async move {
                        charges.hit();
                        Ok::<_, StepError>(format!("{amount} charged as {key}"))
                    })
                    .await?;
                o.log.push(charged);
                Ok(o)
            }
        })
        .step("receipt", "sales", |_, mut o: Order| async move {
            o.log.push("receipt".into());
            Ok(o)
        })
}

#[tokio::test]
async fn a_fork_from_the_middle_takes_a_patch_replays_earlier_effects_and_records_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (quotes, charges) = (Counter::default(), Counter::default());
    let executor = executor(dir.path(), |b| {
        b.workflow(pricing(quotes.clone(), charges.clone()))
    })
    .await;
    let original = executor
        .start_with_id("pricing", "orig", &order("o", 10))
        .await
        .unwrap();
    assert_eq!(original.status, RunStatus::Completed);
    // The checkpoint after "quote" is done: the run is at "charge".
    let history = executor.history("orig").await.unwrap();
    let middle = history
        .iter()
        .find(|h| h.step.as_deref() == Some("charge"))
        .unwrap();

    let fork = executor
        .fork_with_id(
            "orig",
            middle.checkpoint_id,
            Some(json!({"amount": 99})),
            "fork",
        )
        .await
        .unwrap();
    assert_eq!(fork.status, RunStatus::Completed, "{:?}", fork.last_error);
    assert_eq!(
        fork.state_as::<Order>().unwrap().log,
        ["quote#1", "99 charged as fork/charge/charge", "receipt"]
    );
    assert_eq!(
        (quotes.get(), charges.get()),
        (1, 2),
        "the quote replayed; the charge ran again"
    );
    let origin = fork.origin.clone().unwrap();
    assert_eq!(
        (origin.run_id.as_str(), origin.checkpoint_id),
        ("orig", middle.checkpoint_id)
    );
    assert_eq!(origin.revision, middle.revision);
    assert_eq!(origin.trace_id, original.trace_id);
    assert_ne!(fork.trace_id, original.trace_id);
    // The original is untouched.
    assert_eq!(executor.get("orig").await.unwrap(), original);
}

#[tokio::test]
async fn a_second_executor_that_takes_a_run_over_fences_the_first_one_out() {
    let dir = tempfile::tempdir().unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let (tx, mut entered) = mpsc::unbounded_channel();
    let calls = Arc::new(AtomicU32::new(0));
    let workflow = {
        let (release, calls) = (Arc::clone(&release), Arc::clone(&calls));
        move || {
            let (release, calls, tx) = (Arc::clone(&release), Arc::clone(&calls), tx.clone());
            Workflow::new("slow").step("call", "worker", move |ctx, o: Order| {
                let (release, calls, tx) = (Arc::clone(&release), Arc::clone(&calls), tx.clone());
                async move {
                    ctx.effect("call", |_| async move {
                        // The first executor's call hangs until released.
                        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            let _ = tx.send(());
                            release.notified().await;
                        }
                        Ok::<_, StepError>(1)
                    })
                    .await?;
                    Ok(o)
                }
            })
        }
    };
    let first = executor(dir.path(), |b| b.workflow(workflow())).await;
    let task = tokio::spawn(async move { first.start_with_id("slow", "z", &order("o", 1)).await });
    entered.recv().await.unwrap();

    let second = executor(dir.path(), |b| b.workflow(workflow())).await;
    let taken = second.recover("z").await.unwrap();
    assert_eq!(taken.status, RunStatus::Completed);

    release.notify_one();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, DurableError::Conflict { .. }), "{err}");
    assert_eq!(
        second.get("z").await.unwrap(),
        taken,
        "the loser wrote nothing"
    );
}
