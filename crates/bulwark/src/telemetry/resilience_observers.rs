//! Observers that publish the metrics of retries, timeouts and bulkheads, attached to their
//! hooks (directly, or to every strategy of a pipeline through [`PipelineObservers`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge};

use super::metrics::MetricsRegistry;
use super::observers::{BreakerMetricsListener, RateLimitMetrics};
use crate::bulkhead::{BulkheadEvent, BulkheadObserver, RejectReason};
use crate::hedge::{HedgeEvent, HedgeEventKind, HedgeObserver};
use crate::pipeline::PipelineObservers;
use crate::retry::{GiveUp, RetryEvent, RetryEventKind, RetryObserver};
use crate::sync::{read, write};
use crate::timeout::{TimeoutEvent, TimeoutKind, TimeoutObserver};

/// Counter `{name}`: attempts a retry started (first attempts included).
pub const RETRY_ATTEMPTS_TOTAL: &str = "bulwark_retry_attempts_total";
/// Counter `{name}`: retries scheduled after a failed attempt.
pub const RETRY_RETRIES_TOTAL: &str = "bulwark_retry_retries_total";
/// Counter `{name}`: calls that succeeded, at any attempt.
pub const RETRY_SUCCEEDED_TOTAL: &str = "bulwark_retry_succeeded_total";
/// Counter `{name, reason}`: calls a retry gave up on (`reason` = `exhausted`,
/// `not_retryable`, `budget_exhausted`, `retry_after_too_long`).
pub const RETRY_GAVE_UP_TOTAL: &str = "bulwark_retry_gave_up_total";
/// Counter `{name}`: retries refused by the retry budget.
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "bulwark_retry_budget_exhausted_total";
/// Counter `{name, kind}`: timeouts that fired (`kind` = `attempt` or `overall`).
pub const TIMEOUT_FIRED_TOTAL: &str = "bulwark_timeout_fired_total";
/// Counter `{name}`: hedged attempts started beside a slow or failed one.
pub const HEDGE_ATTEMPTS_TOTAL: &str = "bulwark_hedge_attempts_total";
/// Counter `{name, winner}`: hedged calls answered (`winner` = `first` or `hedge`).
pub const HEDGE_WON_TOTAL: &str = "bulwark_hedge_won_total";
/// Counter `{name}`: attempts dropped unfinished because another answered first.
pub const HEDGE_CANCELLED_TOTAL: &str = "bulwark_hedge_cancelled_total";
/// Counter `{name}`: calls a bulkhead admitted.
pub const BULKHEAD_ADMITTED_TOTAL: &str = "bulwark_bulkhead_admitted_total";
/// Counter `{name, reason}`: calls a bulkhead refused (`reason` = `full`, `queue_full`,
/// `max_wait`).
pub const BULKHEAD_REJECTED_TOTAL: &str = "bulwark_bulkhead_rejected_total";
/// Gauge `{name}`: calls holding a slot after the latest decision.
pub const BULKHEAD_IN_FLIGHT: &str = "bulwark_bulkhead_in_flight";
/// Gauge `{name}`: calls waiting in the queue after the latest decision.
pub const BULKHEAD_QUEUE_DEPTH: &str = "bulwark_bulkhead_queue_depth";

const GIVE_UPS: [GiveUp; 4] = [
    GiveUp::Exhausted,
    GiveUp::NotRetryable,
    GiveUp::BudgetExhausted,
    GiveUp::RetryAfterTooLong,
];
const REJECT_REASONS: [&str; 3] = ["full", "queue_full", "max_wait"];
const TIMEOUT_KINDS: [TimeoutKind; 2] = [TimeoutKind::Attempt, TimeoutKind::Overall];

