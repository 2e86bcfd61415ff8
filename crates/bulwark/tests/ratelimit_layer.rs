//! The tower layer through axum `oneshot`: status, headers, per-key isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bulwark::ratelimit::RateLimitConfig;
use bulwark::ratelimit::layer::{HeaderKey, PeerIp, RateLimitLayer, RequestParts, key_fn};
use http::{HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app<L>(layer: L) -> Router
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<Request<Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<Request<Body>>>::Response: axum::response::IntoResponse + 'static,
    <L::Service as tower::Service<Request<Body>>>::Future: Send + 'static,
{
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get_root() -> Request<Body> {
    Request::get("/").body(Body::empty()).unwrap()
}

#[tokio::test]
async fn refuses_with_429_retry_after_and_ratelimit_headers() {
    let app = app(RateLimitLayer::new(RateLimitConfig::per_minute(2)).unwrap());
    let (status, headers, _) = send(&app, get_root()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["ratelimit-limit"], "2");
    assert_eq!(headers["ratelimit-remaining"], "1");
    assert_eq!(headers["ratelimit-reset"], "30");
    assert_eq!(send(&app, get_root()).await.0, StatusCode::OK);
    let (status, headers, body) = send(&app, get_root()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry), "retry-after {retry}");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert_eq!(headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "rate_limited");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after")
    );
}

#[tokio::test]
async fn each_header_value_has_its_own_bucket_and_missing_keys_share_one() {
    let key = HeaderName::from_static("x-api-key");
    let app =
        app(RateLimitLayer::keyed(RateLimitConfig::per_minute(1), HeaderKey::new(key)).unwrap());
    let with_key = |k: &str| {
        Request::get("/")
            .header("x-api-key", k)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&app, with_key("a")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, with_key("a")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app, with_key("b")).await.0, StatusCode::OK);
    // Dropping the header does not escape the limit: keyless requests share a bucket.
    assert_eq!(send(&app, get_root()).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, get_root()).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn client_ip_keys_come_from_the_connection_or_a_trusted_proxy_header() {
    let app_direct =
        app(RateLimitLayer::keyed(RateLimitConfig::per_minute(1), PeerIp::new()).unwrap());
    let from = |ip: [u8; 4]| {
        let mut request = get_root();
        request
            .extensions_mut()
            .insert(SocketAddr::from((ip, 4000)));
        request
            .headers_mut()
            .insert("x-forwarded-for", "9.9.9.9".parse().unwrap());
        request
    };
    assert_eq!(
        send(&app_direct, from([10, 0, 0, 1])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app_direct, from([10, 0, 0, 2])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app_direct, from([10, 0, 0, 1])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Behind a proxy, the forwarded address is the key, whatever the connection.
    let app_proxy =
        app(RateLimitLayer::keyed(RateLimitConfig::per_minute(1), PeerIp::behind_proxy()).unwrap());
    assert_eq!(
        send(&app_proxy, from([10, 0, 0, 1])).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app_proxy, from([10, 0, 0, 2])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_closure_can_pick_the_key() {
    let by_segment =
        key_fn(|r: &RequestParts<'_>| r.uri.path().split('/').nth(1).map(str::to_owned));
    let app = Router::new()
        .route("/{provider}", get(|| async { "ok" }))
        .layer(RateLimitLayer::keyed(RateLimitConfig::per_minute(1), by_segment).unwrap());
    let to = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(send(&app, to("/openai")).await.0, StatusCode::OK);
    assert_eq!(send(&app, to("/anthropic")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, to("/openai")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn with_the_axum_feature_the_peer_comes_from_connect_info() {
    let app = app(RateLimitLayer::keyed(RateLimitConfig::per_minute(1), PeerIp::new()).unwrap());
    let from = |ip: [u8; 4]| {
        let mut request = get_root();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((ip, 4000))));
        request
    };
    assert_eq!(send(&app, from([10, 0, 0, 1])).await.0, StatusCode::OK);
    assert_eq!(send(&app, from([10, 0, 0, 2])).await.0, StatusCode::OK);
    assert_eq!(
        send(&app, from([10, 0, 0, 1])).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
