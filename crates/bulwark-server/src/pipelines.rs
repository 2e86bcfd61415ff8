//! The server's resilience pipelines: `[pipelines.<name>]` from the TOML config, built through
//! the library's [`PipelineConfig`], kept in a [`PipelineRegistry`], with each pipeline's
//! circuit breaker taken from the server's [`BreakerRegistry`] (so the breaker API, the health
//! check and `/metrics` see it) and its other strategies reporting to the server's metrics.
//!
//! A pipeline asked for by name that the config does not define (the demo's tools,
//! `search_api`, `analysis_api`, `llm_api`, `review_api`, unless configured) is made on first
//! use from the default: `workflows.max_attempts` attempts with full-jitter backoff, outside a
//! breaker configured by `[breakers]`.
//!
//! ```
//! use bulwark_server::config::Config;
//!
//! let config = Config::from_toml(r#"
//!     [[pipelines.llm.strategies]]
//!     kind = "retry"
//!     max_attempts = 0
//! "#, "bulwark.toml".as_ref())?;
//! let error = config.validate().unwrap_err().to_string();
//! assert!(error.contains("pipelines.llm") && error.contains("max_attempts"), "{error}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig};
use bulwark::clock::MonotonicClock;
use bulwark::pipeline::{
    PipelineConfig, PipelineConfigError, PipelineObservers, PipelineRegistry, ResiliencePipeline,
    StrategyConfig,
};
use bulwark::retry::{Backoff, RetryConfig};

/// The pipelines of one server, by name.
#[derive(Debug)]
pub struct Pipelines {
    registry: PipelineRegistry,
    breakers: Arc<BreakerRegistry>,
    observers: PipelineObservers,
    default: PipelineConfig,
}

/// The config a pipeline that the TOML does not define gets: `max_attempts` attempts (full
/// jitter, 50 ms base, 1 s cap; a breaker's refusal whose trial is more than 1 s away ends
/// the retries at once) around a circuit breaker with `breaker`.
pub fn default_pipeline(max_attempts: u32, breaker: CircuitBreakerConfig) -> PipelineConfig {
    let mut retry = RetryConfig::new(
        max_attempts,
        Backoff::full_jitter(Duration::from_millis(50), Duration::from_secs(1)),
    );
    retry.max_retry_after = Duration::from_secs(1);
    PipelineConfig {
        strategies: vec![
            StrategyConfig::Retry(retry),
            StrategyConfig::CircuitBreaker(breaker),
        ],
    }
}

impl Pipelines {
    /// Builds every configured pipeline now (a bad one fails, naming it), registering their
    /// breakers in `breakers`; `default` is what unconfigured names get.
    pub fn new(
        configured: &BTreeMap<String, PipelineConfig>,
        default: PipelineConfig,
        breakers: Arc<BreakerRegistry>,
        observers: PipelineObservers,
    ) -> Result<Self, (String, PipelineConfigError)> {
        let pipelines = Self {
            registry: PipelineRegistry::new(),
            breakers,
            observers,
            default,
        };
        for (name, config) in configured {
            let built = pipelines
                .build(name, config)
                .map_err(|error| (name.clone(), error))?;
            pipelines.registry.insert(built);
        }
        Ok(pipelines)
    }

    /// The pipeline `name`: the configured one, or one made now from the default.
    pub fn get(&self, name: &str) -> Result<ResiliencePipeline, PipelineConfigError> {
        if let Some(found) = self.registry.get(name) {
            return Ok(found);
        }
        // Two first uses at once may both build it; they share the breaker (it is the
        // registry's), and the last one inserted stays.
        let built = self.build(name, &self.default)?;
        self.registry.insert(built.clone());
        Ok(built)
    }

    /// The registry holding every pipeline built so far.
    pub fn registry(&self) -> &PipelineRegistry {
        &self.registry
    }

    /// `config` built as the pipeline `name`; its breaker is the registry's breaker `name`.
    fn build(
        &self,
        name: &str,
        config: &PipelineConfig,
    ) -> Result<ResiliencePipeline, PipelineConfigError> {
        let mut builder = ResiliencePipeline::builder()
            .name(name)
            .observers(self.observers.clone());
        for strategy in &config.strategies {
            builder = match strategy {
                StrategyConfig::CircuitBreaker(breaker) => {
                    builder.circuit_breaker(self.breakers.get_or_create(name, *breaker)?)
                }
                StrategyConfig::RateLimit(r) => builder.rate_limit_config(r.limit(), r.max_wait),
                StrategyConfig::Bulkhead(c) => builder.bulkhead(*c),
                StrategyConfig::Timeout(c) => builder.timeout(c.timeout),
                StrategyConfig::Retry(c) => builder.retry(*c),
                // A strategy this server does not know yet: the library builds it all.
                _ => return config.build(name, MonotonicClock::new(), &self.observers),
            };
        }
        builder.build()
    }
}