/// A [`RetryObserver`], [`TimeoutObserver`], [`HedgeObserver`] and [`BulkheadObserver`]
/// publishing the `bulwark_retry_*`, `bulwark_timeout_*`, `bulwark_hedge_*` and
/// `bulwark_bulkhead_*` metrics, labelled by the
/// strategy's name (its pipeline's name in a pipeline).
///
/// ```
/// use bulwark::bulkhead::BulkheadConfig;
/// use bulwark::pipeline::ResiliencePipeline;
/// use bulwark::telemetry::metrics::MetricsRegistry;
/// use bulwark::telemetry::resilience_observers::ResilienceMetrics;
///
/// let registry = MetricsRegistry::default();
/// let pipeline = ResiliencePipeline::builder()
///     .name("tools")
///     .observers(ResilienceMetrics::new(&registry).observers())
///     .bulkhead(BulkheadConfig::new(1))
///     .build()?;
/// let slot = pipeline.bulkhead().map(|b| b.try_acquire());
/// let _ = pipeline.bulkhead().map(|b| b.try_acquire());
/// let text = registry.render_prometheus();
/// assert!(text.contains(r#"bulwark_bulkhead_admitted_total{name="tools"} 1"#));
/// assert!(text.contains(r#"bulwark_bulkhead_rejected_total{name="tools",reason="full"} 1"#));
/// assert!(text.contains(r#"bulwark_bulkhead_in_flight{name="tools"} 1"#));
/// # drop(slot);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ResilienceMetrics {
    registry: MetricsRegistry,
    retries: Handles<RetryHandles>,
    timeouts: Handles<[Counter; 2]>,
    bulkheads: Handles<BulkheadHandles>,
    hedges: Handles<HedgeHandles>,
}

type Handles<T> = Arc<RwLock<HashMap<String, Arc<T>>>>;

struct RetryHandles {
    attempts: Counter,
    retries: Counter,
    succeeded: Counter,
    gave_up: [Counter; 4],
    budget_exhausted: Counter,
}

struct HedgeHandles {
    hedged: Counter,
    won_first: Counter,
    won_hedge: Counter,
    cancelled: Counter,
}

struct BulkheadHandles {
    admitted: Counter,
    rejected: [Counter; 3],
    in_flight: Gauge,
    queued: Gauge,
}

/// The handles of `name`, made with `make` on first use.
fn handles<T>(cache: &Handles<T>, name: &str, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(found) = read(cache).get(name) {
        return Arc::clone(found);
    }
    let made = Arc::new(make());
    Arc::clone(write(cache).entry(name.to_owned()).or_insert(made))
}

impl ResilienceMetrics {
    /// Observers reporting to `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        Self {
            registry: registry.clone(),
            retries: Arc::default(),
            timeouts: Arc::default(),
            bulkheads: Arc::default(),
            hedges: Arc::default(),
        }
    }

    /// Observers reporting to [`MetricsRegistry::global`].
    pub fn global() -> Self {
        Self::new(MetricsRegistry::global())
    }

    /// These observers for every strategy of a pipeline, with the limiter's and breaker's own
    /// metrics ([`RateLimitMetrics`], [`BreakerMetricsListener`]) on the same registry.
    pub fn observers(&self) -> PipelineObservers {
        let this = Arc::new(self.clone());
        PipelineObservers::new()
            .retry(this.clone())
            .timeout(this.clone())
            .hedge(this.clone())
            .bulkhead(this)
            .rate_limit(Arc::new(RateLimitMetrics::new(&self.registry)))
            .breaker(Arc::new(BreakerMetricsListener::new(&self.registry)))
    }

    fn counter(&self, metric: &str, labels: &[(&str, &str)]) -> Counter {
        self.registry
            .counter(metric, labels)
            .unwrap_or_else(|_| Counter::noop())
    }

    fn gauge(&self, metric: &str, labels: &[(&str, &str)]) -> Gauge {
        self.registry
            .gauge(metric, labels)
            .unwrap_or_else(|_| Gauge::noop())
    }
}

