//! Timeouts on the manual clock: the inner future is dropped, the error names the timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::pipeline::{PipelineError, ResiliencePipeline};
use bulwark::retry::{Backoff, RetryConfig};
use bulwark::timeout::{ConfigError, Timeout, TimeoutEvent, TimeoutKind};

/// Sets its flag when dropped: proves the inner future was dropped, not left running.
struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn on_expiry_the_inner_future_is_dropped_and_the_error_says_which_and_when() {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&events);
    let timeout = Timeout::builder(Duration::from_secs(5))
        .name("search")
        .clock(clock.clone())
        .observer(Arc::new(move |ev: &TimeoutEvent<'_>| {
            e.lock()
                .unwrap()
                .push((ev.name.to_string(), ev.kind, ev.after));
        }))
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = DropGuard(Arc::clone(&dropped));
    let task = tokio::spawn(async move {
        timeout
            .run(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            })
            .await
    });
    settle().await;
    clock.advance(Duration::from_millis(4999));
    settle().await;
    assert!(
        !dropped.load(Ordering::SeqCst),
        "dropped before the deadline"
    );
    assert!(!task.is_finished());
    clock.advance(Duration::from_millis(1));
    let error = task.await.unwrap().unwrap_err();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the inner future outlived its timeout"
    );
    assert_eq!(
        (error.kind, error.after),
        (TimeoutKind::Attempt, Duration::from_secs(5))
    );
    assert_eq!(error.to_string(), "attempt timeout fired after 5s");
    assert_eq!(
        *events.lock().unwrap(),
        vec![(
            "search".to_string(),
            TimeoutKind::Attempt,
            Duration::from_secs(5)
        )]
    );
}

#[tokio::test]
async fn a_call_that_finishes_in_time_returns_its_output() {
    let clock = ManualClock::new();
    let timeout = Timeout::builder(Duration::from_secs(1))
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(timeout.run(async { 7 }).await, Ok(7));
    assert_eq!(Timeout::new(Duration::ZERO).unwrap_err(), ConfigError::Zero);
}

#[tokio::test]
async fn in_a_pipeline_a_timeout_inside_the_retry_bounds_each_attempt() {
    let clock = ManualClock::new();
    let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
        .retry(RetryConfig::new(3, Backoff::constant(Duration::ZERO)))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let a = Arc::clone(&attempts);
    let task = tokio::spawn(async move {
        pipeline
            .execute(|| {
                a.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<(), String>>()
            })
            .await
    });
    for expected in 1..=3 {
        settle().await;
        assert_eq!(attempts.load(Ordering::SeqCst), expected);
        clock.advance(Duration::from_secs(2));
    }
    match task.await.unwrap() {
        Err(PipelineError::TimedOut(e)) => assert_eq!(e.kind, TimeoutKind::Attempt),
        other => panic!("expected a per-attempt timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn in_a_pipeline_a_timeout_outside_the_retry_bounds_the_whole_call() {
    let clock = ManualClock::new();
    let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
        .timeout(Duration::from_secs(10))
        .retry(RetryConfig::new(
            100,
            Backoff::constant(Duration::from_secs(3)),
        ))
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let a = Arc::clone(&attempts);
    let task = tokio::spawn(async move {
        pipeline
            .execute(|| {
                a.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("503".to_string()) }
            })
            .await
    });
    for step in [3, 3, 3, 1] {
        settle().await;
        clock.advance(Duration::from_secs(step));
    }
    match task.await.unwrap() {
        Err(PipelineError::TimedOut(e)) => {
            assert_eq!(
                (e.kind, e.after),
                (TimeoutKind::Overall, Duration::from_secs(10))
            )
        }
        other => panic!("expected the overall timeout, got {other:?}"),
    }
    // Attempts at 0, 3, 6 and 9 s; the overall timeout fired at 10 s, during the backoff.
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}
