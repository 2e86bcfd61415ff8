//! Spans by hand, for code that cannot use `#[tracing::instrument]`, and the extension methods
//! every `tracing::Span` gets: ids, remote parent, attributes with run-time keys, status, events.

use std::borrow::Cow;
use std::fmt;

use super::layer::with_record;
use super::model::{AttributeValue, KeyValue, SpanEvent, SpanStatus};
use super::propagation::TraceContext;

/// What the telemetry layer adds to a [`tracing::Span`]. Every method is a no-op (or `None`)
/// when the span is disabled or no [`TelemetryLayer`](super::TelemetryLayer) records it.
pub trait SpanExt {
    /// The span's W3C ids.
    fn trace_context(&self) -> Option<TraceContext>;
    /// Makes the span a child of a remote span (from `traceparent` or a message carrier).
    /// Call it before creating children: they take the trace id the span has when they start.
    fn set_parent(&self, parent: &TraceContext);
    /// Sets an attribute whose key is known only at run time.
    fn set_attribute(&self, key: impl Into<Cow<'static, str>>, value: impl Into<AttributeValue>);
    /// Sets the span's status (OK, or ERROR with a message).
    fn set_status(&self, status: SpanStatus);
    /// Adds an event with attributes.
    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>);
    /// Records an error: an `exception` event with its message and source chain, and an ERROR
    /// status unless the span was explicitly marked OK.
    fn record_error(&self, error: &(dyn std::error::Error + 'static));
}

impl SpanExt for tracing::Span {
    fn trace_context(&self) -> Option<TraceContext> {
        with_record(self, |r, _| TraceContext {
            trace_id: r.span.trace_id,
            span_id: r.span.span_id,
            sampled: r.sampled,
            trace_state: r.span.trace_state.clone(),
        })
    }

    fn set_parent(&self, parent: &TraceContext) {
        with_record(self, |r, _| {
            r.span.trace_id = parent.trace_id;
            r.span.parent_span_id = Some(parent.span_id);
            r.span.parent_is_remote = true;
            r.sampled = parent.sampled;
            r.span.trace_state = parent.trace_state.clone();
        });
    }

    fn set_attribute(&self, key: impl Into<Cow<'static, str>>, value: impl Into<AttributeValue>) {
        let (key, value) = (key.into(), value.into());
        with_record(self, |r, _| r.set_attribute(key, value));
    }

    fn set_status(&self, status: SpanStatus) {
        with_record(self, |r, _| r.set_status(status));
    }

    fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        let name = name.into();
        with_record(self, |r, time_unix_nanos| {
            r.add_event(SpanEvent {
                name,
                time_unix_nanos,
                attributes,
            });
        });
    }

    fn record_error(&self, error: &(dyn std::error::Error + 'static)) {
        let mut chain = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        let extra = if chain.is_empty() {
            Vec::new()
        } else {
            vec![KeyValue::new("exception.cause", chain.join(": "))]
        };
        let message = error.to_string();
        with_record(self, |r, now| r.record_exception(message, extra, now));
    }
}

/// A span started by hand; it ends when [`end`](Self::end) is called or when it is dropped.
///
/// ```
/// use bulwark::telemetry::{span, SpanStatus, TelemetryLayer, TraceStore};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let store = TraceStore::default();
/// let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
/// tracing::subscriber::with_default(subscriber, || {
///     let call = span::start("call_tool", [("tool", "search")]);
///     call.set_status(SpanStatus::error("timeout"));
///     call.end();
/// });
/// let trace = store.recent_traces(&Default::default());
/// assert_eq!(trace[0].root_name, "call_tool");
/// assert!(trace[0].has_error);
/// ```
pub struct ManualSpan {
    span: tracing::Span,
}

impl fmt::Debug for ManualSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSpan")
            .field("context", &self.span.trace_context())
            .finish()
    }
}

/// Starts a span named `name` as a child of the current span (or as a new trace).
pub fn start<K, V>(
    name: impl Into<Cow<'static, str>>,
    attributes: impl IntoIterator<Item = (K, V)>,
) -> ManualSpan
where
    K: Into<Cow<'static, str>>,
    V: Into<AttributeValue>,
{
    let name = name.into();
    let span =
        tracing::info_span!(target: "bulwark::telemetry::manual", "manual", otel.name = %name);
    for (key, value) in attributes {
        span.set_attribute(key, value);
    }
    ManualSpan { span }
}

/// Starts a span as a child of a remote parent (from a `traceparent` or a message carrier).
pub fn start_with_parent<K, V>(
    name: impl Into<Cow<'static, str>>,
    parent: &TraceContext,
    attributes: impl IntoIterator<Item = (K, V)>,
) -> ManualSpan
where
    K: Into<Cow<'static, str>>,
    V: Into<AttributeValue>,
{
    let manual = start(name, attributes);
    manual.span.set_parent(parent);
    manual
}

impl ManualSpan {
    /// Sets an attribute.
    pub fn set_attribute(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AttributeValue>,
    ) {
        self.span.set_attribute(key, value);
    }

    /// Sets the status (OK, or ERROR with a message).
    pub fn set_status(&self, status: SpanStatus) {
        self.span.set_status(status);
    }

    /// Adds an event.
    pub fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        self.span.add_event(name, attributes);
    }

    /// Records an error as an `exception` event and an ERROR status.
    pub fn record_error(&self, error: &(dyn std::error::Error + 'static)) {
        self.span.record_error(error);
    }

    /// The span's W3C ids.
    pub fn trace_context(&self) -> Option<TraceContext> {
        self.span.trace_context()
    }

    /// Runs `f` with this span current, so spans made inside are its children.
    pub fn in_scope<T>(&self, f: impl FnOnce() -> T) -> T {
        self.span.in_scope(f)
    }

    /// The underlying `tracing` span (to `.instrument` a future with it).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Ends the span now.
    pub fn end(self) {
        drop(self);
    }
}
