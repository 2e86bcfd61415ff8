//! Delays between attempts: constant, linear, exponential and the AWS jitter formulas.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use crate::serde_duration;

/// How long to wait before each retry.
///
/// `n` below is the retry's number (1 for the first retry, after the first attempt failed) and
/// `u` a uniform random number in `[0, 1)`. Every delay is capped at `cap`. The jitter formulas
/// are those of AWS's "Exponential Backoff And Jitter" (2015).
///
/// | kind | delay before retry `n` |
/// |---|---|
/// | `Constant` | `delay` |
/// | `Linear` | `min(cap, initial + step × (n − 1))` |
/// | `Exponential` | `d = min(cap, initial × multiplier^(n−1))`, then `d × (1 − jitter × u)` |
/// | `FullJitter` | `u × min(cap, base × 2^(n−1))` |
/// | `DecorrelatedJitter` | `min(cap, base + u × (3 × previous − base))`, `previous` starting at `base` |
///
/// In serialized form the kind is a `kind` field (`"exponential"`) and durations are humantime
/// strings (`"100ms"`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Backoff {
    /// The same delay every time.
    Constant {
        /// The delay.
        #[serde(with = "serde_duration")]
        delay: Duration,
    },
    /// A delay growing by `step` each retry.
    Linear {
        /// The first delay.
        #[serde(with = "serde_duration")]
        initial: Duration,
        /// Added per retry.
        #[serde(with = "serde_duration")]
        step: Duration,
        /// The longest delay.
        #[serde(with = "serde_duration")]
        cap: Duration,
    },
    /// A delay multiplied by `multiplier` each retry, less up to `jitter` of itself at random.
    Exponential {
        /// The first delay.
        #[serde(with = "serde_duration")]
        initial: Duration,
        /// Growth per retry; at least 1.
        multiplier: f64,
        /// The longest delay.
        #[serde(with = "serde_duration")]
        cap: Duration,
        /// Share of the delay taken off at random, in `[0, 1]` (0: none).
        #[serde(default)]
        jitter: f64,
    },
    /// AWS "full jitter": uniform in `[0, min(cap, base × 2^(n−1)))`.
    FullJitter {
        /// The exponential's base.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The longest delay.
        #[serde(with = "serde_duration")]
        cap: Duration,
    },
    /// AWS "decorrelated jitter": uniform in `[base, 3 × previous)`, capped.
    DecorrelatedJitter {
        /// The shortest delay and the first `previous`.
        #[serde(with = "serde_duration")]
        base: Duration,
        /// The longest delay.
        #[serde(with = "serde_duration")]
        cap: Duration,
    },
}

impl Backoff {
    /// A constant delay.
    pub const fn constant(delay: Duration) -> Self {
        Self::Constant { delay }
    }

    /// Exponential doubling from `initial`, capped at `cap`, without jitter.
    pub const fn exponential(initial: Duration, cap: Duration) -> Self {
        Self::Exponential {
            initial,
            multiplier: 2.0,
            cap,
            jitter: 0.0,
        }
    }

    /// AWS full jitter from `base`, capped at `cap`.
    pub const fn full_jitter(base: Duration, cap: Duration) -> Self {
        Self::FullJitter { base, cap }
    }

    /// AWS decorrelated jitter from `base`, capped at `cap`.
    pub const fn decorrelated_jitter(base: Duration, cap: Duration) -> Self {
        Self::DecorrelatedJitter { base, cap }
    }

    /// Checks the parameters: a cap longer than zero and not below the first delay, a
    /// multiplier of at least 1, a jitter in `[0, 1]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (first, cap) = match *self {
            Self::Constant { .. } => return Ok(()),
            Self::Linear { initial, cap, .. } => (initial, cap),
            Self::Exponential {
                initial,
                multiplier,
                cap,
                jitter,
            } => {
                if !(multiplier >= 1.0 && multiplier.is_finite()) {
                    return Err(ConfigError::Multiplier { multiplier });
                }
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(ConfigError::Jitter { jitter });
                }
                (initial, cap)
            }
            Self::FullJitter { base, cap } | Self::DecorrelatedJitter { base, cap } => (base, cap),
        };
        if cap.is_zero() {
            return Err(ConfigError::ZeroCap);
        }
        if cap < first {
            return Err(ConfigError::CapBelowFirstDelay { first, cap });
        }
        Ok(())
    }

    /// The delay before retry `retry` (1-based), given the previous delay (used only by
    /// decorrelated jitter) and `unit`, a random number in `[0, 1)`. Pure, so the formulas can
    /// be checked; [`Retry`](super::Retry) draws `unit` from `fastrand`.
    pub fn delay(&self, retry: u32, previous: Duration, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        let n = retry.max(1);
        match *self {
            Self::Constant { delay } => delay,
            Self::Linear { initial, step, cap } => {
                initial.saturating_add(step.saturating_mul(n - 1)).min(cap)
            }
            Self::Exponential {
                initial,
                multiplier,
                cap,
                jitter,
            } => {
                let grown = scale(initial, multiplier.powi(exponent(n)), cap);
                grown.mul_f64(1.0 - jitter * unit)
            }
            Self::FullJitter { base, cap } => {
                scale(base, 2f64.powi(exponent(n)), cap).mul_f64(unit)
            }
            Self::DecorrelatedJitter { base, cap } => {
                let previous = previous.max(base);
                let high = previous.saturating_mul(3);
                base.saturating_add((high - base).mul_f64(unit)).min(cap)
            }
        }
    }
}

/// `n − 1` as the exponent of a power, bounded so the float stays finite.
fn exponent(n: u32) -> i32 {
    i32::try_from(n - 1).unwrap_or(i32::MAX).min(1023)
}

/// `base × factor`, capped (and safe against overflow and non-finite factors).
fn scale(base: Duration, factor: f64, cap: Duration) -> Duration {
    let seconds = base.as_secs_f64() * factor;
    if !seconds.is_finite() || seconds >= cap.as_secs_f64() {
        cap
    } else {
        Duration::try_from_secs_f64(seconds).unwrap_or(cap).min(cap)
    }
}

impl Default for Backoff {
    /// Exponential from 100 ms doubling to 10 s, with half the delay jittered.
    fn default() -> Self {
        Self::Exponential {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            cap: Duration::from_secs(10),
            jitter: 0.5,
        }
    }
}
