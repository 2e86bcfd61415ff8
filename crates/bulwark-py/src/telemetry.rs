//! Spans and metrics from Python, into the process's trace store, OTLP exporter and
//! metrics registry (the ones Rust code in the same process reports to).
//!
//! A span is a `tracing` span with an explicit parent: the Python side passes the span that
//! is current in its `contextvars` context, which follows `await` and task boundaries, so
//! nesting follows Python's call structure rather than the OS thread.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock, PoisonError};

use bulwark::telemetry::metrics::MetricsRegistry;
use bulwark::telemetry::{
    self as tm, AttributeValue, KeyValue, SpanExt, SpanStatus, TelemetryConfig, TelemetryGuard,
    TraceContext, TraceStore,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

struct Installed {
    guard: Mutex<Option<TelemetryGuard>>,
    store: TraceStore,
    error: Option<String>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the telemetry stack once (`TelemetryConfig::from_env`: `OTEL_*` variables turn on
/// OTLP export). When another subscriber already owns the process, spans are still made but
/// only that subscriber sees them; the reason is kept for `telemetry_status()`.
pub(crate) fn install() {
    INSTALLED.get_or_init(|| match tm::init(TelemetryConfig::from_env()) {
        Ok(guard) => Installed {
            store: guard.telemetry().store().clone(),
            guard: Mutex::new(Some(guard)),
            error: None,
        },
        Err(error) => Installed {
            guard: Mutex::new(None),
            store: TraceStore::default(),
            error: Some(error.to_string()),
        },
    });
}

/// The trace store Python spans land in.
pub(crate) fn store() -> TraceStore {
    install();
    INSTALLED
        .get()
        .map_or_else(TraceStore::default, |i| i.store.clone())
}

/// None when telemetry is installed, else why not.
#[pyfunction]
fn telemetry_status() -> Option<String> {
    INSTALLED.get().and_then(|i| i.error.clone())
}

/// Sends every span waiting for OTLP export now.
#[pyfunction]
fn flush(py: Python<'_>) {
    py.detach(|| {
        if let Some(installed) = INSTALLED.get()
            && let Some(guard) = &*installed
                .guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        {
            guard.flush();
        }
    });
}

/// Flushes and stops the exporter (at interpreter exit).
#[pyfunction]
fn shutdown(py: Python<'_>) {
    py.detach(|| {
        if let Some(installed) = INSTALLED.get() {
            let guard = installed
                .guard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(guard);
        }
    });
}

fn attribute(value: &Bound<'_, PyAny>) -> PyResult<AttributeValue> {
    Ok(if let Ok(s) = value.cast::<PyString>() {
        AttributeValue::from(s.to_cow()?.into_owned())
    } else if let Ok(b) = value.cast::<PyBool>() {
        AttributeValue::from(b.is_true())
    } else if value.cast::<PyInt>().is_ok() {
        match value.extract::<i64>() {
            Ok(i) => AttributeValue::from(i),
            Err(_) => AttributeValue::from(value.str()?.to_cow()?.into_owned()),
        }
    } else if let Ok(f) = value.cast::<PyFloat>() {
        AttributeValue::from(f.value())
    } else {
        AttributeValue::from(value.str()?.to_cow()?.into_owned())
    })
}

fn key_values(attributes: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<KeyValue>> {
    let Some(attributes) = attributes else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(attributes.len());
    for (k, v) in attributes.iter() {
        out.push(KeyValue::new(
            Cow::Owned(k.str()?.to_cow()?.into_owned()),
            attribute(&v)?,
        ));
    }
    Ok(out)
}

/// A span started from Python; ends at `end()` (or when collected).
#[pyclass(module = "bulwark", frozen)]
#[derive(Debug)]
pub(crate) struct Span {
    span: Mutex<Option<tracing::Span>>,
    context: Option<TraceContext>,
    parent_span_id: Option<String>,
    parent: Option<Py<Span>>,
    name: String,
}

impl Span {
    fn with<T>(&self, f: impl FnOnce(&tracing::Span) -> T) -> Option<T> {
        self.span
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(f)
    }
}

#[pymethods]
impl Span {
    /// The span's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// 32 hex digits (W3C trace id), or None when no telemetry layer records spans.
    #[getter]
    fn trace_id(&self) -> Option<String> {
        self.context.as_ref().map(|c| c.trace_id.to_string())
    }

    /// 16 hex digits (W3C span id).
    #[getter]
    fn span_id(&self) -> Option<String> {
        self.context.as_ref().map(|c| c.span_id.to_string())
    }

    /// The parent span (the one current when this one started), if any.
    #[getter]
    fn parent(&self, py: Python<'_>) -> Option<Py<Span>> {
        self.parent.as_ref().map(|p| p.clone_ref(py))
    }

    /// The parent's span id, for a child span.
    #[getter]
    fn parent_span_id(&self) -> Option<String> {
        self.parent_span_id.clone()
    }

    /// The `traceparent` header value that continues this span's trace.
    #[getter]
    fn traceparent(&self) -> Option<String> {
        self.context.as_ref().map(|c| {
            format!(
                "00-{}-{}-{}",
                c.trace_id,
                c.span_id,
                if c.sampled { "01" } else { "00" }
            )
        })
    }

    /// Whether the span has not ended yet.
    #[getter]
    fn is_recording(&self) -> bool {
        self.with(|_| ()).is_some()
    }

    /// Sets one attribute (str, bool, int, float; anything else as its `str()`).
    fn set_attribute(&self, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = attribute(value)?;
        self.with(|s| s.set_attribute(key, value));
        Ok(())
    }

    /// `"OK"`, `"ERROR"` (with `description`) or `"UNSET"`, in any case.
    #[pyo3(signature = (status, description = None))]
    fn set_status(&self, status: &str, description: Option<String>) -> PyResult<()> {
        let status = match status.to_ascii_uppercase().as_str() {
            "OK" => SpanStatus::Ok,
            "ERROR" => SpanStatus::error(description.unwrap_or_default()),
            "UNSET" => SpanStatus::Unset,
            other => {
                return Err(PyValueError::new_err(format!(
                    "status must be \"OK\", \"ERROR\" or \"UNSET\", got {other:?}"
                )));
            }
        };
        self.with(|s| s.set_status(status));
        Ok(())
    }

    /// Adds an event with attributes.
    #[pyo3(signature = (name, attributes = None))]
    fn add_event(&self, name: String, attributes: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        let attributes = key_values(attributes)?;
        self.with(|s| s.add_event(name, attributes));
        Ok(())
    }

    /// Records an exception: an `exception` event (type and message) and an ERROR status.
    fn record_exception(&self, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        let type_name = exception.get_type().qualname()?.to_cow()?.into_owned();
        let message = exception.str()?.to_cow()?.into_owned();
        let status = if message.is_empty() {
            type_name.clone()
        } else {
            format!("{type_name}: {message}")
        };
        self.with(|s| {
            s.add_event(
                "exception",
                vec![
                    KeyValue::new("exception.type", type_name),
                    KeyValue::new("exception.message", message),
                ],
            );
            s.set_status(SpanStatus::error(status));
        });
        Ok(())
    }

    /// Ends the span; later calls do nothing.
    fn end(&self) {
        let span = self
            .span
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(span);
    }

    fn __repr__(&self) -> String {
        format!(
            "Span(name={:?}, trace_id={:?}, span_id={:?})",
            self.name,
            self.trace_id(),
            self.span_id()
        )
    }
}

/// Starts a span named `name`, a child of `parent` (or the root of a new trace).
#[pyfunction]
#[pyo3(signature = (name, attributes = None, parent = None))]
fn start_span(
    name: String,
    attributes: Option<&Bound<'_, PyDict>>,
    parent: Option<Bound<'_, Span>>,
) -> PyResult<Span> {
    let parent_id = parent
        .as_ref()
        .and_then(|p| p.get().with(|s| s.id()).flatten());
    let span = tracing::info_span!(
        target: "bulwark::telemetry::manual",
        parent: parent_id,
        "manual",
        otel.name = %name
    );
    if let Some(attributes) = attributes {
        for (k, v) in attributes.iter() {
            span.set_attribute(k.str()?.to_cow()?.into_owned(), attribute(&v)?);
        }
    }
    let context = span.trace_context();
    Ok(Span {
        span: Mutex::new(Some(span)),
        context,
        parent_span_id: parent.as_ref().and_then(|p| p.get().span_id()),
        parent: parent.map(Bound::unbind),
        name,
    })
}

fn labels(labels: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, String)>> {
    let Some(labels) = labels else {
        return Ok(Vec::new());
    };
    labels
        .iter()
        .map(|(k, v)| {
            Ok((
                k.str()?.to_cow()?.into_owned(),
                v.str()?.to_cow()?.into_owned(),
            ))
        })
        .collect()
}

fn with_labels<T>(
    pairs: Option<&Bound<'_, PyDict>>,
    f: impl FnOnce(&[(&str, &str)]) -> Result<T, tm::metrics::MetricsError>,
) -> PyResult<T> {
    let owned = labels(pairs)?;
    let borrowed: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    f(&borrowed).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Adds `value` (default 1) to the counter `name{labels}`.
#[pyfunction]
#[pyo3(signature = (name, value = 1, labels = None))]
fn increment_counter(name: &str, value: u64, labels: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    with_labels(labels, |l| {
        MetricsRegistry::global().add_counter(name, value, l)
    })
}

/// Sets the gauge `name{labels}`.
#[pyfunction]
#[pyo3(signature = (name, value, labels = None))]
fn set_gauge(name: &str, value: f64, labels: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    with_labels(labels, |l| {
        MetricsRegistry::global().set_gauge(name, value, l)
    })
}

/// Records `value` in the histogram `name{labels}`.
#[pyfunction]
#[pyo3(signature = (name, value, labels = None))]
fn record_histogram(name: &str, value: f64, labels: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    with_labels(labels, |l| {
        MetricsRegistry::global().record_histogram(name, value, l)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Span>()?;
    m.add_function(wrap_pyfunction!(start_span, m)?)?;
    m.add_function(wrap_pyfunction!(telemetry_status, m)?)?;
    m.add_function(wrap_pyfunction!(flush, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(increment_counter, m)?)?;
    m.add_function(wrap_pyfunction!(set_gauge, m)?)?;
    m.add_function(wrap_pyfunction!(record_histogram, m)?)?;
    Ok(())
}
