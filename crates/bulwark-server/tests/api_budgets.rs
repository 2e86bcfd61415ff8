//! `[budgets]` from TOML, `GET /api/observability/budgets`, and usage and cost in `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use bulwark::budget::{Charge, Usage};
use bulwark_server::config::Config;

const TOML: &str = r#"
[budgets]
reservation_ttl = "5m"
[[budgets.budget]]
name = "tenant:daily_cost"
unit = "cost"
limit = 5_000_000_000
soft_limit = 4_000_000_000
period = "day"
[[budgets.budget]]
name = "gpt-4o:tpm"
unit = "tokens"
limit = 30000
period = { every = "60s" }
[budgets.prices."gpt-4o"]
input = 2.50
cached_input = 1.25
output = 10.00
"#;

#[tokio::test]
async fn budgets_from_the_config_are_listed_with_their_spending_and_counted_in_metrics() {
    let parsed = Config::from_toml(TOML, Path::new("bulwark.toml")).unwrap();
    let app = common::app_with("budgets", |config| config.budgets = parsed.budgets).await;
    let ledger = app.state.budgets();
    let stack = [
        ledger.budget("gpt-4o:tpm", "").unwrap(),
        ledger.budget("tenant:daily_cost", "acme").unwrap(),
    ];
    let held = ledger
        .reserve(
            &stack,
            &Charge::new("gpt-4o", Usage::estimate(1_000, 1_000)),
        )
        .unwrap();
    held.settle(Usage::new(1_000, 200));

    let reply = app.call("GET", "/api/observability/budgets").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let budgets = reply.body["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2);
    let tpm = &budgets[0];
    assert_eq!(
        (tpm["budget"].as_str(), tpm["unit"].as_str()),
        (Some("gpt-4o:tpm"), Some("tokens"))
    );
    assert_eq!(
        (tpm["spent"].as_u64(), tpm["remaining"].as_u64()),
        (Some(1_200), Some(28_800))
    );
    let cost = &budgets[1];
    // $0.0025 + $0.002 = 4 500 000 nano-dollars.
    assert_eq!(
        (cost["key"].as_str(), cost["spent"].as_u64()),
        (Some("acme"), Some(4_500_000))
    );
    assert!(cost["resets_in_ms"].as_u64().unwrap() <= 86_400_000);

    let metrics = app.call("GET", "/metrics").await.text;
    let line = |prefix: &str, label: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix) && l.contains(label))
            .map(str::to_owned)
    };
    let output = line(
        "gen_ai_client_token_usage_total{",
        r#"gen_ai_token_type="output""#,
    );
    assert!(
        output
            .as_deref()
            .is_some_and(|l| l.contains(r#"gen_ai_request_model="gpt-4o""#) && l.ends_with(" 200")),
        "{metrics}"
    );
    let input = line(
        "gen_ai_client_token_usage_total{",
        r#"gen_ai_token_type="input""#,
    );
    assert!(
        input.as_deref().is_some_and(|l| l.ends_with(" 1000")),
        "{metrics}"
    );
    let cost = line("bulwark_budget_cost_nano_usd_total{", "gpt-4o");
    assert!(
        cost.as_deref().is_some_and(|l| l.ends_with(" 4500000")),
        "{metrics}"
    );
}

#[test]
fn a_bad_budgets_section_is_a_config_error() {
    for bad in [
        "[budgets]\nnope = 1",
        "[[budgets.budget]]\nname = \"x\"\nunit = \"gallons\"\nlimit = 1\nperiod = \"day\"",
        "[[budgets.budget]]\nname = \"x\"\nunit = \"tokens\"\nlimit = -1\nperiod = \"day\"",
        "[budgets]\nreservation_ttl = \"soon\"",
    ] {
        assert!(
            Config::from_toml(bad, Path::new("b.toml")).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_price_that_is_not_a_dollar_amount_fails_the_start() {
    let parsed = Config::from_toml(
        "[budgets.prices.m]\ninput = -2.0\noutput = 1.0",
        Path::new("b.toml"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.budgets = parsed.budgets;
    let error = bulwark_server::state::AppState::from_config(&config)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("[budgets.prices]"), "{error}");
}
