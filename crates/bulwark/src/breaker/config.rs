//! The policy a breaker enforces, as a plain value.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::state::MAX_COUNT;
use crate::serde_duration;

/// When a breaker opens and how it recovers. Defaults are the original system's: open after
/// 5 consecutive failures, try again after 60 s with at most 3 trial calls at once, close after
/// 2 successful trials.
///
/// With [`sliding_window`](Self::sliding_window) set, the CLOSED state opens on the failure
/// rate over a window instead of on consecutive failures (`failure_threshold` is then unused);
/// HALF_OPEN behaves the same in both modes.
///
/// In serialized form durations are human-readable strings (`"60s"`, `"1m 30s"`) or numbers of
/// seconds; every field may be left out and takes its default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures in CLOSED that open the breaker (consecutive mode).
    pub failure_threshold: u32,
    /// Successful trial calls in HALF_OPEN that close the breaker.
    pub success_threshold: u32,
    /// How long the breaker stays OPEN before admitting trial calls.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Trial calls HALF_OPEN lets run at once; never exceeded, under any concurrency.
    pub half_open_max_calls: u32,
    /// Open on the failure rate over a sliding window rather than on consecutive failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<SlidingWindow>,
    /// A call that takes longer than this counts as a failure even if it succeeds.
    #[serde(
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_call_threshold: Option<Duration>,
}

/// The failure-rate rule of sliding-window mode: open when, over the window, at least
/// `minimum_calls` calls were seen and the share of failures is at least `failure_rate`.
///
/// Memory does not grow with call volume: the window is a ring of at most
/// [`SlidingWindow::MAX_BUCKETS`] buckets, each one word of counts (per second for a time window,
/// per `calls / 20` calls for a count window), so the window ends on a bucket boundary.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    /// What the window covers: the last N calls or the last T of time.
    pub size: WindowSize,
    /// The failure share, in `(0, 1]`, at or above which the breaker opens.
    pub failure_rate: f64,
    /// Calls the window must hold before the rate is trusted; for a count window at most its
    /// size (validation refuses more).
    #[serde(default = "default_minimum_calls")]
    pub minimum_calls: u32,
}

const fn default_minimum_calls() -> u32 {
    10
}

/// How much a sliding window covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowSize {
    /// The last this many calls (to within one bucket of `calls / 20`).
    Calls(u32),
    /// The calls of the last this much time, in buckets of one second (or `time / 120` for
    /// windows longer than two minutes).
    Time(#[serde(with = "serde_duration")] Duration),
}

impl SlidingWindow {
    /// The most buckets a window is split into.
    pub const MAX_BUCKETS: u32 = 120;

    /// A window over the last `calls` calls.
    pub const fn calls(calls: u32, failure_rate: f64, minimum_calls: u32) -> Self {
        Self {
            size: WindowSize::Calls(calls),
            failure_rate,
            minimum_calls,
        }
    }

    /// A window over the last `time`.
    pub const fn time(time: Duration, failure_rate: f64, minimum_calls: u32) -> Self {
        Self {
            size: WindowSize::Time(time),
            failure_rate,
            minimum_calls,
        }
    }
}

impl CircuitBreakerConfig {
    /// A consecutive-failures config.
    pub const fn new(
        failure_threshold: u32,
        success_threshold: u32,
        timeout: Duration,
        half_open_max_calls: u32,
    ) -> Self {
        Self {
            failure_threshold,
            success_threshold,
            timeout,
            half_open_max_calls,
            sliding_window: None,
            slow_call_threshold: None,
        }
    }

    /// The same config in sliding-window mode.
    pub const fn with_sliding_window(mut self, window: SlidingWindow) -> Self {
        self.sliding_window = Some(window);
        self
    }

