//! The limits a bulkhead enforces, as a plain value, and why one is refused.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::serde_duration;

/// At most `max_concurrent` calls at once; up to `max_queue` more wait for a slot, each at
/// most `max_wait` (when set). Default: 10 at once, no queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls running at once; at least 1.
    pub max_concurrent: u32,
    /// Calls allowed to wait for a slot; 0 rejects at once when every slot is taken.
    pub max_queue: u32,
    /// The longest a queued call waits; `None` waits until a slot frees.
    #[serde(
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self::new(10)
    }
}

impl BulkheadConfig {
    /// `max_concurrent` at once, no queue.
    pub const fn new(max_concurrent: u32) -> Self {
        Self {
            max_concurrent,
            max_queue: 0,
            max_wait: None,
        }
    }

    /// The same config with a queue of `max_queue` waiting at most `max_wait` each.
    pub const fn with_queue(mut self, max_queue: u32, max_wait: Option<Duration>) -> Self {
        self.max_queue = max_queue;
        self.max_wait = max_wait;
        self
    }

    /// Checks the config, returning the reason it cannot be enforced.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        if self.max_concurrent as usize > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooLarge {
                max_concurrent: self.max_concurrent,
            });
        }
        if self.max_wait.is_some_and(|w| w.is_zero()) {
            return Err(ConfigError::ZeroWait);
        }
        Ok(())
    }
}

/// A [`BulkheadConfig`] that cannot be enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_concurrent` is zero: no call could ever run.
    #[error("max_concurrent must be at least 1")]
    ZeroConcurrency,
    /// `max_concurrent` is beyond what the semaphore holds.
    #[error("max_concurrent = {max_concurrent} is too large")]
    TooLarge {
        /// The value asked for.
        max_concurrent: u32,
    },
    /// `max_wait` is zero: use `max_queue = 0` to reject at once.
    #[error("max_wait must be longer than zero (use max_queue = 0 to reject at once)")]
    ZeroWait,
}
