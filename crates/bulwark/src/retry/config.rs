//! The policy a retry enforces, as a plain value.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backoff::Backoff;
use super::budget::RetryBudgetConfig;
use super::error::ConfigError;
use crate::serde_duration;

/// How often and how patiently to retry.
///
/// Defaults: 3 attempts, [`Backoff::default`] (exponential from 100 ms to 10 s, half
/// jittered), an error's own `retry_after` honoured up to 60 s, no budget.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included; at least 1 (1 means never retry).
    pub max_attempts: u32,
    /// The delay before each retry.
    pub backoff: Backoff,
    /// Wait at least the `retry_after` an error carries (a 429's `Retry-After`, a limiter's or
    /// breaker's rejection) instead of the backoff alone.
    pub honour_retry_after: bool,
    /// Give up rather than wait when an error asks for a longer wait than this.
    #[serde(with = "serde_duration")]
    pub max_retry_after: Duration,
    /// A budget shared by every caller of this retry (see [`RetryBudget`](super::RetryBudget)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudgetConfig>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            honour_retry_after: true,
            max_retry_after: Duration::from_secs(60),
            budget: None,
        }
    }
}

impl RetryConfig {
    /// `max_attempts` attempts with `backoff` between them, other fields at their defaults.
    pub fn new(max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            max_attempts,
            backoff,
            ..Self::default()
        }
    }

    /// The same config with a retry budget.
    pub fn with_budget(mut self, budget: RetryBudgetConfig) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the config, returning the reason it cannot be enforced.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::ZeroAttempts);
        }
        self.backoff.validate()?;
        if let Some(budget) = &self.budget {
            budget.validate()?;
        }
        Ok(())
    }
}
