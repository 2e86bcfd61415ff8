//! One evaluation round of the alert engine: 1 000 rules over 10 000 series.
//!
//! 100 metrics of 100 series each (label `shard` = 0..99): 50 gauges and 50 counters. The
//! 1 000 rules are 500 gauge rules and 500 rate rules (5-minute window), each selecting its
//! metric's series by a regex matcher on `shard` that keeps about one in ten. Each round
//! snapshots the registry, appends one sample per counter series, and runs every rule; the
//! counters move between rounds so the rate rules compute over a full history. No peer runs in
//! this process: Prometheus' own figure for the exported rules comes from its
//! `prometheus_rule_group_last_duration_seconds` (see docs/PERFORMANCE.md).
//!
//! `cargo bench -p bulwark --features alerting --bench alerting`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bulwark::alerting::{
    AlertEngine, AlertRule, Comparison, Condition, EngineConfig, parse_selector,
};
use bulwark::breaker::BreakerRegistry;
use bulwark::clock::ManualClock;
use bulwark::telemetry::metrics::{MetricsConfig, MetricsRegistry};
use criterion::{Criterion, criterion_group, criterion_main};

const METRICS: usize = 100;
const SERIES: usize = 100;
const RULES: usize = 1000;

fn setup() -> (ManualClock, MetricsRegistry, AlertEngine<ManualClock>) {
    let clock = ManualClock::new();
    let metrics =
        MetricsRegistry::new(MetricsConfig::default().with_max_series_per_metric(SERIES + 10));
    let mut config = EngineConfig::default();
    for m in 0..METRICS {
        let name = format!("bench_metric_{m}");
        for s in 0..SERIES {
            let shard = s.to_string();
            if m.is_multiple_of(2) {
                metrics
                    .set_gauge(&name, s as f64, &[("shard", &shard)])
                    .unwrap();
            } else {
                metrics
                    .add_counter(&name, s as u64, &[("shard", &shard)])
                    .unwrap();
            }
        }
        config.known_metrics.push(name);
    }
    let rules = (0..RULES)
        .map(|r| {
            let m = r % METRICS;
            let metric = format!("bench_metric_{m}");
            let matchers = parse_selector(&format!(r#"{{shard=~"{}.?"}}"#, r % 10)).unwrap();
            let condition = if m.is_multiple_of(2) {
                Condition::Gauge {
                    metric,
                    matchers,
                    op: Comparison::Above,
                    threshold: 1e9,
                }
            } else {
                Condition::Rate {
                    metric,
                    matchers,
                    window: Duration::from_secs(300),
                    op: Comparison::Above,
                    threshold: 1e9,
                }
            };
            AlertRule::new(format!("rule_{r}"), condition)
        })
        .collect();
    let engine = AlertEngine::new(
        rules,
        config,
        metrics.clone(),
        None::<Arc<BreakerRegistry<ManualClock>>>,
        clock.clone(),
    )
    .unwrap();
    (clock, metrics, engine)
}

fn evaluate(c: &mut Criterion) {
    let (clock, metrics, engine) = setup();
    // Fill the 5-minute history at a 15 s interval first.
    for _ in 0..21 {
        clock.advance(Duration::from_secs(15));
        engine.evaluate();
    }
    let handles: Vec<_> = (0..METRICS)
        .filter(|m| !m.is_multiple_of(2))
        .flat_map(|m| {
            let name = format!("bench_metric_{m}");
            let metrics = metrics.clone();
            (0..SERIES).map(move |s| {
                metrics
                    .counter(&name, &[("shard", &s.to_string())])
                    .unwrap()
            })
        })
        .collect();
    c.bench_function("alerting/evaluate/1000_rules_10000_series", |b| {
        b.iter(|| {
            for h in handles.iter().step_by(7) {
                h.increment(1);
            }
            clock.advance(Duration::from_secs(15));
            engine.evaluate()
        })
    });
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
