//! The manual breaker controls over HTTP: force-open, disable and reset, behind the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use http::{Request, StatusCode};

mod common;

const BREAKER: &str = "/api/observability/circuit-breakers/search_api";

fn post(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

// Issue 11 defect 9: a breaker can be force-opened and disabled from the HTTP API.
#[tokio::test]
async fn a_breaker_is_forced_open_disabled_and_reset_through_the_api() {
    let app = common::app("breaker-controls").await;
    let first = app.call("POST", "/api/workflows/run-1/execute").await;
    assert_eq!(first.body["status"], "completed", "{}", first.text);

    let forced = app.call("POST", &format!("{BREAKER}/force-open")).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(forced.body["state"], "forced_open");
    let refused = app.call("POST", "/api/workflows/run-2/execute").await;
    assert_eq!(refused.body["status"], "waiting", "{}", refused.text);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("search_api"),
        "{}",
        refused.text
    );
    assert_eq!(refused.body["steps_executed"], 0);

    let disabled = app.call("POST", &format!("{BREAKER}/disable")).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(disabled.body["state"], "disabled");
    let shown = app.call("GET", BREAKER).await;
    assert_eq!(shown.body["state"], "disabled");
    let passes = app.call("POST", "/api/workflows/run-2/execute").await;
    assert_eq!(passes.body["status"], "completed", "{}", passes.text);

    let reset = app.call("POST", &format!("{BREAKER}/reset")).await;
    assert_eq!(reset.body["state"], "closed", "{}", reset.text);

    for action in ["force-open", "disable"] {
        let missing = app
            .call(
                "POST",
                &format!("/api/observability/circuit-breakers/nope/{action}"),
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{action}");
        assert_eq!(common::error_code(&missing), "not_found");
    }

    let document = app.call("GET", "/api/openapi.json").await;
    for action in ["force-open", "disable"] {
        let path = format!("/api/observability/circuit-breakers/{{name}}/{action}");
        let operation = &document.body["paths"][&path]["post"];
        assert!(
            operation.is_object(),
            "{path} is not in the OpenAPI document"
        );
        assert!(operation["security"].is_array(), "{path} needs the token");
    }
}

#[tokio::test]
async fn the_breaker_controls_need_the_token_and_change_nothing_without_it() {
    let app = common::app_with("breaker-token", |config| {
        config.server.token = Some("right-token".into());
    })
    .await;
    let run = app
        .send(post("/api/workflows/run-1/execute", Some("right-token")))
        .await;
    assert_eq!(run.body["status"], "completed", "{}", run.text);
    for action in ["force-open", "disable"] {
        let uri = format!("{BREAKER}/{action}");
        for token in [None, Some("wrong-token")] {
            let reply = app.send(post(&uri, token)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{action} {token:?}");
            assert_eq!(common::error_code(&reply), "unauthorized");
        }
        assert_eq!(app.call("GET", BREAKER).await.body["state"], "closed");
    }
    let forced = app
        .send(post(&format!("{BREAKER}/force-open"), Some("right-token")))
        .await;
    assert_eq!(forced.body["state"], "forced_open", "{}", forced.text);
}
