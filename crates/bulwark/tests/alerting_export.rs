//! Exported Prometheus rules: the expressions for each condition, and `promtool check rules`
//! (Debian's `prometheus` package, found through BULWARK_PROMTOOL) accepts the file.
#![cfg(feature = "alerting")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bulwark::alerting::export::{expression, prometheus_rules};
use bulwark::alerting::{AlertRule, Comparison, Condition, NamePattern, parse_selector};
use bulwark::breaker::State;

fn rules() -> Vec<AlertRule> {
    vec![
        AlertRule::new(
            "PaymentBreakerOpen",
            Condition::BreakerState {
                breaker: NamePattern::new("pay*.v2").unwrap(),
                states: vec![State::Open, State::HalfOpen],
                min_open: Duration::from_secs(30),
            },
        )
        .with_for(Duration::from_secs(10))
        .with_keep_firing_for(Duration::from_secs(60))
        .with_label("severity", "page")
        .with_annotation(
            "summary",
            "Breaker {{ $labels.name }} is \"{{ $labels.state }}\"",
        )
        .with_annotation("runbook_url", "https://runbooks.example/breakers"),
        AlertRule::new(
            "LimiterRejecting",
            Condition::Rate {
                metric: "bulwark_ratelimit_rejected_total".into(),
                matchers: parse_selector(r#"{name="workflows"}"#).unwrap(),
                window: Duration::from_secs(300),
                op: Comparison::Above,
                threshold: 5.0,
            },
        ),
        AlertRule::new(
            "QueueDeep",
            Condition::Gauge {
                metric: "queue_depth".into(),
                matchers: parse_selector(r#"{queue!~"test.*"}"#).unwrap(),
                op: Comparison::AtLeast,
                threshold: 100.0,
            },
        ),
        AlertRule::new(
            "SlowCalls",
            Condition::Quantile {
                metric: "bulwark_circuitbreaker_calls_seconds".into(),
                matchers: Vec::new(),
                quantile: 0.99,
                window: Duration::from_secs(600),
                op: Comparison::Above,
                threshold: 2.5,
            },
        ),
        AlertRule::new(
            "RunStuck",
            Condition::Stuck {
                metric: "workflow_steps".into(),
                matchers: Vec::new(),
                window: Duration::from_secs(900),
            },
        ),
        AlertRule::new(
            "CheckpointCorrupt",
            Condition::CheckpointCorrupt {
                window: Duration::from_secs(3600),
            },
        ),
    ]
}

#[test]
fn each_condition_becomes_the_documented_expression() {
    let exprs: Vec<(String, Duration)> = rules().iter().map(expression).collect();
    assert_eq!(
        exprs[0].0,
        r#"bulwark_circuitbreaker_state{name=~"pay.*\\.v2",state=~"open|half_open"} == 1"#
    );
    assert_eq!(
        exprs[0].1,
        Duration::from_secs(30),
        "for = max(for, min_open)"
    );
    assert_eq!(
        exprs[1].0,
        r#"rate(bulwark_ratelimit_rejected_total{name="workflows"}[5m]) > 5"#
    );
    assert_eq!(exprs[2].0, r#"queue_depth{queue!~"test.*"} >= 100"#);
    assert_eq!(
        exprs[3].0,
        "histogram_quantile(0.99, rate(bulwark_circuitbreaker_calls_seconds_bucket{}[10m])) > 2.5"
    );
    assert_eq!(exprs[4].0, "increase(workflow_steps_total{}[15m]) == 0");
    assert_eq!(
        exprs[5].0,
        "increase(bulwark_checkpoint_corruptions_total[1h]) > 0"
    );
}

fn promtool_check(promtool: &str, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulwark.rules.yml");
    std::fs::write(&path, text).unwrap();
    std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn promtool_check_rules_accepts_the_exported_file() {
    let Some(promtool) = support::required_env("BULWARK_PROMTOOL") else {
        return;
    };
    let text = prometheus_rules(&rules(), "bulwark", Duration::from_secs(15));
    let out = promtool_check(&promtool, &text);
    assert!(
        out.status.success(),
        "promtool refused the rules:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 6 rules found"));
    // An empty rule set is a valid file too.
    let out = promtool_check(
        &promtool,
        &prometheus_rules(&[], "bulwark", Duration::from_secs(15)),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
