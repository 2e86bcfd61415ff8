//! `GET /api/observability/events` over HTTP: ordered ids, `Last-Event-ID` replay, `reset`
//! when the replay is gone, filters, heartbeats, no token needed to read; and the dashboard's
//! page and assets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use bulwark::breaker::CircuitBreakerConfig;
use bulwark::events::{EventKind, NewEvent};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

mod common;

/// An open SSE response body, read frame by frame.
struct Stream(Body);

impl Stream {
    async fn open(app: &common::App, uri: &str, last_id: Option<&str>) -> Self {
        let mut request = Request::builder().uri(uri);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Self(response.into_body())
    }

    /// The next SSE message (up to the blank line), as its lines. The timeout only guards
    /// against a hang; nothing is timed.
    async fn next(&mut self) -> Vec<String> {
        let mut text = String::new();
        while !text.contains("\n\n") {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.0.frame())
                .await
                .expect("a message within 10 s")
                .expect("the stream is open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        text.trim_end().lines().map(str::to_owned).collect()
    }

    async fn event(&mut self) -> (String, String, serde_json::Value) {
        let lines = self.next().await;
        let field = |name: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
                .to_owned()
        };
        let data = serde_json::from_str(&field("data")).unwrap();
        (field("id"), field("event"), data)
    }
}

fn publish(app: &common::App, kind: EventKind, name: &str) -> u64 {
    app.state
        .events()
        .publish(NewEvent::new(kind, name, "test", json!({})))
}

#[tokio::test]
async fn breaker_transitions_arrive_in_order_with_increasing_ids() {
    let app = common::app("sse-order").await;
    let mut stream = Stream::open(&app, "/api/observability/events?kind=breaker", None).await;
    let breaker = app
        .state
        .breakers()
        .get_or_create("tool", CircuitBreakerConfig::default())
        .unwrap();
    breaker.force_open();
    breaker.reset();
    let (id1, kind, first) = stream.event().await;
    let (id2, _, second) = stream.event().await;
    assert_eq!(kind, "breaker");
    assert!(id1.parse::<u64>().unwrap() < id2.parse::<u64>().unwrap());
    assert_eq!(
        (&first["name"], &first["data"]["to"]),
        (&json!("tool"), &json!("forced_open"))
    );
    assert_eq!(second["data"]["to"], "closed");
}

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed_after_last_event_id() {
    let app = common::app("sse-replay").await;
    let ids: Vec<u64> = (0..3)
        .map(|_| publish(&app, EventKind::Checkpoint, "w"))
        .collect();
    let mut stream =
        Stream::open(&app, "/api/observability/events", Some(&ids[0].to_string())).await;
    assert_eq!(stream.event().await.0, ids[1].to_string());
    assert_eq!(stream.event().await.0, ids[2].to_string());
    let live = publish(&app, EventKind::Checkpoint, "w");
    assert_eq!(stream.event().await.0, live.to_string());
}

#[tokio::test]
async fn a_client_too_far_behind_gets_a_reset_then_live_events() {
    let app = common::app("sse-reset").await;
    let replay = app.state.events().config().replay;
    for _ in 0..replay + 10 {
        publish(&app, EventKind::Limiter, "l");
    }
    let mut stream = Stream::open(&app, "/api/observability/events", Some("3")).await;
    let (id, kind, data) = stream.event().await;
    assert_eq!(kind, "reset");
    assert_eq!(id, (replay + 10).to_string());
    assert_eq!(data["last_id"], replay + 10);
    let live = publish(&app, EventKind::Limiter, "l");
    assert_eq!(stream.event().await.0, live.to_string());
}

#[tokio::test]
async fn filters_by_kind_and_name_and_refuse_an_unknown_kind() {
    let app = common::app("sse-filter").await;
    let mut stream = Stream::open(
        &app,
        "/api/observability/events?kind=workflow,checkpoint&name=a,b",
        None,
    )
    .await;
    publish(&app, EventKind::Workflow, "c");
    publish(&app, EventKind::Breaker, "a");
    let wanted = publish(&app, EventKind::Checkpoint, "b");
    assert_eq!(stream.event().await.0, wanted.to_string());

    let bad = app
        .call("GET", "/api/observability/events?kind=breakers")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(common::error_code(&bad), "bad_request");
    assert!(bad.text.contains("breakers"), "{}", bad.text);
    let bad_id = app
        .send(
            Request::builder()
                .uri("/api/observability/events")
                .header("last-event-id", "yesterday")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeat_comments() {
    let app = common::app("sse-heartbeat").await;
    let mut stream = Stream::open(&app, "/api/observability/events?heartbeat_ms=100", None).await;
    assert_eq!(stream.next().await, vec![": heartbeat".to_owned()]);
    let too_fast = app
        .call("GET", "/api/observability/events?heartbeat_ms=1")
        .await;
    assert_eq!(too_fast.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reading_the_stream_needs_no_token_while_writes_do() {
    let app = common::app_with("sse-token", |c| {
        c.server.token = Some("a-token-of-sixteen-bytes".into());
    })
    .await;
    let mut stream = Stream::open(&app, "/api/observability/events", None).await;
    let refused = app.call("POST", "/api/observability/metrics/reset").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let id = publish(&app, EventKind::Alert, "x");
    assert_eq!(stream.event().await.0, id.to_string());
    let stats = app.call("GET", "/api/observability/events/stats").await;
    assert_eq!(stats.body["published"], id);
    assert_eq!(stats.body["subscribers"], 1);
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_served_from_the_binary() {
    let app = common::app("dashboard-assets").await;
    for path in ["/", "/dashboard"] {
        let page = app.call("GET", path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            page.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert!(page.text.contains("/dashboard/assets/app.js"));
    }
    let mut total = 0;
    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("views.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let reply = app.call("GET", &format!("/dashboard/assets/{asset}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert!(
            reply.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(
            !reply.text.contains("https://") && !reply.text.contains("@import"),
            "{asset} fetches nothing from elsewhere"
        );
        total += reply.text.len();
    }
    assert!(total < 300 * 1024, "first load {total} bytes");
    let missing = app.call("GET", "/dashboard/assets/evil.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(common::error_code(&missing), "not_found");
}
