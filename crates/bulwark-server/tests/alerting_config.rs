//! `[alerting]` at start and through the API: a bad rule stops `bulwark serve` with the rule
//! and the field named; the rules and alerts endpoints list what the engine holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;

const GOOD: &str = r#"
[[alerting.rules]]
name = "ToolBreakerOpen"
condition = "breaker_state"
breaker = "*_api"
for = "30s"
labels = { severity = "page" }

[[alerting.rules]]
name = "LimiterRejecting"
condition = "rate"
metric = "bulwark_ratelimit_rejected_total"
selector = '{name="workflows"}'
window = "5m"
threshold = 1
"#;

#[test]
fn a_bad_rule_stops_the_server_naming_the_rule_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            GOOD.replace(r#"threshold = 1"#, r#"threshold = "lots""#),
            "LimiterRejecting",
            "threshold",
        ),
        (
            GOOD.replace(r#"window = "5m""#, r#"window = "5 fortnights-ish""#),
            "LimiterRejecting",
            "window",
        ),
        (
            GOOD.replace(r#""*_api""#, r#""[a-z]+_api""#),
            "ToolBreakerOpen",
            "breaker",
        ),
        (
            GOOD.replace("bulwark_ratelimit_rejected_total", "bulwark_no_such_metric"),
            "LimiterRejecting",
            "metric",
        ),
        (
            GOOD.replace("LimiterRejecting", "ToolBreakerOpen"),
            "ToolBreakerOpen",
            "name",
        ),
    ];
    for (i, (text, rule, field)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        let data = dir.path().join(format!("data-{i}"));
        std::fs::write(
            &path,
            format!(
                "[server]\ndata_dir = {:?}\n{text}",
                data.display().to_string()
            ),
        )
        .unwrap();
        let port = common::free_port().to_string();
        let listen = format!("127.0.0.1:{port}");
        let out = common::bulwark(
            &[
                "serve",
                "--listen",
                &listen,
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started: {stderr}");
        assert!(
            stderr.contains(&format!("`{rule}`")) && stderr.contains(&format!("`{field}`")),
            "case {i}: {stderr}"
        );
        // The export refuses the same file.
        let out = common::bulwark(
            &["alerts", "export-rules", "--config", path.to_str().unwrap()],
            &[],
        )
        .output()
        .unwrap();
        assert!(
            !out.status.success(),
            "case {i}: export accepted a bad rule"
        );
    }
}

#[tokio::test]
async fn the_rules_and_alerts_endpoints_list_what_the_engine_holds() {
    let app = common::app_with("alerting-api", |config| {
        config.alerting = toml::from_str::<bulwark_server::config::Config>(GOOD)
            .unwrap()
            .alerting;
        config.alerting.log = false;
        config.demo.failure_rate = 1.0;
        config.breakers.failure_threshold = 1;
    })
    .await;
    let rules = app.call("GET", "/api/observability/alert-rules").await;
    assert_eq!(rules.status, StatusCode::OK);
    assert_eq!(rules.body["interval_ms"], 15_000);
    assert_eq!(rules.body["rules"][0]["name"], "ToolBreakerOpen");
    assert_eq!(rules.body["rules"][0]["for_ms"], 30_000);
    assert_eq!(
        rules.body["rules"][1]["expr"],
        r#"rate(bulwark_ratelimit_rejected_total{name="workflows"}[5m]) > 1"#
    );

    let _ = app.call("POST", "/api/workflows/doomed/execute").await;
    app.state.alerts().evaluate();
    let alerts = app.call("GET", "/api/observability/alerts").await;
    assert_eq!(alerts.status, StatusCode::OK, "{}", alerts.text);
    let list = alerts.body["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", alerts.text);
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(list[0]["labels"]["name"], "search_api");
    assert!(list[0]["next_trial_in_ms"].as_u64().is_some());
    let firing = app
        .call("GET", "/api/observability/alerts?state=firing")
        .await;
    assert!(firing.body["alerts"].as_array().unwrap().is_empty());
    let bad = app
        .call("GET", "/api/observability/alerts?state=burning")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let metrics = app.call("GET", "/metrics").await;
    assert!(
        metrics
            .text
            .contains(r#"bulwark_alerts_firing{rule="ToolBreakerOpen"} 0"#),
        "{}",
        metrics.text
    );
}

/// The README's alerting example is a config the server accepts, and exports.
#[test]
fn the_readmes_alerting_example_is_a_valid_config() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Alerting").unwrap()..];
    let block = &section[section.find("```toml").unwrap() + 7..];
    let block = &block[..block.find("```").unwrap()];
    let config = bulwark_server::config::Config::from_toml(block, "README.md".as_ref()).unwrap();
    config.validate().unwrap();
    let rules = config.alerting.rules().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["ToolBreakerOpen", "WorkflowLimiterRejecting", "SlowSteps"]
    );
    let yaml = bulwark::alerting::export::prometheus_rules(
        &rules,
        "bulwark",
        config.alerting.interval().unwrap(),
    );
    assert!(
        yaml.contains(r#"rate(bulwark_ratelimit_rejected_total{name=\"workflows\"}[5m]) > 0.5"#),
        "{yaml}"
    );
}
