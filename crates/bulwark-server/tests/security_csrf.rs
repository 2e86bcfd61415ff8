//! What a web page in the operator's browser can make it send (issue 12 defects 2 and 3):
//! cross-site writes, DNS-rebound hosts, `text/plain` and other non-JSON bodies, non-object
//! JSON. Every write route refuses all of them in the JSON error shape, in the no-token mode
//! (the one they threaten), and nothing changes: not the data folder, not the metrics, not a
//! breaker. Same-origin requests, as a dashboard served here would send, still pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use bulwark::breaker::{CircuitBreakerConfig, State as BreakerState};
use http::{Request, StatusCode};

mod common;

use common::{App, error_code};

/// Every write route, with a body it would accept.
fn write_routes(checkpoint: &str) -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("POST", "/api/observability/metrics/reset".into(), ""),
        (
            "POST",
            "/api/observability/circuit-breakers/probe/reset".into(),
            "",
        ),
        ("POST", "/api/workflows/victim/execute".into(), "{}"),
        (
            "POST",
            "/api/observability/checkpoints/cleanup".into(),
            r#"{"keep_last": 0}"#,
        ),
        (
            "DELETE",
            format!("/api/observability/checkpoints/{checkpoint}"),
            "",
        ),
    ]
}

/// A hostile variant of a request: the headers it adds and the answer it must get.
struct Attack {
    name: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    /// Replaces the JSON content type (`None`: no content type at all).
    content_type: Option<&'static str>,
    /// Sends this body instead of the route's.
    body: Option<&'static str>,
    status: StatusCode,
    code: &'static str,
}

