//! Differential test: the same decisions as `governor` on random request sequences, with the
//! quota mapped as `Quota::with_period(time_window / max_requests).allow_burst(capacity)` and
//! both crates driven by their manual clocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter as Governor};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    Request(u32),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn same_decisions_as_governor(
        max in 1u32..40,
        // whole milliseconds per token, so time_window / max_requests is exact in both crates
        period_ms in 1u64..500,
        burst in 0u32..10,
        steps in prop::collection::vec(prop_oneof![
            (0u64..1_000_000_000).prop_map(Step::Advance),
            (0u64..20_000_000).prop_map(Step::Advance),
            (1u32..6).prop_map(Step::Request),
        ], 1..300),
    ) {
        let config = RateLimitConfig::new(max, Duration::from_millis(period_ms * max as u64), burst);
        let clock = ManualClock::new();
        let ours = RateLimiter::builder(config).clock(clock.clone()).build().unwrap();
        let quota = Quota::with_period(config.time_window / config.max_requests)
            .unwrap()
            .allow_burst(NonZeroU32::new(config.capacity() as u32).unwrap());
        let fake = FakeRelativeClock::default();
        let theirs = Governor::direct_with_clock(quota, fake.clone());
        for step in steps {
            match step {
                Step::Advance(nanos) => {
                    clock.advance(Duration::from_nanos(nanos));
                    fake.advance(Duration::from_nanos(nanos));
                }
                Step::Request(n) => {
                    let governor = match theirs.check_n(NonZeroU32::new(n).unwrap()) {
                        Ok(decision) => Some(decision.is_ok()),
                        Err(_) => None, // more than the burst: an error in both crates
                    };
                    let ours = ours.try_acquire(n).ok();
                    prop_assert_eq!(ours, governor, "request of {} tokens", n);
                }
            }
        }
    }
}
