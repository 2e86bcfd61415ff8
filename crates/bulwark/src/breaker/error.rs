//! What a breaker answers when it refuses a call, and why a config is refused.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::state::State;

/// A call was refused without being attempted: the breaker is open, forced open, or half-open
/// with every trial slot taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct Rejected {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state that refused the call.
    pub state: State,
    /// How long until the breaker admits a trial call: set in OPEN; `None` when forced open
    /// (no trial is scheduled) or when half-open with every trial slot taken (a slot frees as
    /// soon as a running trial returns).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker '{}' is {}", self.breaker, self.state)?;
        match (self.state, self.retry_after) {
            (_, Some(after)) => write!(f, "; next trial in {after:?}"),
            (State::HalfOpen, None) => f.write_str("; every trial slot is taken"),
            _ => f.write_str("; no trial is scheduled"),
        }
    }
}

/// The result of a call through a breaker that failed: either the breaker refused it, or the
/// call ran and returned its own error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitBreakerError<E> {
    /// The breaker refused the call; it did not run.
    #[error(transparent)]
    Rejected(Rejected),
    /// The call ran and failed with its own error.
    #[error("{0}")]
    Inner(E),
}

impl<E> CircuitBreakerError<E> {
    /// The refusal, if the breaker refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            Self::Rejected(r) => Some(r),
            Self::Inner(_) => None,
        }
    }

    /// The call's own error, if the call ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Rejected(_) => None,
            Self::Inner(e) => Some(e),
        }
    }

    /// Converts a refusal into the caller's own error type, keeping the call's errors as they
    /// are; this is what the `#[circuit_breaker]` macro does with its function's error type.
    pub fn flatten(self) -> E
    where
        E: From<Rejected>,
    {
        match self {
            Self::Rejected(r) => E::from(r),
            Self::Inner(e) => e,
        }
    }
}

impl<E> From<Rejected> for CircuitBreakerError<E> {
    fn from(rejected: Rejected) -> Self {
        Self::Rejected(rejected)
    }
}

/// A [`CircuitBreakerConfig`](super::CircuitBreakerConfig) that cannot be enforced.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A threshold that must be at least 1 is zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
    /// A threshold exceeds what the state word holds.
    #[error("{field} = {value} exceeds the maximum {max}")]
    TooLarge {
        /// The field's name.
        field: &'static str,
        /// The value asked for.
        value: u32,
        /// The largest value allowed.
        max: u32,
    },
    /// The sliding window's failure rate is not in `(0, 1]`.
    #[error("failure_rate must be in (0, 1], got {rate}")]
    FailureRate {
        /// The rate asked for.
        rate: f64,
    },
    /// The sliding window covers no calls or no time.
    #[error("a sliding window must cover at least one call or a time longer than zero")]
    EmptyWindow,
    /// A count window holds fewer calls than `minimum_calls`, so its failure rate would
    /// never be trusted and the breaker would never open.
    #[error(
        "minimum_calls = {minimum_calls} is larger than the window of {window_calls} calls, \
         so the breaker could never open"
    )]
    MinimumCallsAboveWindow {
        /// The calls the window must hold.
        minimum_calls: u32,
        /// The calls the window holds at most.
        window_calls: u32,
    },
}
