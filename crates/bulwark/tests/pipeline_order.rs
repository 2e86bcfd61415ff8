//! Pipeline ordering: the same failing dependency behind each order gives the counts the
//! module docs promise; rejections, fallback, blocking calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulwark::breaker::{
    BreakerListener, CallEvent, CallOutcome, CircuitBreaker, CircuitBreakerConfig, Transition,
};
use bulwark::bulkhead::BulkheadConfig;
use bulwark::clock::ManualClock;
use bulwark::pipeline::{
    Fallback, OutcomeKind, PipelineBuilder, PipelineError, ResiliencePipeline,
};
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use bulwark::retry::{Backoff, Classify, RetryBudgetConfig, RetryConfig};

#[derive(Default)]
struct Failures(AtomicU32);

impl BreakerListener for Failures {
    fn on_transition(&self, _: &Transition<'_>) {}
    fn on_call(&self, event: &CallEvent<'_>) {
        if event.outcome == CallOutcome::Failure {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Counts {
    attempts: u32,
    breaker_failures: u32,
    rejections: u32,
}

fn retry_config() -> RetryConfig {
    let mut retry = RetryConfig::new(3, Backoff::constant(Duration::ZERO));
    retry.max_retry_after = Duration::from_secs(1);
    retry
}

type Order = fn(
    PipelineBuilder<ManualClock>,
    CircuitBreaker<ManualClock>,
    RetryConfig,
) -> PipelineBuilder<ManualClock>;

/// Four calls to a dependency that always fails, through `order`.
async fn run(order: Order) -> Counts {
    let clock = ManualClock::new();
    let failures = Arc::new(Failures::default());
    let breaker = CircuitBreaker::builder(
        "dep",
        CircuitBreakerConfig::new(3, 1, Duration::from_secs(60), 1),
    )
    .clock(clock.clone())
    .listener(failures.clone())
    .build()
    .unwrap();
    let pipeline = order(
        ResiliencePipeline::builder_with_clock(clock),
        breaker,
        retry_config(),
    )
    .build()
    .unwrap();
    let attempts = AtomicU32::new(0);
    let mut rejections = 0;
    for _ in 0..4 {
        let outcome = pipeline
            .execute(|| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("503".to_string()) }
            })
            .await;
        match outcome {
            Err(PipelineError::Failed(_)) => {}
            Err(PipelineError::CircuitOpen(_)) => rejections += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    Counts {
        attempts: attempts.load(Ordering::SeqCst),
        breaker_failures: failures.0.load(Ordering::SeqCst),
        rejections,
    }
}

#[tokio::test]
async fn retry_outside_the_breaker_stops_calling_once_it_opens() {
    let c = run(|b, breaker, retry| b.retry(retry).circuit_breaker(breaker)).await;
    assert_eq!((c.attempts, c.breaker_failures, c.rejections), (3, 3, 3));
}

#[tokio::test]
async fn breaker_outside_the_retry_opens_max_attempts_times_later() {
    let c = run(|b, breaker, retry| b.circuit_breaker(breaker).retry(retry)).await;
    assert_eq!((c.attempts, c.breaker_failures, c.rejections), (9, 3, 1));
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_breaker_retry_after_within_the_limit_is_waited_for_then_the_trial_runs() {
    let clock = ManualClock::new();
    let mut retry = RetryConfig::new(3, Backoff::constant(Duration::ZERO));
    retry.max_retry_after = Duration::from_secs(120);
    let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
        .retry(retry)
        .circuit_breaker_config(CircuitBreakerConfig::new(1, 1, Duration::from_secs(60), 1))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let a = Arc::clone(&attempts);
    let task = tokio::spawn(async move {
        pipeline
            .execute(|| {
                let n = a.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err("503".to_string())
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
    });
    settle().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(task.await.unwrap().unwrap(), 1);
}

#[derive(Debug)]
struct BadRequest;

impl Classify for BadRequest {
    fn is_retryable(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn caller_errors_neither_retry_nor_count_against_the_breaker() {
    let pipeline = ResiliencePipeline::builder()
        .retry(retry_config())
        .circuit_breaker_config(CircuitBreakerConfig::new(1, 1, Duration::from_secs(60), 1))
        .build()
        .unwrap();
    let attempts = AtomicU32::new(0);
    for _ in 0..3 {
        let outcome = pipeline
            .execute(|| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(BadRequest) }
            })
            .await;
        assert!(matches!(outcome, Err(PipelineError::Failed(BadRequest))));
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert!(!pipeline.circuit_breaker().unwrap().state().is_open());
}

#[tokio::test]
async fn each_refusal_has_its_own_outcome() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(RateLimitConfig::per_second(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let limited = ResiliencePipeline::builder_with_clock(clock.clone())
        .rate_limit(limiter)
        .build()
        .unwrap();
    let ok = || async { Ok::<_, String>(()) };
    assert!(limited.execute(ok).await.is_ok());
    let refused = limited.execute(ok).await.unwrap_err();
    assert_eq!(refused.kind(), OutcomeKind::RateLimited);
    assert!(refused.is_rejection());

    let full = ResiliencePipeline::builder_with_clock(clock.clone())
        .bulkhead(BulkheadConfig::new(1))
        .build()
        .unwrap();
    let slot = full.bulkhead().unwrap().try_acquire().unwrap();
    let refused = full.execute(ok).await.unwrap_err();
    assert_eq!(refused.kind(), OutcomeKind::BulkheadFull);
    drop(slot);
    assert!(full.execute(ok).await.is_ok());

    let budget =
        RetryConfig::new(5, Backoff::constant(Duration::ZERO)).with_budget(RetryBudgetConfig {
            ratio: 0.0,
            window: Duration::from_secs(10),
            min_retries_per_second: 0,
        });
    let spent = ResiliencePipeline::builder_with_clock(clock)
        .retry(budget)
        .build()
        .unwrap();
    match spent
        .execute(|| async { Err::<(), _>("503".to_string()) })
        .await
    {
        Err(PipelineError::RetryBudgetExhausted { attempts, last }) => {
            assert_eq!(attempts, 1);
            assert!(matches!(*last, PipelineError::Failed(ref e) if e == "503"));
        }
        other => panic!("expected the budget to be exhausted, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rate_limit_inside_the_retry_is_waited_out_by_its_retry_after() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(RateLimitConfig::per_second(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
        .retry(RetryConfig::new(2, Backoff::constant(Duration::ZERO)))
        .rate_limit(limiter)
        .build()
        .unwrap();
    pipeline
        .execute(|| async { Ok::<_, String>(()) })
        .await
        .unwrap();
    let p = pipeline.clone();
    let task = tokio::spawn(async move { p.execute(|| async { Ok::<_, String>(5) }).await });
    settle().await;
    assert!(!task.is_finished(), "the retry did not wait for the token");
    clock.advance(Duration::from_secs(1));
    assert_eq!(task.await.unwrap().unwrap(), 5);
}

#[tokio::test]
async fn a_fallback_answers_with_a_value_or_by_reason_and_can_be_selective() {
    let with_value = ResiliencePipeline::builder()
        .circuit_breaker_config(CircuitBreakerConfig::new(1, 1, Duration::from_secs(60), 1))
        .fallback(Fallback::<&str, String>::value("cached"))
        .build()
        .unwrap();
    let failing = || async { Err("boom".to_string()) };
    assert_eq!(with_value.execute(failing).await.unwrap(), "cached");
    let live = with_value.execute(|| async { Ok("live") }).await.unwrap();
    assert_eq!(
        live, "cached",
        "the breaker is open, so the fallback answers"
    );

    let by_reason = ResiliencePipeline::builder()
        .circuit_breaker_config(CircuitBreakerConfig::new(1, 1, Duration::from_secs(60), 1))
        .fallback(
            Fallback::<String, String>::with(|r| format!("degraded: {}", r.kind().as_str()))
                .when(|r| r.is_rejection()),
        )
        .build()
        .unwrap();
    let failed = by_reason
        .execute(|| async { Err::<String, _>("boom".to_string()) })
        .await;
    assert!(
        matches!(failed, Err(PipelineError::Failed(ref e)) if e == "boom"),
        "a failure is not a rejection: no fallback"
    );
    let answered = by_reason
        .execute(|| async { Ok("live".to_string()) })
        .await
        .unwrap();
    assert_eq!(answered, "degraded: circuit_open");
}

#[test]
fn execute_blocking_retries_sync_calls_with_real_waits() {
    let pipeline = ResiliencePipeline::builder()
        .retry(RetryConfig::new(
            3,
            Backoff::constant(Duration::from_millis(1)),
        ))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let value = pipeline
        .execute_blocking(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err("flaky".to_string())
            } else {
                Ok(n)
            }
        })
        .unwrap();
    assert_eq!(value, 2);
}

#[tokio::test]
async fn execute_blocking_inside_a_runtime_does_not_panic() {
    let pipeline = ResiliencePipeline::builder()
        .retry(RetryConfig::new(
            2,
            Backoff::constant(Duration::from_millis(1)),
        ))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let outcome = pipeline.execute_blocking(|| {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>("down".to_string())
    });
    assert!(matches!(outcome, Err(PipelineError::Failed(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
