//! The tower layer through an axum `Router` and `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use bulwark::breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerService, State,
};
use bulwark::clock::ManualClock;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

struct App {
    router: Router,
    breaker: CircuitBreaker<ManualClock>,
    clock: ManualClock,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

fn app(
    layer: impl FnOnce(CircuitBreakerLayer<ManualClock>) -> CircuitBreakerLayer<ManualClock>,
) -> App {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder(
        "upstream",
        CircuitBreakerConfig::new(2, 1, Duration::from_secs(60), 1),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let status = Arc::new(AtomicU16::new(200));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, h) = (status.clone(), hits.clone());
    let router = Router::new()
        .route(
            "/",
            get(move || async move {
                h.fetch_add(1, Ordering::SeqCst);
                StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap()
            }),
        )
        .layer(layer(CircuitBreakerLayer::new(breaker.clone())));
    App {
        router,
        breaker,
        clock,
        status,
        hits,
    }
}

async fn get_root(router: &Router) -> Response<Body> {
    router
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn server_errors_open_the_breaker_and_then_it_answers_503_without_calling_the_service() {
    let app = app(|l| l);
    app.status.store(500, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(
            get_root(&app.router).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(app.breaker.state(), State::Open);
    app.clock.advance(Duration::from_millis(500));

    let response = get_root(&app.router).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.hits.load(Ordering::SeqCst),
        2,
        "the handler was not called"
    );
    let headers = response.headers();
    assert_eq!(headers["retry-after"], "60", "59.5 s rounds up");
    assert_eq!(headers["content-type"], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "circuit_open");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream")
    );
}

#[tokio::test]
async fn a_successful_trial_after_the_timeout_closes_it_again() {
    let app = app(|l| l);
    app.status.store(503, Ordering::SeqCst);
    get_root(&app.router).await;
    get_root(&app.router).await;
    app.clock.advance(Duration::from_secs(60));
    app.status.store(200, Ordering::SeqCst);
    assert_eq!(get_root(&app.router).await.status(), StatusCode::OK);
    assert_eq!(app.breaker.state(), State::Closed);
}

#[tokio::test]
async fn client_errors_do_not_trip_it_by_default() {
    let app = app(|l| l);
    app.status.store(404, Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(get_root(&app.router).await.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(app.breaker.state(), State::Closed);
}

#[tokio::test]
async fn the_status_classifier_is_configurable() {
    let app = app(|l| l.failure_status(|s| s == StatusCode::TOO_MANY_REQUESTS));
    app.status.store(500, Ordering::SeqCst);
    get_root(&app.router).await;
    get_root(&app.router).await;
    assert_eq!(app.breaker.state(), State::Closed);
    app.status.store(429, Ordering::SeqCst);
    get_root(&app.router).await;
    get_root(&app.router).await;
    assert_eq!(app.breaker.state(), State::Open);
}

#[tokio::test]
async fn forced_open_answers_503_without_retry_after() {
    let app = app(|l| l);
    app.breaker.force_open();
    let response = get_root(&app.router).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn inner_service_errors_count_as_failures_and_pass_through() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder(
        "svc",
        CircuitBreakerConfig::new(1, 1, Duration::from_secs(9), 1),
    )
    .clock(clock)
    .build()
    .unwrap();
    let inner = tower::service_fn(|_: Request<()>| async {
        Err::<Response<Full<axum::body::Bytes>>, _>("connection refused")
    });
    let svc = CircuitBreakerService::new(inner, breaker.clone());
    assert_eq!(
        svc.clone().oneshot(Request::new(())).await.unwrap_err(),
        "connection refused"
    );
    assert_eq!(breaker.state(), State::Open);
    let response = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "9");
}

#[tokio::test(start_paused = true)]
async fn a_dropped_response_future_gives_its_trial_slot_back() {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder(
        "slow",
        CircuitBreakerConfig::new(1, 1, Duration::from_secs(1), 1),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let _ = breaker.call(|| Err::<(), _>(()));
    clock.advance(Duration::from_secs(1));
    let inner = tower::service_fn(|_: Request<()>| async {
        std::future::pending::<Result<Response<Body>, Infallible>>().await
    });
    let svc = CircuitBreakerService::new(inner, breaker.clone());
    let call = svc.clone().oneshot(Request::new(()));
    let timed_out = tokio::time::timeout(Duration::from_millis(10), call).await;
    assert!(timed_out.is_err());
    assert_eq!(breaker.snapshot().trials_in_flight, 0);
    assert_eq!(breaker.state(), State::HalfOpen);
}

#[tokio::test]
async fn half_open_with_every_trial_slot_taken_answers_503_with_retry_after_one_second() {
    let app = app(|l| l);
    app.status.store(500, Ordering::SeqCst);
    get_root(&app.router).await;
    get_root(&app.router).await;
    app.clock.advance(Duration::from_secs(60));
    let trial = app.breaker.try_acquire().unwrap(); // the only slot (half_open_max_calls = 1)
    let response = get_root(&app.router).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    trial.success();
    assert_eq!(app.breaker.state(), State::Closed);
}
