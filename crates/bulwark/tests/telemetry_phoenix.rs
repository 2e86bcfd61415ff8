//! End to end against a real OTLP receiver: Arize Phoenix, started by `scripts/phoenix.sh`
//! (which exports `BULWARK_PHOENIX_URL`). Spans exported over OTLP/HTTP protobuf (and gRPC)
//! must come back through Phoenix's REST API with the ids, names, parents and attributes the
//! local trace store holds.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark::telemetry::export::{OtlpExporter, resource};
use bulwark::telemetry::metrics::MetricsRegistry;
use bulwark::telemetry::{
    AttributeValue, FinishedSpan, OtlpConfig, OtlpProtocol, SpanExt, SpanSink, SpanStatus,
    TelemetryLayer, TraceId, TraceStore, genai, span,
};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name} is not set but CI=true: scripts/test.sh must start Phoenix")
        }
        _ => {
            eprintln!(
                "SKIPPED: {name} is not set (run through scripts/test.sh, or `source scripts/phoenix.sh; ensure_phoenix`)"
            );
            None
        }
    }
}

/// Records a small agent workflow (root, children on another thread, an LLM span with GenAI
/// attributes, a failing tool) and exports it; returns the trace id and the stored spans.
fn record_and_export(
    url: &str,
    protocol: OtlpProtocol,
    endpoint: String,
) -> (TraceId, Vec<Arc<FinishedSpan>>) {
    let registry = MetricsRegistry::default();
    let config = OtlpConfig {
        endpoint: Some(endpoint),
        protocol,
        scheduled_delay: Duration::from_millis(200),
        ..OtlpConfig::default()
    };
    let mut attributes = BTreeMap::new();
    attributes.insert("deployment.environment".to_owned(), "test".to_owned());
    let exporter = OtlpExporter::start(&config, resource("bulwark-e2e", &attributes), &registry)
        .unwrap_or_else(|e| panic!("exporter for {url}: {e}"));
    let store = TraceStore::default();
    let layer =
        TelemetryLayer::new(store.clone()).with_sink(Arc::clone(&exporter) as Arc<dyn SpanSink>);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let trace_id = tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!("process_workflow", priority = "high", attempt = 2u64);
        let trace_id = root.trace_context().unwrap().trace_id;
        root.in_scope(|| {
            let llm = tracing::info_span!("chat gpt-4o-mini");
            genai::llm_call(&llm, "chat", "gpt-4o-mini");
            genai::usage(&llm, 120, 35);
            llm.in_scope(|| tracing::info!(chunk = 1, "first token"));
            drop(llm);
            let parent = tracing::Span::current();
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _p = parent.enter();
                    let tool = span::start("tool search", [("gen_ai.tool.name", "search")]);
                    genai::tool_call(tool.span(), "search");
                    tool.set_attribute("score", 0.75);
                    tool.set_status(SpanStatus::error("search backend timed out"));
                    tool.end();
                });
            })
            .join()
            .unwrap();
        });
        trace_id
    });
    exporter.flush();
    exporter.shutdown();
    let failures = registry
        .snapshot()
        .metrics
        .into_iter()
        .find(|m| m.name == "bulwark_telemetry_export_failures_total")
        .map(|m| m.series.into_iter().map(|s| s.value).collect::<Vec<_>>());
    assert_eq!(
        failures,
        Some(vec![bulwark::telemetry::metrics::SeriesValue::Counter {
            value: 0
        }]),
        "the export to {url} failed"
    );
    (trace_id, store.spans(trace_id))
}

/// Polls Phoenix until it lists `expected` spans of `trace_id` (its HTTP 200 comes before the
/// spans are stored), for at most 60 s.
fn fetch_spans(url: &str, trace_id: TraceId, expected: usize) -> Vec<Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        let response = client
            .get(format!(
                "{url}/v1/projects/default/spans?trace_id={trace_id}&limit=1000"
            ))
            .send();
        if let Ok(body) = response.and_then(|r| r.json::<Value>()) {
            last = body["data"].as_array().cloned().unwrap_or_default();
            last.retain(|s| s["context"]["trace_id"] == trace_id.to_string());
            if last.len() >= expected {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "Phoenix at {url} listed {} of {expected} spans of trace {trace_id}: {last:?}",
        last.len()
    );
}

