//! The alert engine on the manual clock: pending, firing, flicker, resolve, keep-firing-for,
//! one alert per series, templating, rate and quantile windows, breaker stints, bad rules.
#![cfg(feature = "alerting")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bulwark::alerting::notify::{Notifier, NotifyError};
use bulwark::alerting::{
    AlertEngine, AlertRule, AlertState, Batch, Comparison, Condition, EngineConfig, NamePattern,
    RuleSpec, parse_selector, rules_from_specs,
};
use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig, State};
use bulwark::clock::ManualClock;
use bulwark::telemetry::metrics::{MetricsConfig, MetricsRegistry};

const S: Duration = Duration::from_secs(1);

fn gauge_rule(name: &str, threshold: f64) -> AlertRule {
    AlertRule::new(
        name,
        Condition::Gauge {
            metric: "queue_depth".into(),
            matchers: parse_selector(r#"{queue=~".+"}"#).unwrap(),
            op: Comparison::Above,
            threshold,
        },
    )
}

struct Setup {
    clock: ManualClock,
    metrics: MetricsRegistry,
    breakers: Arc<BreakerRegistry<ManualClock>>,
    engine: AlertEngine<ManualClock>,
}

fn setup(rules: Vec<AlertRule>, config: EngineConfig) -> Setup {
    let clock = ManualClock::starting_at(Duration::from_secs(1000));
    let metrics = MetricsRegistry::new(MetricsConfig::default());
    let breakers = Arc::new(BreakerRegistry::with_clock(clock.clone()));
    let config = config
        .with_known_metric("queue_depth")
        .with_known_metric("tool_calls")
        .with_known_metric("step_seconds")
        .with_known_metric("steps");
    let engine = AlertEngine::new(
        rules,
        config,
        metrics.clone(),
        Some(Arc::clone(&breakers)),
        clock.clone(),
    )
    .unwrap()
    .with_wall_clock_at_zero(SystemTime::UNIX_EPOCH);
    Setup {
        clock,
        metrics,
        breakers,
        engine,
    }
}

fn states(engine: &AlertEngine<ManualClock>) -> Vec<(String, AlertState)> {
    engine
        .alerts()
        .into_iter()
        .map(|a| {
            (
                a.labels
                    .get("queue")
                    .or(a.labels.get("name"))
                    .cloned()
                    .unwrap_or_default(),
                a.state,
            )
        })
        .collect()
}

#[test]
fn pending_until_for_has_elapsed_then_firing() {
    let t = setup(
        vec![gauge_rule("Deep", 10.0).with_for(30 * S)],
        EngineConfig::default(),
    );
    t.metrics
        .set_gauge("queue_depth", 11.0, &[("queue", "a")])
        .unwrap();
    let events = t.engine.evaluate();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlertState::Pending);
    t.clock.advance(15 * S);
    assert!(t.engine.evaluate().is_empty());
    assert_eq!(states(&t.engine), vec![("a".into(), AlertState::Pending)]);
    t.clock.advance(15 * S);
    let events = t.engine.evaluate();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlertState::Firing);
    let alert = &events[0].alert;
    assert_eq!(alert.active_since_unix_ms, 1_000_000);
    assert_eq!(alert.fired_at_unix_ms, Some(1_030_000));
    assert_eq!(alert.value, 11.0);
}

#[test]
fn a_condition_that_flickers_within_for_never_fires() {
    let t = setup(
        vec![gauge_rule("Deep", 10.0).with_for(30 * S)],
        EngineConfig::default(),
    );
    for round in 0..10 {
        let depth = if round % 2 == 0 { 20.0 } else { 0.0 };
        t.metrics
            .set_gauge("queue_depth", depth, &[("queue", "a")])
            .unwrap();
        for e in t.engine.evaluate() {
            assert_ne!(e.state, AlertState::Firing, "round {round}");
        }
        t.clock.advance(15 * S);
    }
    assert!(
        t.engine
            .alerts()
            .iter()
            .all(|a| a.state == AlertState::Pending)
    );
}

