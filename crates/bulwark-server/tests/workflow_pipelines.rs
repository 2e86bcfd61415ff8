//! `[pipelines.<name>]` in the server's config: built at start (a bad one stops the start,
//! naming it), its breaker listed by the breaker API from the start, and the demo's tools
//! calling through their named pipelines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_server::AppState;
use bulwark_server::config::Config;
use http::StatusCode;

mod common;

const SEARCH_PIPELINE: &str = r#"
    [[pipelines.search_api.strategies]]
    kind = "retry"
    max_attempts = 4
    backoff = { kind = "constant", delay = "1ms" }

    [[pipelines.search_api.strategies]]
    kind = "circuit_breaker"
    failure_threshold = 10
    timeout = "60s"
"#;

#[tokio::test]
async fn a_configured_pipeline_is_built_at_start_and_the_demo_calls_through_it() {
    let pipelines = Config::from_toml(SEARCH_PIPELINE, "p.toml".as_ref())
        .unwrap()
        .pipelines;
    let app = common::app_with("pipelines", move |config| {
        config.pipelines = pipelines;
        config.demo.failure_rate = 1.0;
        config.workflows.max_attempts = 1;
    })
    .await;
    // Its breaker exists before any call.
    let list = app.call("GET", "/api/observability/circuit-breakers").await;
    assert_eq!(
        list.body["circuit_breakers"][0]["name"], "search_api",
        "{}",
        list.text
    );
    assert_eq!(list.body["circuit_breakers"].as_array().unwrap().len(), 1);

    let run = app.call("POST", "/api/workflows/p1/execute").await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_ne!(run.body["status"], "completed", "{}", run.text);
    // The configured pipeline made four attempts through its breaker (one run attempt of the
    // step: `workflows.max_attempts = 1`).
    let breaker = app
        .call("GET", "/api/observability/circuit-breakers/search_api")
        .await;
    assert_eq!(breaker.body["failures"], 4, "{}", breaker.text);
    assert_eq!(breaker.body["state"], "closed", "{}", breaker.text);
    // The retries are in the metrics, labelled with the pipeline's name.
    let metrics = app.call("GET", "/metrics").await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l.contains("retr") && l.contains("search_api")),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn a_bad_pipeline_refuses_the_start_naming_the_pipeline_and_the_field() {
    let text = "[[pipelines.llm.strategies]]\nkind = \"retry\"\nmax_attempts = 0\n";
    let config = Config::from_toml(text, "bad.toml".as_ref()).unwrap();
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("pipelines.llm"), "{error}");
    assert!(error.contains("max_attempts"), "{error}");
    // The state refuses it too, without creating the breaker.
    let dir = common::TempDir::new("bad-pipeline");
    let mut config = common::config(dir.path());
    config.pipelines = Config::from_toml(text, "bad.toml".as_ref())
        .unwrap()
        .pipelines;
    let error = AppState::from_config(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("llm") && error.contains("max_attempts"),
        "{error}"
    );
}
