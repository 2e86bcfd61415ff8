//! The hooks a pipeline attaches to the strategies it builds.

use std::fmt;
use std::sync::Arc;

use crate::breaker::BreakerListener;
use crate::bulkhead::BulkheadObserver;
use crate::hedge::HedgeObserver;
use crate::ratelimit::RateLimitObserver;
use crate::retry::RetryObserver;
use crate::timeout::TimeoutObserver;

/// Observers for every kind of strategy, attached by a [`PipelineBuilder`](super::PipelineBuilder)
/// or a [`PipelineRegistry`](super::PipelineRegistry) to each strategy it makes from a config.
/// Telemetry fills one of these to publish metrics (see
/// `telemetry::resilience_observers::ResilienceMetrics`); strategies passed in already built
/// keep their own observers.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct PipelineObservers {
    /// For rate limiters.
    pub rate_limit: Option<Arc<dyn RateLimitObserver>>,
    /// For bulkheads.
    pub bulkhead: Vec<Arc<dyn BulkheadObserver>>,
    /// For timeouts.
    pub timeout: Vec<Arc<dyn TimeoutObserver>>,
    /// For retries.
    pub retry: Vec<Arc<dyn RetryObserver>>,
    /// For hedges.
    pub hedge: Vec<Arc<dyn HedgeObserver>>,
    /// For circuit breakers.
    pub breaker: Vec<Arc<dyn BreakerListener>>,
}

impl PipelineObservers {
    /// No observers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rate-limit observer (a limiter has one; the last set wins).
    pub fn rate_limit(mut self, observer: Arc<dyn RateLimitObserver>) -> Self {
        self.rate_limit = Some(observer);
        self
    }

    /// Adds a bulkhead observer.
    pub fn bulkhead(mut self, observer: Arc<dyn BulkheadObserver>) -> Self {
        self.bulkhead.push(observer);
        self
    }

    /// Adds a timeout observer.
    pub fn timeout(mut self, observer: Arc<dyn TimeoutObserver>) -> Self {
        self.timeout.push(observer);
        self
    }

    /// Adds a retry observer.
    pub fn retry(mut self, observer: Arc<dyn RetryObserver>) -> Self {
        self.retry.push(observer);
        self
    }

    /// Adds a hedge observer.
    pub fn hedge(mut self, observer: Arc<dyn HedgeObserver>) -> Self {
        self.hedge.push(observer);
        self
    }

    /// Adds a breaker listener.
    pub fn breaker(mut self, listener: Arc<dyn BreakerListener>) -> Self {
        self.breaker.push(listener);
        self
    }
}

impl fmt::Debug for PipelineObservers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineObservers")
            .field("rate_limit", &self.rate_limit.is_some())
            .field("bulkhead", &self.bulkhead.len())
            .field("timeout", &self.timeout.len())
            .field("retry", &self.retry.len())
            .field("hedge", &self.hedge.len())
            .field("breaker", &self.breaker.len())
            .finish()
    }
}