#[test]
fn a_resolve_is_announced_once_and_listed() {
    let t = setup(vec![gauge_rule("Deep", 10.0)], EngineConfig::default());
    t.metrics
        .set_gauge("queue_depth", 11.0, &[("queue", "a")])
        .unwrap();
    let kinds: Vec<_> = t.engine.evaluate().into_iter().map(|e| e.state).collect();
    assert_eq!(kinds, [AlertState::Pending, AlertState::Firing]);
    t.metrics
        .set_gauge("queue_depth", 1.0, &[("queue", "a")])
        .unwrap();
    t.clock.advance(15 * S);
    let events = t.engine.evaluate();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlertState::Resolved);
    assert_eq!(events[0].alert.resolved_at_unix_ms, Some(1_015_000));
    for _ in 0..3 {
        t.clock.advance(15 * S);
        assert!(t.engine.evaluate().is_empty());
    }
    assert_eq!(states(&t.engine), vec![("a".into(), AlertState::Resolved)]);
}

#[test]
fn keep_firing_for_holds_an_alert_through_a_short_dip() {
    let rule = gauge_rule("Deep", 10.0).with_keep_firing_for(60 * S);
    let t = setup(vec![rule], EngineConfig::default());
    t.metrics
        .set_gauge("queue_depth", 11.0, &[("queue", "a")])
        .unwrap();
    t.engine.evaluate();
    t.metrics
        .set_gauge("queue_depth", 1.0, &[("queue", "a")])
        .unwrap();
    for _ in 0..3 {
        t.clock.advance(15 * S);
        assert!(
            t.engine.evaluate().is_empty(),
            "still within keep_firing_for"
        );
    }
    t.metrics
        .set_gauge("queue_depth", 12.0, &[("queue", "a")])
        .unwrap();
    t.clock.advance(15 * S);
    assert!(
        t.engine.evaluate().is_empty(),
        "firing again without a new alert"
    );
    t.metrics
        .set_gauge("queue_depth", 1.0, &[("queue", "a")])
        .unwrap();
    t.clock.advance(45 * S);
    assert!(t.engine.evaluate().is_empty());
    t.clock.advance(15 * S);
    let events = t.engine.evaluate();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlertState::Resolved);
}

#[test]
fn a_rule_over_many_series_fires_one_alert_per_series_with_templated_annotations() {
    let rule = gauge_rule("Deep", 10.0)
        .with_label("severity", "page")
        .with_annotation(
            "summary",
            "queue {{ $labels.queue }} holds {{ $value }} ({{ $labels.severity }})",
        );
    let t = setup(vec![rule], EngineConfig::default());
    for (q, v) in [("a", 11.0), ("b", 5.0), ("c", 12.5)] {
        t.metrics
            .set_gauge("queue_depth", v, &[("queue", q)])
            .unwrap();
    }
    t.metrics.set_gauge("queue_depth", 99.0, &[]).unwrap(); // no `queue` label: not selected
    t.engine.evaluate();
    let alerts = t.engine.alerts();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].labels["queue"], "a");
    assert_eq!(alerts[0].labels["alertname"], "Deep");
    assert_eq!(alerts[0].labels["severity"], "page");
    assert_eq!(alerts[0].annotations["summary"], "queue a holds 11 (page)");
    assert_eq!(
        alerts[1].annotations["summary"],
        "queue c holds 12.5 (page)"
    );
    assert_eq!(
        alerts[1].generator_url,
        "http://127.0.0.1:8000/api/observability/alerts?rule=Deep"
    );
}