fn attacks() -> Vec<Attack> {
    let json = Some("application/json");
    let forbidden = StatusCode::FORBIDDEN;
    let attack = |name, headers, content_type, body, status, code| Attack {
        name,
        headers,
        content_type,
        body,
        status,
        code,
    };
    vec![
        attack(
            "cross-site Origin",
            vec![("origin", "https://evil.example")],
            json,
            None,
            forbidden,
            "cross_origin",
        ),
        attack(
            "another port on localhost",
            vec![("origin", "http://localhost:3000")],
            json,
            None,
            forbidden,
            "cross_origin",
        ),
        attack(
            "Origin null (sandboxed page)",
            vec![("origin", "null")],
            json,
            None,
            forbidden,
            "cross_origin",
        ),
        attack(
            "Sec-Fetch-Site cross-site",
            vec![("sec-fetch-site", "cross-site")],
            json,
            None,
            forbidden,
            "cross_origin",
        ),
        attack(
            "Sec-Fetch-Site same-site",
            vec![("sec-fetch-site", "same-site")],
            json,
            None,
            forbidden,
            "cross_origin",
        ),
        attack(
            "DNS-rebound Host",
            vec![("host", "evil.example:8000")],
            json,
            None,
            forbidden,
            "host_not_allowed",
        ),
        attack(
            "text/plain body (a simple request, no preflight)",
            vec![],
            Some("text/plain"),
            Some("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        attack(
            "text/plain, empty body",
            vec![],
            Some("text/plain"),
            Some(""),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        attack(
            "form body",
            vec![],
            Some("application/x-www-form-urlencoded"),
            Some("keep_last=0"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        attack(
            "application/jsonp",
            vec![],
            Some("application/jsonp"),
            Some("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        attack(
            "a body without a content type",
            vec![],
            None,
            Some("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ]
}

fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: &str,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8000");
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::from(body.to_owned())).unwrap();
    // `host` given twice would be two values: keep the attack's.
    if let Some((_, host)) = headers.iter().find(|(name, _)| *name == "host") {
        request.headers_mut().insert("host", host.parse().unwrap());
    }
    request
}

/// Something every write route would change: checkpoints on disk, a counted request, an
/// open breaker.
async fn seeded(label: &str) -> (App, String) {
    let app = common::app_with(label, |config| {
        config.server.listen = "127.0.0.1:8000".parse().unwrap();
        // The disk is compared before and after the refused requests: no background
        // compaction may change it meanwhile.
        config.checkpoints.compress_before_ack = true;
    })
    .await;
    for _ in 0..2 {
        let run = app
            .send(request(
                "POST",
                "/api/workflows/seed/execute",
                &[],
                None,
                "",
            ))
            .await;
        assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    }
    let list = app
        .call("GET", "/api/observability/checkpoints?workflow_id=seed")
        .await;
    let checkpoint = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.state
        .breakers()
        .get_or_create("probe", CircuitBreakerConfig::default())
        .unwrap()
        .force_open();
    (app, checkpoint)
}

async fn requests_counted(app: &App) -> f64 {
    let snapshot = app.call("GET", "/api/observability/metrics").await;
    snapshot.body["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "bulwark_http_requests_total")
        .flat_map(|m| m["series"].as_array().unwrap().clone())
        .map(|s| s["value"].as_f64().unwrap_or(0.0))
        .sum()
}

#[tokio::test]
async fn every_write_route_refuses_cross_site_rebound_and_non_json_requests_and_nothing_changes() {
    let (app, checkpoint) = seeded("csrf").await;
    let before = common::snapshot(app.dir.path());
    let counted = requests_counted(&app).await;
    assert!(counted > 0.0);
    let mut failures = Vec::new();
    for (method, uri, body) in write_routes(&checkpoint) {
        for attack in attacks() {
            let reply = app
                .send(request(
                    method,
                    &uri,
                    &attack.headers,
                    attack.content_type,
                    attack.body.unwrap_or(body),
                ))
                .await;
            let code = reply.body["error"]["code"].as_str().unwrap_or("<none>");
            if reply.status != attack.status || code != attack.code {
                failures.push(format!(
                    "{}: {method} {uri} -> {} {}",
                    attack.name, reply.status, reply.text
                ));
            } else {
                error_code(&reply);
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(
        common::snapshot(app.dir.path()),
        before,
        "the data folder changed"
    );
    assert!(
        requests_counted(&app).await >= counted,
        "the metrics were reset"
    );
    let probe = app.state.breakers().get("probe").unwrap();
    assert_eq!(
        probe.state(),
        BreakerState::ForcedOpen,
        "the breaker was reset"
    );
}

#[tokio::test]
async fn a_foreign_host_is_refused_on_reads_too_unless_allowed() {
    let app = common::app("csrf-host").await;
    let read = |host: &'static str| {
        Request::get("/api/observability/health")
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    let refused = app.send(read("rebound.example")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(error_code(&refused), "host_not_allowed");
    for host in ["localhost:8000", "127.0.0.1", "[::1]:1234", "LOCALHOST"] {
        let reply = app.send(read(host)).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text);
    }
    let configured = common::app_with("csrf-allowed", |config| {
        config.server.allowed_hosts = vec!["bulwark.internal".into()];
    })
    .await;
    assert_eq!(
        configured.send(read("bulwark.internal:8000")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        configured.send(read("rebound.example")).await.status,
        StatusCode::FORBIDDEN
    );
    let any = common::app_with("csrf-any", |config| {
        config.server.allowed_hosts = vec!["*".into()];
    })
    .await;
    assert_eq!(
        any.send(read("rebound.example")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn same_origin_writes_from_a_dashboard_on_this_server_pass() {
    let (app, _) = seeded("csrf-same-origin").await;
    for headers in [
        vec![
            ("origin", "http://127.0.0.1:8000"),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![("sec-fetch-site", "none")],
        vec![],
    ] {
        let reply = app
            .send(request(
                "POST",
                "/api/observability/circuit-breakers/probe/reset",
                &headers,
                Some("application/json; charset=utf-8"),
                "",
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{headers:?}: {}", reply.text);
    }
    let run = app
        .send(request(
            "POST",
            "/api/workflows/dashboard/execute",
            &[("origin", "http://127.0.0.1:8000")],
            Some("Application/JSON;charset=UTF-8"),
            r#"{"workflow": "demo"}"#,
        ))
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
}

#[tokio::test]
async fn non_object_json_bodies_are_refused_and_remove_nothing() {
    // Issue 12 defect 3: `[0]` was read as `keep_last: 0`.
    let (app, _) = seeded("csrf-non-object").await;
    let before = common::snapshot(app.dir.path());
    for body in ["[0]", "[null]", "0", "\"keep_last\"", "[]"] {
        for uri in [
            "/api/observability/checkpoints/cleanup",
            "/api/workflows/seed/execute",
        ] {
            let reply = app.post_json(uri, body).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{uri} {body}: {}",
                reply.text
            );
            assert_eq!(error_code(&reply), "invalid_json");
        }
    }
    // `null` is no body for a run (its body is optional), but not a cleanup policy.
    let null = app
        .post_json("/api/observability/checkpoints/cleanup", "null")
        .await;
    assert_eq!(null.status, StatusCode::BAD_REQUEST, "{}", null.text);
    let unknown = app
        .post_json("/api/workflows/seed/execute", r#"{"workflw": "demo"}"#)
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    assert_eq!(common::snapshot(app.dir.path()), before);
}
