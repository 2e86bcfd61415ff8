//! The limit a limiter enforces, as a plain value.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::gcra::Gcra;

/// How many requests a limiter admits: `max_requests` per `time_window`, plus `burst_size`
/// extra requests that may arrive at once.
///
/// The bucket holds `max_requests + burst_size` tokens and refills continuously at
/// `max_requests / time_window`. With `100` per `60s` and a burst of `20`, 120 requests are
/// admitted at once and then 100 per minute (one every 600 ms).
///
/// The value is validated when a limiter is built from it ([`RateLimitConfig::validate`]).
/// In serialized form `time_window` is a human-readable duration such as `"60s"` or `"1m 30s"`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimitConfig {
    /// Tokens added per `time_window`; must be at least 1.
    pub max_requests: u32,
    /// The period over which `max_requests` tokens are added; must be longer than zero.
    #[serde(with = "crate::serde_duration")]
    pub time_window: Duration,
    /// Extra tokens the bucket holds above `max_requests`.
    #[serde(default)]
    pub burst_size: u32,
}

impl RateLimitConfig {
    /// A config of `max_requests` per `time_window` with `burst_size` extra tokens.
    pub const fn new(max_requests: u32, time_window: Duration, burst_size: u32) -> Self {
        Self {
            max_requests,
            time_window,
            burst_size,
        }
    }

    /// `max_requests` per second, no burst.
    pub const fn per_second(max_requests: u32) -> Self {
        Self::new(max_requests, Duration::from_secs(1), 0)
    }

    /// `max_requests` per minute, no burst.
    pub const fn per_minute(max_requests: u32) -> Self {
        Self::new(max_requests, Duration::from_secs(60), 0)
    }

    /// The same config with `burst_size` extra tokens.
    pub const fn with_burst(mut self, burst_size: u32) -> Self {
        self.burst_size = burst_size;
        self
    }

    /// The number of tokens a full bucket holds: `max_requests + burst_size`.
    pub const fn capacity(&self) -> u64 {
        self.max_requests as u64 + self.burst_size as u64
    }

    /// Checks the config, returning the reason it cannot be enforced.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Gcra::new(self).map(|_| ())
    }
}

impl Default for RateLimitConfig {
    /// The original system's default: 100 requests per 60 s with a burst of 20.
    fn default() -> Self {
        Self::new(100, Duration::from_secs(60), 20)
    }
}

impl fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("max_requests", &self.max_requests)
            .field("time_window", &self.time_window)
            .field("burst_size", &self.burst_size)
            .finish()
    }
}