#[test]
fn rate_over_a_window_matches_the_hand_computed_value() {
    let rule = AlertRule::new(
        "Failing",
        Condition::Rate {
            metric: "tool_calls".into(),
            matchers: parse_selector(r#"{outcome="failed"}"#).unwrap(),
            window: Duration::from_secs(60),
            op: Comparison::Above,
            threshold: 0.5,
        },
    );
    let t = setup(vec![rule], EngineConfig::default());
    let labels = [("outcome", "failed")];
    // t=0: 0; +15 s: 6; +30 s: 12; +45 s: 18; +60 s: 24; +75 s: 54.
    t.metrics.add_counter("tool_calls", 0, &labels).unwrap();
    t.engine.evaluate();
    for add in [6, 6, 6, 6] {
        t.clock.advance(15 * S);
        t.metrics.add_counter("tool_calls", add, &labels).unwrap();
        t.engine.evaluate();
    }
    // 24 in 60 s = 0.4/s: below the threshold.
    assert!(t.engine.alerts().is_empty());
    t.clock.advance(15 * S);
    t.metrics.add_counter("tool_calls", 30, &labels).unwrap();
    t.engine.evaluate();
    // Window (15 s, 75 s]: base 6 at 15 s, now 54: 48 / 60 = 0.8/s.
    let alerts = t.engine.alerts();
    assert_eq!(alerts.len(), 1);
    assert!((alerts[0].value - 0.8).abs() < 1e-12, "{}", alerts[0].value);
}

#[test]
fn quantile_over_a_window_counts_only_the_window_s_observations() {
    let rule = AlertRule::new(
        "SlowSteps",
        Condition::Quantile {
            metric: "step_seconds".into(),
            matchers: Vec::new(),
            quantile: 0.9,
            window: Duration::from_secs(60),
            op: Comparison::Above,
            threshold: 1.0,
        },
    );
    let t = setup(vec![rule], EngineConfig::default());
    // Old, fast observations: 100 at 0.05 s.
    for _ in 0..100 {
        t.metrics
            .record_histogram("step_seconds", 0.05, &[])
            .unwrap();
    }
    t.engine.evaluate();
    t.clock.advance(60 * S);
    // In the window: 10 observations, 5 of 0.3 s (bucket 0.25..0.5), 5 of 3 s (bucket 2.5..5).
    for v in [0.3, 0.3, 0.3, 0.3, 0.3, 3.0, 3.0, 3.0, 3.0, 3.0] {
        t.metrics.record_histogram("step_seconds", v, &[]).unwrap();
    }
    t.engine.evaluate();
    // Rank 9 of 10 lies in (2.5, 5] holding ranks 6..10: 2.5 + 2.5 * (9 - 5) / 5 = 4.5.
    let alerts = t.engine.alerts();
    assert_eq!(alerts.len(), 1);
    assert!((alerts[0].value - 4.5).abs() < 1e-9, "{}", alerts[0].value);
    // Without a window the old observations would have kept p90 at 0.05 s.
}

fn breaker_rule(min_open: Duration) -> AlertRule {
    AlertRule::new(
        "BreakerOpen",
        Condition::BreakerState {
            breaker: NamePattern::new("pay*").unwrap(),
            states: vec![State::Open],
            min_open,
        },
    )
    .with_annotation(
        "summary",
        "{{ $labels.name }} open, next trial in {{ $next_trial_in }}",
    )
}

fn opening_breaker(t: &Setup, name: &str) -> bulwark::breaker::CircuitBreaker<ManualClock> {
    let config = CircuitBreakerConfig {
        failure_threshold: 1,
        timeout: Duration::from_secs(60),
        ..CircuitBreakerConfig::default()
    };
    t.breakers.get_or_create(name, config).unwrap()
}

#[test]
fn a_breaker_open_shorter_than_the_interval_still_fires_and_then_resolves() {
    let t = setup(vec![breaker_rule(Duration::ZERO)], EngineConfig::default());
    let b = opening_breaker(&t, "payment");
    let other = opening_breaker(&t, "search");
    t.engine.evaluate();
    let _ = b.call(|| Err::<(), _>("down"));
    let _ = other.call(|| Err::<(), _>("down"));
    t.clock.advance(2 * S);
    b.reset(); // open for 2 s, between two evaluations
    t.clock.advance(13 * S);
    let events = t.engine.evaluate();
    let firing: Vec<_> = events
        .iter()
        .filter(|e| e.state == AlertState::Firing)
        .collect();
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].alert.labels["name"], "payment");
    assert_eq!(firing[0].alert.active_since_unix_ms, 1_000_000);
    t.clock.advance(15 * S);
    let events = t.engine.evaluate();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlertState::Resolved);
}

