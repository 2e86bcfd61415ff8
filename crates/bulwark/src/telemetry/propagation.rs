//! W3C trace context across process boundaries: `traceparent` / `tracestate` in HTTP headers
//! and in plain string maps carried by agent messages.
//!
//! Extraction is strict (W3C Trace Context level 1): a malformed, all-zero or version-`ff`
//! `traceparent` is ignored, so the receiving span starts a new trace instead of joining a
//! bogus one. Injection writes the ids of the current span.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use super::ids::{SpanId, TraceId};
use super::span::SpanExt;

/// The header (and map key) carrying trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// The header (and map key) carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";
/// Longest `tracestate` passed along; longer values are dropped, as the spec allows.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// The trace context of one span as seen from another process.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The span that is the parent of whatever the receiver does.
    pub span_id: SpanId,
    /// The W3C `sampled` flag.
    pub sampled: bool,
    /// The `tracestate` header, passed along unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
}

/// Why a `traceparent` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceparentError {
    /// Not `version-traceid-parentid-flags` with the required lengths.
    #[error("traceparent is not version-traceid-parentid-flags: {0:?}")]
    Malformed(String),
    /// Version `ff` is forbidden.
    #[error("traceparent version ff is invalid")]
    ForbiddenVersion,
    /// The trace id or parent id is not lowercase hex, or is all zeros.
    #[error("traceparent has an invalid id: {0}")]
    InvalidId(#[from] super::ids::IdParseError),
}

fn hex_byte(s: &str) -> Option<u8> {
    if s.len() == 2
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        u8::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

impl TraceContext {
    /// Parses a `traceparent` header value.
    pub fn from_traceparent(value: &str) -> Result<Self, TraceparentError> {
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        let malformed = || TraceparentError::Malformed(value.chars().take(80).collect());
        if value.len() < 55 || !value.is_ascii() {
            return Err(malformed());
        }
        let version = hex_byte(&value[0..2]).ok_or_else(malformed)?;
        if version == 0xff {
            return Err(TraceparentError::ForbiddenVersion);
        }
        // Version 00 is exactly 55 characters; later versions may append `-...` fields.
        if (version == 0 && value.len() != 55) || (value.len() > 55 && &value[55..56] != "-") {
            return Err(malformed());
        }
        if &value[2..3] != "-" || &value[35..36] != "-" || &value[52..53] != "-" {
            return Err(malformed());
        }
        let trace_id: TraceId = value[3..35].parse()?;
        let span_id: SpanId = value[36..52].parse()?;
        let flags = hex_byte(&value[53..55]).ok_or_else(malformed)?;
        Ok(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            trace_state: None,
        })
    }

    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// The context of the current `tracing` span, if a [`TelemetryLayer`](super::TelemetryLayer)
    /// is recording it.
    pub fn current() -> Option<Self> {
        tracing::Span::current().trace_context()
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// Something a trace context can be read from.
pub trait Extractor {
    /// The value under `key` (lowercase), if any.
    fn get(&self, key: &str) -> Option<String>;
}

/// Something a trace context can be written into.
pub trait Injector {
    /// Sets `key` (lowercase) to `value`.
    fn set(&mut self, key: &str, value: String);
}

impl Extractor for HeaderMap {
    fn get(&self, key: &str) -> Option<String> {
        let mut values = self.get_all(key).iter().filter_map(|v| v.to_str().ok());
        let first = values.next()?.to_owned();
        // `tracestate` may be split over several header lines; `traceparent` may not.
        Some(values.fold(first, |mut acc, v| {
            acc.push(',');
            acc.push_str(v);
            acc
        }))
    }
}

impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.insert(name, value);
        }
    }
}

impl<S: std::hash::BuildHasher> Extractor for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl<S: std::hash::BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
}

/// Reads a trace context; `None` when there is none or it is invalid (then start a new trace).
pub fn extract<E: Extractor + ?Sized>(carrier: &E) -> Option<TraceContext> {
    let parent = carrier.get(TRACEPARENT)?;
    let mut context = TraceContext::from_traceparent(&parent).ok()?;
    context.trace_state = carrier
        .get(TRACESTATE)
        .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE_LEN);
    Some(context)
}

/// Writes `context` into `carrier`.
pub fn inject_context<I: Injector + ?Sized>(context: &TraceContext, carrier: &mut I) {
    carrier.set(TRACEPARENT, context.traceparent());
    if let Some(state) = &context.trace_state {
        carrier.set(TRACESTATE, state.clone());
    }
}

