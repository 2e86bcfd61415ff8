//! The `tracing` layer that turns spans into W3C-identified, stored and exported spans.
//!
//! The registry owns span lifetimes and the parent/child hierarchy (explicit parents, the
//! current span, spans entered on another thread or carried into a task by `.instrument`), so
//! the layer only reads it: a new span takes its parent's trace id and links to its parent's
//! span id, or starts a new trace. Its record (the [`FinishedSpan`] being built) lives in the
//! registry's per-span extensions until the span closes; then it moves into the store, or,
//! when sinks are attached, into one `Arc` shared by the store and every sink.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Registry};

use super::ids::{SpanId, TraceId};
use super::model::{AttributeValue, FinishedSpan, KeyValue, SpanEvent, SpanKind, SpanStatus};
use super::store::TraceStore;
use crate::clock::{Clock, MonotonicClock};

/// Attributes, and separately events, a span keeps at most; the rest are counted in
/// [`FinishedSpan::dropped`].
pub const MAX_ATTRIBUTES_PER_SPAN: usize = 128;
/// Events a span keeps at most.
pub const MAX_EVENTS_PER_SPAN: usize = 128;
/// Longest string a span keeps, in bytes, for its name, each attribute value, its status
/// message and its events' names and attribute values. A longer string is cut on a char
/// boundary at most this many bytes in, the last of them [`TRUNCATION_MARKER`], so no
/// caller-controlled text (a request path, a header) can make a stored span large.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;
/// What ends a string cut to [`MAX_ATTRIBUTE_VALUE_BYTES`].
pub const TRUNCATION_MARKER: &str = "…";

/// `value` cut to [`MAX_ATTRIBUTE_VALUE_BYTES`], with the marker, when longer.
pub(crate) fn bounded_str(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_ATTRIBUTE_VALUE_BYTES {
        return Cow::Borrowed(value);
    }
    let cut = char_boundary_below(value, MAX_ATTRIBUTE_VALUE_BYTES - TRUNCATION_MARKER.len());
    let mut out = String::with_capacity(cut + TRUNCATION_MARKER.len());
    out.push_str(&value[..cut]);
    out.push_str(TRUNCATION_MARKER);
    Cow::Owned(out)
}

/// The largest char boundary of `value` at or below `index` (`str::floor_char_boundary`,
/// which is newer than this crate's minimum Rust).
fn char_boundary_below(value: &str, index: usize) -> usize {
    let mut cut = index.min(value.len());
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// An owned string cut to [`MAX_ATTRIBUTE_VALUE_BYTES`] in place.
pub(crate) fn bounded_string(mut value: String) -> String {
    if value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
        let cut = char_boundary_below(&value, MAX_ATTRIBUTE_VALUE_BYTES - TRUNCATION_MARKER.len());
        value.truncate(cut);
        value.push_str(TRUNCATION_MARKER);
        value.shrink_to_fit();
    }
    value
}

/// A value whose strings are cut to [`MAX_ATTRIBUTE_VALUE_BYTES`].
fn bounded_value(value: AttributeValue) -> AttributeValue {
    match value {
        AttributeValue::String(s) if s.len() > MAX_ATTRIBUTE_VALUE_BYTES => {
            AttributeValue::String(Cow::Owned(bounded_str(&s).into_owned()))
        }
        other => other,
    }
}

/// Receives every finished span (an exporter, a test probe). Called on the thread that closed
/// the span, so implementations must be quick: queue the span, do not send it.
pub trait SpanSink: Send + Sync + 'static {
    /// A span has ended.
    fn on_end(&self, span: &Arc<FinishedSpan>);
}

impl<F> SpanSink for F
where
    F: Fn(&Arc<FinishedSpan>) + Send + Sync + 'static,
{
    fn on_end(&self, span: &Arc<FinishedSpan>) {
        self(span)
    }
}

/// A [`tracing_subscriber::Layer`] that gives spans W3C ids and hands finished spans to a
/// [`TraceStore`] and to sinks (the OTLP exporter).
///
/// It needs [`tracing_subscriber::Registry`] underneath (the usual
/// `tracing_subscriber::registry().with(layer)`), which [`SpanExt`](super::SpanExt) also relies on.
pub struct TelemetryLayer<C: Clock = MonotonicClock> {
    store: Option<TraceStore<C>>,
    sinks: Vec<Arc<dyn SpanSink>>,
    clock: C,
    /// Unix time, in nanoseconds, at the clock's origin.
    wall_base: u64,
}

