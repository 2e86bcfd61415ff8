//! The names Bulwark's own metrics use, and helpers that record them from plain values.
//!
//! Names take the `bulwark_` prefix, base units (seconds, bytes) and `_total` on counters, and
//! follow resilience4j's names where one exists (`resilience4j_circuitbreaker_state` becomes
//! [`CIRCUITBREAKER_STATE`]). The helpers hold pre-registered handles, so recording is a few
//! atomic operations; a primitive's observer hook calls them with what it observed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::registry::MetricsRegistry;

/// Label on the series that collects label sets beyond a metric's cap (OpenTelemetry's name).
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";
/// Its value.
pub const OVERFLOW_LABEL_VALUE: &str = "true";
/// `{metric}`: label sets folded into a metric's overflow series.
pub const OVERFLOW_TOTAL: &str = "bulwark_metrics_overflow_total";

/// Counter `{name}`: requests a rate limiter admitted.
pub const RATELIMIT_ALLOWED_TOTAL: &str = "bulwark_ratelimit_allowed_total";
/// Counter `{name}`: requests a rate limiter refused.
pub const RATELIMIT_REJECTED_TOTAL: &str = "bulwark_ratelimit_rejected_total";
/// Gauge `{name}`: whole tokens left after the latest decision (resilience4j:
/// `ratelimiter_available_permissions`).
pub const RATELIMIT_AVAILABLE_TOKENS: &str = "bulwark_ratelimit_available_tokens";

/// Gauge `{name, state}`: 1 for the breaker's current state, 0 for the others.
pub const CIRCUITBREAKER_STATE: &str = "bulwark_circuitbreaker_state";
/// Histogram `{name, kind}` in seconds: calls the breaker let through, by outcome
/// (`kind` = `successful`, `failed` or `ignored`, as in resilience4j).
pub const CIRCUITBREAKER_CALLS_SECONDS: &str = "bulwark_circuitbreaker_calls_seconds";
/// Counter `{name}`: calls refused because the breaker was open (or half-open and full).
pub const CIRCUITBREAKER_NOT_PERMITTED_CALLS_TOTAL: &str =
    "bulwark_circuitbreaker_not_permitted_calls_total";
/// Counter `{name, from_state, to_state}`: state transitions.
pub const CIRCUITBREAKER_TRANSITIONS_TOTAL: &str = "bulwark_circuitbreaker_transitions_total";
/// The states [`CIRCUITBREAKER_STATE`] reports, as label values.
pub const CIRCUITBREAKER_STATES: [&str; 5] =
    ["closed", "open", "half_open", "forced_open", "disabled"];

/// Histogram `{}` in seconds: checkpoint saves.
pub const CHECKPOINT_SAVE_SECONDS: &str = "bulwark_checkpoint_save_seconds";
/// Histogram `{}` in seconds: checkpoint loads.
pub const CHECKPOINT_LOAD_SECONDS: &str = "bulwark_checkpoint_load_seconds";
/// Histogram `{operation, form}` in bytes: checkpoint sizes (`operation` = `save`|`load`,
/// `form` = `stored` (after compression) | `uncompressed`).
pub const CHECKPOINT_BYTES: &str = "bulwark_checkpoint_bytes";
/// Counter `{}`: checkpoints that failed verification (SHA-256 mismatch, bad envelope).
pub const CHECKPOINT_CORRUPTIONS_TOTAL: &str = "bulwark_checkpoint_corruptions_total";
/// Counter `{operation}`: checkpoint operations that failed for another reason (I/O, database).
pub const CHECKPOINT_ERRORS_TOTAL: &str = "bulwark_checkpoint_errors_total";

/// Counter `{}`: finished spans dropped because the export queue was full.
pub const TELEMETRY_SPANS_DROPPED_TOTAL: &str = "bulwark_telemetry_spans_dropped_total";
/// Counter `{}`: spans handed to the OTLP exporter successfully.
pub const TELEMETRY_SPANS_EXPORTED_TOTAL: &str = "bulwark_telemetry_spans_exported_total";
/// Counter `{}`: export batches that failed.
pub const TELEMETRY_EXPORT_FAILURES_TOTAL: &str = "bulwark_telemetry_export_failures_total";