#[test]
fn a_breaker_alert_says_when_the_next_trial_is_due_and_min_open_is_hysteresis() {
    let t = setup(
        vec![breaker_rule(Duration::from_secs(20))],
        EngineConfig::default(),
    );
    let b = opening_breaker(&t, "payment");
    let _ = b.call(|| Err::<(), _>("down"));
    t.clock.advance(15 * S);
    assert!(t.engine.evaluate().is_empty(), "open 15 s < min_open 20 s");
    t.clock.advance(15 * S);
    let events = t.engine.evaluate();
    assert_eq!(events.last().map(|e| e.state), Some(AlertState::Firing));
    let alert = &events.last().unwrap().alert;
    assert_eq!(alert.next_trial_in, Some(Duration::from_secs(30)));
    assert_eq!(
        alert.annotations["summary"],
        "payment open, next trial in 30s"
    );
    assert_eq!(
        alert.generator_url,
        "http://127.0.0.1:8000/api/observability/circuit-breakers/payment"
    );
}

#[test]
fn a_counter_that_stops_increasing_is_stuck_and_a_first_corruption_fires() {
    let rules = vec![
        AlertRule::new(
            "RunStuck",
            Condition::Stuck {
                metric: "steps".into(),
                matchers: parse_selector(r#"{run="r1"}"#).unwrap(),
                window: Duration::from_secs(60),
            },
        ),
        AlertRule::new(
            "CheckpointCorrupt",
            Condition::CheckpointCorrupt {
                window: Duration::from_secs(300),
            },
        ),
    ];
    let t = setup(rules, EngineConfig::default());
    t.metrics
        .increment_counter("steps", &[("run", "r1")])
        .unwrap();
    t.engine.evaluate();
    for _ in 0..3 {
        t.clock.advance(15 * S);
        t.metrics
            .increment_counter("steps", &[("run", "r1")])
            .unwrap();
        t.engine.evaluate();
    }
    assert!(t.engine.alerts().is_empty());
    for _ in 0..4 {
        t.clock.advance(15 * S);
        t.engine.evaluate();
    }
    let alerts = t.engine.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, "RunStuck");
    assert_eq!(alerts[0].value, 60.0);
    // The corruption counter appears for the first time with 1: an increase from zero.
    t.metrics
        .increment_counter(bulwark::alerting::CHECKPOINT_CORRUPTIONS, &[])
        .unwrap();
    t.clock.advance(15 * S);
    t.engine.evaluate();
    assert!(
        t.engine
            .alerts()
            .iter()
            .any(|a| a.rule == "CheckpointCorrupt"
                && a.state == AlertState::Firing
                && a.generator_url.ends_with("/api/observability/checkpoints"))
    );
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Batch>>);

#[async_trait::async_trait]
impl Notifier for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn send(&self, batch: &Batch) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(batch.clone());
        Ok(())
    }
}

