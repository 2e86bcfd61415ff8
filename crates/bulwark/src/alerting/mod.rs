//! Alerting: rules over breaker states and metrics, evaluated on the crate's clock, with
//! notifications to Prometheus Alertmanager, signed webhooks and the log.
//!
//! Every `interval` the [`AlertEngine`] reads one snapshot of the metrics registry and the
//! breaker registry. Windowed conditions (`rate`, `quantile`, `stuck`, `checkpoint_corrupt`)
//! append one sample per watched series to a short history and compute over it; breaker
//! conditions read the breakers and the transitions their listener recorded since the last
//! round, so an OPEN that began and ended between two rounds is still seen. Each label set
//! whose condition holds is a candidate alert, keyed by rule and labels:
//!
//! ```text
//! inactive ──holds──▶ pending ──held `for`──▶ firing ──stopped holding for `keep_firing_for`──▶ resolved
//!     ▲                  │ stopped holding                                                        │
//!     └──────────────────┴──────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A condition that flickers within `for` never fires; a firing alert is sent when it starts,
//! re-sent every `resend_interval` with `endsAt` four intervals ahead (so Alertmanager never
//! resolves it between sends), and announced once when resolved. Notifications go to bounded
//! per-notifier queues, never blocking evaluation ([`notify`]). [`export`] writes the same rules
//! for Prometheus. Cost per round: one registry snapshot, then per rule a pass over its metric's
//! series (label matchers), so O(rules × series of the metric).
//!
//! ```
//! use bulwark::alerting::{AlertEngine, AlertRule, AlertState, Condition, EngineConfig, NamePattern};
//! use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig, State};
//! use bulwark::clock::ManualClock;
//! use bulwark::telemetry::metrics::MetricsRegistry;
//! use std::{sync::Arc, time::Duration};
//!
//! let clock = ManualClock::new();
//! let breakers = Arc::new(BreakerRegistry::with_clock(clock.clone()));
//! let rule = AlertRule::new("BreakerOpen", Condition::BreakerState {
//!     breaker: NamePattern::new("pay*")?, states: vec![State::Open], min_open: Duration::ZERO,
//! })
//! .with_for(Duration::from_secs(30))
//! .with_label("severity", "page")
//! .with_annotation("summary", "breaker {{ $labels.name }} is open");
//! let engine = AlertEngine::new(vec![rule], EngineConfig::default(), MetricsRegistry::default(),
//!     Some(Arc::clone(&breakers)), clock.clone())?;
//!
//! let config = CircuitBreakerConfig {
//!     failure_threshold: 1, timeout: Duration::from_secs(600), ..CircuitBreakerConfig::default()
//! };
//! let payment = breakers.get_or_create("payment", config)?;
//! let _ = payment.call(|| Err::<(), _>("tool down")); // opens the breaker
//! engine.evaluate();
//! assert_eq!(engine.alerts()[0].state, AlertState::Pending);
//! clock.advance(Duration::from_secs(30));
//! engine.evaluate();
//! let alert = &engine.alerts()[0];
//! assert_eq!(alert.state, AlertState::Firing);
//! assert_eq!(alert.labels["name"], "payment");
//! assert_eq!(alert.labels["alertname"], "BreakerOpen");
//! assert_eq!(alert.annotations["summary"], "breaker payment is open");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod alert;
mod config;
mod engine;
mod eval;
pub mod export;
mod matcher;
pub mod notify;
mod rule;
mod series;
mod template;

pub use alert::{Alert, AlertEvent, AlertState, Batch, Notice, rfc3339};
pub use config::EngineConfig;
pub use engine::{ALERT_EVALUATIONS_TOTAL, ALERTS_FIRING, AlertEngine, check_metrics};
pub use matcher::{LabelMatcher, MatchOp, NamePattern, parse_selector};
pub use rule::{
    AlertRule, CHECKPOINT_CORRUPTIONS, Comparison, Condition, Number, RuleError, RuleSpec,
    rules_from_specs,
};
