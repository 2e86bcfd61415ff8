//! A table of bad requests: each gets the right 4xx in the JSON error shape, and the data
//! folder is left exactly as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use http::{Request, StatusCode};

mod common;

struct Case {
    name: &'static str,
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    uri: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        uri: uri.to_owned(),
        headers: vec![("authorization", "Bearer right-token")],
        body: Vec::new(),
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

impl Case {
    fn json(mut self, body: &str) -> Self {
        self.headers.push(("content-type", "application/json"));
        self.body = body.as_bytes().to_vec();
        self
    }

    fn headers(mut self, headers: Vec<(&'static str, &'static str)>) -> Self {
        self.headers = headers;
        self
    }
}

const BODY_LIMIT: usize = 1024;

fn cases() -> Vec<Case> {
    let execute = "/api/workflows/run-1/execute";
    let oversized = format!(r#"{{"workflow": "{}"}}"#, "x".repeat(BODY_LIMIT * 2));
    vec![
        // Malformed and hostile run ids never reach the checkpoint store.
        case(
            "traversal, encoded",
            "POST",
            "/api/workflows/..%2F..%2Fetc%2Fpasswd/execute",
            400,
            "bad_request",
        ),
        case(
            "dot-dot",
            "POST",
            "/api/workflows/../execute",
            400,
            "bad_request",
        ),
        case(
            "dot-dot, encoded",
            "POST",
            "/api/workflows/%2E%2E/execute",
            400,
            "bad_request",
        ),
        case(
            "leading dot",
            "POST",
            "/api/workflows/.hidden/execute",
            400,
            "bad_request",
        ),
        case(
            "backslash",
            "POST",
            "/api/workflows/a%5Cb/execute",
            400,
            "bad_request",
        ),
        case(
            "NUL byte",
            "POST",
            "/api/workflows/a%00b/execute",
            400,
            "bad_request",
        ),
        case(
            "space",
            "POST",
            "/api/workflows/a%20b/execute",
            400,
            "bad_request",
        ),
        case(
            "too long",
            "POST",
            &format!("/api/workflows/{}/execute", "a".repeat(129)),
            400,
            "bad_request",
        ),
        case(
            "invalid UTF-8",
            "POST",
            "/api/workflows/%FF%FE/execute",
            400,
            "bad_request",
        ),
        // Bodies.
        case("invalid JSON", "POST", execute, 400, "invalid_json").json("{not json"),
        case(
            "JSON of the wrong shape",
            "POST",
            execute,
            400,
            "invalid_json",
        )
        .json(r#"{"workflow": 7}"#),
        case("unknown field", "POST", execute, 400, "invalid_json").json(r#"{"wrokflow": "demo"}"#),
        case("not JSON", "POST", execute, 415, "unsupported_media_type")
            .headers(vec![
                ("authorization", "Bearer right-token"),
                ("content-type", "text/plain"),
            ])
            .json_body_raw("workflow=demo"),
        case("oversized body", "POST", execute, 413, "payload_too_large").json(&oversized),
        case(
            "unknown workflow definition",
            "POST",
            execute,
            404,
            "not_found",
        )
        .json(r#"{"workflow": "nope"}"#),
        // Tokens.
        case("missing token", "POST", execute, 401, "unauthorized").headers(vec![]),
        case("wrong token", "POST", execute, 401, "unauthorized")
            .headers(vec![("authorization", "Bearer wrong-token")]),
        case("token prefix", "POST", execute, 401, "unauthorized")
            .headers(vec![("authorization", "Bearer right")]),
        case("wrong scheme", "POST", execute, 401, "unauthorized")
            .headers(vec![("authorization", "Basic right-token")]),
        // Checkpoint ids: malformed, hostile, unknown.
        case(
            "malformed checkpoint id",
            "GET",
            "/api/observability/checkpoints/not-a-uuid",
            400,
            "bad_request",
        ),
        case(
            "traversal checkpoint id",
            "GET",
            "/api/observability/checkpoints/..%2F..%2Fetc%2Fpasswd",
            400,
            "bad_request",
        ),
        case(
            "traversal checkpoint delete",
            "DELETE",
            "/api/observability/checkpoints/..%2F..%2Fetc%2Fpasswd",
            400,
            "bad_request",
        ),
        case(
            "unknown checkpoint",
            "GET",
            "/api/observability/checkpoints/0190f3c2-7b1a-7c3d-8e4f-0123456789ab",
            404,
            "not_found",
        ),
        case(
            "unknown checkpoint delete",
            "DELETE",
            "/api/observability/checkpoints/0190f3c2-7b1a-7c3d-8e4f-0123456789ab",
            404,
            "not_found",
        ),
        case(
            "delete without token",
            "DELETE",
            "/api/observability/checkpoints/0190f3c2-7b1a-7c3d-8e4f-0123456789ab",
            401,
            "unauthorized",
        )
        .headers(vec![]),
        case(
            "malformed cursor",
            "GET",
            "/api/observability/checkpoints?cursor=..%2Fx",
            400,
            "bad_request",
        ),
        case(
            "limit zero",
            "GET",
            "/api/observability/checkpoints?limit=0",
            400,
            "bad_request",
        ),
        case(
            "limit not a number",
            "GET",
            "/api/observability/checkpoints?limit=lots",
            400,
            "bad_request",
        ),
        case(
            "unknown query key",
            "GET",
            "/api/observability/checkpoints?agent=x",
            400,
            "bad_request",
        ),
        case(
            "cleanup invalid JSON",
            "POST",
            "/api/observability/checkpoints/cleanup",
            400,
            "invalid_json",
        )
        .json("{\"keep_last\": }"),
        case(
            "cleanup wrong type",
            "POST",
            "/api/observability/checkpoints/cleanup",
            400,
            "invalid_json",
        )
        .json(r#"{"keep_last": "all"}"#),
        case(
            "cleanup without content type",
            "POST",
            "/api/observability/checkpoints/cleanup",
            415,
            "unsupported_media_type",
        )
        .json_body_raw(r#"{"keep_last": 1}"#),
        case(
            "cleanup oversized",
            "POST",
            "/api/observability/checkpoints/cleanup",
            413,
            "payload_too_large",
        )
        .json(&oversized),
        case(
            "cleanup wrong token",
            "POST",
            "/api/observability/checkpoints/cleanup",
            401,
            "unauthorized",
        )
        .headers(vec![
            ("authorization", "Bearer nope"),
            ("content-type", "application/json"),
        ])
        .json_body_raw(r#"{"keep_last": 0}"#),
        // Traces and metrics.
        case(
            "malformed trace id",
            "GET",
            "/api/observability/traces/nothex",
            400,
            "bad_request",
        ),
        case(
            "traversal trace id",
            "GET",
            "/api/observability/traces/..%2F..%2Fetc%2Fpasswd",
            400,
            "bad_request",
        ),
        case(
            "unknown trace",
            "GET",
            "/api/observability/traces/4bf92f3577b34da6a3ce929d0e0e4736",
            404,
            "not_found",
        ),
        case(
            "metrics reset without token",
            "POST",
            "/api/observability/metrics/reset",
            401,
            "unauthorized",
        )
        .headers(vec![]),
        // Breakers.
        case(
            "unknown breaker",
            "GET",
            "/api/observability/circuit-breakers/nope",
            404,
            "not_found",
        ),
        case(
            "unknown breaker reset",
            "POST",
            "/api/observability/circuit-breakers/nope/reset",
            404,
            "not_found",
        ),
        case(
            "traversal breaker",
            "GET",
            "/api/observability/circuit-breakers/..%2F..%2Fetc%2Fpasswd",
            404,
            "not_found",
        ),
        case(
            "reset without token",
            "POST",
            "/api/observability/circuit-breakers/search_api/reset",
            401,
            "unauthorized",
        )
        .headers(vec![]),
        // Routes and methods.
        case(
            "unknown route",
            "GET",
            "/api/observability/..%2F..%2Fetc%2Fpasswd",
            404,
            "not_found",
        ),
        case(
            "wrong method",
            "PUT",
            "/api/observability/health",
            405,
            "method_not_allowed",
        ),
    ]
}

trait RawBody {
    fn json_body_raw(self, body: &str) -> Self;
}

impl RawBody for Case {
    fn json_body_raw(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self
    }
}

#[tokio::test]
async fn every_bad_input_gets_its_4xx_in_the_error_shape_and_changes_nothing_on_disk() {
    let app = common::app_with("bad-inputs", |config| {
        config.server.token = Some("right-token".into());
        config.server.body_limit = BODY_LIMIT;
    })
    .await;
    // Something on disk that a bad request could damage.
    let seed = app
        .send(
            Request::post("/api/workflows/seed/execute")
                .header("authorization", "Bearer right-token")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(seed.body["steps_completed"], 4, "{}", seed.text);
    let before = common::snapshot(app.dir.path());
    assert!(before.len() > 4, "{before:?}");
    let mut failures = Vec::new();
    for case in cases() {
        let mut request = Request::builder().method(case.method).uri(&case.uri);
        for (name, value) in &case.headers {
            request = request.header(*name, *value);
        }
        let reply = app
            .send(request.body(Body::from(case.body.clone())).unwrap())
            .await;
        let code = reply.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error shape>");
        let message_ok = reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        if reply.status != case.status || code != case.code || !message_ok {
            failures.push(format!(
                "{}: {} {} -> {} {} (wanted {} {})",
                case.name, case.method, case.uri, reply.status, reply.text, case.status, case.code
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(
        common::snapshot(app.dir.path()),
        before,
        "a bad request changed the data dir"
    );
    assert!(!std::path::Path::new("/etc/passwd.tmp").exists());
}
