//! Every route through `oneshot`: rate limiters, the workflow endpoint, OpenAPI, auth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;

mod common;

#[tokio::test]
async fn rate_limiters_lists_the_workflow_limiter_and_its_keys() {
    let app = common::app("ratelimiters").await;
    let reply = app.call("GET", "/api/observability/rate-limiters").await;
    assert_eq!(reply.status, StatusCode::OK);
    let limiters = reply.body["rate_limiters"].as_array().unwrap();
    assert_eq!(limiters.len(), 1);
    assert_eq!(limiters[0]["name"], "workflows");
    assert_eq!(limiters[0]["kind"], "keyed");
    assert_eq!(limiters[0]["capacity"], 10);
    assert_eq!(limiters[0]["tracked_keys"], 0);

    app.call("POST", "/api/workflows/run-a/execute").await;
    let reply = app.call("GET", "/api/observability/rate-limiters").await;
    assert_eq!(reply.body["rate_limiters"][0]["tracked_keys"], 1);
}

#[tokio::test]
async fn the_demo_workflow_runs_every_step_with_an_empty_body() {
    let app = common::app("demo").await;
    let reply = app.call("POST", "/api/workflows/run-1/execute").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "completed");
    assert_eq!(reply.body["workflow_id"], "run-1");
    assert_eq!(reply.body["workflow"], "demo");
    assert_eq!(reply.body["steps_completed"], 4);
    assert_eq!(reply.body["steps_total"], 4);
    assert_eq!(reply.body["steps_executed"], 4);
}

#[tokio::test]
async fn a_registered_workflow_is_chosen_by_the_body() {
    let app = common::app("custom").await;
    app.state
        .workflows()
        .register(bulwark::durable::Workflow::new("one").step(
            "only",
            "solo",
            |_ctx, mut state: serde_json::Value| async move {
                state["done"] = json!(true);
                Ok(state)
            },
        ))
        .unwrap();
    let reply = app
        .post_json("/api/workflows/r/execute", r#"{"workflow": "one"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["workflow"], "one");
    assert_eq!(reply.body["steps_completed"], 1);
    let reply = app
        .post_json("/api/workflows/r/execute", r#"{"workflow": "none"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one")
    );
}

#[tokio::test]
async fn a_step_whose_tool_keeps_failing_leaves_the_run_waiting_with_its_progress() {
    let app = common::app_with("failing", |config| {
        config.demo.failure_rate = 1.0;
        config.workflows.max_attempts = 2;
    })
    .await;
    let reply = app.call("POST", "/api/workflows/doomed/execute").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "waiting");
    assert_eq!(reply.body["steps_completed"], 0);
    assert!(
        reply.body["error"].as_str().unwrap().contains("research"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn the_workflow_rate_limit_is_per_run_id_and_answers_429_with_retry_after() {
    let app = common::app_with("limited", |config| {
        config.ratelimit.workflow_max_requests = 2;
    })
    .await;
    for _ in 0..2 {
        let reply = app.call("POST", "/api/workflows/busy/execute").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let reply = app.call("POST", "/api/workflows/busy/execute").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(common::error_code(&reply), "rate_limited");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    // Issue 11 defect 9: the server's own 429 carries the headers the rate-limit layer sends.
    assert_eq!(reply.headers["ratelimit-limit"], "2");
    assert_eq!(reply.headers["ratelimit-remaining"], "0");
    assert_eq!(
        reply.headers["ratelimit-reset"].to_str().unwrap(),
        retry_after.to_string()
    );
    let reply = app.call("POST", "/api/workflows/other/execute").await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "another run id has its own bucket"
    );
}

#[tokio::test]
async fn with_a_token_writes_need_it_and_reads_do_not() {
    let app = common::app_with("token", |config| {
        config.server.token = Some("s3cret".into());
    })
    .await;
    let reply = app.call("GET", "/api/observability/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app.call("POST", "/api/workflows/w/execute").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(common::error_code(&reply), "unauthorized");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    for (header, expected) in [
        ("Bearer s3cret", StatusCode::OK),
        ("bearer s3cret", StatusCode::OK),
        ("Bearer s3cre", StatusCode::UNAUTHORIZED),
        ("Bearer s3cretx", StatusCode::UNAUTHORIZED),
        ("Basic s3cret", StatusCode::UNAUTHORIZED),
        ("s3cret", StatusCode::UNAUTHORIZED),
    ] {
        let reply = app
            .send(
                Request::post("/api/workflows/w/execute")
                    .header("authorization", header)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, expected, "{header}: {}", reply.text);
    }
}

#[tokio::test]
async fn openapi_documents_every_route_and_the_error_shape() {
    let app = common::app("openapi").await;
    let reply = app.call("GET", "/api/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = &reply.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/observability/health", "get"),
        ("/api/observability/rate-limiters", "get"),
        ("/api/workflows/{workflow_id}/execute", "post"),
        ("/api/observability/checkpoints", "get"),
        ("/api/observability/checkpoints/{checkpoint_id}", "get"),
        ("/api/observability/checkpoints/{checkpoint_id}", "delete"),
        ("/api/observability/checkpoints/cleanup", "post"),
        ("/api/observability/circuit-breakers", "get"),
        ("/api/observability/traces", "get"),
        ("/api/observability/traces/{trace_id}", "get"),
        ("/api/observability/metrics", "get"),
        ("/api/observability/metrics/reset", "post"),
        ("/metrics", "get"),
        ("/api/observability/circuit-breakers/{name}", "get"),
        ("/api/observability/circuit-breakers/{name}/reset", "post"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(paths[path].get(method).is_some(), "{method} {path} missing");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every documented error response points at the error shape.
    let execute = &paths["/api/workflows/{workflow_id}/execute"]["post"]["responses"];
    for code in ["400", "401", "404", "409", "413", "415", "429"] {
        let schema = &execute[code]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/ErrorBody", "{code}");
    }
}

#[tokio::test]
async fn with_the_redis_backend_the_workflow_limit_is_shared_through_redis() {
    let app = common::app_with("redis", |config| {
        config.ratelimit.backend = bulwark_server::config::RateLimitBackend::Redis;
        config.ratelimit.url = Some("redis://127.0.0.1:6379".into());
        config.ratelimit.workflow_max_requests = 2;
    })
    .await;
    // A fresh key per test run: Redis outlives the process.
    let run = format!(
        "redis-run-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let uri = format!("/api/workflows/{run}/execute");
    for _ in 0..2 {
        assert_eq!(app.call("POST", &uri).await.status, StatusCode::OK);
    }
    let reply = app.call("POST", &uri).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    let reply = app.call("GET", "/api/observability/rate-limiters").await;
    let limiters = reply.body["rate_limiters"].as_array().unwrap();
    assert!(
        limiters.iter().any(|l| l["kind"] == "redis"),
        "{}",
        reply.text
    );
    let reply = app.call("GET", "/api/observability/health").await;
    assert_eq!(
        reply.body["components"]["rate_limiters"]["status"], "healthy",
        "{}",
        reply.text
    );
}
