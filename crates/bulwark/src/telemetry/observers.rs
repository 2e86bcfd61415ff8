//! Observers that publish the primitives' own metrics, attached to their hooks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge};

use super::metrics::names::{
    RATELIMIT_ALLOWED_TOTAL, RATELIMIT_AVAILABLE_TOKENS, RATELIMIT_REJECTED_TOTAL,
};
use super::metrics::{BreakerMetrics, CheckpointMetrics, MetricsRegistry};
use crate::breaker::{BreakerListener, CallEvent, CallOutcome, Transition};
use crate::checkpoint::{CheckpointEvent, CheckpointObserver};
use crate::ratelimit::{Decision, RateLimitObserver};

/// Label value used for limiters built without a name.
pub const UNNAMED: &str = "unnamed";

/// A [`RateLimitObserver`] that publishes `bulwark_ratelimit_allowed_total{name}`,
/// `bulwark_ratelimit_rejected_total{name}` and `bulwark_ratelimit_available_tokens{name}`.
/// The key of a keyed limiter is never a label (it would be unbounded).
///
/// ```
/// use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
/// use bulwark::telemetry::metrics::MetricsRegistry;
/// use bulwark::telemetry::observers::RateLimitMetrics;
/// use std::sync::Arc;
///
/// let registry = MetricsRegistry::default();
/// let limiter = RateLimiter::builder(RateLimitConfig::per_second(1))
///     .name("llm")
///     .observer(Arc::new(RateLimitMetrics::new(&registry)))
///     .build()?;
/// limiter.try_acquire(1)?;
/// limiter.try_acquire(1)?;
/// let text = registry.render_prometheus();
/// assert!(text.contains(r#"bulwark_ratelimit_allowed_total{name="llm"} 1"#));
/// assert!(text.contains(r#"bulwark_ratelimit_rejected_total{name="llm"} 1"#));
/// assert!(text.contains(r#"bulwark_ratelimit_available_tokens{name="llm"} 0"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RateLimitMetrics {
    registry: MetricsRegistry,
    handles: Arc<RwLock<HashMap<String, Arc<LimiterHandles>>>>,
}

struct LimiterHandles {
    allowed: Counter,
    rejected: Counter,
    available: Gauge,
}

impl fmt::Debug for RateLimitMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitMetrics").finish_non_exhaustive()
    }
}

impl RateLimitMetrics {
    /// An observer reporting to `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        Self {
            registry: registry.clone(),
            handles: Arc::default(),
        }
    }

    /// An observer reporting to [`MetricsRegistry::global`].
    pub fn global() -> Self {
        Self::new(MetricsRegistry::global())
    }

    fn handles(&self, name: &str) -> Arc<LimiterHandles> {
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(h);
        }
        let labels = [("name", name)];
        let handles = Arc::new(LimiterHandles {
            allowed: self
                .registry
                .counter(RATELIMIT_ALLOWED_TOTAL, &labels)
                .unwrap_or_else(|_| Counter::noop()),
            rejected: self
                .registry
                .counter(RATELIMIT_REJECTED_TOTAL, &labels)
                .unwrap_or_else(|_| Counter::noop()),
            available: self
                .registry
                .gauge(RATELIMIT_AVAILABLE_TOKENS, &labels)
                .unwrap_or_else(|_| Gauge::noop()),
        });
        self.handles
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert(handles)
            .clone()
    }
}

impl RateLimitObserver for RateLimitMetrics {
    fn on_decision(&self, decision: &Decision<'_>) {
        let handles = self.handles(decision.limiter.unwrap_or(UNNAMED));
        if decision.allowed {
            handles.allowed.increment(1);
        } else {
            handles.rejected.increment(1);
        }
        handles.available.set(f64::from(decision.available));
    }
}

/// A [`BreakerListener`] that publishes the `bulwark_circuitbreaker_*` metrics of every breaker
/// it is attached to (one [`BreakerMetrics`] per breaker name) and records each transition as
/// an event of the current span.
///
/// Outcomes map to resilience4j's `kind`: success → `successful`, failure and slow call →
/// `failed` (the breaker counts a slow call as a failure), cancelled → `ignored`; a rejected
/// call increments `bulwark_circuitbreaker_not_permitted_calls_total`.
///
/// ```
/// use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig};
/// use bulwark::telemetry::metrics::MetricsRegistry;
/// use bulwark::telemetry::observers::BreakerMetricsListener;
/// use std::sync::Arc;
///
/// let registry = MetricsRegistry::default();
/// let breaker = CircuitBreaker::builder("search", CircuitBreakerConfig::default())
///     .listener(Arc::new(BreakerMetricsListener::new(&registry)))
///     .build()?;
/// breaker.force_open();
/// let text = registry.render_prometheus();
/// assert!(text.contains(r#"bulwark_circuitbreaker_state{name="search",state="forced_open"} 1"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BreakerMetricsListener {
    registry: MetricsRegistry,
    breakers: Arc<RwLock<HashMap<String, BreakerMetrics>>>,
}

impl fmt::Debug for BreakerMetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerMetricsListener")
            .finish_non_exhaustive()
    }
}

impl BreakerMetricsListener {
    /// A listener reporting to `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        Self {
            registry: registry.clone(),
            breakers: Arc::default(),
        }
    }

    /// A listener reporting to [`MetricsRegistry::global`].
    pub fn global() -> Self {
        Self::new(MetricsRegistry::global())
    }

    fn metrics(&self, name: &str) -> BreakerMetrics {
        if let Some(m) = self
            .breakers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
        {
            return m.clone();
        }
        let metrics = BreakerMetrics::new(&self.registry, name);
        self.breakers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert(metrics)
            .clone()
    }
}

impl BreakerListener for BreakerMetricsListener {
    fn on_transition(&self, transition: &Transition<'_>) {
        self.metrics(transition.breaker)
            .transition(transition.from.as_str(), transition.to.as_str());
    }

    fn on_call(&self, event: &CallEvent<'_>) {
        let metrics = self.metrics(event.breaker);
        match event.outcome {
            CallOutcome::Rejected => metrics.not_permitted(),
            CallOutcome::Success => metrics.call("successful", event.duration),
            CallOutcome::Failure | CallOutcome::SlowCall => metrics.call("failed", event.duration),
            _ => metrics.call("ignored", event.duration),
        }
    }
}

/// A [`CheckpointObserver`] that publishes the `bulwark_checkpoint_*` metrics: save and load
/// durations, stored and uncompressed bytes, corruptions.
#[derive(Clone, Debug)]
pub struct CheckpointMetricsObserver {
    metrics: CheckpointMetrics,
}

impl CheckpointMetricsObserver {
    /// An observer reporting to `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        Self {
            metrics: CheckpointMetrics::new(registry),
        }
    }

    /// An observer reporting to [`MetricsRegistry::global`].
    pub fn global() -> Self {
        Self::new(MetricsRegistry::global())
    }
}

impl CheckpointObserver for CheckpointMetricsObserver {
    fn on_event(&self, event: &CheckpointEvent<'_>) {
        match event {
            CheckpointEvent::Saved { metadata, duration } => {
                self.metrics
                    .save(*duration, metadata.stored_size, metadata.uncompressed_size)
            }
            CheckpointEvent::Loaded { metadata, duration } => {
                self.metrics.load(*duration, metadata.stored_size)
            }
            CheckpointEvent::Corrupt { .. } => self.metrics.corruption(),
            _ => {}
        }
    }
}
