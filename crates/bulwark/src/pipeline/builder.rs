//! Builds a pipeline from strategies or their configs, outer to inner as written.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::PipelineConfigError;
use super::fallback::{Fallback, FallbackPipeline};
use super::observers::PipelineObservers;
use super::pipeline::{ResiliencePipeline, Stage};
use crate::breaker::{CircuitBreaker, CircuitBreakerConfig};
use crate::bulkhead::{Bulkhead, BulkheadConfig};
use crate::clock::Clock;
use crate::hedge::{Hedge, HedgeConfig};
use crate::ratelimit::{RateLimitConfig, RateLimiter};
use crate::retry::{Retry, RetryConfig};
use crate::timeout::{Timeout, TimeoutKind};

/// A strategy waiting to be built.
enum Spec<C: Clock> {
    RateLimiter(RateLimiter<C>, Option<Duration>),
    RateLimitConfig(RateLimitConfig, Option<Duration>),
    Bulkhead(BulkheadConfig),
    SharedBulkhead(Bulkhead<C>),
    Timeout(Duration),
    Retry(RetryConfig),
    SharedRetry(Retry<C>),
    Hedge(HedgeConfig),
    SharedHedge(Hedge<C>),
    Breaker(CircuitBreaker<C>),
    BreakerConfig(CircuitBreakerConfig),
}

/// Builds a [`ResiliencePipeline`]; see [`ResiliencePipeline::builder`]. Strategies wrap each
/// other in the order they are added, the first outermost. Configs are checked by
/// [`build`](Self::build), which names the strategy whose config is refused.
#[must_use]
pub struct PipelineBuilder<C: Clock> {
    name: Arc<str>,
    clock: C,
    specs: Vec<Spec<C>>,
    observers: PipelineObservers,
}

impl<C: Clock> PipelineBuilder<C> {
    pub(crate) fn new(clock: C) -> Self {
        Self {
            name: Arc::from("pipeline"),
            clock,
            specs: Vec::new(),
            observers: PipelineObservers::default(),
        }
    }

    /// Names the pipeline (default `"pipeline"`); the strategies it builds take this name.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Observers attached to every strategy the builder makes from a config.
    pub fn observers(mut self, observers: PipelineObservers) -> Self {
        self.observers = observers;
        self
    }

    /// Takes one token of `limiter` per call (not per attempt, unless placed inside a retry),
    /// refusing at once when there is none.
    pub fn rate_limit(mut self, limiter: RateLimiter<C>) -> Self {
        self.specs.push(Spec::RateLimiter(limiter, None));
        self
    }

    /// [`rate_limit`](Self::rate_limit), waiting up to `max_wait` for a token.
    pub fn rate_limit_waiting(mut self, limiter: RateLimiter<C>, max_wait: Duration) -> Self {
        self.specs.push(Spec::RateLimiter(limiter, Some(max_wait)));
        self
    }

    /// A rate limiter made from `config` for this pipeline alone, waiting up to `max_wait`
    /// for a token when set.
    pub fn rate_limit_config(
        mut self,
        config: RateLimitConfig,
        max_wait: Option<Duration>,
    ) -> Self {
        self.specs.push(Spec::RateLimitConfig(config, max_wait));
        self
    }

    /// A bulkhead made from `config` for this pipeline.
    pub fn bulkhead(mut self, config: BulkheadConfig) -> Self {
        self.specs.push(Spec::Bulkhead(config));
        self
    }

    /// A bulkhead shared with other pipelines or callers.
    pub fn shared_bulkhead(mut self, bulkhead: Bulkhead<C>) -> Self {
        self.specs.push(Spec::SharedBulkhead(bulkhead));
        self
    }

