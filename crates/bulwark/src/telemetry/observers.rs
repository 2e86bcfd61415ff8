//! Observers that publish the primitives' own metrics, attached to their hooks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge};

use super::metrics::MetricsRegistry;
use super::metrics::names::{
    RATELIMIT_ALLOWED_TOTAL, RATELIMIT_AVAILABLE_TOKENS, RATELIMIT_REJECTED_TOTAL,
};
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