/// Descriptions of Bulwark's own metrics, shown as `# HELP`.
pub const BUILTIN_HELP: &[(&str, &str)] = &[
    (RATELIMIT_ALLOWED_TOTAL, "Requests a rate limiter admitted."),
    (RATELIMIT_REJECTED_TOTAL, "Requests a rate limiter refused."),
    (
        RATELIMIT_AVAILABLE_TOKENS,
        "Whole tokens left in a rate limiter's bucket after its latest decision.",
    ),
    (
        CIRCUITBREAKER_STATE,
        "1 for a circuit breaker's current state, 0 for its other states.",
    ),
    (
        CIRCUITBREAKER_CALLS_SECONDS,
        "Duration of calls a circuit breaker let through, by outcome.",
    ),
    (
        CIRCUITBREAKER_NOT_PERMITTED_CALLS_TOTAL,
        "Calls a circuit breaker refused without running them.",
    ),
    (
        CIRCUITBREAKER_TRANSITIONS_TOTAL,
        "Circuit breaker state transitions.",
    ),
    (
        CHECKPOINT_SAVE_SECONDS,
        "Duration of durable checkpoint saves.",
    ),
    (
        CHECKPOINT_LOAD_SECONDS,
        "Duration of verified checkpoint loads.",
    ),
    (
        CHECKPOINT_BYTES,
        "Checkpoint sizes, as stored and uncompressed.",
    ),
    (
        CHECKPOINT_CORRUPTIONS_TOTAL,
        "Checkpoints that failed verification.",
    ),
    (
        CHECKPOINT_ERRORS_TOTAL,
        "Checkpoint operations that failed for a reason other than corruption.",
    ),
    (
        TELEMETRY_SPANS_DROPPED_TOTAL,
        "Finished spans dropped because the OTLP export queue was full.",
    ),
    (
        TELEMETRY_SPANS_EXPORTED_TOTAL,
        "Spans sent to the OTLP endpoint.",
    ),
    (
        TELEMETRY_EXPORT_FAILURES_TOTAL,
        "OTLP export batches that failed.",
    ),
];

fn counter(registry: &MetricsRegistry, name: &str, labels: &[(&str, &str)]) -> Counter {
    registry
        .counter(name, labels)
        .unwrap_or_else(|_| Counter::noop())
}

fn gauge(registry: &MetricsRegistry, name: &str, labels: &[(&str, &str)]) -> Gauge {
    registry
        .gauge(name, labels)
        .unwrap_or_else(|_| Gauge::noop())
}

fn histogram(registry: &MetricsRegistry, name: &str, labels: &[(&str, &str)]) -> Histogram {
    registry
        .histogram(name, labels)
        .unwrap_or_else(|_| Histogram::noop())
}

