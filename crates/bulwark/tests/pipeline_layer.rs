//! `ResilienceLayer` through a real axum server on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bulwark::breaker::CircuitBreakerConfig;
use bulwark::pipeline::{ResilienceLayer, ResiliencePipeline};
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use bulwark::retry::{Backoff, RetryConfig};

/// Serves `app` on an ephemeral port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn retry(attempts: u32) -> RetryConfig {
    RetryConfig::new(attempts, Backoff::constant(Duration::ZERO))
}

#[tokio::test]
async fn a_failing_response_is_retried_with_the_same_body_until_it_succeeds() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let pipeline = ResiliencePipeline::builder()
        .retry(retry(3))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/echo",
            post(move |body: String| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        (StatusCode::BAD_GATEWAY, "upstream hiccup".to_string())
                    } else {
                        (StatusCode::OK, format!("echo: {body}"))
                    }
                }
            }),
        )
        .layer(ResilienceLayer::new(pipeline));
    let base = serve(app).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/echo"))
        .body("prompt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "echo: prompt");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn when_retries_run_out_the_last_failure_response_is_returned_as_it_is() {
    let pipeline = ResiliencePipeline::builder()
        .retry(retry(2))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
        )
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no") }))
        .layer(ResilienceLayer::new(pipeline));
    let base = serve(app).await;
    let response = reqwest::get(format!("{base}/down")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "down for maintenance");
    let response = reqwest::get(format!("{base}/missing")).await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_open_breaker_answers_503_with_retry_after_without_calling_the_handler() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let pipeline = ResiliencePipeline::builder()
        .name("upstream")
        .circuit_breaker_config(CircuitBreakerConfig::new(2, 1, Duration::from_secs(30), 1))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(move || {
                c.fetch_add(1, Ordering::SeqCst);
                async { StatusCode::INTERNAL_SERVER_ERROR }
            }),
        )
        .layer(ResilienceLayer::new(pipeline));
    let base = serve(app).await;
    for _ in 0..2 {
        let response = reqwest::get(&base).await.unwrap();
        assert_eq!(response.status(), 500);
    }
    let response = reqwest::get(&base).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "circuit_open");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rate_limited_requests_get_429_and_oversized_bodies_413() {
    let limiter = RateLimiter::new(RateLimitConfig::per_minute(1)).unwrap();
    let pipeline = ResiliencePipeline::builder()
        .rate_limit(limiter)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", post(|| async { "ok" }))
        .layer(ResilienceLayer::new(pipeline).max_body_bytes(8));
    let base = serve(app).await;
    let client = reqwest::Client::new();
    let too_large = client.post(&base).body("0123456789").send().await.unwrap();
    assert_eq!(too_large.status(), 413);
    let first = client.post(&base).body("small").send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = client.post(&base).body("small").send().await.unwrap();
    assert_eq!(second.status(), 429);
    let after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&after), "{after}");
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}
