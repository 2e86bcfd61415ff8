//! The event bus: ordering, replay after an id, reset when the replay is gone, filters, a slow
//! subscriber dropped and counted, 200 subscribers, and the primitives' hooks feeding it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig};
use bulwark::clock::ManualClock;
use bulwark::events::{
    BreakerEvents, Delivery, EventBus, EventBusConfig, EventFilter, EventKind, LimiterEvents,
    NewEvent, Subscription,
};
use bulwark::ratelimit::{RateLimitConfig, RateLimiterRegistry};
use serde_json::json;

fn event(kind: EventKind, name: &str) -> NewEvent {
    NewEvent::new(kind, name, "test", json!({}))
}

/// Everything already delivered, without waiting.
fn drain(sub: &mut Subscription) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Some(Some(d)) = tokio_test_now(sub) {
        out.push(d);
    }
    out
}

fn tokio_test_now(sub: &mut Subscription) -> Option<Option<Delivery>> {
    use futures_core::Stream;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(sub).poll_next(&mut cx) {
        std::task::Poll::Ready(d) => Some(d),
        std::task::Poll::Pending => None,
    }
}

fn ids(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Event(e) => Some(e.id),
            _ => None,
        })
        .collect()
}

#[test]
fn events_arrive_in_publish_order_with_increasing_ids() {
    let bus = EventBus::default();
    let mut sub = bus.subscribe(EventFilter::all());
    for i in 0..50 {
        assert_eq!(
            bus.publish(event(EventKind::Breaker, &format!("b{i}"))),
            i + 1
        );
    }
    let got = drain(&mut sub);
    assert_eq!(ids(&got), (1..=50).collect::<Vec<_>>());
    let Delivery::Event(e) = &got[7] else {
        panic!()
    };
    assert_eq!(e.name, "b7");
}

#[test]
fn a_subscriber_after_an_id_gets_what_it_missed_then_live_events() {
    let bus = EventBus::default();
    for _ in 0..10 {
        bus.publish(event(EventKind::Checkpoint, "w"));
    }
    let mut sub = bus.subscribe_after(6, EventFilter::all());
    bus.publish(event(EventKind::Checkpoint, "w"));
    assert_eq!(ids(&drain(&mut sub)), vec![7, 8, 9, 10, 11]);
}

#[test]
fn a_subscriber_whose_events_were_forgotten_gets_a_reset_first() {
    let bus = EventBus::new(EventBusConfig::new(4, 16));
    for _ in 0..10 {
        bus.publish(event(EventKind::Breaker, "b"));
    }
    // Ids 7..=10 are kept; 5 and 6 are gone.
    let mut sub = bus.subscribe_after(4, EventFilter::all());
    bus.publish(event(EventKind::Breaker, "b"));
    let got = drain(&mut sub);
    assert_eq!(got[0], Delivery::Reset { last_id: 10 });
    assert_eq!(ids(&got), vec![11]);

    // Exactly at the edge (the oldest kept follows the id) there is no reset.
    let mut edge = bus.subscribe_after(7, EventFilter::all());
    assert_eq!(ids(&drain(&mut edge)), vec![8, 9, 10, 11]);

    // An id from a bus that restarted (newer than any here) resets too.
    let mut future = bus.subscribe_after(500, EventFilter::all());
    assert_eq!(drain(&mut future), vec![Delivery::Reset { last_id: 11 }]);
}

#[test]
fn filters_pass_only_the_kinds_and_names_asked_for_in_replay_and_live() {
    let bus = EventBus::default();
    bus.publish(event(EventKind::Breaker, "llm"));
    bus.publish(event(EventKind::Limiter, "llm"));
    bus.publish(event(EventKind::Breaker, "search"));
    let filter = EventFilter::all()
        .kind(EventKind::Breaker)
        .kind(EventKind::Workflow)
        .name("llm")
        .name("demo");
    let mut sub = bus.subscribe_after(0, filter);
    bus.publish(event(EventKind::Workflow, "demo"));
    bus.publish(event(EventKind::Workflow, "other"));
    bus.publish(event(EventKind::Checkpoint, "demo"));
    assert_eq!(ids(&drain(&mut sub)), vec![1, 4]);
}

