//! The retry loop on the manual clock: waits, `retry_after`, predicates, budget, cancellation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::clock::{Clock, ManualClock};
use bulwark::retry::{
    Backoff, Classify, GiveUp, Retry, RetryBudget, RetryBudgetConfig, RetryConfig, RetryEvent,
    RetryEventKind,
};

#[derive(Debug, Clone, PartialEq)]
enum CallError {
    Transient,
    BadRequest,
    SlowDown(Duration),
}

impl Classify for CallError {
    fn is_retryable(&self) -> bool {
        !matches!(self, Self::BadRequest)
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::SlowDown(wait) => Some(*wait),
            _ => None,
        }
    }
}

/// Lets spawned tasks run until they block on the manual clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn retry(clock: &ManualClock, config: RetryConfig) -> Retry<ManualClock> {
    Retry::builder(config).clock(clock.clone()).build().unwrap()
}

#[tokio::test]
async fn waits_the_backoff_on_the_clock_between_attempts() {
    let clock = ManualClock::new();
    let r = retry(
        &clock,
        RetryConfig::new(
            3,
            Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60)),
        ),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let task = tokio::spawn(async move {
        r.run(|| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(CallError::Transient) }
        })
        .await
    });
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_millis(999));
    settle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "retried before the 1 s backoff"
    );
    clock.advance(Duration::from_millis(1));
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_secs(2)); // the second backoff doubles
    settle().await;
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(
        (error.attempts, error.reason, error.last),
        (3, GiveUp::Exhausted, CallError::Transient)
    );
}

#[tokio::test]
async fn an_errors_retry_after_is_honoured_over_a_shorter_backoff() {
    let clock = ManualClock::new();
    let r = retry(
        &clock,
        RetryConfig::new(2, Backoff::constant(Duration::from_secs(1))),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let task = tokio::spawn(async move {
        r.run(|| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(CallError::SlowDown(Duration::from_secs(5)))
                } else {
                    Ok("done")
                }
            }
        })
        .await
    });
    settle().await;
    clock.advance(Duration::from_secs(4));
    settle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "retried before the 5 s the error asked for"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(task.await.unwrap(), Ok("done"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_maximum_gives_up_at_once() {
    let clock = ManualClock::new();
    let mut config = RetryConfig::new(5, Backoff::constant(Duration::ZERO));
    config.max_retry_after = Duration::from_secs(10);
    let r = retry(&clock, config);
    let error = r
        .run(|| async { Err::<(), _>(CallError::SlowDown(Duration::from_secs(30))) })
        .await
        .unwrap_err();
    assert_eq!(
        (error.attempts, error.reason),
        (1, GiveUp::RetryAfterTooLong)
    );
}

#[tokio::test]
async fn caller_errors_are_not_retried_and_a_predicate_can_decide_instead() {
    let clock = ManualClock::new();
    let r = retry(
        &clock,
        RetryConfig::new(5, Backoff::constant(Duration::ZERO)),
    );
    let calls = AtomicU32::new(0);
    let error = r
        .run(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(CallError::BadRequest) }
        })
        .await
        .unwrap_err();
    assert_eq!((error.attempts, error.reason), (1, GiveUp::NotRetryable));
    let error = r
        .run_if(
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(CallError::BadRequest) }
            },
            |_| true,
        )
        .await
        .unwrap_err();
    assert_eq!((error.attempts, error.reason), (5, GiveUp::Exhausted));
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn no_attempt_is_made_after_the_caller_drops_the_future() {
    let clock = ManualClock::new();
    let r = retry(
        &clock,
        RetryConfig::new(10, Backoff::constant(Duration::from_secs(1))),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let task = tokio::spawn(async move {
        r.run(|| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(CallError::Transient) }
        })
        .await
    });
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    task.abort();
    let _ = task.await;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        settle().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn events_report_every_attempt_its_delay_and_the_reason_to_stop() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let r = Retry::builder(RetryConfig::new(2, Backoff::constant(Duration::ZERO)))
        .name("llm")
        .clock(clock)
        .observer(Arc::new(move |e: &RetryEvent<'_>| {
            assert_eq!(e.name, "llm");
            s.lock().unwrap().push((e.attempt, e.kind));
        }))
        .build()
        .unwrap();
    let _ = r.run(|| async { Err::<(), _>(CallError::Transient) }).await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (1, RetryEventKind::Attempt),
            (
                1,
                RetryEventKind::Retrying {
                    delay: Duration::ZERO,
                    retry_after: None
                }
            ),
            (2, RetryEventKind::Attempt),
            (2, RetryEventKind::GaveUp(GiveUp::Exhausted)),
        ]
    );
}

#[tokio::test]
async fn under_a_total_failure_storm_retries_stop_at_the_budget() {
    let clock = ManualClock::new();
    let budget = RetryBudget::with_clock(
        RetryBudgetConfig {
            ratio: 0.2,
            window: Duration::from_secs(10),
            min_retries_per_second: 1,
        },
        clock.clone(),
    )
    .unwrap();
    // Two retries sharing one budget, as two callers of the same dependency.
    let config = RetryConfig::new(5, Backoff::constant(Duration::ZERO));
    let a = Retry::builder(config)
        .clock(clock.clone())
        .budget(budget.clone())
        .build()
        .unwrap();
    let b = Retry::builder(config)
        .clock(clock.clone())
        .budget(budget.clone())
        .build()
        .unwrap();
    let attempts = AtomicU32::new(0);
    let mut exhausted = 0;
    for i in 0..500 {
        let r = if i % 2 == 0 { &a } else { &b };
        let error = r
            .run(|| {
                attempts.fetch_add(1, Ordering::Relaxed);
                async { Err::<(), _>(CallError::Transient) }
            })
            .await
            .unwrap_err();
        exhausted += u32::from(error.reason == GiveUp::BudgetExhausted);
    }
    let retries = attempts.load(Ordering::Relaxed) - 500;
    // 20 % of 500 calls plus 1/s over the 10 s window; without a budget it would be 2000.
    assert_eq!(retries, 100 + 10);
    assert!(
        exhausted >= 500 - 110 / 4 - 1,
        "{exhausted} calls ended on the budget"
    );
    assert_eq!(budget.available(), 0);
    // The window slides: once it has passed, the reserve is back.
    clock.advance(Duration::from_secs(11));
    assert_eq!(budget.available(), 10);
}

#[tokio::test]
async fn a_budget_from_the_config_is_made_by_the_builder() {
    let clock = ManualClock::new();
    let config =
        RetryConfig::new(3, Backoff::constant(Duration::ZERO)).with_budget(RetryBudgetConfig {
            ratio: 0.0,
            window: Duration::from_secs(1),
            min_retries_per_second: 0,
        });
    let r = retry(&clock, config);
    let error = r
        .run(|| async { Err::<(), _>(CallError::Transient) })
        .await
        .unwrap_err();
    assert_eq!((error.attempts, error.reason), (1, GiveUp::BudgetExhausted));
    assert_eq!(clock.now(), Duration::ZERO);
}