impl<C: Clock> fmt::Debug for TelemetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryLayer")
            .field("store", &self.store)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl<C: Clock> TelemetryLayer<C> {
    /// A layer storing finished spans in `store`, timed on the store's clock.
    pub fn new(store: TraceStore<C>) -> Self {
        let clock = store.clock().clone();
        let mut layer = Self::without_store(clock);
        layer.store = Some(store);
        layer
    }

    /// A layer that keeps no spans itself and only feeds its sinks.
    pub fn without_store(clock: C) -> Self {
        let wall_base = unix_now_system().saturating_sub(clock.now_nanos());
        Self {
            wall_base,
            store: None,
            sinks: Vec::new(),
            clock,
        }
    }

    /// Also hands every finished span to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn SpanSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The store this layer fills, if any.
    pub fn store(&self) -> Option<&TraceStore<C>> {
        self.store.as_ref()
    }

    #[inline]
    fn now_unix(&self) -> u64 {
        self.wall_base.saturating_add(self.clock.now_nanos())
    }
}

/// What the layer knows about a span that has not closed yet: the span as it will be
/// published (its end time still zero), built in place so that closing it is one move into
/// an `Arc`.
pub(crate) struct SpanRecord {
    pub(crate) span: FinishedSpan,
    pub(crate) sampled: bool,
    /// Reads Unix time on the clock of the layer that made this record, found through the
    /// dispatcher, for events added through `SpanExt`. A plain function pointer, so that
    /// making a record costs no reference count.
    now: fn(&Dispatch) -> Option<u64>,
}

/// Unix time on the clock of the [`TelemetryLayer<C>`] installed in `dispatch`.
fn layer_now<C: Clock>(dispatch: &Dispatch) -> Option<u64> {
    dispatch
        .downcast_ref::<TelemetryLayer<C>>()
        .map(TelemetryLayer::now_unix)
}

impl SpanRecord {
    pub(crate) fn set_attribute(&mut self, key: Cow<'static, str>, value: AttributeValue) {
        // Only `otel.*` and `span.kind` mean something to the layer; one prefix test keeps
        // every other attribute off the string comparisons below.
        let special = key.starts_with("otel.") || key == "span.kind";
        let value = bounded_value(value);
        let span = &mut self.span;
        match key.as_ref() {
            "otel.name" if special => span.name = Cow::Owned(value.to_string()),
            "otel.kind" | "span.kind" if special => {
                if let Some(kind) = SpanKind::parse(&value.to_string()) {
                    span.kind = kind;
                }
            }
            "otel.status_code" if special => {
                match value.to_string().to_ascii_lowercase().as_str() {
                    "ok" => span.status = SpanStatus::Ok,
                    "error" if !span.status.is_error() => span.status = SpanStatus::error(""),
                    _ => {}
                }
            }
            "otel.status_message" if special => {
                span.status = SpanStatus::error(value.to_string());
            }
            _ => {
                if span.attributes.len() < MAX_ATTRIBUTES_PER_SPAN {
                    span.attributes.push(KeyValue { key, value });
                } else {
                    span.dropped = span.dropped.saturating_add(1);
                }
            }
        }
    }

    pub(crate) fn set_status(&mut self, status: SpanStatus) {
        self.span.status = match status {
            SpanStatus::Error { message } => SpanStatus::Error {
                message: bounded_string(message),
            },
            other => other,
        };
    }

    pub(crate) fn add_event(&mut self, mut event: SpanEvent) {
        if self.span.events.len() < MAX_EVENTS_PER_SPAN {
            if event.name.len() > MAX_ATTRIBUTE_VALUE_BYTES {
                event.name = Cow::Owned(bounded_str(&event.name).into_owned());
            }
            for kv in &mut event.attributes {
                let value = std::mem::replace(&mut kv.value, AttributeValue::Bool(false));
                kv.value = bounded_value(value);
            }
            self.span.events.push(event);
        } else {
            self.span.dropped = self.span.dropped.saturating_add(1);
        }
    }

    /// Records an error: an `exception` event and, unless the span was marked OK, an error status.
    pub(crate) fn record_exception(
        &mut self,
        message: String,
        extra: Vec<KeyValue>,
        time_unix_nanos: u64,
    ) {
        let mut attributes = Vec::with_capacity(extra.len() + 1);
        attributes.push(KeyValue::new("exception.message", message.clone()));
        attributes.extend(extra);
        self.add_event(SpanEvent {
            name: Cow::Borrowed("exception"),
            time_unix_nanos,
            attributes,
        });
        if self.span.status != SpanStatus::Ok {
            self.span.status = SpanStatus::Error {
                message: bounded_string(message),
            };
        }
    }
}

