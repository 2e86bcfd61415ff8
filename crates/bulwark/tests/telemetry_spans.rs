//! Span trees, events, status and the bounded trace store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::telemetry::{
    AttributeValue, KeyValue, SpanExt, SpanStatus, TelemetryLayer, TraceContext, TraceFilter,
    TraceStore, TraceStoreConfig, span,
};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn store_with(clock: ManualClock, ttl: Duration, max_spans: usize) -> TraceStore<ManualClock> {
    TraceStore::with_clock(
        TraceStoreConfig {
            ttl,
            max_spans,
            ..Default::default()
        },
        clock,
    )
}

fn subscriber(store: &TraceStore<ManualClock>) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()))
}

#[test]
fn children_on_other_threads_join_their_parents_trace() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 1000);
    let dispatch = tracing::Dispatch::new(subscriber(&store));
    tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!("root");
        let _entered = root.enter();
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let parent = tracing::Span::current();
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let _p = parent.enter();
                        let worker = tracing::info_span!("worker", index = i);
                        worker.in_scope(|| {
                            let _leaf = tracing::info_span!("leaf").entered();
                        });
                    });
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let traces = store.recent_traces(&TraceFilter::default());
    assert_eq!(traces.len(), 1, "all spans share one trace");
    assert_eq!(traces[0].span_count, 7);
    let tree = store.get_trace(traces[0].trace_id).unwrap();
    assert_eq!(tree.roots.len(), 1);
    assert_eq!(tree.roots[0].span.name, "root");
    assert_eq!(tree.roots[0].children.len(), 3);
    for worker in &tree.roots[0].children {
        assert_eq!(worker.span.name, "worker");
        assert_eq!(worker.span.parent_span_id, Some(tree.roots[0].span.span_id));
        assert_eq!(worker.children.len(), 1);
        assert_eq!(worker.children[0].span.name, "leaf");
        assert_eq!(
            worker.children[0].span.parent_span_id,
            Some(worker.span.span_id)
        );
    }
    let mut indices: Vec<_> = tree.roots[0]
        .children
        .iter()
        .map(|w| w.span.attribute("index").cloned().unwrap())
        .collect();
    indices.sort_by_key(|v| v.to_string());
    assert_eq!(
        indices,
        vec![
            AttributeValue::Int(0),
            AttributeValue::Int(1),
            AttributeValue::Int(2)
        ]
    );
}

#[test]
fn spans_in_spawned_tasks_keep_their_parent_links() {
    // The registry releases a parent through the thread's default dispatcher when a child
    // closes, so tasks that finish on runtime threads need the subscriber installed globally,
    // as `telemetry::init` does. nextest runs each test in its own process; this is the only
    // test of this binary that sets the global default.
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 1000);
    tracing::subscriber::set_global_default(subscriber(&store)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let root = tracing::info_span!("workflow");
    runtime.block_on(
        async {
            let mut tasks = Vec::new();
            for agent in ["planner", "coder"] {
                let span = tracing::info_span!("agent", name = agent);
                tasks.push(tokio::spawn(
                    async move {
                        tokio::task::yield_now().await;
                        let tool = tracing::info_span!("tool_call");
                        async { tokio::task::yield_now().await }
                            .instrument(tool)
                            .await;
                    }
                    .instrument(span),
                ));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
        .instrument(root.clone()),
    );
    let root_ids = root.trace_context().unwrap();
    drop(root);
    drop(runtime);
    let tree = store.get_trace(root_ids.trace_id).unwrap();
    assert_eq!(tree.summary.span_count, 5);
    assert_eq!(tree.roots.len(), 1);
    assert_eq!(tree.roots[0].span.span_id, root_ids.span_id);
    let agents = &tree.roots[0].children;
    assert_eq!(agents.len(), 2);
    for agent in agents {
        assert_eq!(agent.span.name, "agent");
        assert_eq!(agent.children.len(), 1);
        assert_eq!(agent.children[0].span.name, "tool_call");
        assert_eq!(agent.children[0].span.trace_id, root_ids.trace_id);
    }
}

#[test]
fn error_events_become_exceptions_and_set_the_error_status() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 1000);
    tracing::subscriber::with_default(subscriber(&store), || {
        let span = tracing::info_span!("call", otel.kind = "client");
        span.in_scope(|| {
            tracing::info!(attempt = 1, "sending");
            tracing::error!(code = 503, "upstream unavailable");
        });
    });
    let trace = &store.recent_traces(&TraceFilter::default())[0];
    assert!(trace.has_error);
    let span = &store.spans(trace.trace_id)[0];
    assert_eq!(span.kind, bulwark::telemetry::SpanKind::Client);
    assert_eq!(span.status, SpanStatus::error("upstream unavailable"));
    assert_eq!(span.events.len(), 2);
    assert_eq!(span.events[0].name, "sending");
    assert_eq!(span.events[1].name, "exception");
    assert!(
        span.events[1]
            .attributes
            .contains(&KeyValue::new("exception.message", "upstream unavailable"))
    );
    assert!(
        span.events[1]
            .attributes
            .contains(&KeyValue::new("code", 503i64))
    );
}

