//! Properties of the limiter over random request sequences and clock advances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    Request(u32),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (0u64..2_000_000_000).prop_map(Step::Advance),
            (0u64..5_000_000).prop_map(Step::Advance),
            (1u32..8).prop_map(Step::Request),
        ],
        1..300,
    )
}

fn configs() -> impl Strategy<Value = RateLimitConfig> {
    (1u32..50, 1u64..5_000, 0u32..20).prop_map(|(max, window_ms, burst)| {
        RateLimitConfig::new(max, Duration::from_millis(window_ms), burst)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// In every interval `[a, b]` between two requests, the tokens admitted never exceed
    /// `capacity + rate × (b - a)`.
    #[test]
    fn admitted_tokens_never_exceed_capacity_plus_refill(config in configs(), steps in steps()) {
        let clock = ManualClock::new();
        let limiter = RateLimiter::builder(config).clock(clock.clone()).build().unwrap();
        let mut now = 0u64;
        let mut admitted: Vec<(u64, u32)> = Vec::new();
        for step in steps {
            match step {
                Step::Advance(nanos) => { now += nanos; clock.advance(Duration::from_nanos(nanos)); }
                Step::Request(n) => {
                    if n <= limiter.capacity() && limiter.try_acquire(n).unwrap() {
                        admitted.push((now, n));
                    }
                }
            }
        }
        let capacity = config.capacity() as u128;
        let window = config.time_window.as_nanos();
        for i in 0..admitted.len() {
            let mut total = 0u128;
            for &(t, n) in &admitted[i..] {
                total += n as u128;
                let elapsed = (t - admitted[i].0) as u128;
                // total <= capacity + max_requests * elapsed / window, without division
                prop_assert!(
                    total * window <= capacity * window + config.max_requests as u128 * elapsed,
                    "{total} tokens admitted within {elapsed} ns"
                );
            }
        }
    }

    /// A request the bucket could serve is never refused: decisions match an exact token
    /// bucket that counts credit in nanoseconds.
    #[test]
    fn decisions_match_an_exact_token_bucket(config in configs(), steps in steps()) {
        let clock = ManualClock::new();
        let limiter = RateLimiter::builder(config).clock(clock.clone()).build().unwrap();
        let interval = limiter.refill_interval().as_nanos() as u64;
        let full = interval * config.capacity();
        let mut credit = full; // nanoseconds of refill held, one token = `interval`
        for step in steps {
            match step {
                Step::Advance(nanos) => {
                    credit = (credit + nanos).min(full);
                    clock.advance(Duration::from_nanos(nanos));
                }
                Step::Request(n) => {
                    if n > limiter.capacity() { continue; }
                    let model = credit >= interval * n as u64;
                    if model { credit -= interval * n as u64; }
                    prop_assert_eq!(limiter.try_acquire(n).unwrap(), model);
                    prop_assert_eq!(limiter.available() as u64, credit / interval);
                }
            }
        }
    }
}
