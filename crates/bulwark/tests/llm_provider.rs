//! A fake LLM provider (a local axum server on 127.0.0.1:0) answering 429 with `retry-after`,
//! 529, 400, refusals and bad tool JSON: the call waits as asked, the breaker opens on 529 but
//! not on 400, the limiter and the token budget tighten to the provider's word, and the
//! classifier labels each case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, State};
use bulwark::budget::{BudgetSpec, Ledger, Period, Unit};
use bulwark::clock::{Clock, ManualClock};
use bulwark::llm::{
    FailureClass, LlmClassifier, LlmError, ProviderLimits, ProviderSignals, ToolSchema,
};
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use bulwark::retry::{Backoff, Retry, RetryConfig};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/llm/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn reply(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: String,
) -> (StatusCode, HeaderMap, String) {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    map.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::from_u16(status).unwrap(), map, body)
}

/// The provider; `calls` counts requests to `/rate-limited`.
async fn provider(calls: Arc<AtomicU32>) -> String {
    let completion =
        json!({"choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
        .to_string();
    let app = Router::new()
        .route(
            "/rate-limited",
            post(move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let completion = completion.clone();
                async move {
                    if n == 0 {
                        reply(
                            429,
                            &[
                                ("retry-after", "2"),
                                ("x-ratelimit-remaining-requests", "0"),
                            ],
                            json!({"error": {"type": "rate_limit_error", "message": "slow down"}})
                                .to_string(),
                        )
                    } else {
                        reply(
                            200,
                            &[
                                ("x-ratelimit-remaining-requests", "10"),
                                ("x-ratelimit-remaining-tokens", "500"),
                                ("x-ratelimit-reset-tokens", "30s"),
                            ],
                            completion,
                        )
                    }
                }
            }),
        )
        .route(
            "/overloaded",
            post(|| async { reply(529, &[], fixture("anthropic_529.json")) }),
        )
        .route(
            "/bad-request",
            post(|| async { reply(400, &[], fixture("openai_invalid_key.json")) }),
        )
        .route(
            "/context",
            post(|| async { reply(400, &[], fixture("openai_context_length.json")) }),
        )
        .route(
            "/refusal",
            post(|| async { reply(200, &[], fixture("openai_refusal.json")) }),
        )
        .route(
            "/bad-tool",
            post(|| async { reply(200, &[], fixture("openai_bad_tool_json.json")) }),
        )
        .route(
            "/tool-mismatch",
            post(|| async { reply(200, &[], fixture("openai_tool_schema_mismatch.json")) }),
        )
        .route(
            "/empty",
            post(|| async { reply(200, &[], fixture("openai_empty.json")) }),
        )
        .route(
            "/gateway",
            post(|| async { reply(502, &[], "<html>bad gateway</html>".into()) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn tools() -> Vec<ToolSchema> {
    vec![ToolSchema {
        name: "get_weather".into(),
        parameters: serde_json::from_str(&fixture("get_weather.schema.json")).unwrap(),
    }]
}

/// One wrapped LLM call: wait out a pause, call, feed the signals back, classify.
async fn call<C: Clock>(url: &str, limits: &ProviderLimits<C>) -> Result<Value, LlmError> {
    limits.ready().await;
    let classifier = LlmClassifier::new();
    let response = reqwest::Client::new()
        .post(url)
        .body("{}")
        .send()
        .await
        .unwrap();
    let signals = ProviderSignals::from_parts(
        response.status(),
        response.headers(),
        std::time::SystemTime::now(),
    );
    limits.apply(&signals);
    let body = response.bytes().await.unwrap();
    if let Some(error) = classifier.classify_status(&signals, &body) {
        return Err(error);
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    classifier.classify_completion(&body, &tools())?;
    Ok(body)
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after_then_the_call_succeeds() {
    let calls = Arc::new(AtomicU32::new(0));
    let base = provider(Arc::clone(&calls)).await;
    let clock = ManualClock::new();
    let limiter = RateLimiter::builder(RateLimitConfig::per_minute(100))
        .clock(clock.clone())
        .build()
        .unwrap();
    let ledger = Ledger::builder()
        .clock(clock.clone())
        .budget(BudgetSpec::new(
            "tpm",
            Unit::Tokens,
            10_000,
            Period::minute(),
        ))
        .build()
        .unwrap();
    let tpm = ledger.budget("tpm", "").unwrap();
    let limits = ProviderLimits::new(clock.clone())
        .request_limiter(limiter.clone())
        .token_budget(ledger.clone(), tpm);
    let retry = Retry::builder(RetryConfig::new(
        3,
        Backoff::constant(Duration::from_millis(100)),
    ))
    .clock(clock.clone())
    .build()
    .unwrap();
    let url = format!("{base}/rate-limited");
    let run = retry.run(|| call(&url, &limits));
    let advance = async {
        while calls.load(Ordering::SeqCst) == 0 || limits.paused_for().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(limits.paused_for(), Some(Duration::from_secs(2)));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(2));
    };
    let (result, ()) = tokio::join!(run, advance);
    let body = result.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        clock.now(),
        Duration::from_secs(2),
        "waited the retry-after, not the backoff"
    );
    assert_eq!(limits.paused_for(), None);
    // The 429 said no request is left: the limiter was drained to 0 and refilled for the 2 s
    // waited (100/min: 3 requests), below the 10 the success then reported, so it stays there.
    assert_eq!(limiter.available(), 3);
    // The success said 500 tokens are left: the token budget tightened to it.
    assert_eq!(ledger.snapshot_of(tpm).unwrap().remaining, 500);
}

#[tokio::test]
async fn the_breaker_opens_on_529_but_not_on_400() {
    let base = provider(Arc::default()).await;
    let limits = ProviderLimits::new(ManualClock::new());
    let config = CircuitBreakerConfig::new(3, 1, Duration::from_secs(30), 1);
    let breaker = CircuitBreaker::builder("llm", config)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    for _ in 0..5 {
        let url = format!("{base}/bad-request");
        let result = breaker
            .call_async_with(call(&url, &limits), LlmError::is_breaker_failure)
            .await;
        assert!(result.is_err());
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "a 400 is the caller's error"
    );
    for _ in 0..3 {
        let url = format!("{base}/overloaded");
        let _ = breaker
            .call_async_with(call(&url, &limits), LlmError::is_breaker_failure)
            .await;
    }
    assert_eq!(breaker.state(), State::Open, "three 529s open it");
}

#[tokio::test]
async fn the_classifier_labels_each_case() {
    let base = provider(Arc::default()).await;
    let limits = ProviderLimits::new(ManualClock::new());
    let cases = [
        ("overloaded", FailureClass::Overloaded, true, true),
        ("bad-request", FailureClass::BadRequest, false, false),
        ("context", FailureClass::ContextLengthExceeded, false, false),
        ("refusal", FailureClass::ContentRefusal, false, false),
        ("bad-tool", FailureClass::InvalidToolCall, true, false),
        ("tool-mismatch", FailureClass::InvalidToolCall, true, false),
        ("empty", FailureClass::EmptyCompletion, true, false),
        ("gateway", FailureClass::ServerError, true, true),
    ];
    for (path, class, retryable, failure) in cases {
        let error = call(&format!("{base}/{path}"), &limits).await.unwrap_err();
        assert_eq!(error.class, class, "{path}: {error}");
        assert_eq!(
            (error.treatment.retryable, error.treatment.breaker_failure),
            (retryable, failure),
            "{path}"
        );
    }
    let mismatch = call(&format!("{base}/tool-mismatch"), &limits)
        .await
        .unwrap_err();
    assert!(
        mismatch.message.contains("$.city: expected string"),
        "{}",
        mismatch.message
    );
}

#[test]
fn defaults_can_be_overridden() {
    use bulwark::llm::Treatment;
    let strict = LlmClassifier::new().treat(FailureClass::RateLimited, Treatment::new(false, true));
    let error = strict.error(FailureClass::RateLimited, "429");
    assert!(!bulwark::retry::Classify::is_retryable(&error));
    assert!(error.is_breaker_failure());
    assert!(
        LlmClassifier::new()
            .treatment(FailureClass::RateLimited)
            .retryable
    );
    // Anthropic's tool_use blocks are checked against the schema too.
    let body: Value = serde_json::from_str(&fixture("anthropic_tool_use.json")).unwrap();
    let error = LlmClassifier::new()
        .classify_completion(&body, &tools())
        .unwrap_err();
    assert!(error.message.contains("$.unit"), "{}", error.message);
    let body: Value = serde_json::from_str(&fixture("anthropic_refusal.json")).unwrap();
    assert_eq!(
        LlmClassifier::new()
            .classify_completion(&body, &tools())
            .unwrap_err()
            .class,
        FailureClass::ContentRefusal
    );
    let ok: Value = serde_json::from_str(&fixture("openai_tool_ok.json")).unwrap();
    assert!(
        LlmClassifier::new()
            .classify_completion(&ok, &tools())
            .is_ok()
    );
}