#[test]
fn durations_and_timestamps_come_from_the_stores_clock() {
    let clock = ManualClock::new();
    let store = store_with(clock.clone(), Duration::from_secs(3600), 1000);
    tracing::subscriber::with_default(subscriber(&store), || {
        let span = tracing::info_span!("timed");
        clock.advance(Duration::from_millis(250));
        span.in_scope(|| tracing::info!("midway"));
        clock.advance(Duration::from_millis(100));
        // Events and errors added through `SpanExt` read the same clock.
        span.add_event("checkpoint", Vec::new());
        clock.advance(Duration::from_millis(100));
        span.record_error(&std::io::Error::other("tool failed"));
        clock.advance(Duration::from_millis(50));
    });
    let span = &store.spans(store.recent_traces(&TraceFilter::default())[0].trace_id)[0];
    assert_eq!(span.duration_nanos(), 500_000_000);
    let offsets: Vec<u64> = span
        .events
        .iter()
        .map(|event| event.time_unix_nanos - span.start_unix_nanos)
        .collect();
    assert_eq!(offsets, [250_000_000, 350_000_000, 450_000_000]);
}

#[test]
fn manual_spans_nest_and_carry_runtime_attributes_and_status() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 1000);
    tracing::subscriber::with_default(subscriber(&store), || {
        let run = span::start("agent_run", [("agent", "researcher")]);
        run.in_scope(|| {
            let tool = span::start("tool:search", [("query.length", 42i64)]);
            tool.set_attribute(format!("dynamic.{}", 7), true);
            tool.record_error(&std::io::Error::other("connection reset"));
            tool.end();
        });
        run.set_status(SpanStatus::Ok);
        run.end();
    });
    let trace = &store.recent_traces(&TraceFilter::default())[0];
    assert_eq!(trace.root_name, "agent_run");
    let tree = store.get_trace(trace.trace_id).unwrap();
    let root = &tree.roots[0];
    assert_eq!(root.span.status, SpanStatus::Ok);
    assert_eq!(
        root.span.attribute("agent"),
        Some(&AttributeValue::from("researcher"))
    );
    let tool = &root.children[0].span;
    assert_eq!(tool.name, "tool:search");
    assert_eq!(
        tool.attribute("dynamic.7"),
        Some(&AttributeValue::Bool(true))
    );
    assert_eq!(
        tool.attribute("query.length"),
        Some(&AttributeValue::Int(42))
    );
    assert_eq!(tool.status, SpanStatus::error("connection reset"));
    assert_eq!(tool.events[0].name, "exception");
}

#[test]
fn a_remote_parent_puts_the_span_in_the_callers_trace() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 1000);
    let remote =
        TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .unwrap();
    tracing::subscriber::with_default(subscriber(&store), || {
        let handler = tracing::info_span!("handle_message");
        handler.set_parent(&remote);
        handler.in_scope(|| {
            let _child = tracing::info_span!("inner").entered();
        });
    });
    let spans = store.spans(remote.trace_id);
    assert_eq!(spans.len(), 2);
    let handler = spans.iter().find(|s| s.name == "handle_message").unwrap();
    assert_eq!(handler.parent_span_id, Some(remote.span_id));
    assert!(handler.parent_is_remote);
    let inner = spans.iter().find(|s| s.name == "inner").unwrap();
    assert_eq!(inner.parent_span_id, Some(handler.span_id));
    assert!(!inner.parent_is_remote);
}

fn finish_roots(store: &TraceStore<ManualClock>, names: &[&'static str]) {
    tracing::subscriber::with_default(subscriber(store), || {
        for name in names {
            let _s = tracing::info_span!("root", otel.name = *name).entered();
        }
    });
}

#[test]
fn spans_older_than_the_ttl_are_evicted() {
    let clock = ManualClock::new();
    let store = store_with(clock.clone(), Duration::from_secs(3600), 1000);
    finish_roots(&store, &["old"]);
    clock.advance(Duration::from_secs(1800));
    finish_roots(&store, &["young"]);
    clock.advance(Duration::from_secs(1799));
    assert_eq!(store.len(), 2);
    clock.advance(Duration::from_secs(1));
    let names: Vec<_> = store
        .recent_traces(&TraceFilter::default())
        .into_iter()
        .map(|t| t.root_name)
        .collect();
    assert_eq!(names, ["young"]);
    assert_eq!(store.evicted(), 1);
    clock.advance(Duration::from_secs(1800));
    assert!(store.is_empty());
}

#[test]
fn the_span_cap_evicts_the_oldest_spans_first() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 3);
    finish_roots(&store, &["a", "b", "c", "d", "e"]);
    assert_eq!(store.len(), 3);
    assert_eq!(store.trace_count(), 3);
    assert_eq!(store.evicted(), 2);
    let mut names: Vec<_> = store
        .recent_traces(&TraceFilter::default())
        .into_iter()
        .map(|t| t.root_name)
        .collect();
    names.sort();
    assert_eq!(names, ["c", "d", "e"]);
}

