//! Counters, gauges and histograms with labels, in one registry that the original system's
//! calls, pre-registered handles and the `metrics` facade all feed.
//!
//! A metric name maps to a family; a sorted label set maps to a series; a series is atomics
//! (a counter's `u64`, a gauge's `f64` bits, a histogram's per-bucket counts, count and sum),
//! so recording through a handle never locks or allocates. The `metrics` facade's keys are
//! cached by their precomputed hash, so `metrics::counter!("x").increment(1)` costs one
//! read-locked hash lookup. Each metric holds at most `max_series_per_metric` label sets;
//! further ones fold into one `otel_metric_overflow="true"` series and are counted.
//! Histograms have fixed buckets (configurable per metric) and render as Prometheus
//! histograms, never summaries, so they aggregate across replicas.
//!
//! ```
//! use bulwark::telemetry::metrics::{MetricsConfig, MetricsRegistry};
//!
//! let registry = MetricsRegistry::new(MetricsConfig::default().with_max_series_per_metric(2));
//! registry.increment_counter("agent_runs", &[("agent", "planner")])?;
//! registry.set_gauge("queue_depth", 3.0, &[])?;
//! registry.record_histogram("llm_latency_seconds", 0.2, &[])?;
//! for user in ["a", "b", "c", "d"] {
//!     registry.increment_counter("requests", &[("user", user)])?;
//! }
//! let text = registry.render_prometheus();
//! assert!(text.contains(r#"agent_runs_total{agent="planner"} 1"#));
//! assert!(text.contains(r#"llm_latency_seconds_bucket{le="0.25"} 1"#));
//! assert!(text.contains(r#"requests_total{otel_metric_overflow="true"} 2"#));
//! assert!(text.contains(r#"bulwark_metrics_overflow_total{metric="requests"} 2"#));
//! # Ok::<(), bulwark::telemetry::metrics::MetricsError>(())
//! ```

mod cell;
mod config;
pub mod names;
mod registry;
mod render;

pub use config::{BYTE_BUCKETS, DEFAULT_BUCKETS, DEFAULT_MAX_SERIES_PER_METRIC, MetricsConfig};
pub use names::{BreakerMetrics, CheckpointMetrics};
pub(crate) use registry::install_global;
pub use registry::{MetricKind, MetricsError, MetricsRegistry};
pub use render::{Bucket, MetricSnapshot, MetricsSnapshot, SeriesSnapshot, SeriesValue};
