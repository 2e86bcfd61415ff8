//! `traceparent` / `tracestate` extraction and injection, the server tower layer, carriers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::telemetry::propagation::{self, TRACEPARENT, TRACESTATE};
use bulwark::telemetry::{
    SpanExt, SpanKind, TelemetryLayer, TraceContext, TraceContextLayer, TraceFilter, TraceStore,
    TraceStoreConfig,
};
use http::{HeaderMap, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn store() -> TraceStore<ManualClock> {
    TraceStore::with_clock(
        TraceStoreConfig {
            ttl: Duration::from_secs(3600),
            max_spans: 1000,
            ..Default::default()
        },
        ManualClock::new(),
    )
}

#[test]
fn traceparent_round_trips() {
    let ctx = TraceContext::from_traceparent(VALID).unwrap();
    assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ctx.span_id.to_string(), "00f067aa0ba902b7");
    assert!(ctx.sampled);
    assert_eq!(ctx.traceparent(), VALID);
    let unsampled = TraceContext::from_traceparent(&VALID.replace("-01", "-00")).unwrap();
    assert!(!unsampled.sampled);
    assert_eq!(unsampled.traceparent(), VALID.replace("-01", "-00"));
}

#[test]
fn invalid_traceparents_are_refused() {
    let cases = [
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902é7-01",
    ];
    for case in cases {
        assert!(
            TraceContext::from_traceparent(case).is_err(),
            "accepted {case:?}"
        );
    }
}

#[test]
fn a_future_version_with_extra_fields_is_accepted() {
    let ctx = TraceContext::from_traceparent(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever",
    )
    .unwrap();
    assert_eq!(ctx.span_id.to_string(), "00f067aa0ba902b7");
}

#[test]
fn headers_and_message_maps_carry_traceparent_and_tracestate() {
    let mut ctx = TraceContext::from_traceparent(VALID).unwrap();
    ctx.trace_state = Some("vendor=abc,other=1".to_owned());
    let mut headers = HeaderMap::new();
    propagation::inject_context(&ctx, &mut headers);
    assert_eq!(headers[TRACEPARENT], VALID);
    assert_eq!(propagation::extract(&headers), Some(ctx.clone()));

    let mut message: HashMap<String, String> = HashMap::new();
    propagation::inject_context(&ctx, &mut message);
    assert_eq!(message[TRACESTATE], "vendor=abc,other=1");
    assert_eq!(propagation::extract(&message), Some(ctx));

    message.insert(TRACEPARENT.to_owned(), "not-a-traceparent".to_owned());
    assert_eq!(propagation::extract(&message), None);
}

#[test]
fn inject_writes_the_current_spans_ids() {
    let store = store();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("client_call");
        let _entered = span.enter();
        let headers = propagation::headers();
        let sent = propagation::extract(&headers).unwrap();
        assert_eq!(Some(sent), span.trace_context());
    });
    // Without a current span there is nothing to inject.
    let mut headers = HeaderMap::new();
    assert!(!propagation::inject(&mut headers));
    assert!(headers.is_empty());
}

async fn handler(request: Request<()>) -> Result<Response<()>, Infallible> {
    // A span made inside the handler is a child of the server span.
    let _child = tracing::info_span!("handler_work").entered();
    let status = if request.uri().path() == "/fail" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    Ok(Response::builder().status(status).body(()).unwrap())
}

#[tokio::test]
async fn the_server_layer_continues_the_callers_trace_and_answers_with_traceparent() {
    let store = store();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut service = TraceContextLayer::new().layer(tower::service_fn(handler));

    let request = Request::builder()
        .uri("/agents/run")
        .header(TRACEPARENT, VALID)
        .header(TRACESTATE, "vendor=abc")
        .body(())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let caller = TraceContext::from_traceparent(VALID).unwrap();
    let answered = propagation::extract(response.headers()).unwrap();
    assert_eq!(answered.trace_id, caller.trace_id);
    assert_ne!(answered.span_id, caller.span_id);
    assert_eq!(answered.trace_state.as_deref(), Some("vendor=abc"));

    let spans = store.spans(caller.trace_id);
    assert_eq!(spans.len(), 2);
    let server = spans
        .iter()
        .find(|s| s.span_id == answered.span_id)
        .unwrap();
    // No router, so no route template: the fixed name, never the raw path (issue 12 defect 1).
    assert_eq!(server.name, "GET _OTHER");
    assert_eq!(
        server.attribute("url.path").unwrap().to_string(),
        "/agents/run"
    );
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.parent_span_id, Some(caller.span_id));
    assert!(server.parent_is_remote);
    assert_eq!(
        server
            .attribute("http.response.status_code")
            .unwrap()
            .to_string(),
        "200"
    );
    let child = spans.iter().find(|s| s.name == "handler_work").unwrap();
    assert_eq!(child.parent_span_id, Some(server.span_id));
}

#[tokio::test]
async fn an_invalid_traceparent_starts_a_new_trace_and_5xx_is_an_error() {
    let store = store();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut service = TraceContextLayer::new().layer(tower::service_fn(handler));
    let request = Request::builder()
        .uri("/fail")
        .header(
            TRACEPARENT,
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let answered = propagation::extract(response.headers()).unwrap();
    assert_ne!(
        answered.trace_id.to_string(),
        "00000000000000000000000000000000"
    );
    let trace = store.get_trace(answered.trace_id).unwrap();
    assert_eq!(trace.roots.len(), 1);
    assert_eq!(trace.roots[0].span.parent_span_id, None);
    assert!(trace.summary.has_error);
    assert_eq!(store.recent_traces(&TraceFilter::default()).len(), 1);
}