fn assert_same(stored: &[Arc<FinishedSpan>], received: &[Value]) {
    assert_eq!(received.len(), stored.len());
    let by_id: HashMap<String, &Value> = received
        .iter()
        .map(|s| (s["context"]["span_id"].as_str().unwrap().to_owned(), s))
        .collect();
    for span in stored {
        let got = by_id
            .get(&span.span_id.to_string())
            .unwrap_or_else(|| panic!("span {} ({}) missing in Phoenix", span.span_id, span.name));
        assert_eq!(got["name"], span.name.as_ref());
        let parent = got["parent_id"].as_str().map(str::to_owned);
        assert_eq!(
            parent,
            span.parent_span_id.map(|p| p.to_string()),
            "parent of {}",
            span.name
        );
        for kv in &span.attributes {
            // Phoenix lifts the OpenInference kind out of the attributes into `span_kind`.
            let value = if kv.key == genai::OPENINFERENCE_SPAN_KIND {
                &got["span_kind"]
            } else {
                lookup(&got["attributes"], &kv.key)
            };
            let matches = match &kv.value {
                AttributeValue::Bool(b) => value.as_bool() == Some(*b),
                AttributeValue::Int(i) => value.as_i64() == Some(*i),
                AttributeValue::Float(f) => value.as_f64() == Some(*f),
                AttributeValue::String(s) => value.as_str() == Some(s.as_ref()),
            };
            assert!(
                matches,
                "attribute {} of {}: stored {:?}, Phoenix {value}",
                kv.key, span.name, kv.value
            );
        }
        if let SpanStatus::Error { message } = &span.status {
            assert_eq!(got["status_code"], "ERROR", "status of {}", span.name);
            assert_eq!(got["status_message"], message.as_str());
        }
        let events: Vec<&str> = got["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        let stored_events: Vec<&str> = span.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(events, stored_events, "events of {}", span.name);
    }
}

/// Phoenix may return attributes flat (`"a.b": 1`) or nested (`"a": {"b": 1}`).
fn lookup<'a>(attributes: &'a Value, key: &str) -> &'a Value {
    if let Some(v) = attributes.get(key) {
        return v;
    }
    key.split('.').fold(attributes, |v, part| &v[part])
}

#[test]
fn spans_exported_over_http_protobuf_arrive_in_phoenix_with_the_stored_ids() {
    let Some(url) = required_env("BULWARK_PHOENIX_URL") else {
        return;
    };
    let url = url.trim_end_matches('/').to_owned();
    let (trace_id, stored) =
        record_and_export(&url, OtlpProtocol::HttpProtobuf, format!("{url}/v1/traces"));
    assert_eq!(stored.len(), 3);
    let received = fetch_spans(&url, trace_id, stored.len());
    assert_same(&stored, &received);
    let tool = received
        .iter()
        .find(|s| s["name"] == "tool search")
        .unwrap();
    assert_eq!(tool["span_kind"], "TOOL");
    let llm = received
        .iter()
        .find(|s| s["name"] == "chat gpt-4o-mini")
        .unwrap();
    assert_eq!(llm["span_kind"], "LLM");
}

#[test]
fn spans_exported_over_grpc_arrive_in_phoenix_with_the_stored_ids() {
    let Some(url) = required_env("BULWARK_PHOENIX_URL") else {
        return;
    };
    let url = url.trim_end_matches('/').to_owned();
    let grpc = std::env::var("BULWARK_PHOENIX_GRPC_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:4317".to_owned());
    let (trace_id, stored) = record_and_export(&url, OtlpProtocol::Grpc, grpc);
    let received = fetch_spans(&url, trace_id, stored.len());
    assert_same(&stored, &received);
}
