//! How the engine evaluates and delivers.

use std::sync::Arc;
use std::time::Duration;

use super::notify::{DeliveryPolicy, Notifier};

/// The engine's settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Time between evaluations (default 15 s).
    pub interval: Duration,
    /// Time between two sends of an alert that keeps firing (default 1 min, Prometheus'
    /// `--rules.alert.resend-delay`).
    pub resend_interval: Duration,
    /// The base of `generatorURL` (e.g. `http://bulwark.internal:8000`).
    pub external_url: String,
    /// Metric names rules may read besides Bulwark's own and those already registered.
    pub known_metrics: Vec<String>,
    /// How long resolved alerts stay listed (default 15 min).
    pub keep_resolved: Duration,
    /// At most this many resolved alerts are listed (default 1 000).
    pub max_resolved: usize,
    /// Alert events buffered for slow subscribers (default 1 024).
    pub event_capacity: usize,
    /// Where notifications go.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Queue bound, attempts and backoff for each notifier.
    pub delivery: DeliveryPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            resend_interval: Duration::from_secs(60),
            external_url: "http://127.0.0.1:8000".to_owned(),
            known_metrics: Vec::new(),
            keep_resolved: Duration::from_secs(15 * 60),
            max_resolved: 1000,
            event_capacity: 1024,
            notifiers: Vec::new(),
            delivery: DeliveryPolicy::default(),
        }
    }
}

impl EngineConfig {
    /// Sets the evaluation interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the re-send interval.
    pub fn with_resend_interval(mut self, resend: Duration) -> Self {
        self.resend_interval = resend;
        self
    }

    /// Sets the base of `generatorURL`.
    pub fn with_external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = url.into();
        self
    }

    /// Adds a notifier.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(notifier);
        self
    }

    /// Sets the delivery policy.
    pub fn with_delivery(mut self, delivery: DeliveryPolicy) -> Self {
        self.delivery = delivery;
        self
    }

    /// Allows rules on `metric`.
    pub fn with_known_metric(mut self, metric: impl Into<String>) -> Self {
        self.known_metrics.push(metric.into());
        self
    }
}