struct SpanFields<'a>(&'a mut SpanRecord);

impl Visit for SpanFields<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0
            .set_attribute(Cow::Borrowed(field.name()), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0
            .set_attribute(Cow::Borrowed(field.name()), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0
            .set_attribute(Cow::Borrowed(field.name()), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0
            .set_attribute(Cow::Borrowed(field.name()), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set_attribute(
            Cow::Borrowed(field.name()),
            bounded_str(value).into_owned().into(),
        );
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .set_attribute(Cow::Borrowed(field.name()), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.set_attribute(
            Cow::Borrowed(field.name()),
            bounded_string(format!("{value:?}")).into(),
        );
    }
}

#[derive(Default)]
struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl EventFields {
    fn push(&mut self, field: &Field, value: AttributeValue) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.attributes.push(KeyValue {
                key: Cow::Borrowed(field.name()),
                value,
            });
        }
    }
}

impl Visit for EventFields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, bounded_str(value).into_owned().into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, bounded_string(format!("{value:?}")).into());
    }
}

impl<S, C> tracing_subscriber::Layer<S> for TelemetryLayer<C>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    C: Clock,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|parent| {
            parent.extensions().get::<SpanRecord>().map(|p| {
                (
                    p.span.trace_id,
                    p.span.span_id,
                    p.sampled,
                    p.span.trace_state.clone(),
                )
            })
        });
        let (trace_id, parent_id, sampled, trace_state) = match parent {
            Some((trace, span, sampled, state)) => (trace, Some(span), sampled, state),
            None => (TraceId::random(), None, true, None),
        };
        let metadata = attrs.metadata();
        let mut record = SpanRecord {
            span: FinishedSpan {
                trace_id,
                span_id: SpanId::random(),
                parent_span_id: parent_id,
                parent_is_remote: false,
                name: Cow::Borrowed(metadata.name()),
                kind: SpanKind::Internal,
                target: metadata.target(),
                start_unix_nanos: self.now_unix(),
                end_unix_nanos: 0,
                attributes: Vec::with_capacity(metadata.fields().len()),
                events: Vec::new(),
                status: SpanStatus::Unset,
                trace_state,
                dropped: 0,
            },
            sampled,
            now: layer_now::<C>,
        };
        attrs.record(&mut SpanFields(&mut record));
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(record) = extensions.get_mut::<SpanRecord>() {
            values.record(&mut SpanFields(record));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut extensions = span.extensions_mut();
        let Some(record) = extensions.get_mut::<SpanRecord>() else {
            return;
        };
        if *event.metadata().level() == Level::ERROR {
            let message = fields
                .message
                .unwrap_or_else(|| event.metadata().name().to_owned());
            record.record_exception(message, fields.attributes, self.now_unix());
        } else {
            let name = fields
                .message
                .map_or(Cow::Borrowed(event.metadata().name()), Cow::Owned);
            let time_unix_nanos = self.now_unix();
            record.add_event(SpanEvent {
                name,
                time_unix_nanos,
                attributes: fields.attributes,
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(record) = span.extensions_mut().remove::<SpanRecord>() else {
            return;
        };
        let clock_now = self.clock.now_nanos();
        let end = self.wall_base.saturating_add(clock_now);
        let mut finished = record.span;
        finished.end_unix_nanos = end.max(finished.start_unix_nanos);
        if self.sinks.is_empty() {
            if let Some(store) = &self.store {
                store.insert_owned(finished, clock_now);
            }
            return;
        }
        let finished = Arc::new(finished);
        for sink in &self.sinks {
            sink.on_end(&finished);
        }
        if let Some(store) = &self.store {
            store.insert_shared(finished, clock_now);
        }
    }
}

/// Runs `f` on the layer's record of `span`, when `span` is live in a subscriber built on
/// [`Registry`] with a [`TelemetryLayer`]; `f` also gets the current Unix time on that
/// layer's clock.
pub(crate) fn with_record<R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut SpanRecord, u64) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        let record = extensions.get_mut::<SpanRecord>()?;
        let now = (record.now)(dispatch).unwrap_or_else(unix_now_system);
        Some(f(record, now))
    })
    .flatten()
}

fn unix_now_system() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
