//! Why a retry config is refused, and what a retry that gave up answers.

use std::fmt;
use std::time::Duration;

/// A [`RetryConfig`](super::RetryConfig) or [`RetryBudgetConfig`](super::RetryBudgetConfig)
/// that cannot be enforced.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_attempts` is zero: the call would never run.
    #[error("max_attempts must be at least 1")]
    ZeroAttempts,
    /// The backoff's cap is zero.
    #[error("the backoff cap must be longer than zero")]
    ZeroCap,
    /// The backoff's cap is shorter than its first delay.
    #[error("the backoff cap {cap:?} is shorter than the first delay {first:?}")]
    CapBelowFirstDelay {
        /// The first delay.
        first: Duration,
        /// The cap.
        cap: Duration,
    },
    /// The exponential multiplier is below 1 or not finite.
    #[error("the backoff multiplier must be a finite number of at least 1, got {multiplier}")]
    Multiplier {
        /// The multiplier asked for.
        multiplier: f64,
    },
    /// The jitter share is outside `[0, 1]`.
    #[error("jitter must be in [0, 1], got {jitter}")]
    Jitter {
        /// The jitter asked for.
        jitter: f64,
    },
    /// The budget's ratio of retries to calls is outside `[0, 1]`.
    #[error("the retry budget ratio must be in [0, 1], got {ratio}")]
    BudgetRatio {
        /// The ratio asked for.
        ratio: f64,
    },
    /// The budget's window is zero.
    #[error("the retry budget window must be longer than zero")]
    BudgetWindow,
}

/// Why a [`Retry`](super::Retry) stopped retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// Every attempt allowed by `max_attempts` failed.
    Exhausted,
    /// The last error is not retryable (a caller error, by default).
    NotRetryable,
    /// The shared [`RetryBudget`](super::RetryBudget) had no retry left.
    BudgetExhausted,
    /// The error asked for a longer wait than the config's `max_retry_after`.
    RetryAfterTooLong,
}

impl GiveUp {
    /// The reason as a label value: `exhausted`, `not_retryable`, `budget_exhausted`,
    /// `retry_after_too_long`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exhausted => "exhausted",
            Self::NotRetryable => "not_retryable",
            Self::BudgetExhausted => "budget_exhausted",
            Self::RetryAfterTooLong => "retry_after_too_long",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last error of a call that [`Retry`](super::Retry) gave up on, with why and after how
/// many attempts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("gave up after {attempts} attempt(s) ({reason}): {last}")]
#[non_exhaustive]
pub struct RetryError<E> {
    /// Attempts made (at least 1).
    pub attempts: u32,
    /// Why no further attempt was made.
    pub reason: GiveUp,
    /// The last attempt's error.
    pub last: E,
}

impl<E> RetryError<E> {
    /// The last attempt's error.
    pub fn into_last(self) -> E {
        self.last
    }
}
