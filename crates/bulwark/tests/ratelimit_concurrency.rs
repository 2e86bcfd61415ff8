//! Threads hammering one limiter never over-admit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bulwark::clock::ManualClock;
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};

#[test]
fn threads_on_a_frozen_clock_admit_exactly_the_capacity() {
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(RateLimitConfig::new(1_000, Duration::from_secs(1), 24))
        .clock(clock)
        .build()
        .unwrap();
    let admitted: usize = std::thread::scope(|scope| {
        (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                scope.spawn(move || {
                    (0..50_000)
                        .filter(|_| limiter.try_acquire(1).unwrap())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum()
    });
    assert_eq!(admitted, 1_024);
}

#[test]
fn threads_on_the_real_clock_admit_no_more_than_capacity_plus_refill() {
    // The bound is checked against wall time measured around the run, which can only make the
    // allowance larger, never hide an over-admission.
    let config = RateLimitConfig::new(100_000, Duration::from_secs(1), 100);
    let limiter = RateLimiter::new(config).unwrap();
    let start = Instant::now();
    let admitted: u64 = std::thread::scope(|scope| {
        (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                scope.spawn(move || {
                    (0..200_000)
                        .filter(|_| limiter.try_acquire(1).unwrap())
                        .count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum()
    });
    let elapsed = start.elapsed();
    let allowance = config.capacity() + (elapsed.as_secs_f64() * 100_000.0).ceil() as u64;
    assert!(
        admitted <= allowance,
        "{admitted} admitted, allowance {allowance}"
    );
    assert!(admitted >= config.capacity());
}