/// Writes the current span's context into `carrier` (HTTP headers of an outgoing reqwest or
/// hyper request, or an agent message's map). Returns whether there was one to write.
pub fn inject<I: Injector + ?Sized>(carrier: &mut I) -> bool {
    match TraceContext::current() {
        Some(context) => {
            inject_context(&context, carrier);
            true
        }
        None => false,
    }
}

/// The current span's context as HTTP headers, for `reqwest::RequestBuilder::headers`.
pub fn headers() -> HeaderMap {
    let mut map = HeaderMap::new();
    inject(&mut map);
    map
}

/// A tower layer for HTTP servers: each request runs in a server span that continues the
/// caller's trace when it sent a valid `traceparent` (else starts one), and the response
/// carries that span's `traceparent`.
///
/// The span is named `"{method} {route template}"` (`"GET /api/traces/{trace_id}"`), from
/// axum's `MatchedPath` (feature `axum`, with the layer added by `Router::layer` so that it
/// runs after routing); a request that matched no route, or an unknown method, gets
/// [`OTHER`] in its place, so span names stay a small fixed set whatever paths clients
/// send. The raw path is kept only in `url.path`, cut like every attribute to
/// [`MAX_ATTRIBUTE_VALUE_BYTES`](super::MAX_ATTRIBUTE_VALUE_BYTES).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextLayer {
    _private: (),
}

impl TraceContextLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContextService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceContextService { inner }
    }
}

/// The service made by [`TraceContextLayer`].
#[derive(Clone, Debug)]
pub struct TraceContextService<S> {
    inner: S,
}

impl<S> TraceContextService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, R> tower::Service<Request<B>> for TraceContextService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = method_label(request.method());
        let route = route_template(&request);
        let span = tracing::info_span!(
            "http.server.request",
            otel.name = %format_args!("{method} {}", route.unwrap_or(OTHER)),
            otel.kind = "server",
            http.request.method = method,
            http.route = route,
            // Cut before it is formatted: a path can be as long as the server's header limit.
            url.path = super::layer::bounded_str(request.uri().path()).as_ref(),
            http.response.status_code = tracing::field::Empty,
        );
        if let Some(parent) = extract(request.headers()) {
            span.set_parent(&parent);
        }
        let context = span.trace_context();
        let inner = span.in_scope(|| self.inner.call(request));
        future::ResponseFuture::new(inner.instrument(span), context)
    }
}

/// The fixed stand-in for an unknown HTTP method or an unmatched route, as in the
/// OpenTelemetry HTTP conventions: a label or span name built from it cannot grow with what
/// clients send.
pub const OTHER: &str = "_OTHER";

/// The method as a bounded label: one of the nine methods of RFC 9110 and RFC 5789
/// (`GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS`, `TRACE`, `CONNECT`), else
/// [`OTHER`].
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => OTHER,
    }
}

/// The route template the request matched (axum's `MatchedPath`, present when the layer
/// wraps a router's routes, as `Router::layer` does), never the raw path.
#[cfg(feature = "axum")]
fn route_template<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

/// Without axum there is no route template; every span is named after [`OTHER`].
#[cfg(not(feature = "axum"))]
fn route_template<B>(_request: &Request<B>) -> Option<&str> {
    None
}

/// The response future of [`TraceContextService`].
pub mod future {
    use super::*;

    pin_project_lite::pin_project! {
        /// Completes with the inner response, its `traceparent` header set.
        pub struct ResponseFuture<F> {
            #[pin]
            inner: Instrumented<F>,
            context: Option<TraceContext>,
        }
    }

    impl<F> ResponseFuture<F> {
        pub(super) fn new(inner: Instrumented<F>, context: Option<TraceContext>) -> Self {
            Self { inner, context }
        }
    }

    impl<F> fmt::Debug for ResponseFuture<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ResponseFuture")
                .field("context", &self.context)
                .finish()
        }
    }

    impl<F, R, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Response<R>, E>>,
    {
        type Output = Result<Response<R>, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            let span = this.inner.span().clone();
            let mut response = match this.inner.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(error)) => {
                    span.set_status(super::super::SpanStatus::error("service error"));
                    return Poll::Ready(Err(error));
                }
                Poll::Pending => return Poll::Pending,
            };
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.set_status(super::super::SpanStatus::error(status.to_string()));
            }
            if let Some(context) = this.context.take() {
                inject_context(&context, response.headers_mut());
            }
            Poll::Ready(Ok(response))
        }
    }
}
