//! The OTLP exporter without a receiver: a full queue drops and counts, ids are kept, the
//! standard environment variables switch export on.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bulwark::telemetry::export::{OtlpExporter, resource, to_span_data};
use bulwark::telemetry::metrics::{MetricsRegistry, SeriesValue};
use bulwark::telemetry::{
    OtlpConfig, OtlpProtocol, SpanExt, SpanSink, TelemetryConfig, TelemetryLayer, TraceStore,
};
use tracing_subscriber::layer::SubscriberExt;

fn counter(registry: &MetricsRegistry, name: &str) -> u64 {
    registry
        .snapshot()
        .metrics
        .into_iter()
        .find(|m| m.name == name)
        .and_then(|m| m.series.into_iter().next())
        .map_or(0, |s| match s.value {
            SeriesValue::Counter { value } => value,
            _ => 0,
        })
}

#[test]
fn a_full_export_queue_drops_spans_and_counts_them() {
    // A receiver that accepts connections and never answers keeps the export thread busy.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let registry = MetricsRegistry::default();
    let config = OtlpConfig {
        endpoint: Some(endpoint),
        protocol: OtlpProtocol::HttpProtobuf,
        timeout: Duration::from_millis(500),
        max_queue_size: 1,
        max_export_batch_size: 1,
        scheduled_delay: Duration::from_secs(60),
    };
    let exporter =
        OtlpExporter::start(&config, resource("t", &BTreeMap::new()), &registry).unwrap();
    let store = TraceStore::default();
    let layer =
        TelemetryLayer::new(store.clone()).with_sink(Arc::clone(&exporter) as Arc<dyn SpanSink>);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for _ in 0..20 {
            let _s = tracing::info_span!("burst").entered();
        }
    });
    exporter.shutdown();
    drop(listener);
    let dropped = counter(&registry, "bulwark_telemetry_spans_dropped_total");
    assert!(
        dropped >= 15,
        "only {dropped} of 20 spans dropped with a queue of 1"
    );
    assert!(counter(&registry, "bulwark_telemetry_export_failures_total") >= 1);
    // The local store keeps every span whatever happens to export.
    assert_eq!(store.len(), 20);
}

#[test]
fn exported_span_data_carries_the_stored_ids() {
    let store = TraceStore::default();
    let layer = TelemetryLayer::new(store.clone());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let root = tracing::info_span!("root");
        root.in_scope(|| {
            let child = tracing::info_span!("child", otel.kind = "client");
            child.set_attribute("k", 1i64);
        });
    });
    let trace = store.recent_traces(&Default::default())[0].trace_id;
    let scope = opentelemetry::InstrumentationScope::builder("bulwark").build();
    for span in store.spans(trace) {
        let data = to_span_data(&span, &scope);
        assert_eq!(
            data.span_context.trace_id().to_string(),
            span.trace_id.to_string()
        );
        assert_eq!(
            data.span_context.span_id().to_string(),
            span.span_id.to_string()
        );
        match span.parent_span_id {
            Some(p) => assert_eq!(data.parent_span_id.to_string(), p.to_string()),
            None => assert_eq!(data.parent_span_id, opentelemetry::trace::SpanId::INVALID),
        }
        assert_eq!(data.name, span.name);
        assert_eq!(data.attributes.len(), span.attributes.len());
    }
}

#[test]
fn the_standard_environment_variables_switch_export_on() {
    // `std::env::set_var` is unsafe in edition 2024 (and unsafe code is forbidden here), so the
    // variables are given to a child run of this same test binary.
    let exe = std::env::current_exe().unwrap();
    if std::env::var("BULWARK_ENV_PROBE").is_ok() {
        let config = TelemetryConfig::from_env();
        let otlp = config
            .otlp
            .expect("an endpoint variable switches export on");
        assert_eq!(otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(config.service_name, "agents-api");
        assert_eq!(
            config.resource_attributes["deployment.environment"],
            "staging"
        );
        return;
    }
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "the_standard_environment_variables_switch_export_on",
            "--nocapture",
        ])
        .env("BULWARK_ENV_PROBE", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", "agents-api")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=staging,team=ml",
        )
        .status()
        .unwrap();
    assert!(status.success());
    let without = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "no_endpoint_probe", "--nocapture"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("BULWARK_ENV_PROBE_NONE", "1")
        .status()
        .unwrap();
    assert!(without.success());
}

/// The child side of the test above, run with no endpoint variable set; alone it checks the
/// same thing when the environment has no OTLP variables.
#[test]
fn no_endpoint_probe() {
    let has_endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok()
        || std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_ok();
    if std::env::var("BULWARK_ENV_PROBE_NONE").is_ok() || !has_endpoint {
        assert!(TelemetryConfig::from_env().otlp.is_none());
    }
}
