//! Backoff sequences, jitter bounds, config errors and `Retry-After` parsing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark::retry::{
    Backoff, ConfigError, RetryBudgetConfig, RetryConfig, retry_after_from_headers,
};
use http::HeaderMap;
use proptest::prelude::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn constant_linear_and_exponential_follow_their_formulas_and_cap() {
    let constant = Backoff::constant(MS(250));
    let linear = Backoff::Linear {
        initial: MS(100),
        step: MS(50),
        cap: MS(220),
    };
    let exponential = Backoff::exponential(MS(100), MS(1000));
    let seq = |b: &Backoff| {
        (1..=6)
            .map(|n| b.delay(n, Duration::ZERO, 0.5))
            .collect::<Vec<_>>()
    };
    assert_eq!(seq(&constant), vec![MS(250); 6]);
    assert_eq!(
        seq(&linear),
        vec![MS(100), MS(150), MS(200), MS(220), MS(220), MS(220)]
    );
    assert_eq!(
        seq(&exponential),
        vec![MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000)]
    );
}

#[test]
fn full_jitter_spans_zero_to_the_capped_exponential() {
    let b = Backoff::full_jitter(MS(100), MS(1000));
    assert_eq!(b.delay(3, Duration::ZERO, 0.0), Duration::ZERO);
    assert_eq!(b.delay(3, Duration::ZERO, 0.5), MS(200)); // half of 400 ms
    assert_eq!(b.delay(10, Duration::ZERO, 0.5), MS(500)); // half of the cap
}

#[test]
fn decorrelated_jitter_draws_between_base_and_three_times_the_previous() {
    let b = Backoff::decorrelated_jitter(MS(100), MS(10_000));
    assert_eq!(b.delay(1, Duration::ZERO, 0.0), MS(100));
    assert_eq!(b.delay(2, MS(1000), 0.5), MS(1550)); // 100 + 0.5 × (3000 − 100)
    assert_eq!(b.delay(2, MS(9000), 0.99), MS(10_000)); // capped
}

#[test]
fn huge_retry_numbers_saturate_at_the_cap_without_overflow() {
    let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30));
    assert_eq!(
        b.delay(u32::MAX, Duration::ZERO, 0.0),
        Duration::from_secs(30)
    );
    let f = Backoff::full_jitter(Duration::from_secs(1), Duration::from_secs(30));
    assert_eq!(
        f.delay(u32::MAX, Duration::ZERO, 0.5),
        Duration::from_secs(15)
    );
}

proptest! {
    #[test]
    fn jittered_delays_stay_within_their_bounds(
        base_ms in 1u64..1_000,
        cap_factor in 1u64..100,
        n in 1u32..40,
        previous_ms in 0u64..200_000,
        unit in 0.0f64..1.0,
        jitter in 0.0f64..=1.0,
    ) {
        let base = MS(base_ms);
        let cap = MS(base_ms * cap_factor);
        let exp_no_jitter = base.as_secs_f64() * 2f64.powi(n as i32 - 1);
        let ceiling = Duration::from_secs_f64(exp_no_jitter.min(cap.as_secs_f64()));

        let full = Backoff::full_jitter(base, cap).delay(n, MS(previous_ms), unit);
        prop_assert!(full <= ceiling + Duration::from_nanos(1));

        let decorrelated = Backoff::decorrelated_jitter(base, cap).delay(n, MS(previous_ms), unit);
        prop_assert!(decorrelated >= base.min(cap) && decorrelated <= cap);
        prop_assert!(decorrelated <= MS(previous_ms).max(base) * 3);

        let exponential = Backoff::Exponential { initial: base, multiplier: 2.0, cap, jitter }
            .delay(n, Duration::ZERO, unit);
        let low = ceiling.mul_f64(1.0 - jitter);
        prop_assert!(exponential <= ceiling + Duration::from_nanos(1), "{exponential:?} > {ceiling:?}");
        prop_assert!(exponential + Duration::from_nanos(1) >= low, "{exponential:?} < {low:?}");
    }
}

#[test]
fn bad_configs_are_typed_errors_at_build_time() {
    let zero = RetryConfig::new(0, Backoff::default());
    assert_eq!(zero.validate(), Err(ConfigError::ZeroAttempts));
    let zero_cap = RetryConfig::new(3, Backoff::exponential(Duration::ZERO, Duration::ZERO));
    assert_eq!(zero_cap.validate(), Err(ConfigError::ZeroCap));
    let low_cap = RetryConfig::new(3, Backoff::full_jitter(MS(500), MS(100)));
    assert!(matches!(
        low_cap.validate(),
        Err(ConfigError::CapBelowFirstDelay { .. })
    ));
    for jitter in [-0.1, 1.5, f64::NAN] {
        let b = Backoff::Exponential {
            initial: MS(1),
            multiplier: 2.0,
            cap: MS(10),
            jitter,
        };
        assert!(
            matches!(b.validate(), Err(ConfigError::Jitter { .. })),
            "{jitter}"
        );
    }
    let budget = RetryConfig::default().with_budget(RetryBudgetConfig {
        ratio: 1.5,
        ..RetryBudgetConfig::default()
    });
    assert_eq!(
        budget.validate(),
        Err(ConfigError::BudgetRatio { ratio: 1.5 })
    );
    assert!(bulwark::retry::Retry::new(zero).is_err());
}

#[test]
fn a_negative_cap_in_a_config_file_is_refused_by_the_parser() {
    let text = r#"max_attempts = 3
backoff = { kind = "full_jitter", base = "100ms", cap = -1.0 }"#;
    assert!(toml::from_str::<RetryConfig>(text).is_err());
    let ok: RetryConfig = toml::from_str(
        r#"max_attempts = 4
backoff = { kind = "decorrelated_jitter", base = "100ms", cap = "5s" }
budget = { ratio = 0.2, window = "10s", min_retries_per_second = 1 }"#,
    )
    .unwrap();
    assert_eq!(ok.max_attempts, 4);
    assert_eq!(
        ok.backoff,
        Backoff::decorrelated_jitter(MS(100), Duration::from_secs(5))
    );
    assert_eq!(ok.budget.unwrap().window, Duration::from_secs(10));
    assert_eq!(ok.validate(), Ok(()));
}

#[test]
fn retry_after_reads_seconds_dates_and_milliseconds() {
    let now = UNIX_EPOCH + Duration::from_secs(1_445_412_000); // Wed, 21 Oct 2015 07:20:00 GMT
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after_from_headers(&headers, now), None);
    headers.insert("retry-after", "120".parse().unwrap());
    assert_eq!(
        retry_after_from_headers(&headers, now),
        Some(Duration::from_secs(120))
    );
    headers.insert(
        "retry-after",
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(
        retry_after_from_headers(&headers, now),
        Some(Duration::from_secs(480))
    );
    headers.insert(
        "retry-after",
        "Wed, 21 Oct 2015 07:00:00 GMT".parse().unwrap(),
    );
    assert_eq!(
        retry_after_from_headers(&headers, now),
        Some(Duration::ZERO)
    );
    headers.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(retry_after_from_headers(&headers, now), None);
    headers.insert("retry-after-ms", "1500".parse().unwrap());
    assert_eq!(
        retry_after_from_headers(&headers, SystemTime::now()),
        Some(MS(1500))
    );
}
