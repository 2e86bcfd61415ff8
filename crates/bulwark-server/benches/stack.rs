//! What the hardening stack costs a request: a trivial handler, bare and wrapped in a rate
//! limit, a circuit breaker and a server span (W3C ids into the trace store), both driven
//! through `oneshot` in the same run.
//!
//! `cargo bench -p bulwark-server --bench stack -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer};
use bulwark::ratelimit::RateLimitConfig;
use bulwark::ratelimit::layer::RateLimitLayer;
use bulwark::telemetry::{TelemetryLayer, TraceContextLayer, TraceStore};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

fn bare() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

#[allow(clippy::expect_used)]
fn hardened() -> Router {
    // Limits high enough never to refuse: the cost measured is the decision, not a 429.
    let limit =
        RateLimitLayer::new(RateLimitConfig::per_second(u32::MAX / 2)).expect("valid rate limit");
    let breaker = CircuitBreaker::new("bench", CircuitBreakerConfig::default())
        .expect("valid breaker config");
    bare()
        .layer(CircuitBreakerLayer::new(breaker))
        .layer(limit)
        .layer(TraceContextLayer::new())
}

async fn call(router: &Router) {
    let request = Request::get("/").body(Body::empty()).unwrap_or_default();
    let response = router.clone().oneshot(request).await;
    assert!(response.is_ok_and(|r| r.status().is_success()));
}

fn stack(c: &mut Criterion) {
    // Spans are real: ids assigned, finished spans stored (bounded) as `bulwark serve` does.
    let store = TraceStore::default();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store));
    let _ = tracing::subscriber::set_global_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        return;
    };
    let (bare, hardened) = (bare(), hardened());
    let mut group = c.benchmark_group("stack");
    group.bench_function("bare_handler", |b| {
        b.to_async(&runtime).iter(|| call(&bare));
    });
    group.bench_function("ratelimit_breaker_span", |b| {
        b.to_async(&runtime).iter(|| call(&hardened));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = stack
}
criterion_main!(benches);
