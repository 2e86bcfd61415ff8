//! One contract, every backend: the same test functions run against the local keyed limiter
//! and the Redis limiter, both driven by one manual clock.
//!
//! Time alignment: the Redis limiter is built with `.clock(manual)`, so each decision sends the
//! manual clock's reading to the script instead of using the server's `TIME`. The clock starts
//! at a present-day Unix time in nanoseconds (above 2^53), so the script's exact pair arithmetic
//! is exercised where plain doubles would round.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::ratelimit::redis::RedisRateLimiter;
use bulwark::ratelimit::{KeyedRateLimiter, RateLimitBackend, RateLimitConfig, RateLimitError};

const START: Duration = Duration::from_secs(1_764_000_000);

fn local(config: RateLimitConfig, clock: &ManualClock) -> Box<dyn RateLimitBackend> {
    Box::new(
        KeyedRateLimiter::<String>::builder(config)
            .clock(clock.clone())
            .build()
            .unwrap(),
    )
}

async fn redis(
    config: RateLimitConfig,
    clock: &ManualClock,
    test: &str,
) -> Option<Box<dyn RateLimitBackend>> {
    match RedisRateLimiter::builder(config)
        .prefix(support::unique_prefix(test))
        .clock(clock.clone())
        .timeout(Duration::from_secs(2))
        .connect(&support::redis_url())
        .await
    {
        Ok(limiter) => Some(Box::new(limiter)),
        Err(error) => support::unavailable("redis", error),
    }
}

/// Runs `case` against every backend.
macro_rules! conformance {
    ($name:ident, $config:expr, $case:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn local_backend() {
                let clock = ManualClock::starting_at(START);
                $case(local($config, &clock).as_ref(), &clock).await;
            }

            #[tokio::test]
            async fn redis_backend() {
                let clock = ManualClock::starting_at(START);
                if let Some(backend) = redis($config, &clock, stringify!($name)).await {
                    $case(backend.as_ref(), &clock).await;
                }
            }
        }
    };
}

async fn admitted(backend: &dyn RateLimitBackend, key: &str, attempts: usize) -> usize {
    let mut count = 0;
    for _ in 0..attempts {
        if backend.check(key, 1).await.is_ok() {
            count += 1;
        }
    }
    count
}

async fn burst_then_refill(backend: &dyn RateLimitBackend, clock: &ManualClock) {
    assert_eq!(admitted(backend, "k", 40).await, 25);
    clock.advance(Duration::from_millis(99));
    assert_eq!(admitted(backend, "k", 5).await, 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(admitted(backend, "k", 5).await, 1);
    clock.advance(Duration::from_secs(10));
    assert_eq!(admitted(backend, "k", 40).await, 25);
}
conformance!(
    burst,
    RateLimitConfig::new(10, Duration::from_secs(1), 15),
    burst_then_refill
);

async fn refusal_carries_retry_after(backend: &dyn RateLimitBackend, clock: &ManualClock) {
    let admitted = backend.check("k", 3).await.unwrap();
    assert_eq!(admitted.remaining, 1);
    assert_eq!(admitted.reset_after, Duration::from_millis(750));
    match backend.check("k", 3).await {
        Err(RateLimitError::Limited(limited)) => {
            assert_eq!(limited.retry_after, Duration::from_millis(500));
            assert_eq!(limited.available, 1);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    clock.advance(Duration::from_millis(500));
    assert!(backend.check("k", 3).await.is_ok());
}
conformance!(
    retry,
    RateLimitConfig::per_second(4),
    refusal_carries_retry_after
);

async fn over_capacity_is_an_error(backend: &dyn RateLimitBackend, _: &ManualClock) {
    assert!(matches!(
        backend.check("k", 6).await,
        Err(RateLimitError::ExceedsCapacity(_))
    ));
    assert_eq!(backend.capacity(), 5);
    assert!(backend.check("k", 5).await.is_ok());
}
conformance!(
    capacity,
    RateLimitConfig::new(3, Duration::from_secs(1), 2),
    over_capacity_is_an_error
);

async fn keys_are_isolated(backend: &dyn RateLimitBackend, _: &ManualClock) {
    assert_eq!(admitted(backend, "alice", 5).await, 2);
    assert_eq!(admitted(backend, "bob", 5).await, 2);
    assert_eq!(admitted(backend, "alice", 5).await, 0);
}
conformance!(isolation, RateLimitConfig::per_minute(2), keys_are_isolated);

/// A small deterministic generator, so a failing sequence can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::test]
async fn redis_and_local_agree_decision_for_decision() {
    let config = RateLimitConfig::new(7, Duration::from_millis(700), 3);
    let clock = ManualClock::starting_at(START);
    let Some(shared) = redis(config, &clock, "agree").await else {
        return;
    };
    let local = local(config, &clock);
    let mut random = Lcg(42);
    let mut refusals = 0;
    for step in 0..600 {
        match random.next() % 4 {
            0 => clock.advance(Duration::from_nanos(random.next() % 400_000_000)),
            1 => clock.advance(Duration::from_nanos(random.next() % 3_000)),
            _ => {
                let key = format!("k{}", random.next() % 3);
                let tokens = (random.next() % 4 + 1) as u32;
                let ours = local.check(&key, tokens).await;
                let theirs = shared.check(&key, tokens).await;
                refusals += usize::from(ours.is_err());
                assert_eq!(ours, theirs, "step {step}: {tokens} token(s) for {key}");
            }
        }
    }
    assert!(
        refusals > 20,
        "the sequence should exercise refusals too ({refusals})"
    );
}
