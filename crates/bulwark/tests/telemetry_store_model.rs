//! The trace store against a plain model: a FIFO of spans with the same time to live and cap. Random interleavings of spans from a few traces, clock moves and reads must
//! leave the store holding exactly the model's spans, in the model's order, per trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use bulwark::clock::ManualClock;
use bulwark::telemetry::{
    AttributeValue, SpanExt, SpanId, TelemetryLayer, TraceContext, TraceFilter, TraceId,
    TraceStore, TraceStoreConfig,
};
use proptest::prelude::*;
use tracing_subscriber::layer::SubscriberExt;

const TTL_SECS: u64 = 100;

#[derive(Clone, Debug)]
enum Op {
    /// A span ends in this trace.
    Span(u16),
    /// The clock moves forward this many seconds.
    Advance(u64),
    /// Everything is read and compared with the model.
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u16..6).prop_map(Op::Span),
        1 => (0u64..60).prop_map(Op::Advance),
        1 => Just(Op::Check),
    ]
}

/// The model: `(inserted_at_secs, trace, n)` oldest first.
struct Model {
    max: usize,
    spans: VecDeque<(u64, u128, u64)>,
    evicted: u64,
}

impl Model {
    fn evict(&mut self, now: u64) {
        while self
            .spans
            .front()
            .is_some_and(|&(at, _, _)| now - at >= TTL_SECS)
        {
            self.spans.pop_front();
            self.evicted += 1;
        }
        while self.spans.len() > self.max {
            self.spans.pop_front();
            self.evicted += 1;
        }
    }
}

fn trace_id(trace: u128) -> TraceId {
    TraceId::from_u128(trace + 1).unwrap()
}

fn check(store: &TraceStore<ManualClock>, model: &mut Model, now: u64) {
    model.evict(now);
    assert_eq!(store.len(), model.spans.len());
    assert_eq!(store.evicted(), model.evicted);
    let traces: BTreeSet<u128> = model.spans.iter().map(|&(_, t, _)| t).collect();
    assert_eq!(store.trace_count(), traces.len());
    assert_eq!(
        store.recent_traces(&TraceFilter::default()).len(),
        traces.len()
    );
    for &trace in traces.iter().chain(&[0, 1, 2, 3, 4, 5]) {
        let expected: Vec<u64> = model
            .spans
            .iter()
            .filter(|&&(_, t, _)| t == trace)
            .map(|&(_, _, n)| n)
            .collect();
        let stored: Vec<u64> = store
            .spans(trace_id(trace))
            .iter()
            .map(|span| match span.attribute("n") {
                Some(AttributeValue::Int(n)) => *n as u64,
                other => panic!("span without its number: {other:?}"),
            })
            .collect();
        assert_eq!(stored, expected, "spans of trace {trace}");
        assert_eq!(
            store.get_trace(trace_id(trace)).is_some(),
            !expected.is_empty()
        );
    }
}

fn run(max: usize, ops: &[Op]) {
    let clock = ManualClock::new();
    let store = TraceStore::with_clock(
        TraceStoreConfig {
            ttl: Duration::from_secs(TTL_SECS),
            max_spans: max,
            ..Default::default()
        },
        clock.clone(),
    );
    let mut model = Model {
        max,
        spans: VecDeque::new(),
        evicted: 0,
    };
    let mut now = 0;
    let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
    tracing::subscriber::with_default(subscriber, || {
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Span(trace) => {
                    let trace = u128::from(*trace);
                    let span = tracing::info_span!("work", n = n as u64);
                    span.set_parent(&TraceContext {
                        trace_id: trace_id(trace),
                        span_id: SpanId::from_u64(7).unwrap(),
                        sampled: true,
                        trace_state: None,
                    });
                    drop(span);
                    model.spans.push_back((now, trace, n as u64));
                    model.evict(now);
                }
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(*secs));
                    now += secs;
                }
                Op::Check => check(&store, &mut model, now),
            }
        }
    });
    check(&store, &mut model, now);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_caps_keep_exactly_the_newest_spans(
        max in 1usize..12,
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        run(max, &ops);
    }

    #[test]
    fn large_caps_keep_exactly_the_newest_spans(
        max in 256usize..600,
        ops in proptest::collection::vec(op(), 200..1500),
    ) {
        run(max, &ops);
    }
}

#[test]
fn stale_index_entries_are_swept_and_live_traces_survive_it() {
    // Thousands of one-span traces pass through a small store, whose index is read (and so
    // brought up to date, and swept) every 100 spans; a long-lived trace whose spans keep
    // arriving stays whole.
    let ops: Vec<Op> = (1..20_000u16)
        .map(|i| if i % 7 == 0 { Op::Span(0) } else { Op::Span(i) })
        .flat_map(|op| [op, Op::Advance(0)])
        .enumerate()
        .map(|(i, op)| if i % 200 == 199 { Op::Check } else { op })
        .collect();
    run(50, &ops);
}