#[tokio::test]
async fn firing_alerts_are_re_sent_with_an_ends_at_beyond_the_next_send() {
    let recorder = Arc::new(Recorder::default());
    let config = EngineConfig::default()
        .with_interval(15 * S)
        .with_resend_interval(60 * S)
        .with_notifier(recorder.clone());
    let t = setup(vec![gauge_rule("Deep", 10.0)], config);
    tokio::spawn(t.engine.clone().run_notifiers());
    t.metrics
        .set_gauge("queue_depth", 11.0, &[("queue", "a")])
        .unwrap();
    for _ in 0..9 {
        t.engine.evaluate();
        t.clock.advance(15 * S);
    }
    t.metrics
        .set_gauge("queue_depth", 0.0, &[("queue", "a")])
        .unwrap();
    t.engine.evaluate();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while recorder.0.lock().unwrap().len() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let batches = recorder.0.lock().unwrap().clone();
    // Sent at 0 s, re-sent at 60 s and 120 s, resolved at 135 s.
    assert_eq!(batches.len(), 4, "{batches:#?}");
    let wall = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + s);
    for (batch, at) in batches[..3].iter().zip([0, 60, 120]) {
        let n = &batch.notices[0];
        assert_eq!(n.state, AlertState::Firing);
        assert_eq!(n.starts_at, wall(0));
        // Four re-send intervals ahead: never resolved by Alertmanager between two sends.
        assert_eq!(n.ends_at, wall(at + 240));
    }
    let resolved = &batches[3].notices[0];
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.ends_at, wall(135));
}

fn spec(toml_like: &[(&str, &str)]) -> RuleSpec {
    let mut map = serde_json::Map::new();
    for (k, v) in toml_like {
        let value: serde_json::Value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String((*v).into()));
        map.insert((*k).into(), value);
    }
    serde_json::from_value(serde_json::Value::Object(map)).unwrap()
}

#[test]
fn bad_rules_fail_with_the_rule_and_the_field() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 6] = [
        (
            &[
                ("name", "A"),
                ("condition", "gauge"),
                ("metric", "queue_depth"),
                ("threshold", "high"),
            ],
            "A",
            "threshold",
        ),
        (
            &[
                ("name", "B"),
                ("condition", "rate"),
                ("metric", "tool_calls"),
                ("window", "5 parsecs"),
                ("threshold", "1"),
            ],
            "B",
            "window",
        ),
        (
            &[
                ("name", "C"),
                ("condition", "breaker_state"),
                ("breaker", "pay(ment|out)"),
            ],
            "C",
            "breaker",
        ),
        (
            &[
                ("name", "D"),
                ("condition", "gauge"),
                ("metric", "queue_depth"),
                ("threshold", "1"),
                ("for", "soon"),
            ],
            "D",
            "for",
        ),
        (
            &[("name", "E"), ("condition", "sometimes")],
            "E",
            "condition",
        ),
        (
            &[
                ("name", "F"),
                ("condition", "gauge"),
                ("metric", "queue_depth"),
                ("selector", "{a=b}"),
                ("threshold", "1"),
            ],
            "F",
            "selector",
        ),
    ];
    for (fields, rule, field) in cases {
        let err = rules_from_specs(&[spec(fields)]).unwrap_err();
        assert_eq!((err.rule.as_str(), err.field), (rule, field), "{err}");
        assert!(err.to_string().contains(&format!("`{rule}`")), "{err}");
    }
    let ok = spec(&[
        ("name", "G"),
        ("condition", "gauge"),
        ("metric", "queue_depth"),
        ("threshold", "1"),
    ]);
    let err = rules_from_specs(&[ok.clone(), ok]).unwrap_err();
    assert_eq!((err.rule.as_str(), err.field), ("G", "name"));

    let unknown = rules_from_specs(&[spec(&[
        ("name", "H"),
        ("condition", "gauge"),
        ("metric", "no_such_metric"),
        ("threshold", "1"),
    ])])
    .unwrap();
    let err = AlertEngine::new(
        unknown,
        EngineConfig::default(),
        MetricsRegistry::default(),
        None::<Arc<BreakerRegistry<ManualClock>>>,
        ManualClock::new(),
    )
    .unwrap_err();
    assert_eq!((err.rule.as_str(), err.field), ("H", "metric"));
}
