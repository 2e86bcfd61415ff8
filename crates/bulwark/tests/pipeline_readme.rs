//! The README's "Resilience pipeline" example, run on the manual clock. The code between the
//! markers is the README's block, character for character (the first test checks it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulwark::breaker::State;
use bulwark::clock::ManualClock;

// README:start
use bulwark::breaker::CircuitBreakerConfig;
use bulwark::bulkhead::BulkheadConfig;
use bulwark::clock::Clock;
use bulwark::pipeline::{PipelineConfigError, PipelineError, ResiliencePipeline};
use bulwark::ratelimit::RateLimitConfig;
use bulwark::retry::{Backoff, RetryConfig};
use http::StatusCode;

/// The recommended order, outer to inner: rate limit > bulkhead > overall timeout > retry >
/// circuit breaker > per-attempt timeout > call. `MonotonicClock::new()` in production.
fn openai<C: Clock>(clock: C) -> Result<ResiliencePipeline<C>, PipelineConfigError> {
    let mut retry = RetryConfig::new(
        3,
        Backoff::full_jitter(Duration::from_millis(100), Duration::from_secs(5)),
    );
    // An open breaker asks for its 30 s until the trial: give up at once rather than wait.
    retry.max_retry_after = Duration::from_secs(1);
    ResiliencePipeline::builder_with_clock(clock)
        .name("openai")
        .rate_limit_config(RateLimitConfig::new(60, Duration::from_secs(60), 10), None)
        .bulkhead(BulkheadConfig::new(16))
        .timeout(Duration::from_secs(120)) // overall: a retry follows it
        .retry(retry)
        .circuit_breaker_config(CircuitBreakerConfig::new(5, 2, Duration::from_secs(30), 1))
        .timeout(Duration::from_secs(30)) // per attempt
        .build()
}

/// What the caller does with each outcome: the call's own error apart from each refusal.
fn describe(outcome: Result<String, PipelineError<StatusCode>>) -> String {
    match outcome {
        Ok(answer) => answer,
        // 4xx are the caller's: neither retried nor counted by the breaker.
        Err(PipelineError::Failed(status)) => format!("upstream said {}", status.as_u16()),
        Err(PipelineError::CircuitOpen(open)) => format!("breaker {} is open", open.breaker),
        Err(PipelineError::TimedOut(t)) => format!("{} timeout after {:?}", t.kind, t.after),
        Err(refused) => format!("refused: {}", refused.kind().as_str()),
    }
}
// README:end

/// Lets spawned tasks run until they block on the manual clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// The README's block: the first `rust` block after its "Resilience pipeline" heading.
fn readme_block() -> &'static str {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Resilience pipeline").unwrap()..];
    let start = section.find("```rust\n").unwrap() + "```rust\n".len();
    &section[start..start + section[start..].find("```").unwrap()]
}

#[test]
fn the_readme_shows_this_code() {
    let this = include_str!("pipeline_readme.rs");
    let start = this.find("// README:start\n").unwrap() + "// README:start\n".len();
    let end = this.find("// README:end").unwrap();
    assert_eq!(readme_block(), &this[start..end]);
}

#[tokio::test]
async fn a_503_is_retried_after_the_backoff_and_the_third_attempt_answers() {
    let clock = ManualClock::new();
    let pipeline = openai(clock.clone()).unwrap();
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let task = tokio::spawn({
        let (pipeline, calls) = (pipeline.clone(), calls.clone());
        async move {
            let outcome = pipeline
                .execute(|| async {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 | 1 => Err(StatusCode::SERVICE_UNAVAILABLE),
                        _ => Ok("an answer".to_string()),
                    }
                })
                .await;
            describe(outcome)
        }
    });
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Full jitter waits at most the cap (5 s) before each retry.
    clock.advance(Duration::from_secs(5));
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_secs(5));
    assert_eq!(task.await.unwrap(), "an answer");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let breaker = pipeline.circuit_breaker().unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn a_400_is_answered_at_once_and_not_counted_by_the_breaker() {
    let pipeline = openai(ManualClock::new()).unwrap();
    let calls = AtomicU32::new(0);
    for _ in 0..6 {
        let outcome = pipeline
            .execute(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<String, _>(StatusCode::BAD_REQUEST)
            })
            .await;
        assert_eq!(describe(outcome), "upstream said 400");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6, "one attempt per call");
    assert_eq!(pipeline.circuit_breaker().unwrap().state(), State::Closed);
}

#[tokio::test]
async fn a_down_upstream_opens_the_breaker_after_five_attempts_and_is_not_waited_for() {
    let clock = ManualClock::new();
    let pipeline = openai(clock.clone()).unwrap();
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let down = |calls: std::sync::Arc<AtomicU32>| {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            let outcome = pipeline
                .execute(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<String, _>(StatusCode::BAD_GATEWAY)
                })
                .await;
            describe(outcome)
        })
    };
    // The first call makes its 3 attempts and fails with the upstream's error.
    let first = down(calls.clone());
    for _ in 0..3 {
        settle().await;
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(first.await.unwrap(), "upstream said 502");
    // The second: 2 more attempts open the breaker; its third meets the open breaker and
    // gives up at once instead of waiting 30 s.
    let second = down(calls.clone());
    for _ in 0..3 {
        settle().await;
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(second.await.unwrap(), "breaker openai is open");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // Further calls are refused without reaching the upstream.
    assert_eq!(down(calls.clone()).await.unwrap(), "breaker openai is open");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_hung_attempt_is_cut_by_the_per_attempt_timeout_and_retried() {
    let clock = ManualClock::new();
    let pipeline = openai(clock.clone()).unwrap();
    let calls = std::sync::Arc::new(AtomicU32::new(0));
    let task = tokio::spawn({
        let (pipeline, calls) = (pipeline.clone(), calls.clone());
        async move {
            let outcome = pipeline
                .execute(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<String, StatusCode>>().await
                })
                .await;
            describe(outcome)
        }
    });
    for _ in 0..3 {
        settle().await;
        assert!(!task.is_finished());
        clock.advance(Duration::from_secs(30)); // the attempt's timeout
        settle().await;
        clock.advance(Duration::from_secs(5)); // the backoff
    }
    assert_eq!(task.await.unwrap(), "attempt timeout after 30s");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