#[test]
fn a_slow_subscriber_is_dropped_and_counted_without_slowing_the_publisher() {
    let bus = EventBus::new(EventBusConfig::new(64, 8));
    let mut slow = bus.subscribe(EventFilter::all());
    let mut fast = bus.subscribe(EventFilter::all());
    let mut fast_ids = Vec::new();
    for _ in 0..20 {
        bus.publish(event(EventKind::Limiter, "l"));
        fast_ids.extend(ids(&drain(&mut fast)));
    }
    assert_eq!(fast_ids, (1..=20).collect::<Vec<_>>());
    assert_eq!(bus.stats().subscribers, 2);
    let got = drain(&mut slow);
    assert_eq!(got, vec![Delivery::Lagged { missed: 12 }]);
    assert_eq!(tokio_test_now(&mut slow), Some(None), "the stream ends");
    let stats = bus.stats();
    assert_eq!(stats.dropped_subscribers, 1);
    assert_eq!(stats.subscribers, 1);
    assert_eq!(stats.published, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscribers_each_get_every_event() {
    let bus = EventBus::new(EventBusConfig::new(1024, 1024));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let mut sub = bus.subscribe(EventFilter::all());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < 500 {
                match sub.recv().await {
                    Some(Delivery::Event(e)) => seen.push(e.id),
                    other => panic!("unexpected {other:?}"),
                }
            }
            seen
        }));
    }
    for _ in 0..500 {
        bus.publish(event(EventKind::Breaker, "b"));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (1..=500).collect::<Vec<_>>());
    }
    assert_eq!(bus.stats().dropped_subscribers, 0);
}

#[test]
fn breaker_transitions_become_events() {
    let bus = EventBus::default();
    let breakers = BreakerRegistry::new();
    breakers.add_listener(Arc::new(BreakerEvents::new(bus.clone())));
    let mut sub = bus.subscribe(EventFilter::all());
    let breaker = breakers
        .get_or_create("tool", CircuitBreakerConfig::default())
        .unwrap();
    breaker.force_open();
    breaker.reset();
    let got = drain(&mut sub);
    let data: Vec<_> = got
        .iter()
        .map(|d| match d {
            Delivery::Event(e) => (e.kind, e.name.clone(), e.data["to"].clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        data,
        vec![
            (EventKind::Breaker, "tool".into(), json!("forced_open")),
            (EventKind::Breaker, "tool".into(), json!("closed")),
        ]
    );
}

#[test]
fn limiter_rejections_are_aggregated_per_key_and_second() {
    let bus = EventBus::default();
    let clock = ManualClock::new();
    let limiters = RateLimiterRegistry::with_observer(Arc::new(LimiterEvents::with_clock(
        bus.clone(),
        clock.clone(),
    )));
    let limiter = limiters
        .get_or_create_keyed("api", RateLimitConfig::new(1, Duration::from_secs(3600), 0))
        .unwrap();
    let mut sub = bus.subscribe(EventFilter::all());
    for _ in 0..5 {
        limiter.try_acquire(&"alice".to_owned(), 1).unwrap();
    }
    limiter.try_acquire(&"bob".to_owned(), 1).unwrap();
    limiter.try_acquire(&"bob".to_owned(), 1).unwrap();
    clock.advance(Duration::from_secs(1));
    limiter.try_acquire(&"alice".to_owned(), 1).unwrap();
    let got: Vec<_> = drain(&mut sub)
        .into_iter()
        .map(|d| match d {
            Delivery::Event(e) => (e.data["key"].clone(), e.data["count"].clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    // alice: 4 refused in second 0 (one event carrying 1), 3 more counted and carried by
    // her event in second 1 together with that one.
    assert_eq!(
        got,
        vec![
            (json!("\"alice\""), json!(1)),
            (json!("\"bob\""), json!(1)),
            (json!("\"alice\""), json!(4)),
        ]
    );
}
