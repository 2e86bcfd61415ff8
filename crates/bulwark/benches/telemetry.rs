//! Telemetry costs beside the crates a user would otherwise pick, in the same run:
//!
//! * one span (create, enter, exit, close, 2 attributes) with Bulwark's layer and trace store
//!   against `tracing-opentelemetry` 0.34 + `opentelemetry_sdk` 0.33 with an in-memory exporter;
//!   with `--features otlp`, the same with OTLP/HTTP export on for both (to a local sink);
//! * counter increment and histogram record through the `metrics` macro and through a
//!   pre-registered handle, against `metrics-exporter-prometheus` 0.18 (bucketed histograms).
//!
//! `cargo bench -p bulwark --bench telemetry --features otlp -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bulwark::telemetry::metrics::{DEFAULT_BUCKETS, MetricsRegistry};
use bulwark::telemetry::{TelemetryLayer, TraceStore, TraceStoreConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;

fn one_span() {
    let span = tracing::info_span!("llm_call", model = "gpt-4o-mini", tokens = 128u64);
    let entered = span.enter();
    black_box(&entered);
    drop(entered);
    drop(span);
}

fn store() -> TraceStore {
    TraceStore::new(TraceStoreConfig {
        ttl: Duration::from_secs(3600),
        max_spans: 100_000,
        ..Default::default()
    })
}

/// Resident memory in bytes, from /proc (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn report_bytes_per_span() {
    let store = store();
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    let before = rss_bytes();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..100_000 {
            one_span();
        }
    });
    if let (Some(before), Some(after)) = (before, rss_bytes()) {
        println!(
            "trace store: {} spans, {} bytes/span by RSS growth, {} bytes/span by the store's own accounting",
            store.len(),
            after.saturating_sub(before) / store.len() as u64,
            store.approx_bytes() / store.len()
        );
    }
}

fn spans(c: &mut Criterion) {
    report_bytes_per_span();
    let mut group = c.benchmark_group("span");

    // The floor: `tracing`'s registry with no layer at all.
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("bare_registry", |b| b.iter(one_span));
    });
    // Ids, times and attributes, with no store: what the store adds is the difference.
    let layer = TelemetryLayer::without_store(bulwark::clock::MonotonicClock::new());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        group.bench_function("bulwark_layer_only", |b| b.iter(one_span));
    });
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store()));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("bulwark_store", |b| b.iter(one_span));
    });

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("otel_in_memory", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    one_span();
                }
                // Dropping the exported spans is part of keeping memory bounded, as the trace
                // store's eviction is on the other side.
                exporter.reset();
                start.elapsed()
            })
        });
    });
    let _ = provider.shutdown();

    #[cfg(feature = "otlp")]
    otlp::spans(&mut group);
    #[cfg(not(feature = "otlp"))]
    println!("span/*_otlp skipped: run with --features otlp");
    group.finish();
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    use bulwark::telemetry::export::{OtlpExporter, resource};
    use bulwark::telemetry::{OtlpConfig, SpanSink};
    use criterion::BenchmarkGroup;
    use criterion::measurement::WallTime;
    use opentelemetry_otlp::WithExportConfig;

    use super::*;

    /// A local OTLP/HTTP sink: reads each request and answers 200 with an empty body.
    fn sink() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!(
            "http://{}/v1/traces",
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if reader.get_mut().write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    pub(super) fn spans(group: &mut BenchmarkGroup<'_, WallTime>) {
        let url = sink();
        let registry = MetricsRegistry::default();
        let config = OtlpConfig {
            endpoint: Some(url.clone()),
            ..OtlpConfig::default()
        };
        let exporter =
            OtlpExporter::start(&config, resource("bench", &Default::default()), &registry)
                .unwrap_or_else(|e| panic!("exporter: {e}"));
        let layer =
            TelemetryLayer::new(store()).with_sink(Arc::clone(&exporter) as Arc<dyn SpanSink>);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            group.bench_function("bulwark_store_otlp", |b| b.iter(one_span));
        });
        exporter.shutdown();
        let snapshot = registry.render_prometheus();
        for line in snapshot
            .lines()
            .filter(|l| l.starts_with("bulwark_telemetry_"))
        {
            println!("bulwark otlp: {line}");
        }

        let otel_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()
            .unwrap_or_else(|e| panic!("otel exporter: {e}"));
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(otel_exporter)
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
        tracing::subscriber::with_default(subscriber, || {
            group.bench_function("otel_otlp", |b| b.iter(one_span));
        });
        let _ = provider.shutdown();
    }
}

fn metrics_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    let ours = MetricsRegistry::default();
    let peer = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(DEFAULT_BUCKETS)
        .unwrap_or_else(|e| panic!("buckets: {e}"))
        .build_recorder();

    metrics::with_local_recorder(&ours, || {
        group.bench_function("counter_macro/bulwark", |b| {
            b.iter(|| metrics::counter!("bench_requests_total", "route" => "/chat").increment(1))
        });
        let counter = metrics::counter!("bench_handle_total");
        group.bench_function("counter_handle/bulwark", |b| {
            b.iter(|| counter.increment(1))
        });
        group.bench_function("histogram_macro/bulwark", |b| {
            b.iter(|| {
                metrics::histogram!("bench_latency_seconds", "route" => "/chat")
                    .record(black_box(0.042))
            })
        });
        let histogram = metrics::histogram!("bench_handle_seconds");
        group.bench_function("histogram_handle/bulwark", |b| {
            b.iter(|| histogram.record(black_box(0.042)))
        });
    });
    metrics::with_local_recorder(&peer, || {
        group.bench_function("counter_macro/prometheus", |b| {
            b.iter(|| metrics::counter!("bench_requests_total", "route" => "/chat").increment(1))
        });
        let counter = metrics::counter!("bench_handle_total");
        group.bench_function("counter_handle/prometheus", |b| {
            b.iter(|| counter.increment(1))
        });
        group.bench_function("histogram_macro/prometheus", |b| {
            b.iter(|| {
                metrics::histogram!("bench_latency_seconds", "route" => "/chat")
                    .record(black_box(0.042))
            })
        });
        let histogram = metrics::histogram!("bench_handle_seconds");
        group.bench_function("histogram_handle/prometheus", |b| {
            b.iter(|| histogram.record(black_box(0.042)))
        });
    });
    black_box(ours.render_prometheus());
    black_box(peer.handle().render());
    group.finish();
}

criterion_group!(benches, spans, metrics_bench);
criterion_main!(benches);
