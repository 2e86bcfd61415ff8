//! The metrics registry: original calls, facade, cap, reset, renderings, primitives' metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use bulwark::telemetry::metrics::names::{
    CHECKPOINT_BYTES, CIRCUITBREAKER_CALLS_SECONDS, CIRCUITBREAKER_STATE,
};
use bulwark::telemetry::metrics::{
    BreakerMetrics, CheckpointMetrics, MetricKind, MetricsConfig, MetricsError, MetricsRegistry,
    SeriesValue,
};
use bulwark::telemetry::observers::RateLimitMetrics;

fn value(registry: &MetricsRegistry, name: &str, labels: &[(&str, &str)]) -> Option<SeriesValue> {
    let snapshot = registry.snapshot();
    let metric = snapshot.metrics.into_iter().find(|m| m.name == name)?;
    metric
        .series
        .into_iter()
        .find(|s| {
            s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[test]
fn the_original_calls_record_counters_gauges_and_histograms() {
    let registry = MetricsRegistry::default();
    registry
        .increment_counter("tool_calls", &[("tool", "search")])
        .unwrap();
    registry
        .increment_counter("tool_calls", &[("tool", "search")])
        .unwrap();
    registry
        .add_counter("tool_calls", 5, &[("tool", "browse")])
        .unwrap();
    registry.set_gauge("active_agents", 3.5, &[]).unwrap();
    registry.set_gauge("active_agents", 2.0, &[]).unwrap();
    for v in [0.003, 0.2, 0.2, 7.0, 100.0] {
        registry.record_histogram("step_seconds", v, &[]).unwrap();
    }
    assert_eq!(
        value(&registry, "tool_calls", &[("tool", "search")]),
        Some(SeriesValue::Counter { value: 2 })
    );
    assert_eq!(
        value(&registry, "tool_calls", &[("tool", "browse")]),
        Some(SeriesValue::Counter { value: 5 })
    );
    assert_eq!(
        value(&registry, "active_agents", &[]),
        Some(SeriesValue::Gauge { value: 2.0 })
    );
    let Some(SeriesValue::Histogram {
        count,
        sum,
        buckets,
    }) = value(&registry, "step_seconds", &[])
    else {
        panic!("no histogram");
    };
    assert_eq!(count, 5);
    assert!((sum - 107.403).abs() < 1e-9);
    let at = |le: f64| buckets.iter().find(|b| b.le == le).unwrap().count;
    assert_eq!(at(0.005), 1);
    assert_eq!(at(0.25), 3);
    assert_eq!(at(5.0), 3);
    assert_eq!(at(10.0), 4);
}

#[test]
fn labels_are_one_series_whatever_their_order() {
    let registry = MetricsRegistry::default();
    registry
        .increment_counter("calls", &[("a", "1"), ("b", "2")])
        .unwrap();
    registry
        .increment_counter("calls", &[("b", "2"), ("a", "1")])
        .unwrap();
    assert_eq!(
        value(&registry, "calls", &[("a", "1"), ("b", "2")]),
        Some(SeriesValue::Counter { value: 2 })
    );
}

#[test]
fn bad_names_and_kind_conflicts_are_typed_errors() {
    let registry = MetricsRegistry::default();
    assert_eq!(
        registry.increment_counter("9lives", &[]),
        Err(MetricsError::InvalidName("9lives".into()))
    );
    assert_eq!(
        registry.increment_counter("ok", &[("bad-label", "x")]),
        Err(MetricsError::InvalidLabel("bad-label".into()))
    );
    registry.set_gauge("depth", 1.0, &[]).unwrap();
    assert!(matches!(
        registry.increment_counter("depth", &[]),
        Err(MetricsError::KindMismatch {
            existing: "gauge",
            requested: "counter",
            ..
        })
    ));
    assert!(
        MetricsConfig::default()
            .with_buckets("x", vec![1.0, 1.0])
            .is_err()
    );
    assert!(MetricsConfig::default().with_buckets("x", vec![]).is_err());
}

#[test]
fn the_metrics_facade_feeds_the_same_registry() {
    let registry = MetricsRegistry::default();
    registry
        .increment_counter("facade_hits", &[("route", "/a")])
        .unwrap();
    metrics::with_local_recorder(&registry, || {
        metrics::counter!("facade_hits", "route" => "/a").increment(2);
        metrics::gauge!("facade.depth").set(4.0);
        metrics::histogram!("facade_seconds").record(0.02);
        metrics::describe_counter!("facade_hits", "Hits through the facade.");
    });
    assert_eq!(
        value(&registry, "facade_hits", &[("route", "/a")]),
        Some(SeriesValue::Counter { value: 3 })
    );
    // Names that are not valid Prometheus names are made valid.
    assert_eq!(
        value(&registry, "facade_depth", &[]),
        Some(SeriesValue::Gauge { value: 4.0 })
    );
    let text = registry.render_prometheus();
    assert!(text.contains("# HELP facade_hits_total Hits through the facade."));
    assert!(text.contains("facade_seconds_bucket{le=\"0.025\"} 1"));
}

#[test]
fn label_sets_past_the_cap_fold_into_one_counted_series() {
    let registry = MetricsRegistry::new(MetricsConfig::default().with_max_series_per_metric(10));
    metrics::with_local_recorder(&registry, || {
        for run in 0..1000 {
            metrics::counter!("runs", "run_id" => run.to_string()).increment(1);
        }
    });
    let snapshot = registry.snapshot();
    let runs = snapshot.metrics.iter().find(|m| m.name == "runs").unwrap();
    assert_eq!(runs.series.len(), 11, "10 series plus the overflow series");
    assert_eq!(runs.overflowed, 990);
    assert_eq!(
        value(&registry, "runs", &[("otel_metric_overflow", "true")]),
        Some(SeriesValue::Counter { value: 990 })
    );
    let text = registry.render_prometheus();
    assert!(text.contains("bulwark_metrics_overflow_total{metric=\"runs\"} 990"));
}

#[test]
fn reset_zeroes_values_and_keeps_handles_working() {
    let registry = MetricsRegistry::default();
    let handle = registry.counter("jobs", &[]).unwrap();
    handle.increment(7);
    registry.record_histogram("lat_seconds", 0.1, &[]).unwrap();
    registry.reset();
    assert_eq!(
        value(&registry, "jobs", &[]),
        Some(SeriesValue::Counter { value: 0 })
    );
    let Some(SeriesValue::Histogram { count, buckets, .. }) = value(&registry, "lat_seconds", &[])
    else {
        panic!()
    };
    assert_eq!(count, 0);
    assert!(buckets.iter().all(|b| b.count == 0));
    handle.increment(1);
    assert_eq!(
        value(&registry, "jobs", &[]),
        Some(SeriesValue::Counter { value: 1 })
    );
}

// Issue 11 defect 2: a reset must not blank gauges, which describe the present.
#[test]
fn reset_keeps_gauges_which_describe_the_present() {
    let registry = MetricsRegistry::default();
    registry
        .set_gauge("queue_depth", 3.0, &[("queue", "a")])
        .unwrap();
    registry.increment_counter("jobs", &[]).unwrap();
    registry.reset();
    assert_eq!(
        value(&registry, "queue_depth", &[("queue", "a")]),
        Some(SeriesValue::Gauge { value: 3.0 })
    );
    assert_eq!(
        value(&registry, "jobs", &[]),
        Some(SeriesValue::Counter { value: 0 })
    );
}

#[test]
fn histograms_use_configured_boundaries() {
    let config = MetricsConfig::default()
        .with_buckets("tokens", vec![100.0, 1000.0, 10000.0])
        .unwrap();
    let registry = MetricsRegistry::new(config);
    registry.record_histogram("tokens", 150.0, &[]).unwrap();
    registry
        .record_histogram("payload_bytes", 5000.0, &[])
        .unwrap();
    let text = registry.render_prometheus();
    assert!(text.contains("tokens_bucket{le=\"100\"} 0"));
    assert!(text.contains("tokens_bucket{le=\"1000\"} 1"));
    assert!(text.contains("tokens_bucket{le=\"+Inf\"} 1"));
    assert!(
        text.contains("payload_bytes_bucket{le=\"16384\"} 1"),
        "{text}"
    );
    assert!(!text.contains("quantile"), "never a summary");
}

#[test]
fn the_json_snapshot_serializes_every_kind() {
    let registry = MetricsRegistry::default();
    registry.increment_counter("c", &[("k", "v")]).unwrap();
    registry.set_gauge("g", f64::NAN, &[]).unwrap();
    registry.record_histogram("h_seconds", 1.0, &[]).unwrap();
    let json = serde_json::to_value(registry.snapshot()).unwrap();
    let metrics = json["metrics"].as_array().unwrap();
    assert_eq!(metrics[0]["name"], "c");
    assert_eq!(metrics[0]["kind"], "counter");
    assert_eq!(metrics[0]["series"][0]["labels"]["k"], "v");
    assert_eq!(metrics[0]["series"][0]["value"], 1);
    assert!(
        metrics[1]["series"][0]["value"].is_null(),
        "NaN becomes null"
    );
    assert_eq!(metrics[2]["series"][0]["count"], 1);
    assert_eq!(metrics[2]["series"][0]["buckets"][7]["le"], 1.0);
    assert_eq!(metrics[2]["series"][0]["buckets"][7]["count"], 1);
    assert_eq!(registry.snapshot().metrics[2].kind, MetricKind::Histogram);
}

#[test]
fn rate_limiters_report_allowed_rejected_and_available_tokens() {
    let registry = MetricsRegistry::default();
    let observer = Arc::new(RateLimitMetrics::new(&registry));
    let limiter = RateLimiter::builder(RateLimitConfig::new(2, Duration::from_secs(1), 1))
        .clock(ManualClock::new())
        .name("openai")
        .observer(observer)
        .build()
        .unwrap();
    for _ in 0..5 {
        limiter.try_acquire(1).unwrap();
    }
    let name = [("name", "openai")];
    assert_eq!(
        value(&registry, "bulwark_ratelimit_allowed_total", &name),
        Some(SeriesValue::Counter { value: 3 })
    );
    assert_eq!(
        value(&registry, "bulwark_ratelimit_rejected_total", &name),
        Some(SeriesValue::Counter { value: 2 })
    );
    assert_eq!(
        value(&registry, "bulwark_ratelimit_available_tokens", &name),
        Some(SeriesValue::Gauge { value: 0.0 })
    );
}

#[test]
fn breaker_helpers_publish_resilience4j_style_series() {
    let registry = MetricsRegistry::default();
    let breaker = BreakerMetrics::new(&registry, "search");
    assert_eq!(
        value(
            &registry,
            CIRCUITBREAKER_STATE,
            &[("name", "search"), ("state", "closed")]
        ),
        Some(SeriesValue::Gauge { value: 1.0 })
    );
    breaker.call("successful", Duration::from_millis(20));
    breaker.call("failed", Duration::from_secs(2));
    breaker.transition("closed", "open");
    breaker.not_permitted();
    breaker.not_permitted();
    breaker.transition("open", "half_open");
    let state = |s| {
        value(
            &registry,
            CIRCUITBREAKER_STATE,
            &[("name", "search"), ("state", s)],
        )
    };
    assert_eq!(state("half_open"), Some(SeriesValue::Gauge { value: 1.0 }));
    assert_eq!(state("open"), Some(SeriesValue::Gauge { value: 0.0 }));
    assert_eq!(state("closed"), Some(SeriesValue::Gauge { value: 0.0 }));
    let Some(SeriesValue::Histogram { count, .. }) = value(
        &registry,
        CIRCUITBREAKER_CALLS_SECONDS,
        &[("name", "search"), ("kind", "failed")],
    ) else {
        panic!()
    };
    assert_eq!(count, 1);
    assert_eq!(
        value(
            &registry,
            "bulwark_circuitbreaker_not_permitted_calls_total",
            &[("name", "search")]
        ),
        Some(SeriesValue::Counter { value: 2 })
    );
    assert_eq!(
        value(
            &registry,
            "bulwark_circuitbreaker_transitions_total",
            &[
                ("name", "search"),
                ("from_state", "closed"),
                ("to_state", "open")
            ]
        ),
        Some(SeriesValue::Counter { value: 1 })
    );
}

#[test]
fn checkpoint_helpers_record_durations_sizes_and_corruptions() {
    let registry = MetricsRegistry::default();
    let checkpoints = CheckpointMetrics::new(&registry);
    checkpoints.save(Duration::from_millis(3), 2_000, 8_000);
    checkpoints.load(Duration::from_millis(1), 2_000);
    checkpoints.corruption();
    checkpoints.error("save");
    let Some(SeriesValue::Histogram { buckets, .. }) = value(
        &registry,
        CHECKPOINT_BYTES,
        &[("operation", "save"), ("form", "uncompressed")],
    ) else {
        panic!()
    };
    assert_eq!(buckets.iter().find(|b| b.le == 4096.0).unwrap().count, 0);
    assert_eq!(buckets.iter().find(|b| b.le == 16384.0).unwrap().count, 1);
    assert_eq!(
        value(&registry, "bulwark_checkpoint_corruptions_total", &[]),
        Some(SeriesValue::Counter { value: 1 })
    );
    assert_eq!(
        value(
            &registry,
            "bulwark_checkpoint_errors_total",
            &[("operation", "save")]
        ),
        Some(SeriesValue::Counter { value: 1 })
    );
}

/// Reads an environment variable a test needs; unset, the test is skipped with a message,
/// except in CI (`CI=true`) where it fails.
#[test]
fn promtool_accepts_the_prometheus_text() {
    let Some(promtool) = support::required_env("BULWARK_PROMTOOL") else {
        return;
    };
    let registry = MetricsRegistry::new(MetricsConfig::default().with_max_series_per_metric(3));
    let limiter = RateLimiter::builder(RateLimitConfig::per_second(1))
        .name("llm \"quoted\"\nname\\")
        .observer(Arc::new(RateLimitMetrics::new(&registry)))
        .build()
        .unwrap();
    limiter.try_acquire(1).unwrap();
    limiter.try_acquire(1).unwrap();
    let breaker = BreakerMetrics::new(&registry, "search");
    breaker.transition("closed", "open");
    breaker.call("successful", Duration::from_millis(5));
    breaker.not_permitted();
    let checkpoints = CheckpointMetrics::new(&registry);
    checkpoints.save(Duration::from_millis(2), 10, 20);
    checkpoints.corruption();
    registry.describe(
        "bulwark_checkpoint_corruptions_total",
        "Checkpoints that failed\nverification \\ sha256.",
    );
    metrics::with_local_recorder(&registry, || {
        for user in 0..10 {
            metrics::counter!("requests", "user" => user.to_string()).increment(1);
        }
        metrics::gauge!("temperature_celsius").set(f64::NEG_INFINITY);
        metrics::histogram!("latency_seconds", "route" => "/x").record(0.3);
    });
    let text = registry.render_prometheus();
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool refused the text:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_breaker_with_the_metrics_listener_reports_state_calls_and_rejections() {
    use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig};
    use bulwark::telemetry::observers::BreakerMetricsListener;

    let registry = MetricsRegistry::default();
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder("payments", CircuitBreakerConfig::default())
        .clock(clock.clone())
        .listener(Arc::new(BreakerMetricsListener::new(&registry)))
        .build()
        .unwrap();
    let _ = breaker.call(|| Ok::<_, ()>(()));
    for _ in 0..5 {
        let _ = breaker.call(|| Err::<(), _>("timeout"));
    }
    let _ = breaker.call(|| Ok::<_, ()>(()));
    let _ = breaker.call(|| Ok::<_, ()>(()));
    let state = |s| {
        value(
            &registry,
            CIRCUITBREAKER_STATE,
            &[("name", "payments"), ("state", s)],
        )
    };
    assert_eq!(state("open"), Some(SeriesValue::Gauge { value: 1.0 }));
    assert_eq!(state("closed"), Some(SeriesValue::Gauge { value: 0.0 }));
    assert_eq!(
        value(
            &registry,
            "bulwark_circuitbreaker_not_permitted_calls_total",
            &[("name", "payments")]
        ),
        Some(SeriesValue::Counter { value: 2 })
    );
    let count = |kind| match value(
        &registry,
        CIRCUITBREAKER_CALLS_SECONDS,
        &[("name", "payments"), ("kind", kind)],
    ) {
        Some(SeriesValue::Histogram { count, .. }) => count,
        other => panic!("{other:?}"),
    };
    assert_eq!(count("successful"), 1);
    assert_eq!(count("failed"), 5);
    clock.advance(Duration::from_secs(60));
    let _ = breaker.state();
    assert_eq!(state("half_open"), Some(SeriesValue::Gauge { value: 1.0 }));
}

#[tokio::test]
async fn a_checkpoint_manager_with_the_metrics_observer_reports_saves_loads_and_sizes() {
    use bulwark::checkpoint::{FsStore, StateCheckpointManager};
    use bulwark::telemetry::observers::CheckpointMetricsObserver;

    let dir = tempfile::tempdir().unwrap();
    let registry = MetricsRegistry::default();
    let manager = StateCheckpointManager::builder(Arc::new(FsStore::open(dir.path()).unwrap()))
        .observer(CheckpointMetricsObserver::new(&registry))
        .build()
        .unwrap();
    let state = serde_json::json!({"messages": vec!["hello"; 1000]});
    let id = manager
        .save_checkpoint(&state, "agent", "wf")
        .await
        .unwrap();
    let _: serde_json::Value = manager.load_checkpoint(&id).await.unwrap();
    let count = |name: &str, labels: &[(&str, &str)]| match value(&registry, name, labels) {
        Some(SeriesValue::Histogram { count, sum, .. }) => (count, sum),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(count("bulwark_checkpoint_save_seconds", &[]).0, 1);
    assert_eq!(count("bulwark_checkpoint_load_seconds", &[]).0, 1);
    let (n, uncompressed) = count(
        CHECKPOINT_BYTES,
        &[("operation", "save"), ("form", "uncompressed")],
    );
    assert_eq!(n, 1);
    assert_eq!(
        uncompressed as usize,
        serde_json::to_vec(&state).unwrap().len()
    );
}

#[test]
fn a_breaker_transition_is_an_event_of_the_current_span() {
    use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig};
    use bulwark::telemetry::observers::BreakerMetricsListener;
    use bulwark::telemetry::{TelemetryLayer, TraceStore};
    use tracing_subscriber::layer::SubscriberExt;

    let registry = MetricsRegistry::default();
    let store = TraceStore::default();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let breaker = CircuitBreaker::builder("llm", CircuitBreakerConfig::default())
            .listener(Arc::new(BreakerMetricsListener::new(&registry)))
            .build()
            .unwrap();
        let _call = tracing::info_span!("agent_step").entered();
        breaker.force_open();
    });
    let trace = &store.recent_traces(&Default::default())[0];
    let span = &store.spans(trace.trace_id)[0];
    let event = span
        .events
        .iter()
        .find(|e| e.name == "circuit breaker state transition")
        .expect("a transition event");
    let attr = |k: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("breaker").as_deref(), Some("llm"));
    assert_eq!(attr("from_state").as_deref(), Some("closed"));
    assert_eq!(attr("to_state").as_deref(), Some("forced_open"));
}
