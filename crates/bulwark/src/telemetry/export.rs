//! OTLP export (feature `otlp`): finished spans go, with the very ids the local store holds,
//! to any OTLP endpoint over HTTP/protobuf or gRPC.
//!
//! The hot path only pushes an `Arc` of the finished span onto a bounded queue under a short
//! lock, and wakes the export thread only when a whole batch is waiting (so the thread is not
//! woken, nor a system call made, per span); a full queue drops the span and counts it in
//! `bulwark_telemetry_spans_dropped_total`. The export thread turns spans into
//! OpenTelemetry `SpanData` and hands batches to the
//! `opentelemetry-otlp` exporter: HTTP through its blocking client (so no async runtime is
//! involved, avoiding opentelemetry-rust #2673), gRPC through tonic on a current-thread tokio
//! runtime owned by that thread. A batch leaves when it is full or `scheduled_delay` has
//! passed; [`OtlpExporter::flush`] and [`OtlpExporter::shutdown`] send what is queued and wait.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use metrics::Counter;
use opentelemetry::trace::{
    Event, SpanContext, SpanId as OtelSpanId, SpanKind as OtelKind, Status, TraceFlags,
    TraceId as OtelTraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue as OtelKeyValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

use super::config::{OtlpConfig, OtlpProtocol};
use super::layer::SpanSink;
use super::metrics::MetricsRegistry;
use super::metrics::names::{
    TELEMETRY_EXPORT_FAILURES_TOTAL, TELEMETRY_SPANS_DROPPED_TOTAL, TELEMETRY_SPANS_EXPORTED_TOTAL,
};
use super::model::{AttributeValue, FinishedSpan, KeyValue, SpanKind, SpanStatus};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The OTLP exporter refused its configuration (a bad endpoint, say).
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
    /// The export thread or its runtime could not be started.
    #[error("cannot start the export thread: {0}")]
    Thread(#[from] std::io::Error),
    /// A queue or batch size is zero.
    #[error("max_queue_size and max_export_batch_size must be at least 1")]
    ZeroSize,
}

/// What the hot path and the export thread share.
struct Queue {
    state: Mutex<QueueState>,
    /// Signalled when a batch is full, or a flush or shutdown is asked for.
    wake: Condvar,
    max_queue: usize,
    batch: usize,
}

#[derive(Default)]
struct QueueState {
    spans: Vec<Arc<FinishedSpan>>,
    flushes: Vec<SyncSender<()>>,
    shutdown: Option<SyncSender<()>>,
    /// Set once shutdown was asked for: later spans are dropped.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every mutation is a single push or take, so a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the export thread for a flush (or a shutdown) and waits for it to be done.
    fn request(&self, shutdown: bool) {
        let (ack, done) = mpsc::sync_channel(1);
        {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            if shutdown {
                state.closed = true;
                state.shutdown = Some(ack);
            } else {
                state.flushes.push(ack);
            }
        }
        self.wake.notify_one();
        // An error means the export thread has gone (it never started, or it panicked).
        let _ = done.recv();
    }
}

/// The OTLP exporter: a [`SpanSink`] for [`TelemetryLayer`](super::TelemetryLayer).
pub struct OtlpExporter {
    queue: Arc<Queue>,
    dropped: Counter,
    worker: Mutex<Option<JoinHandle<()>>>,
    endpoint: String,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The resource every exported span carries: `service.name` plus `attributes`.
pub fn resource(service_name: &str, attributes: &BTreeMap<String, String>) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attributes(
            attributes
                .iter()
                .map(|(k, v)| OtelKeyValue::new(k.clone(), v.clone())),
        )
        .build()
}

impl OtlpExporter {
    /// Starts the export thread. Counters go to `registry`.
    pub fn start(
        config: &OtlpConfig,
        resource: Resource,
        registry: &MetricsRegistry,
    ) -> Result<Arc<Self>, ExportError> {
        if config.max_queue_size == 0 || config.max_export_batch_size == 0 {
            return Err(ExportError::ZeroSize);
        }
        let counter = |name| {
            registry
                .counter(name, &[])
                .unwrap_or_else(|_| Counter::noop())
        };
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            max_queue: config.max_queue_size,
            batch: config.max_export_batch_size.min(config.max_queue_size),
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let worker = Worker {
            config: config.clone(),
            exported: counter(TELEMETRY_SPANS_EXPORTED_TOTAL),
            failures: counter(TELEMETRY_EXPORT_FAILURES_TOTAL),
            scope: InstrumentationScope::builder("bulwark")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        };
        let handle = std::thread::Builder::new()
            .name("bulwark-otlp-export".to_owned())
            .spawn({
                let queue = Arc::clone(&queue);
                move || worker.run(&queue, resource, ready_tx)
            })?;
        let ready = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(ExportError::Build("the export thread stopped".to_owned())));
        if let Err(error) = ready {
            let _ = handle.join();
            return Err(error);
        }
        Ok(Arc::new(Self {
            queue,
            dropped: counter(TELEMETRY_SPANS_DROPPED_TOTAL),
            worker: Mutex::new(Some(handle)),
            endpoint: config
                .endpoint
                .clone()
                .unwrap_or_else(|| "(from the environment)".to_owned()),
        }))
    }

    /// Sends every queued span now and waits until the exporter has answered (bounded by the
    /// export timeout per batch).
    pub fn flush(&self) {
        self.queue.request(false);
    }

    /// Sends every queued span, shuts the OTLP exporter down and stops the thread. Later spans
    /// are dropped (and counted). Calling it twice is harmless.
    pub fn shutdown(&self) {
        self.queue.request(true);
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl SpanSink for OtlpExporter {
    fn on_end(&self, span: &Arc<FinishedSpan>) {
        let queue = &self.queue;
        let mut state = queue.lock();
        if state.closed || state.spans.len() >= queue.max_queue {
            drop(state);
            self.dropped.increment(1);
            return;
        }
        state.spans.push(Arc::clone(span));
        let full = state.spans.len() == queue.batch;
        drop(state);
        if full {
            queue.wake.notify_one();
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs a future to completion on this thread (for the blocking HTTP client, whose futures
/// are ready as soon as the request returns).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

enum Transport {
    Http(opentelemetry_otlp::SpanExporter),
    Grpc(opentelemetry_otlp::SpanExporter, tokio::runtime::Runtime),
}

impl Transport {
    fn build(config: &OtlpConfig, resource: &Resource) -> Result<Self, ExportError> {
        let build_error =
            |e: opentelemetry_otlp::ExporterBuildError| ExportError::Build(e.to_string());
        let mut transport = match config.protocol {
            OtlpProtocol::HttpProtobuf => {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(config.timeout);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                }
                Self::Http(builder.build().map_err(build_error)?)
            }
            OtlpProtocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let exporter = {
                    let _entered = runtime.enter();
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_timeout(config.timeout);
                    if let Some(endpoint) = &config.endpoint {
                        builder = builder.with_endpoint(endpoint.clone());
                    }
                    builder.build().map_err(build_error)?
                };
                Self::Grpc(exporter, runtime)
            }
        };
        match &mut transport {
            Self::Http(e) | Self::Grpc(e, _) => e.set_resource(resource),
        }
        Ok(transport)
    }

    fn export(&self, batch: Vec<SpanData>) -> bool {
        match self {
            Self::Http(e) => block_on(e.export(batch)).is_ok(),
            Self::Grpc(e, runtime) => runtime.block_on(e.export(batch)).is_ok(),
        }
    }

    fn shutdown(&self) {
        match self {
            Self::Http(e) => {
                let _ = e.shutdown();
            }
            Self::Grpc(e, runtime) => {
                let _entered = runtime.enter();
                let _ = e.shutdown();
            }
        }
    }
}

struct Worker {
    config: OtlpConfig,
    exported: Counter,
    failures: Counter,
    scope: InstrumentationScope,
}

impl Worker {
    fn run(self, queue: &Queue, resource: Resource, ready: SyncSender<Result<(), ExportError>>) {
        /// However this thread ends (a failed start, a shutdown, a panic), later spans are
        /// dropped and anyone waiting on a flush or a shutdown is released.
        struct Close<'a>(&'a Queue);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                let mut state = self.0.lock();
                state.closed = true;
                state.flushes.clear();
                state.shutdown = None;
            }
        }
        let _close = Close(queue);
        let transport = match Transport::build(&self.config, &resource) {
            Ok(t) => {
                let _ = ready.send(Ok(()));
                t
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut batch: Vec<Arc<FinishedSpan>> = Vec::with_capacity(queue.batch);
        let mut deadline = Instant::now() + self.config.scheduled_delay;
        loop {
            let mut state = queue.lock();
            loop {
                let ready = state.spans.len() >= queue.batch
                    || !state.flushes.is_empty()
                    || state.shutdown.is_some();
                let wait = deadline.saturating_duration_since(Instant::now());
                if ready || wait.is_zero() {
                    break;
                }
                state = match queue.wake.wait_timeout(state, wait) {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            // Take everything queued; the spare vector becomes the new queue, so neither side
            // allocates in the steady state.
            std::mem::swap(&mut state.spans, &mut batch);
            let flushes = std::mem::take(&mut state.flushes);
            let shutdown = state.shutdown.take();
            drop(state);
            self.send(&transport, &mut batch);
            deadline = Instant::now() + self.config.scheduled_delay;
            for ack in flushes {
                let _ = ack.send(());
            }
            if let Some(ack) = shutdown {
                transport.shutdown();
                let _ = ack.send(());
                return;
            }
        }
    }

    fn send(&self, transport: &Transport, batch: &mut Vec<Arc<FinishedSpan>>) {
        for chunk in batch.chunks(self.config.max_export_batch_size.max(1)) {
            let data: Vec<SpanData> = chunk.iter().map(|s| to_span_data(s, &self.scope)).collect();
            let n = data.len() as u64;
            if transport.export(data) {
                self.exported.increment(n);
            } else {
                self.failures.increment(1);
                tracing::warn!(target: "bulwark::telemetry::export", spans = n, "OTLP export failed");
            }
        }
        batch.clear();
    }
}

fn otel_value(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::Bool(v) => Value::Bool(*v),
        AttributeValue::Int(v) => Value::I64(*v),
        AttributeValue::Float(v) => Value::F64(*v),
        AttributeValue::String(v) => Value::String(v.clone().into()),
    }
}

fn otel_attributes(attrs: &[KeyValue]) -> Vec<OtelKeyValue> {
    attrs
        .iter()
        .map(|kv| OtelKeyValue::new(kv.key.clone(), otel_value(&kv.value)))
        .collect()
}

fn unix(nanos: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// The OpenTelemetry form of a finished span, with the same ids.
pub fn to_span_data(span: &FinishedSpan, scope: &InstrumentationScope) -> SpanData {
    let trace_state = span
        .trace_state
        .as_deref()
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| {
            Event::new(
                e.name.clone(),
                unix(e.time_unix_nanos),
                otel_attributes(&e.attributes),
                0,
            )
        })
        .collect();
    SpanData {
        span_context: SpanContext::new(
            OtelTraceId::from_bytes(span.trace_id.to_bytes()),
            OtelSpanId::from_bytes(span.span_id.to_bytes()),
            TraceFlags::SAMPLED,
            false,
            trace_state,
        ),
        parent_span_id: span.parent_span_id.map_or(OtelSpanId::INVALID, |p| {
            OtelSpanId::from_bytes(p.to_bytes())
        }),
        parent_span_is_remote: span.parent_is_remote,
        span_kind: match span.kind {
            SpanKind::Internal => OtelKind::Internal,
            SpanKind::Server => OtelKind::Server,
            SpanKind::Client => OtelKind::Client,
            SpanKind::Producer => OtelKind::Producer,
            SpanKind::Consumer => OtelKind::Consumer,
        },
        name: span.name.clone(),
        start_time: unix(span.start_unix_nanos),
        end_time: unix(span.end_unix_nanos),
        attributes: otel_attributes(&span.attributes),
        dropped_attributes_count: span.dropped,
        events,
        links: SpanLinks::default(),
        status: match &span.status {
            SpanStatus::Unset => Status::Unset,
            SpanStatus::Ok => Status::Ok,
            SpanStatus::Error { message } => Status::error(message.clone()),
        },
        instrumentation_scope: scope.clone(),
    }
}