impl RetryObserver for ResilienceMetrics {
    fn on_retry_event(&self, event: &RetryEvent<'_>) {
        let name = event.name;
        let h = handles(&self.retries, name, || RetryHandles {
            attempts: self.counter(RETRY_ATTEMPTS_TOTAL, &[("name", name)]),
            retries: self.counter(RETRY_RETRIES_TOTAL, &[("name", name)]),
            succeeded: self.counter(RETRY_SUCCEEDED_TOTAL, &[("name", name)]),
            gave_up: GIVE_UPS.map(|reason| {
                self.counter(
                    RETRY_GAVE_UP_TOTAL,
                    &[("name", name), ("reason", reason.as_str())],
                )
            }),
            budget_exhausted: self.counter(RETRY_BUDGET_EXHAUSTED_TOTAL, &[("name", name)]),
        });
        match event.kind {
            RetryEventKind::Attempt => h.attempts.increment(1),
            RetryEventKind::Succeeded => h.succeeded.increment(1),
            RetryEventKind::Retrying { .. } => h.retries.increment(1),
            RetryEventKind::GaveUp(reason) => {
                if let Some(i) = GIVE_UPS.iter().position(|r| *r == reason) {
                    h.gave_up[i].increment(1);
                }
                if reason == GiveUp::BudgetExhausted {
                    h.budget_exhausted.increment(1);
                }
            }
        }
    }
}

impl TimeoutObserver for ResilienceMetrics {
    fn on_timeout(&self, event: &TimeoutEvent<'_>) {
        let name = event.name;
        let h = handles(&self.timeouts, name, || {
            TIMEOUT_KINDS.map(|kind| {
                self.counter(
                    TIMEOUT_FIRED_TOTAL,
                    &[("name", name), ("kind", kind.as_str())],
                )
            })
        });
        if let Some(i) = TIMEOUT_KINDS.iter().position(|k| *k == event.kind) {
            h[i].increment(1);
        }
    }
}

impl BulkheadObserver for ResilienceMetrics {
    fn on_bulkhead_event(&self, event: &BulkheadEvent<'_>) {
        let name = event.name;
        let h = handles(&self.bulkheads, name, || BulkheadHandles {
            admitted: self.counter(BULKHEAD_ADMITTED_TOTAL, &[("name", name)]),
            rejected: REJECT_REASONS.map(|reason| {
                self.counter(
                    BULKHEAD_REJECTED_TOTAL,
                    &[("name", name), ("reason", reason)],
                )
            }),
            in_flight: self.gauge(BULKHEAD_IN_FLIGHT, &[("name", name)]),
            queued: self.gauge(BULKHEAD_QUEUE_DEPTH, &[("name", name)]),
        });
        match event.rejected {
            None => h.admitted.increment(1),
            Some(reason) => {
                let index = match reason {
                    RejectReason::Full => 0,
                    RejectReason::QueueFull => 1,
                    _ => 2,
                };
                h.rejected[index].increment(1);
            }
        }
        h.in_flight.set(f64::from(event.in_flight));
        h.queued.set(f64::from(event.queued));
    }
}

impl HedgeObserver for ResilienceMetrics {
    fn on_hedge_event(&self, event: &HedgeEvent<'_>) {
        let name = event.name;
        let h = handles(&self.hedges, name, || HedgeHandles {
            hedged: self.counter(HEDGE_ATTEMPTS_TOTAL, &[("name", name)]),
            won_first: self.counter(HEDGE_WON_TOTAL, &[("name", name), ("winner", "first")]),
            won_hedge: self.counter(HEDGE_WON_TOTAL, &[("name", name), ("winner", "hedge")]),
            cancelled: self.counter(HEDGE_CANCELLED_TOTAL, &[("name", name)]),
        });
        match event.kind {
            HedgeEventKind::Hedged { .. } => h.hedged.increment(1),
            HedgeEventKind::Won { cancelled } => {
                if event.attempt == 1 {
                    h.won_first.increment(1);
                } else {
                    h.won_hedge.increment(1);
                }
                h.cancelled.increment(u64::from(cancelled));
            }
            HedgeEventKind::Failed { cancelled } => h.cancelled.increment(u64::from(cancelled)),
        }
    }
}

impl fmt::Debug for ResilienceMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceMetrics").finish_non_exhaustive()
    }
}