/// The metrics of one circuit breaker, pre-registered. Wire a breaker's observer hook to it:
/// a transition calls [`transition`](Self::transition), a call that ran
/// [`call`](Self::call), a refused call [`not_permitted`](Self::not_permitted).
///
/// ```
/// use bulwark::telemetry::metrics::{BreakerMetrics, MetricsRegistry};
/// use std::time::Duration;
///
/// let registry = MetricsRegistry::default();
/// let breaker = BreakerMetrics::new(&registry, "payments");
/// breaker.transition("closed", "open");
/// breaker.call("failed", Duration::from_millis(30));
/// breaker.not_permitted();
/// let text = registry.render_prometheus();
/// assert!(text.contains(r#"bulwark_circuitbreaker_state{name="payments",state="open"} 1"#));
/// assert!(text.contains(r#"bulwark_circuitbreaker_state{name="payments",state="closed"} 0"#));
/// assert!(text.contains(r#"bulwark_circuitbreaker_not_permitted_calls_total{name="payments"} 1"#));
/// ```
#[derive(Clone)]
pub struct BreakerMetrics {
    registry: MetricsRegistry,
    name: Arc<str>,
    states: Arc<[(&'static str, Gauge)]>,
    successful: Histogram,
    failed: Histogram,
    ignored: Histogram,
    not_permitted: Counter,
    transitions: Arc<Mutex<Vec<(String, String, Counter)>>>,
}

impl std::fmt::Debug for BreakerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl BreakerMetrics {
    /// Registers the series of the breaker `name`; its state gauges start at `closed`.
    pub fn new(registry: &MetricsRegistry, name: &str) -> Self {
        let states: Arc<[(&'static str, Gauge)]> = CIRCUITBREAKER_STATES
            .iter()
            .map(|state| {
                (
                    *state,
                    gauge(
                        registry,
                        CIRCUITBREAKER_STATE,
                        &[("name", name), ("state", state)],
                    ),
                )
            })
            .collect();
        let calls = |kind| {
            histogram(
                registry,
                CIRCUITBREAKER_CALLS_SECONDS,
                &[("name", name), ("kind", kind)],
            )
        };
        let metrics = Self {
            registry: registry.clone(),
            name: name.into(),
            states,
            successful: calls("successful"),
            failed: calls("failed"),
            ignored: calls("ignored"),
            not_permitted: counter(
                registry,
                CIRCUITBREAKER_NOT_PERMITTED_CALLS_TOTAL,
                &[("name", name)],
            ),
            transitions: Arc::default(),
        };
        metrics.state("closed");
        metrics
    }

    /// Sets the state gauges: 1 for `state`, 0 for every other state.
    pub fn state(&self, state: &str) {
        let mut known = false;
        for (name, gauge) in self.states.iter() {
            let current = *name == state;
            known |= current;
            gauge.set(if current { 1.0 } else { 0.0 });
        }
        if !known {
            gauge(
                &self.registry,
                CIRCUITBREAKER_STATE,
                &[("name", &self.name), ("state", state)],
            )
            .set(1.0);
        }
    }

    /// A transition: the state gauges, the transition counter, and a `tracing` event (which the
    /// telemetry layer records as an event of the current span).
    pub fn transition(&self, from: &str, to: &str) {
        self.state(to);
        let counter = {
            let mut transitions = self
                .transitions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match transitions.iter().find(|(f, t, _)| f == from && t == to) {
                Some((_, _, counter)) => counter.clone(),
                None => {
                    let counter = counter(
                        &self.registry,
                        CIRCUITBREAKER_TRANSITIONS_TOTAL,
                        &[("name", &self.name), ("from_state", from), ("to_state", to)],
                    );
                    transitions.push((from.to_owned(), to.to_owned(), counter.clone()));
                    counter
                }
            }
        };
        counter.increment(1);
        tracing::info!(
            target: "bulwark::breaker",
            breaker = %self.name,
            from_state = from,
            to_state = to,
            "circuit breaker state transition"
        );
    }

    /// A call the breaker let through, with its outcome (`successful`, `failed`, `ignored`;
    /// anything else counts as `failed`) and how long it took.
    pub fn call(&self, outcome: &str, duration: Duration) {
        let histogram = match outcome {
            "successful" | "success" => &self.successful,
            "ignored" => &self.ignored,
            _ => &self.failed,
        };
        histogram.record(duration.as_secs_f64());
    }

    /// A call refused without running.
    pub fn not_permitted(&self) {
        self.not_permitted.increment(1);
    }
}

/// The checkpoint metrics, pre-registered. Wire a checkpoint manager's observer hook to it.
///
/// ```
/// use bulwark::telemetry::metrics::{CheckpointMetrics, MetricsRegistry};
/// use std::time::Duration;
///
/// let registry = MetricsRegistry::default();
/// let checkpoints = CheckpointMetrics::new(&registry);
/// checkpoints.save(Duration::from_millis(2), 300_000, 1_000_000);
/// checkpoints.corruption();
/// let text = registry.render_prometheus();
/// assert!(text.contains("bulwark_checkpoint_save_seconds_count 1"));
/// assert!(text.contains("bulwark_checkpoint_corruptions_total 1"));
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointMetrics {
    registry: MetricsRegistry,
    save_seconds: Histogram,
    load_seconds: Histogram,
    save_stored: Histogram,
    save_uncompressed: Histogram,
    load_stored: Histogram,
    corruptions: Counter,
}

impl CheckpointMetrics {
    /// Registers the checkpoint series.
    pub fn new(registry: &MetricsRegistry) -> Self {
        let bytes = |operation, form| {
            histogram(
                registry,
                CHECKPOINT_BYTES,
                &[("operation", operation), ("form", form)],
            )
        };
        Self {
            registry: registry.clone(),
            save_seconds: histogram(registry, CHECKPOINT_SAVE_SECONDS, &[]),
            load_seconds: histogram(registry, CHECKPOINT_LOAD_SECONDS, &[]),
            save_stored: bytes("save", "stored"),
            save_uncompressed: bytes("save", "uncompressed"),
            load_stored: bytes("load", "stored"),
            corruptions: counter(registry, CHECKPOINT_CORRUPTIONS_TOTAL, &[]),
        }
    }

    /// A durable save: how long it took, bytes written, bytes of state before compression.
    pub fn save(&self, duration: Duration, stored_bytes: u64, uncompressed_bytes: u64) {
        self.save_seconds.record(duration.as_secs_f64());
        self.save_stored.record(stored_bytes as f64);
        self.save_uncompressed.record(uncompressed_bytes as f64);
    }

    /// A verified load: how long it took and bytes read.
    pub fn load(&self, duration: Duration, stored_bytes: u64) {
        self.load_seconds.record(duration.as_secs_f64());
        self.load_stored.record(stored_bytes as f64);
    }

    /// A checkpoint failed verification.
    pub fn corruption(&self) {
        self.corruptions.increment(1);
    }

    /// An operation (`save`, `load`, `delete`, ...) failed for another reason than corruption.
    pub fn error(&self, operation: &str) {
        counter(
            &self.registry,
            CHECKPOINT_ERRORS_TOTAL,
            &[("operation", operation)],
        )
        .increment(1);
    }
}