    /// A timeout of `limit`: an *overall* timeout when a retry or a hedge follows it (it
    /// bounds every attempt and wait together), a per-*attempt* timeout otherwise.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.specs.push(Spec::Timeout(limit));
        self
    }

    /// A retry made from `config` (with its own budget when the config has one).
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.specs.push(Spec::Retry(config));
        self
    }

    /// A retry built elsewhere, for instance to share its budget with other pipelines.
    pub fn shared_retry(mut self, retry: Retry<C>) -> Self {
        self.specs.push(Spec::SharedRetry(retry));
        self
    }

    /// A hedge made from `config`: a second attempt (up to `max_hedged_attempts`) of
    /// everything inside it when the first is slower than the delay, the first answer kept and
    /// the others dropped. Usually placed just outside the circuit breaker (so that every
    /// attempt takes a permit, and a dropped loser's permit is given back uncounted) and
    /// inside the overall timeout.
    pub fn hedge(mut self, config: HedgeConfig) -> Self {
        self.specs.push(Spec::Hedge(config));
        self
    }

    /// A hedge built elsewhere, for instance to share its latency window with other pipelines.
    pub fn shared_hedge(mut self, hedge: Hedge<C>) -> Self {
        self.specs.push(Spec::SharedHedge(hedge));
        self
    }

    /// A circuit breaker, usually shared by every caller of the dependency (from a
    /// [`BreakerRegistry`](crate::breaker::BreakerRegistry)).
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker<C>) -> Self {
        self.specs.push(Spec::Breaker(breaker));
        self
    }

    /// A circuit breaker made from `config` for this pipeline, named after it.
    pub fn circuit_breaker_config(mut self, config: CircuitBreakerConfig) -> Self {
        self.specs.push(Spec::BreakerConfig(config));
        self
    }

    /// Ends the chain with a fallback, which always applies outermost: to the outcome of the
    /// whole pipeline.
    pub fn fallback<T, E>(self, fallback: Fallback<T, E>) -> FallbackBuilder<T, E, C> {
        FallbackBuilder {
            builder: self,
            fallback,
        }
    }

    /// Checks every config and builds the pipeline.
    pub fn build(self) -> Result<ResiliencePipeline<C>, PipelineConfigError> {
        let Self {
            name,
            clock,
            specs,
            observers,
        } = self;
        let last_retry = specs.iter().rposition(|s| {
            matches!(
                s,
                Spec::Retry(_) | Spec::SharedRetry(_) | Spec::Hedge(_) | Spec::SharedHedge(_)
            )
        });
        let mut stages = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let stage = match spec {
                Spec::RateLimiter(limiter, max_wait) => Stage::RateLimit { limiter, max_wait },
                Spec::RateLimitConfig(config, max_wait) => {
                    let mut builder = RateLimiter::builder(config)
                        .name(Arc::clone(&name))
                        .clock(clock.clone());
                    if let Some(observer) = &observers.rate_limit {
                        builder = builder.observer(Arc::clone(observer));
                    }
                    Stage::RateLimit {
                        limiter: builder.build()?,
                        max_wait,
                    }
                }
                Spec::Bulkhead(config) => {
                    let mut builder = Bulkhead::builder(config)
                        .name(Arc::clone(&name))
                        .clock(clock.clone());
                    for observer in &observers.bulkhead {
                        builder = builder.observer(Arc::clone(observer));
                    }
                    Stage::Bulkhead(builder.build()?)
                }
                Spec::SharedBulkhead(bulkhead) => Stage::Bulkhead(bulkhead),
                Spec::Timeout(limit) => {
                    let kind = if last_retry.is_some_and(|retry| retry > index) {
                        TimeoutKind::Overall
                    } else {
                        TimeoutKind::Attempt
                    };
                    let mut builder = Timeout::builder(limit)
                        .name(Arc::clone(&name))
                        .kind(kind)
                        .clock(clock.clone());
                    for observer in &observers.timeout {
                        builder = builder.observer(Arc::clone(observer));
                    }
                    Stage::Timeout(builder.build()?)
                }
                Spec::Retry(config) => {
                    let mut builder = Retry::builder(config)
                        .name(Arc::clone(&name))
                        .clock(clock.clone());
                    for observer in &observers.retry {
                        builder = builder.observer(Arc::clone(observer));
                    }
                    Stage::Retry(builder.build()?)
                }
                Spec::SharedRetry(retry) => Stage::Retry(retry),
                Spec::Hedge(config) => {
                    let mut builder = Hedge::builder(config)
                        .name(Arc::clone(&name))
                        .clock(clock.clone());
                    for observer in &observers.hedge {
                        builder = builder.observer(Arc::clone(observer));
                    }
                    Stage::Hedge(builder.build()?)
                }
                Spec::SharedHedge(hedge) => Stage::Hedge(hedge),
                Spec::Breaker(breaker) => Stage::CircuitBreaker(breaker),
                Spec::BreakerConfig(config) => {
                    let mut builder =
                        CircuitBreaker::builder(Arc::clone(&name), config).clock(clock.clone());
                    for listener in &observers.breaker {
                        builder = builder.listener(Arc::clone(listener));
                    }
                    Stage::CircuitBreaker(builder.build()?)
                }
            };
            stages.push(stage);
        }
        Ok(ResiliencePipeline::from_stages(name, stages, clock))
    }
}

impl<C: Clock> fmt::Debug for PipelineBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("name", &self.name)
            .field("strategies", &self.specs.len())
            .finish_non_exhaustive()
    }
}

/// A [`PipelineBuilder`] ended with a [`Fallback`]; only [`build`](Self::build) remains.
#[must_use]
pub struct FallbackBuilder<T, E, C: Clock> {
    builder: PipelineBuilder<C>,
    fallback: Fallback<T, E>,
}

impl<T, E, C: Clock> FallbackBuilder<T, E, C> {
    /// Checks every config and builds the pipeline with its fallback.
    pub fn build(self) -> Result<FallbackPipeline<T, E, C>, PipelineConfigError> {
        Ok(FallbackPipeline::new(self.builder.build()?, self.fallback))
    }
}

impl<T, E, C: Clock> fmt::Debug for FallbackBuilder<T, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackBuilder")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}
