//! Pipelines from TOML by name: the registry, typed config errors, observers attached.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::pipeline::{
    PipelineConfig, PipelineConfigError, PipelineObservers, PipelineRegistry, StrategyConfig,
};
use bulwark::retry::{Backoff, ConfigError, RetryEvent, RetryEventKind};

const OPENAI: &str = r#"
[[strategies]]
kind = "rate_limit"
max_requests = 100
time_window = "60s"
burst_size = 20
max_wait = "2s"

[[strategies]]
kind = "bulkhead"
max_concurrent = 8
max_queue = 16
max_wait = "1s"

[[strategies]]
kind = "timeout"
timeout = "30s"

[[strategies]]
kind = "retry"
max_attempts = 4
backoff = { kind = "full_jitter", base = "200ms", cap = "5s" }
budget = { ratio = 0.2, window = "10s", min_retries_per_second = 5 }

[[strategies]]
kind = "circuit_breaker"
failure_threshold = 5
timeout = "30s"

[[strategies]]
kind = "timeout"
timeout = "10s"
"#;

#[test]
fn a_toml_config_builds_the_strategies_in_order_once_per_name() {
    let config: PipelineConfig = toml::from_str(OPENAI).unwrap();
    assert_eq!(config.strategies.len(), 6);
    match &config.strategies[3] {
        StrategyConfig::Retry(retry) => {
            assert_eq!(retry.max_attempts, 4);
            assert_eq!(
                retry.backoff,
                Backoff::full_jitter(Duration::from_millis(200), Duration::from_secs(5))
            );
        }
        other => panic!("expected the retry, got {other:?}"),
    }
    let registry = PipelineRegistry::with_clock(ManualClock::new());
    let pipeline = registry.get_or_create("openai", &config).unwrap();
    assert_eq!(
        pipeline.strategies(),
        vec![
            "rate_limit",
            "bulkhead",
            "timeout",
            "retry",
            "circuit_breaker",
            "timeout"
        ]
    );
    assert_eq!(pipeline.circuit_breaker().unwrap().name(), "openai");
    assert_eq!(pipeline.rate_limiter().unwrap().capacity(), 120);
    assert_eq!(pipeline.bulkhead().unwrap().config().max_queue, 16);
    assert_eq!(
        pipeline.retry().unwrap().budget().unwrap().config().ratio,
        0.2
    );
    // The same name gives the same pipeline, whatever config comes with it: shared state.
    let again = registry
        .get_or_create("openai", &PipelineConfig::default())
        .unwrap();
    again.circuit_breaker().unwrap().force_open();
    let looked_up = registry.get("openai").unwrap();
    assert!(looked_up.circuit_breaker().unwrap().state().is_open());
    assert_eq!(registry.list(), vec!["openai".to_string()]);
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains(r#""cap":"5s""#), "{json}");
    assert_eq!(
        serde_json::from_str::<PipelineConfig>(&json).unwrap(),
        config
    );
}

#[test]
fn config_errors_are_typed_name_the_strategy_and_register_nothing() {
    let registry = PipelineRegistry::new();
    let cases = [
        (
            "kind = \"retry\"\nmax_attempts = 0",
            PipelineConfigError::Retry(ConfigError::ZeroAttempts),
        ),
        (
            "kind = \"retry\"\nbackoff = { kind = \"exponential\", initial = \"1s\", multiplier = 2.0, cap = \"10s\", jitter = 1.5 }",
            PipelineConfigError::Retry(ConfigError::Jitter { jitter: 1.5 }),
        ),
        (
            "kind = \"retry\"\nbudget = { ratio = 1.2 }",
            PipelineConfigError::Retry(ConfigError::BudgetRatio { ratio: 1.2 }),
        ),
        (
            "kind = \"retry\"\nbackoff = { kind = \"full_jitter\", base = \"0s\", cap = \"0s\" }",
            PipelineConfigError::Retry(ConfigError::ZeroCap),
        ),
        (
            "kind = \"bulkhead\"\nmax_concurrent = 0",
            PipelineConfigError::Bulkhead(bulwark::bulkhead::ConfigError::ZeroConcurrency),
        ),
        (
            "kind = \"timeout\"\ntimeout = \"0s\"",
            PipelineConfigError::Timeout(bulwark::timeout::ConfigError::Zero),
        ),
        (
            "kind = \"rate_limit\"\nmax_requests = 0\ntime_window = \"1s\"",
            PipelineConfigError::RateLimit(bulwark::ratelimit::ConfigError::ZeroRequests),
        ),
        (
            "kind = \"circuit_breaker\"\nfailure_threshold = 0",
            PipelineConfigError::CircuitBreaker(bulwark::breaker::ConfigError::Zero {
                field: "failure_threshold",
            }),
        ),
    ];
    for (strategy, expected) in cases {
        let text = format!("[[strategies]]\n{strategy}\n");
        let config: PipelineConfig = toml::from_str(&text).unwrap();
        let error = registry.get_or_create("bad", &config).unwrap_err();
        assert_eq!(error, expected, "{strategy}");
        assert!(!error.to_string().is_empty());
    }
    assert!(registry.is_empty());
    let unknown =
        toml::from_str::<PipelineConfig>("[[strategies]]\nkind = \"retry\"\nattempts = 3\n");
    assert!(unknown.unwrap_err().to_string().contains("attempts"));
}

#[tokio::test]
async fn observers_set_on_the_registry_reach_every_strategy_it_builds() {
    let registry = PipelineRegistry::with_clock(ManualClock::new());
    let attempts = Arc::new(AtomicU32::new(0));
    let a = Arc::clone(&attempts);
    registry.set_observers(
        PipelineObservers::new().retry(Arc::new(move |e: &RetryEvent<'_>| {
            assert_eq!(e.name, "observed");
            if e.kind == RetryEventKind::Attempt {
                a.fetch_add(1, Ordering::SeqCst);
            }
        })),
    );
    let config: PipelineConfig = toml::from_str(
        "[[strategies]]\nkind = \"retry\"\nmax_attempts = 3\nbackoff = { kind = \"constant\", delay = \"0s\" }\n",
    )
    .unwrap();
    let pipeline = registry.get_or_create("observed", &config).unwrap();
    let _ = pipeline
        .execute(|| async { Err::<(), _>("x".to_string()) })
        .await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn resilience_metrics_count_attempts_retries_and_give_ups_by_reason() {
    use bulwark::telemetry::metrics::MetricsRegistry;
    use bulwark::telemetry::resilience_observers::ResilienceMetrics;

    let metrics = MetricsRegistry::default();
    let registry = PipelineRegistry::with_clock(ManualClock::new());
    registry.set_observers(ResilienceMetrics::new(&metrics).observers());
    let config: PipelineConfig = toml::from_str(
        "[[strategies]]\nkind = \"retry\"\nmax_attempts = 3\nbackoff = { kind = \"constant\", delay = \"0s\" }\nbudget = { ratio = 0.0, min_retries_per_second = 1, window = \"1s\" }\n",
    )
    .unwrap();
    let pipeline = registry.get_or_create("llm", &config).unwrap();
    let _ = pipeline
        .execute(|| async { Err::<(), _>("503".to_string()) })
        .await;
    let text = metrics.render_prometheus();
    for line in [
        r#"bulwark_retry_attempts_total{name="llm"} 2"#,
        r#"bulwark_retry_retries_total{name="llm"} 1"#,
        r#"bulwark_retry_gave_up_total{name="llm",reason="budget_exhausted"} 1"#,
        r#"bulwark_retry_budget_exhausted_total{name="llm"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
