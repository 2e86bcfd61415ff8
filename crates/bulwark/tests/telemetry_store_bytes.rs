//! The trace store's byte budget and the layer's cut of long strings: what a client controls
//! (a path, a header) cannot make the stored spans grow without bound (issue 12 defect 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::telemetry::{
    MAX_ATTRIBUTE_VALUE_BYTES, SpanExt, SpanStatus, TRUNCATION_MARKER, TelemetryLayer, TraceStore,
    TraceStoreConfig,
};
use tracing_subscriber::layer::SubscriberExt;

fn store(max_spans: usize, max_bytes: usize) -> TraceStore<ManualClock> {
    TraceStore::with_clock(
        TraceStoreConfig {
            ttl: Duration::from_secs(3600),
            max_spans,
            max_bytes,
        },
        ManualClock::new(),
    )
}

fn with_store(store: &TraceStore<ManualClock>, f: impl FnOnce()) {
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, f);
}

#[test]
fn long_attribute_values_names_and_messages_are_cut_on_a_char_boundary_with_a_marker() {
    let store = store(100, usize::MAX);
    // Multi-byte characters, so that the cut must look for a boundary.
    let long = "é".repeat(10_000);
    with_store(&store, || {
        let span =
            tracing::info_span!("request", otel.name = %long, path = %long, raw = long.as_str());
        span.set_attribute("runtime", long.clone());
        span.set_status(SpanStatus::error(long.clone()));
        span.in_scope(|| tracing::info!(detail = long.as_str(), "{}", long));
    });
    let spans = store.spans(store.recent_traces(&Default::default())[0].trace_id);
    let span = &spans[0];
    let check = |what: &str, value: &str| {
        assert!(
            value.len() <= MAX_ATTRIBUTE_VALUE_BYTES,
            "{what}: {}",
            value.len()
        );
        assert!(
            value.len() > MAX_ATTRIBUTE_VALUE_BYTES - 8,
            "{what}: {}",
            value.len()
        );
        assert!(value.ends_with(TRUNCATION_MARKER), "{what}");
        assert!(
            value
                .trim_end_matches(TRUNCATION_MARKER)
                .chars()
                .all(|c| c == 'é'),
            "{what}"
        );
    };
    check("name", &span.name);
    for key in ["path", "raw", "runtime"] {
        check(key, &span.attribute(key).unwrap().to_string());
    }
    match &span.status {
        SpanStatus::Error { message } => check("status", message),
        other => panic!("{other:?}"),
    }
    check("event name", &span.events[0].name);
    check(
        "event attribute",
        &span.events[0].attributes[0].value.to_string(),
    );
    // Short values are left alone.
    with_store(&store, || {
        let _span = tracing::info_span!("short", path = "/health").entered();
    });
    let short = store.recent_traces(&Default::default());
    assert!(short.iter().any(|t| t.root_name == "short"));
}

#[test]
fn the_byte_budget_evicts_oldest_first_and_is_reported_in_stats() {
    let max_bytes = 64 * 1024;
    let store = store(100_000, max_bytes);
    let padding = "x".repeat(900);
    with_store(&store, || {
        for i in 0..1_000 {
            let _span = tracing::info_span!("request", n = i, path = %padding).entered();
        }
    });
    let stats = store.stats();
    assert!(stats.bytes <= max_bytes, "{stats:?}");
    assert!(
        stats.bytes > max_bytes / 2,
        "the budget is used, not emptied: {stats:?}"
    );
    assert_eq!(stats.max_bytes, max_bytes);
    assert!(stats.spans < 1_000 && stats.spans > 10, "{stats:?}");
    assert_eq!(stats.evicted.bytes, 1_000 - stats.spans as u64, "{stats:?}");
    assert_eq!((stats.evicted.age, stats.evicted.count), (0, 0));
    assert_eq!(store.evicted(), stats.evicted.total());
    // The newest spans are the ones kept.
    let kept: Vec<i64> = store
        .recent_traces(&Default::default())
        .iter()
        .flat_map(|t| store.spans(t.trace_id))
        .map(|s| s.attribute("n").unwrap().to_string().parse().unwrap())
        .collect();
    assert_eq!(*kept.iter().min().unwrap(), 1_000 - stats.spans as i64);
    // The accounting stays exact through clear.
    store.clear();
    assert_eq!(store.stats().bytes, 0);
}

#[test]
fn the_span_cap_and_age_are_counted_apart_from_the_byte_budget() {
    let clock = ManualClock::new();
    let store = TraceStore::with_clock(
        TraceStoreConfig {
            ttl: Duration::from_secs(10),
            max_spans: 5,
            max_bytes: usize::MAX,
        },
        clock.clone(),
    );
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..8 {
            let _span = tracing::info_span!("s").entered();
        }
    });
    assert_eq!(store.stats().evicted.count, 3);
    clock.advance(Duration::from_secs(11));
    assert_eq!(store.len(), 0);
    let stats = store.stats();
    assert_eq!(
        (stats.evicted.age, stats.evicted.count, stats.evicted.bytes),
        (5, 3, 0)
    );
    assert_eq!(stats.bytes, 0);
}
