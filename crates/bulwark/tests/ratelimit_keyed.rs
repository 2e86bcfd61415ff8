//! The keyed limiter: isolation, per-key overrides, bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::ratelimit::{ConfigError, KeyedRateLimiter, MAX_KEY_OVERRIDES, RateLimitConfig};

fn keyed<K>(config: RateLimitConfig) -> (KeyedRateLimiter<K, ManualClock>, ManualClock)
where
    K: std::hash::Hash + Eq + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let clock = ManualClock::new();
    let limiter = KeyedRateLimiter::builder(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    (limiter, clock)
}

#[test]
fn each_key_has_its_own_bucket() {
    let (limiter, clock) = keyed::<&str>(RateLimitConfig::new(2, Duration::from_secs(1), 1));
    for user in ["alice", "bob", "carol"] {
        assert_eq!(
            (0..10)
                .filter(|_| limiter.try_acquire(&user, 1).unwrap())
                .count(),
            3
        );
    }
    clock.advance(Duration::from_millis(500));
    assert!(limiter.try_acquire(&"bob", 1).unwrap());
    assert!(!limiter.try_acquire(&"bob", 1).unwrap());
    assert_eq!(limiter.available(&"alice"), 1);
    assert_eq!(limiter.available(&"nobody"), 3);
}

#[test]
fn a_key_override_replaces_the_default_quota_for_that_key_only() {
    let (limiter, _) = keyed::<String>(RateLimitConfig::per_minute(10));
    limiter
        .set_key_config("premium".into(), RateLimitConfig::per_minute(100))
        .unwrap();
    let count = |key: &str| {
        (0..500)
            .filter(|_| limiter.try_acquire(&key.to_string(), 1).unwrap())
            .count()
    };
    assert_eq!(count("premium"), 100);
    assert_eq!(count("free"), 10);
    assert_eq!(limiter.key_config(&"premium".into()).max_requests, 100);
    assert!(limiter.remove_key_config(&"premium".into()));
    assert_eq!(limiter.key_config(&"premium".into()).max_requests, 10);
    assert!(
        limiter
            .set_key_config("bad".into(), RateLimitConfig::per_minute(0))
            .is_err()
    );
}

// Issue 11 defect 9: the per-key override map is bounded, with a typed error past the cap.
#[test]
fn overrides_past_the_cap_are_refused_and_change_nothing() {
    let (limiter, _) = keyed::<usize>(RateLimitConfig::per_minute(10));
    for key in 0..MAX_KEY_OVERRIDES {
        limiter
            .set_key_config(key, RateLimitConfig::per_minute(100))
            .unwrap();
    }
    assert_eq!(
        limiter.set_key_config(MAX_KEY_OVERRIDES, RateLimitConfig::per_minute(100)),
        Err(ConfigError::TooManyOverrides {
            max: MAX_KEY_OVERRIDES
        })
    );
    assert_eq!(limiter.key_config(&MAX_KEY_OVERRIDES).max_requests, 10);
    // Replacing an existing override, or adding one after a removal, still works.
    limiter
        .set_key_config(0, RateLimitConfig::per_minute(50))
        .unwrap();
    assert_eq!(limiter.key_config(&0).max_requests, 50);
    assert!(limiter.remove_key_config(&1));
    limiter
        .set_key_config(MAX_KEY_OVERRIDES, RateLimitConfig::per_minute(100))
        .unwrap();
}

#[test]
fn oversized_requests_are_errors_per_key_quota() {
    let (limiter, _) = keyed::<u8>(RateLimitConfig::per_second(3));
    assert!(limiter.try_acquire(&1, 4).is_err());
    limiter
        .set_key_config(2, RateLimitConfig::per_second(10))
        .unwrap();
    assert!(limiter.try_acquire(&2, 4).unwrap());
}

#[test]
fn cycling_a_million_keys_keeps_memory_bounded_by_the_active_set() {
    // 10 per second: a key used once is full again 100 ms later and carries no information.
    let (limiter, clock) = keyed::<u64>(RateLimitConfig::per_second(10));
    let mut peak = 0;
    for key in 0..1_000_000u64 {
        assert!(limiter.try_acquire(&key, 1).unwrap());
        // 1,000 new keys per 10 ms: about 10,000 keys are active (not yet refilled) at a time.
        if key % 1_000 == 999 {
            clock.advance(Duration::from_millis(10));
            peak = peak.max(limiter.len());
        }
    }
    // Bounded by twice the active set per shard plus the sweep floor, never by the million.
    assert!(peak < 40_000, "peak of {peak} keys held");
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.shrink(), 0);
    assert!(limiter.is_empty());
}

#[test]
fn a_swept_key_behaves_exactly_like_a_full_bucket() {
    let (limiter, clock) = keyed::<u32>(RateLimitConfig::new(1, Duration::from_secs(1), 1));
    assert!(limiter.try_acquire(&7, 2).unwrap());
    clock.advance(Duration::from_millis(1500)); // 1.5 tokens: not full, must be kept
    assert_eq!(limiter.shrink(), 1);
    assert!(limiter.try_acquire(&7, 1).unwrap());
    assert!(!limiter.try_acquire(&7, 1).unwrap());
    clock.advance(Duration::from_secs(2)); // full: may be dropped
    assert_eq!(limiter.shrink(), 0);
    assert!(limiter.try_acquire(&7, 2).unwrap());
    assert!(!limiter.try_acquire(&7, 1).unwrap());
}

#[test]
fn threads_on_many_keys_never_over_admit_any_key() {
    let (limiter, _) = keyed::<u32>(RateLimitConfig::new(5, Duration::from_secs(60), 0));
    let admitted: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                scope.spawn(move || {
                    (0..20_000u32)
                        .filter(|i| limiter.try_acquire(&(i % 100), 1).unwrap())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(admitted.iter().sum::<usize>(), 100 * 5);
}

#[tokio::test(start_paused = true)]
async fn acquire_on_a_key_waits_for_that_key_only() {
    let (limiter, clock) = keyed::<&str>(RateLimitConfig::per_second(1));
    limiter
        .acquire(&"a", 1, Duration::from_secs(5))
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.acquire(&"a", 1, Duration::from_secs(5)).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    // Another key is not held up by the wait on "a".
    limiter.acquire(&"b", 1, Duration::ZERO).await.unwrap();
    clock.advance(Duration::from_secs(1));
    waiting.await.unwrap().unwrap();
    assert!(
        limiter
            .acquire(&"a", 1, Duration::from_millis(500))
            .await
            .is_err()
    );
}
