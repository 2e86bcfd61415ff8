//! `telemetry::init` installs the process-wide stack once. One test per process (nextest), as
//! the stack is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark::telemetry::metrics::SeriesValue;
use bulwark::telemetry::{self, InitError, TelemetryConfig, TraceFilter};

#[test]
fn init_installs_the_store_and_the_metrics_recorder_once() {
    let config = TelemetryConfig {
        log_to_stderr: false,
        filter: Some("debug".to_owned()),
        ..TelemetryConfig::default()
    };
    let guard = telemetry::init(config.clone()).unwrap();
    {
        let _span = tracing::info_span!("startup", component = "test").entered();
        tracing::debug!("recorded as an event");
        metrics::counter!("init_test_events_total", "kind" => "startup").increment(3);
    }
    let telemetry = guard.telemetry();
    let traces = telemetry.store().recent_traces(&TraceFilter::default());
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].root_name, "startup");
    let span = &telemetry.store().spans(traces[0].trace_id)[0];
    assert_eq!(span.events[0].name, "recorded as an event");
    let snapshot = telemetry.metrics().snapshot();
    let metric = snapshot
        .metrics
        .iter()
        .find(|m| m.name == "init_test_events_total")
        .unwrap();
    assert_eq!(metric.series[0].value, SeriesValue::Counter { value: 3 });
    assert!(matches!(
        telemetry::init(config),
        Err(InitError::AlreadyInitialized)
    ));
    guard.flush();
}