    /// The same config, counting calls slower than `threshold` as failures.
    pub const fn with_slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.slow_call_threshold = Some(threshold);
        self
    }

    /// Checks the config, returning the reason it cannot be enforced. A `const fn`, so the
    /// `#[circuit_breaker]` macro rejects a bad config at compile time.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = check_count("failure_threshold", self.failure_threshold) {
            return Err(e);
        }
        if let Err(e) = check_count("success_threshold", self.success_threshold) {
            return Err(e);
        }
        if let Err(e) = check_count("half_open_max_calls", self.half_open_max_calls) {
            return Err(e);
        }
        if let Some(window) = &self.sliding_window {
            let rate = window.failure_rate;
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(ConfigError::FailureRate { rate });
            }
            match window.size {
                WindowSize::Calls(0) => return Err(ConfigError::EmptyWindow),
                // A window of N calls never holds more than N, so the rate would never count.
                WindowSize::Calls(calls) if window.minimum_calls > calls => {
                    return Err(ConfigError::MinimumCallsAboveWindow {
                        minimum_calls: window.minimum_calls,
                        window_calls: calls,
                    });
                }
                WindowSize::Time(t) if t.is_zero() => return Err(ConfigError::EmptyWindow),
                _ => {}
            }
        }
        Ok(())
    }
}

const fn check_count(field: &'static str, value: u32) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError::Zero { field })
    } else if value > MAX_COUNT {
        Err(ConfigError::TooLarge {
            field,
            value,
            max: MAX_COUNT,
        })
    } else {
        Ok(())
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self::new(5, 2, Duration::from_secs(60), 3)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn defaults_are_the_original_systems() {
        let c = CircuitBreakerConfig::default();
        assert_eq!(
            (
                c.failure_threshold,
                c.success_threshold,
                c.timeout,
                c.half_open_max_calls
            ),
            (5, 2, Duration::from_secs(60), 3)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn zero_and_oversized_thresholds_are_refused_by_name() {
        let mut c = CircuitBreakerConfig {
            half_open_max_calls: 0,
            ..CircuitBreakerConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero {
                field: "half_open_max_calls"
            })
        );
        c.half_open_max_calls = MAX_COUNT + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooLarge {
                field: "half_open_max_calls",
                ..
            })
        ));
    }

    #[test]
    fn window_rate_outside_zero_to_one_is_refused() {
        for rate in [0.0, -0.5, 1.5, f64::NAN] {
            let c = CircuitBreakerConfig::default()
                .with_sliding_window(SlidingWindow::calls(10, rate, 5));
            assert!(
                matches!(c.validate(), Err(ConfigError::FailureRate { .. })),
                "{rate}"
            );
        }
        let c = CircuitBreakerConfig::default().with_sliding_window(SlidingWindow::time(
            Duration::ZERO,
            0.5,
            5,
        ));
        assert_eq!(c.validate(), Err(ConfigError::EmptyWindow));
    }

    // Issue 11 defect 9: a count window smaller than `minimum_calls` could never trip.
    #[test]
    fn minimum_calls_above_a_count_window_is_refused() {
        let c =
            CircuitBreakerConfig::default().with_sliding_window(SlidingWindow::calls(10, 0.5, 11));
        assert_eq!(
            c.validate(),
            Err(ConfigError::MinimumCallsAboveWindow {
                minimum_calls: 11,
                window_calls: 10
            })
        );
        assert!(c.validate().unwrap_err().to_string().contains("never"));
        let c =
            CircuitBreakerConfig::default().with_sliding_window(SlidingWindow::calls(10, 0.5, 10));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn config_round_trips_through_json_with_humantime_durations() {
        let c = CircuitBreakerConfig::default()
            .with_sliding_window(SlidingWindow::time(Duration::from_secs(30), 0.5, 20))
            .with_slow_call_threshold(Duration::from_millis(1500));
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["timeout"], "1m");
        assert_eq!(json["sliding_window"]["size"]["time"], "30s");
        assert_eq!(json["slow_call_threshold"], "1s 500ms");
        let back: CircuitBreakerConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn missing_fields_take_defaults_and_numbers_are_seconds() {
        let c: CircuitBreakerConfig =
            serde_json::from_str(r#"{"failure_threshold": 3, "timeout": 30}"#).unwrap();
        assert_eq!(c.failure_threshold, 3);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.success_threshold, 2);
        let bad = serde_json::from_str::<CircuitBreakerConfig>(r#"{"timeout": "soon"}"#);
        assert!(bad.unwrap_err().to_string().contains("soon"));
    }
}
