//! The policy a hedge enforces, as a plain value, and why one is refused.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::serde_duration;

/// The most hedged attempts a config may ask for: each one is a full extra call.
pub const MAX_HEDGED_ATTEMPTS: u32 = 8;

/// When to start a hedged attempt, and how many at most.
///
/// Defaults: one hedged attempt, after 100 ms; no percentile (the delay is fixed). With
/// `percentile` set, the delay is that percentile of the latencies of the last `window`
/// successful attempts, once `min_samples` of them are known (`delay` until then).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HedgeConfig {
    /// Attempts started beside the first one, at most; 1 to [`MAX_HEDGED_ATTEMPTS`].
    pub max_hedged_attempts: u32,
    /// The wait before each hedged attempt (the fixed delay, or the delay while too few
    /// latencies are known for the percentile).
    #[serde(with = "serde_duration")]
    pub delay: Duration,
    /// Hedge after this percentile of recent latencies (for instance 0.95), in (0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// Latencies kept for the percentile; at least 1.
    pub window: u32,
    /// Latencies needed before the percentile replaces `delay`; at most `window`.
    pub min_samples: u32,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        Self {
            max_hedged_attempts: 1,
            delay: Duration::from_millis(100),
            percentile: None,
            window: 100,
            min_samples: 20,
        }
    }
}

impl HedgeConfig {
    /// Up to `max_hedged_attempts` hedged attempts, each `delay` after the previous attempt.
    pub fn fixed(max_hedged_attempts: u32, delay: Duration) -> Self {
        Self {
            max_hedged_attempts,
            delay,
            ..Self::default()
        }
    }

    /// Up to `max_hedged_attempts` hedged attempts after the `percentile` of recent latencies,
    /// `initial_delay` until `min_samples` latencies are known.
    pub fn percentile(max_hedged_attempts: u32, percentile: f64, initial_delay: Duration) -> Self {
        Self {
            max_hedged_attempts,
            delay: initial_delay,
            percentile: Some(percentile),
            ..Self::default()
        }
    }

    /// Checks the config, returning the reason it cannot be enforced.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_hedged_attempts == 0 || self.max_hedged_attempts > MAX_HEDGED_ATTEMPTS {
            return Err(ConfigError::HedgedAttempts(self.max_hedged_attempts));
        }
        if let Some(p) = self.percentile {
            // Written so that NaN is refused too.
            if !(p > 0.0 && p <= 1.0) {
                return Err(ConfigError::Percentile(p));
            }
        }
        if self.window == 0 {
            return Err(ConfigError::ZeroWindow);
        }
        if self.min_samples > self.window {
            return Err(ConfigError::MinSamples {
                min_samples: self.min_samples,
                window: self.window,
            });
        }
        Ok(())
    }
}

/// A [`HedgeConfig`] that cannot be enforced.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_hedged_attempts` is zero (no hedging at all) or above [`MAX_HEDGED_ATTEMPTS`].
    #[error("max_hedged_attempts must be 1 to {MAX_HEDGED_ATTEMPTS}, not {0}")]
    HedgedAttempts(u32),
    /// The percentile is outside (0, 1].
    #[error("the hedging percentile must be in (0, 1], not {0}")]
    Percentile(f64),
    /// The latency window holds nothing.
    #[error("the latency window must hold at least 1 sample")]
    ZeroWindow,
    /// More samples asked for than the window keeps.
    #[error("min_samples = {min_samples} is more than the window of {window}")]
    MinSamples {
        /// The samples asked for.
        min_samples: u32,
        /// The window.
        window: u32,
    },
}
