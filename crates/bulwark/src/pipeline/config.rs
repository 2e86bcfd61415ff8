//! A pipeline as a plain value, for TOML and JSON configs.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::builder::PipelineBuilder;
use super::error::PipelineConfigError;
use super::observers::PipelineObservers;
use super::pipeline::ResiliencePipeline;
use crate::breaker::CircuitBreakerConfig;
use crate::bulkhead::BulkheadConfig;
use crate::clock::Clock;
use crate::hedge::HedgeConfig;
use crate::ratelimit::RateLimitConfig;
use crate::retry::RetryConfig;
use crate::serde_duration;
use crate::timeout::TimeoutConfig;

/// The strategies of a pipeline, outer to inner. In TOML:
///
/// ```toml
/// [[strategies]]
/// kind = "rate_limit"
/// max_requests = 100
/// time_window = "60s"
///
/// [[strategies]]
/// kind = "retry"
/// max_attempts = 3
/// backoff = { kind = "full_jitter", base = "100ms", cap = "5s" }
///
/// [[strategies]]
/// kind = "circuit_breaker"
/// failure_threshold = 5
/// timeout = "30s"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Outer to inner.
    #[serde(default)]
    pub strategies: Vec<StrategyConfig>,
}

/// One strategy of a [`PipelineConfig`], tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StrategyConfig {
    /// A rate limiter for this pipeline.
    RateLimit(RateLimitStrategy),
    /// A bulkhead.
    Bulkhead(BulkheadConfig),
    /// A timeout: overall if a retry follows it, per attempt otherwise.
    Timeout(TimeoutConfig),
    /// A retry, with its budget if set.
    Retry(RetryConfig),
    /// A hedge: `max_hedged_attempts`, a fixed `delay` or a `percentile` of recent latencies.
    Hedge(HedgeConfig),
    /// A circuit breaker named after the pipeline.
    CircuitBreaker(CircuitBreakerConfig),
}

/// A rate limit in a [`PipelineConfig`]: the limiter's fields, and how long a call may wait
/// for a token (refused at once when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitStrategy {
    /// See [`RateLimitConfig::max_requests`].
    pub max_requests: u32,
    /// See [`RateLimitConfig::time_window`].
    #[serde(with = "serde_duration")]
    pub time_window: Duration,
    /// See [`RateLimitConfig::burst_size`].
    #[serde(default)]
    pub burst_size: u32,
    /// How long a call may wait for a token.
    #[serde(
        default,
        with = "serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
}

impl RateLimitStrategy {
    /// The limiter's config.
    pub fn limit(&self) -> RateLimitConfig {
        RateLimitConfig::new(self.max_requests, self.time_window, self.burst_size)
    }
}

impl PipelineConfig {
    /// Builds the pipeline `name` on `clock`, attaching `observers` to every strategy.
    pub fn build<C: Clock>(
        &self,
        name: &str,
        clock: C,
        observers: &PipelineObservers,
    ) -> Result<ResiliencePipeline<C>, PipelineConfigError> {
        let mut builder = PipelineBuilder::new(clock)
            .name(Arc::<str>::from(name))
            .observers(observers.clone());
        for strategy in &self.strategies {
            builder = match strategy {
                StrategyConfig::RateLimit(r) => builder.rate_limit_config(r.limit(), r.max_wait),
                StrategyConfig::Bulkhead(c) => builder.bulkhead(*c),
                StrategyConfig::Timeout(c) => builder.timeout(c.timeout),
                StrategyConfig::Retry(c) => builder.retry(*c),
                StrategyConfig::Hedge(c) => builder.hedge(*c),
                StrategyConfig::CircuitBreaker(c) => builder.circuit_breaker_config(*c),
            };
        }
        builder.build()
    }
}
