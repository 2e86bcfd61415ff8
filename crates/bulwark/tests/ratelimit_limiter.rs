//! The single-bucket limiter under the manual clock: exact admitted counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::ratelimit::{ConfigError, Decision, RateLimitConfig, RateLimitError, RateLimiter};

fn limiter(config: RateLimitConfig) -> (RateLimiter<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    (limiter, clock)
}

fn admitted(limiter: &RateLimiter<ManualClock>, attempts: usize) -> usize {
    (0..attempts)
        .filter(|_| limiter.try_acquire(1).unwrap())
        .count()
}

#[test]
fn full_burst_then_refill_at_the_configured_rate() {
    // 100 per minute with a burst of 20: 120 at once, then one every 600 ms.
    let (limiter, clock) = limiter(RateLimitConfig::new(100, Duration::from_secs(60), 20));
    assert_eq!(admitted(&limiter, 500), 120);
    clock.advance(Duration::from_millis(599));
    assert_eq!(admitted(&limiter, 10), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(admitted(&limiter, 10), 1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(admitted(&limiter, 500), 100);
}

#[test]
fn fractional_refill_accumulates_across_calls() {
    // 3 per second: a token every 333.33 ms, rounded up to 333_333_334 ns.
    let (limiter, clock) = limiter(RateLimitConfig::per_second(3));
    let interval = limiter.refill_interval();
    assert_eq!(interval, Duration::from_nanos(333_333_334));
    assert_eq!(admitted(&limiter, 10), 3);
    for k in 1..=6u32 {
        // Small steps that each add a fraction of a token add up to exactly one.
        clock.set(interval * k - Duration::from_millis(300));
        assert_eq!(admitted(&limiter, 10), 0);
        clock.advance(Duration::from_millis(200));
        assert_eq!(admitted(&limiter, 10), 0);
        clock.advance(Duration::from_millis(100) - Duration::from_nanos(1));
        assert_eq!(admitted(&limiter, 10), 0);
        clock.advance(Duration::from_nanos(1));
        assert_eq!(
            admitted(&limiter, 10),
            1,
            "token {k} arrives at k x interval"
        );
    }
}

#[test]
fn n_token_requests_take_n_tokens_and_wait_for_all_of_them() {
    let (limiter, clock) = limiter(RateLimitConfig::new(10, Duration::from_secs(1), 0));
    assert!(limiter.try_acquire(7).unwrap());
    assert!(!limiter.try_acquire(4).unwrap());
    let refused = limiter.check(4).unwrap_err();
    match refused {
        RateLimitError::Limited(limited) => {
            assert_eq!(limited.available, 3);
            assert_eq!(limited.requested, 4);
            assert_eq!(limited.retry_after, Duration::from_millis(100));
        }
        other => panic!("unexpected {other:?}"),
    }
    clock.advance(Duration::from_millis(100));
    assert!(limiter.try_acquire(4).unwrap());
    assert_eq!(limiter.available(), 0);
}

#[test]
fn more_than_capacity_is_an_error_not_a_false() {
    let (limiter, _) = limiter(RateLimitConfig::new(5, Duration::from_secs(1), 2));
    let error = limiter.try_acquire(8).unwrap_err();
    assert_eq!((error.requested, error.capacity), (8, 7));
    assert!(matches!(
        limiter.check(8),
        Err(RateLimitError::ExceedsCapacity(_))
    ));
    assert_eq!(
        limiter.available(),
        7,
        "a refused oversized request takes nothing"
    );
}

#[test]
fn a_long_idle_period_refills_only_up_to_capacity() {
    let (limiter, clock) = limiter(RateLimitConfig::new(10, Duration::from_secs(1), 5));
    assert_eq!(admitted(&limiter, 100), 15);
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(limiter.available(), 15);
    assert_eq!(admitted(&limiter, 100), 15);
}

#[test]
fn the_clock_at_its_extremes_neither_panics_nor_over_admits() {
    let config = RateLimitConfig::new(10, Duration::from_secs(1), 0);
    let clock = ManualClock::starting_at(Duration::from_nanos(u64::MAX - 5_000_000_000));
    let limiter = RateLimiter::builder(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(
        (0..100).filter(|_| limiter.try_acquire(1).unwrap()).count(),
        10
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        (0..100).filter(|_| limiter.try_acquire(1).unwrap()).count(),
        10
    );
    // At the very end of the range the state cannot move past it: refuse rather than wrap.
    clock.set(Duration::from_nanos(u64::MAX));
    assert_eq!(
        (0..100).filter(|_| limiter.try_acquire(1).unwrap()).count(),
        0
    );
    // A clock stepping back far below the state grants nothing.
    clock.set(Duration::ZERO);
    assert_eq!(
        (0..100).filter(|_| limiter.try_acquire(1).unwrap()).count(),
        0
    );
}

#[test]
fn clones_share_one_bucket() {
    let (limiter, _) = limiter(RateLimitConfig::per_second(4));
    let clone = limiter.clone();
    assert!(limiter.try_acquire(3).unwrap());
    assert!(!clone.try_acquire(2).unwrap());
    assert!(clone.try_acquire(1).unwrap());
    assert_eq!(limiter.available(), 0);
    limiter.reset();
    assert_eq!(clone.available(), 4);
}

#[test]
fn invalid_configs_are_typed_errors() {
    assert_eq!(
        RateLimiter::new(RateLimitConfig::new(0, Duration::from_secs(1), 5)).unwrap_err(),
        ConfigError::ZeroRequests
    );
    assert_eq!(
        RateLimiter::new(RateLimitConfig::new(5, Duration::ZERO, 0)).unwrap_err(),
        ConfigError::ZeroWindow
    );
    assert!(matches!(
        RateLimiter::new(RateLimitConfig::new(u32::MAX, Duration::from_secs(1), 1)),
        Err(ConfigError::CapacityTooLarge { .. })
    ));
    assert!(matches!(
        RateLimiter::new(RateLimitConfig::new(
            1,
            Duration::from_secs(u64::MAX / 4),
            3
        )),
        Err(ConfigError::WindowTooLong { .. })
    ));
}

#[test]
fn observers_see_every_decision_and_cannot_change_it() {
    type Seen = Vec<(bool, u32, Option<Duration>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = Arc::clone(&seen);
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(RateLimitConfig::per_second(2))
        .clock(clock)
        .name("llm")
        .observer(Arc::new(move |d: &Decision<'_>| {
            assert_eq!(d.limiter, Some("llm"));
            sink.lock()
                .unwrap()
                .push((d.allowed, d.available, d.retry_after));
        }))
        .build()
        .unwrap();
    assert!(limiter.try_acquire(1).unwrap());
    assert!(limiter.try_acquire(1).unwrap());
    assert!(!limiter.try_acquire(1).unwrap());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (true, 1, None),
            (true, 0, None),
            (false, 0, Some(Duration::from_millis(500)))
        ]
    );
}

#[test]
fn config_round_trips_through_json_with_a_readable_window() {
    let config = RateLimitConfig::new(100, Duration::from_secs(60), 20);
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        json,
        r#"{"max_requests":100,"time_window":"1m","burst_size":20}"#
    );
    let back: RateLimitConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    let seconds: RateLimitConfig =
        serde_json::from_str(r#"{"max_requests":5,"time_window":2}"#).unwrap();
    assert_eq!(seconds, RateLimitConfig::new(5, Duration::from_secs(2), 0));
    assert!(
        serde_json::from_str::<RateLimitConfig>(r#"{"max_requests":5,"time_window":"soon"}"#)
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_for_the_manual_clock() {
    let (limiter, clock) = limiter(RateLimitConfig::per_second(1));
    limiter.acquire(1).await.unwrap();
    let waiting = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(1).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    clock.advance(Duration::from_secs(1));
    waiting.await.unwrap().unwrap();
    assert_eq!(limiter.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn acquire_fails_at_once_when_the_wait_exceeds_the_maximum() {
    let (limiter, _clock) = limiter(RateLimitConfig::per_minute(1));
    limiter.acquire(1).await.unwrap();
    let error = limiter
        .acquire_with_max_wait(1, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_takes_no_tokens() {
    let (limiter, clock) = limiter(RateLimitConfig::per_second(2));
    assert!(limiter.try_acquire(2).unwrap());
    let waiting = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(2).await }
    });
    tokio::task::yield_now().await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.available(), 2);
}