#[test]
fn a_trace_that_lost_its_root_shows_the_orphans_as_roots() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 2);
    tracing::subscriber::with_default(subscriber(&store), || {
        let root = tracing::info_span!("root");
        root.in_scope(|| {
            let _a = tracing::info_span!("a").entered();
        });
        root.in_scope(|| {
            let _b = tracing::info_span!("b").entered();
        });
        root.in_scope(|| {
            let _c = tracing::info_span!("c").entered();
        });
    });
    // a, b, c, root ended in that order; the cap of 2 keeps c and root.
    let trace = store.recent_traces(&TraceFilter::default())[0].clone();
    let tree = store.get_trace(trace.trace_id).unwrap();
    assert_eq!(tree.roots.len(), 1);
    assert_eq!(tree.roots[0].span.name, "root");
    assert_eq!(tree.roots[0].children.len(), 1);
    assert_eq!(tree.roots[0].children[0].span.name, "c");
}

#[test]
fn recent_traces_filter_by_name_error_duration_and_limit() {
    let clock = ManualClock::new();
    let store = store_with(clock.clone(), Duration::from_secs(3600), 1000);
    tracing::subscriber::with_default(subscriber(&store), || {
        for (i, name) in ["chat", "search", "chat_fast"].into_iter().enumerate() {
            let span = tracing::info_span!("op", otel.name = name);
            clock.advance(Duration::from_millis(100 * (i as u64 + 1)));
            if name == "search" {
                span.set_status(SpanStatus::error("boom"));
            }
            drop(span);
        }
    });
    let names = |f: TraceFilter| -> Vec<String> {
        store
            .recent_traces(&f)
            .into_iter()
            .map(|t| t.root_name)
            .collect()
    };
    assert_eq!(
        names(TraceFilter::default()),
        ["chat_fast", "search", "chat"]
    );
    assert_eq!(
        names(TraceFilter {
            name_contains: Some("chat".into()),
            ..Default::default()
        }),
        ["chat_fast", "chat"]
    );
    assert_eq!(
        names(TraceFilter {
            has_error: Some(true),
            ..Default::default()
        }),
        ["search"]
    );
    assert_eq!(
        names(TraceFilter {
            min_duration_nanos: Some(200_000_000),
            ..Default::default()
        }),
        ["chat_fast", "search"]
    );
    assert_eq!(
        names(TraceFilter {
            limit: Some(1),
            ..Default::default()
        }),
        ["chat_fast"]
    );
}

#[test]
fn a_trace_serializes_as_a_json_span_tree() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 1000);
    tracing::subscriber::with_default(subscriber(&store), || {
        let root = tracing::info_span!("root", user.tier = "pro");
        root.in_scope(|| {
            let _child = tracing::info_span!("child").entered();
        });
    });
    let summary = store.recent_traces(&TraceFilter::default());
    let tree = store.get_trace(summary[0].trace_id).unwrap();
    let json = serde_json::to_value(&tree).unwrap();
    assert_eq!(json["trace_id"], summary[0].trace_id.to_string());
    assert_eq!(json["roots"][0]["name"], "root");
    assert_eq!(json["roots"][0]["attributes"]["user.tier"], "pro");
    assert_eq!(json["roots"][0]["status"]["code"], "UNSET");
    assert_eq!(json["roots"][0]["children"][0]["name"], "child");
    assert_eq!(
        json["roots"][0]["children"][0]["parent_span_id"],
        json["roots"][0]["span_id"]
    );
    let list = serde_json::to_value(&summary).unwrap();
    assert_eq!(list[0]["span_count"], 2);
}

#[test]
fn bytes_per_stored_span_stay_small() {
    let store = store_with(ManualClock::new(), Duration::from_secs(3600), 10_000);
    tracing::subscriber::with_default(subscriber(&store), || {
        for i in 0..1000 {
            let _s = tracing::info_span!("llm_call", model = "gpt-4o-mini", tokens = i).entered();
        }
    });
    let per_span = store.approx_bytes() / store.len();
    println!("approx bytes per stored span (2 attributes, no events): {per_span}");
    assert!(per_span < 600, "a stored span takes {per_span} bytes");
}
