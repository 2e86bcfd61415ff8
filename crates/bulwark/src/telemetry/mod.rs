//! Telemetry: spans with W3C trace-context ids kept in a bounded in-memory trace store and
//! exported over OTLP, context propagation across HTTP and agent messages, and a metrics
//! registry rendered as Prometheus text and JSON.
//!
//! Spans come from `tracing` (`#[tracing::instrument]` is the decorator). A
//! [`TelemetryLayer`] sits on the `tracing_subscriber` registry: when a span opens it gets a
//! random 64-bit span id and either its parent's 128-bit trace id (the registry tracks parents
//! across tasks and threads) or a new one; attributes, events and status accumulate in the
//! registry's per-span storage; when the span closes it becomes an immutable
//! [`FinishedSpan`] that moves into the [`TraceStore`] (bounded by a time to live and a span
//! cap, evicting oldest-first in O(1)), shared as one `Arc` with the OTLP exporter's queue when
//! export is on. The
//! exporter sends those same ids, so a trace id seen in a `traceparent` header, in the local
//! store and in Jaeger or Phoenix is one id.
//!
//! ```
//! use bulwark::telemetry::{SpanExt, SpanStatus, TelemetryLayer, TraceStore};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let store = TraceStore::default();
//! let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let workflow = tracing::info_span!("process_workflow", priority = "high");
//!     workflow.in_scope(|| {
//!         let step = tracing::info_span!("call_llm");
//!         step.set_status(SpanStatus::error("rate limited"));
//!     });
//! });
//! let traces = store.recent_traces(&Default::default());
//! assert_eq!(traces.len(), 1);
//! assert_eq!(traces[0].root_name, "process_workflow");
//! assert_eq!(traces[0].span_count, 2);
//! assert!(traces[0].has_error);
//! let tree = store.get_trace(traces[0].trace_id).unwrap();
//! assert_eq!(tree.roots[0].children[0].span.name, "call_llm");
//! ```
//!
//! [`init`] installs the whole stack once for a process (filter, this layer, optional stderr
//! logs, OTLP export with the `otlp` feature, the metrics recorder) and returns a
//! [`TelemetryGuard`] that flushes the exporter when dropped.

mod config;
#[cfg(feature = "otlp")]
pub mod export;
pub mod genai;
mod ids;
mod layer;
pub mod metrics;
mod model;
pub mod observers;
pub mod propagation;
pub mod resilience_observers;
pub mod span;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};

pub use config::{DEFAULT_SERVICE_NAME, OtlpConfig, OtlpProtocol, TelemetryConfig};
pub use ids::{IdParseError, SpanId, TraceId};
pub use layer::{
    MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES_PER_SPAN, MAX_EVENTS_PER_SPAN, SpanSink,
    TRUNCATION_MARKER, TelemetryLayer,
};
pub use model::{AttributeValue, FinishedSpan, KeyValue, SpanEvent, SpanKind, SpanStatus};
pub use propagation::{TraceContext, TraceContextLayer, TraceContextService};
pub use span::{ManualSpan, SpanExt};
pub use store::{
    DEFAULT_LIST_LIMIT, DEFAULT_MAX_BYTES, DEFAULT_MAX_SPANS, DEFAULT_TTL, Evictions, SpanNode,
    TraceFilter, TraceStore, TraceStoreConfig, TraceStoreStats, TraceSummary, TraceTree,
};

use self::metrics::{MetricsError, MetricsRegistry};

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// `init` already ran in this process.
    #[error("telemetry is already initialised in this process")]
    AlreadyInitialized,
    /// Another global `tracing` subscriber is installed.
    #[error("another tracing subscriber is already installed")]
    SubscriberAlreadySet,
    /// The filter directive does not parse.
    #[error("invalid log filter {0:?}: {1}")]
    Filter(String, String),
    /// The metrics configuration is invalid, or another recorder is installed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// OTLP export was configured but this build lacks the `otlp` feature.
    #[error("OTLP export is configured but bulwark was built without the `otlp` feature")]
    OtlpDisabled,
    /// The OTLP exporter could not start.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Export(#[from] export::ExportError),
}

/// What the HTTP API reads: the trace store and the metrics registry. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Telemetry {
    store: TraceStore,
    metrics: MetricsRegistry,
}

impl Telemetry {
    /// A handle on `store` and `metrics`.
    pub fn new(store: TraceStore, metrics: MetricsRegistry) -> Self {
        Self { store, metrics }
    }

    /// The trace store: [`TraceStore::get_trace`], [`TraceStore::recent_traces`].
    pub fn store(&self) -> &TraceStore {
        &self.store
    }

    /// The metrics registry: [`MetricsRegistry::snapshot`],
    /// [`MetricsRegistry::render_prometheus`].
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }
}

/// Keeps telemetry running; dropping it flushes and stops the OTLP exporter.
#[must_use = "dropping the guard stops OTLP export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    telemetry: Telemetry,
    #[cfg(feature = "otlp")]
    exporter: Option<std::sync::Arc<export::OtlpExporter>>,
}

impl TelemetryGuard {
    /// The store and registry, for the HTTP API.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Sends every span waiting for export now.
    pub fn flush(&self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.exporter {
            exporter.flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.exporter {
            exporter.shutdown();
        }
    }
}

/// Installs the telemetry stack for the process, once: an `EnvFilter`, the
/// [`TelemetryLayer`] feeding a [`TraceStore`] (and the OTLP exporter when configured),
/// optionally logs on stderr, and [`MetricsRegistry::global`] as the `metrics` recorder.
pub fn init(config: TelemetryConfig) -> Result<TelemetryGuard, InitError> {
    use tracing_subscriber::layer::SubscriberExt;

    static INITIALIZED: AtomicBool = AtomicBool::new(false);
    config.metrics.validate()?;
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return Err(InitError::AlreadyInitialized);
    }
    let directive = config
        .filter
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .map_err(|e| InitError::Filter(directive.clone(), e.to_string()))?;

    let metrics = metrics::install_global(config.metrics.clone());
    let store = TraceStore::new(config.store);
    #[allow(unused_mut)]
    let mut layer = TelemetryLayer::new(store.clone());

    #[cfg(feature = "otlp")]
    let exporter = match &config.otlp {
        Some(otlp) => {
            let resource = export::resource(&config.service_name, &config.resource_attributes);
            let exporter = export::OtlpExporter::start(otlp, resource, &metrics)?;
            layer =
                layer.with_sink(std::sync::Arc::clone(&exporter) as std::sync::Arc<dyn SpanSink>);
            Some(exporter)
        }
        None => None,
    };
    #[cfg(not(feature = "otlp"))]
    if config.otlp.is_some() {
        return Err(InitError::OtlpDisabled);
    }

    let fmt = config
        .log_to_stderr
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .with(fmt);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| InitError::SubscriberAlreadySet)?;
    if config.install_metrics_recorder {
        metrics.install()?;
    }
    Ok(TelemetryGuard {
        telemetry: Telemetry { store, metrics },
        #[cfg(feature = "otlp")]
        exporter,
    })
}
