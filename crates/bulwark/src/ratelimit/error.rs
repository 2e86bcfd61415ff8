//! What a limiter answers when it says no, and why a config is refused.

use std::time::Duration;

/// A request was refused for now: it may pass after `retry_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "rate limited: {requested} token(s) requested, {available} available, retry after {retry_after:?}"
)]
#[non_exhaustive]
pub struct RateLimited {
    /// The earliest time from now at which the same request could be admitted.
    pub retry_after: Duration,
    /// Whole tokens left in the bucket now.
    pub available: u32,
    /// Tokens the refused request asked for.
    pub requested: u32,
    /// Tokens a full bucket holds.
    pub capacity: u32,
}

/// A request asked for more tokens than the bucket can ever hold, so waiting will not help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{requested} token(s) requested but the bucket holds at most {capacity}")]
#[non_exhaustive]
pub struct ExceedsCapacity {
    /// Tokens requested.
    pub requested: u32,
    /// Tokens a full bucket holds.
    pub capacity: u32,
}

/// Every way a rate-limited call can fail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// Not now: retry after the time it carries.
    #[error(transparent)]
    Limited(#[from] RateLimited),
    /// Never: the request is larger than the bucket.
    #[error(transparent)]
    ExceedsCapacity(#[from] ExceedsCapacity),
    /// The limit itself could not be built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A registry could not hand out the limiter.
    #[error(transparent)]
    Registry(#[from] super::registry::RegistryError),
    /// The shared store that holds the limit could not decide (unreachable, too slow, or an
    /// unexpected reply), and the limiter is configured to fail closed.
    #[error("rate-limit backend unavailable: {0}")]
    Unavailable(String),
}

impl RateLimitError {
    /// The time after which retrying can succeed, when retrying can succeed at all.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Limited(limited) => Some(limited.retry_after),
            Self::ExceedsCapacity(_)
            | Self::Config(_)
            | Self::Registry(_)
            | Self::Unavailable(_) => None,
        }
    }
}

/// A [`RateLimitConfig`](super::RateLimitConfig) that cannot be enforced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_requests` is zero: the bucket would never refill.
    #[error("max_requests must be at least 1")]
    ZeroRequests,
    /// `time_window` is zero: the refill rate would be infinite.
    #[error("time_window must be longer than zero")]
    ZeroWindow,
    /// `max_requests + burst_size` does not fit in a `u32`.
    #[error("capacity (max_requests + burst_size = {capacity}) must fit in 32 bits")]
    CapacityTooLarge {
        /// The capacity asked for.
        capacity: u64,
    },
    /// A full bucket would take longer to refill than the clock's range (about 584 years).
    #[error("time_window {time_window:?} is too long for the bucket's capacity")]
    WindowTooLong {
        /// The window asked for.
        time_window: Duration,
    },
    /// A keyed limiter already holds its maximum of per-key overrides.
    #[error("a keyed limiter holds at most {max} per-key overrides; remove one first")]
    TooManyOverrides {
        /// The cap ([`MAX_KEY_OVERRIDES`](super::keyed::MAX_KEY_OVERRIDES)).
        max: usize,
    },
}
