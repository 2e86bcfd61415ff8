//! The event bus's cost, beside a bare `tokio::sync::broadcast` channel (what a user would
//! hand-roll) and, for the hot paths, beside the same primitive without the bus and the peer
//! crate (governor, failsafe), in the same run.
//!
//! * `publish/{0,1,200}`: one `EventBus::publish` of a breaker-transition-sized event with 0,
//!   1 and 200 subscribers attached that never read (the worst case: stuck subscribers), and
//!   the bare channel's `send` of the same event with as many receivers.
//! * `limiter_200`: an admitted `try_acquire` with the events observer and 200 subscribers,
//!   without it, and governor's `check`.
//! * `breaker_200`: a closed breaker's successful `call` with the events listener and 200
//!   subscribers, without it, and failsafe's `call`.
//!
//! `cargo bench -p bulwark --bench events -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig};
use bulwark::events::{
    BreakerEvents, EventBus, EventBusConfig, EventFilter, EventKind, LimiterEvents, NewEvent,
    Subscription,
};
use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use serde_json::json;

fn event() -> NewEvent {
    NewEvent::new(
        EventKind::Breaker,
        "search_api",
        "transition",
        json!({"from": "closed", "to": "open", "reason": "failure_threshold"}),
    )
}

fn subscribers(bus: &EventBus, n: usize) -> Vec<Subscription> {
    (0..n).map(|_| bus.subscribe(EventFilter::all())).collect()
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("events/publish");
    for n in [0usize, 1, 200] {
        let bus = EventBus::new(EventBusConfig::default());
        let _subs = subscribers(&bus, n);
        group.bench_function(format!("bulwark/{n}"), |b| {
            b.iter(|| black_box(bus.publish(event())))
        });
        let (sender, first) = tokio::sync::broadcast::channel(256);
        let _receivers: Vec<_> = (0..n).map(|_| sender.subscribe()).collect();
        drop(first);
        let mut id = 0u64;
        group.bench_function(format!("tokio_broadcast/{n}"), |b| {
            b.iter(|| {
                id += 1;
                let e = event();
                black_box(sender.send(Arc::new((id, e)))).ok()
            })
        });
    }
    group.finish();
}

fn hot_paths(c: &mut Criterion) {
    let config = RateLimitConfig::new(u32::MAX / 2, Duration::from_secs(1), 0);
    let mut group = c.benchmark_group("events/limiter_200");
    let bus = EventBus::default();
    let _subs = subscribers(&bus, 200);
    let observed = RateLimiter::builder(config)
        .name("bench")
        .observer(Arc::new(LimiterEvents::new(bus.clone())))
        .build()
        .unwrap();
    let plain = RateLimiter::new(config).unwrap();
    let governor = governor::RateLimiter::direct(governor::Quota::per_second(
        NonZeroU32::new(u32::MAX / 2).unwrap(),
    ));
    group.bench_function("bulwark_with_events", |b| {
        b.iter(|| black_box(observed.try_acquire(1).unwrap()))
    });
    group.bench_function("bulwark", |b| {
        b.iter(|| black_box(plain.try_acquire(1).unwrap()))
    });
    group.bench_function("governor", |b| {
        b.iter(|| black_box(governor.check().is_ok()))
    });
    group.finish();

    let mut group = c.benchmark_group("events/breaker_200");
    let registry = BreakerRegistry::new();
    registry.add_listener(Arc::new(BreakerEvents::new(bus.clone())));
    let observed = registry
        .get_or_create("bench", CircuitBreakerConfig::default())
        .unwrap();
    let plain = BreakerRegistry::new()
        .get_or_create("bench", CircuitBreakerConfig::default())
        .unwrap();
    let failsafe = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            5,
            failsafe::backoff::constant(Duration::from_secs(60)),
        ))
        .build();
    group.bench_function("bulwark_with_events", |b| {
        b.iter(|| black_box(observed.call(|| Ok::<_, ()>(1)).is_ok()))
    });
    group.bench_function("bulwark", |b| {
        b.iter(|| black_box(plain.call(|| Ok::<_, ()>(1)).is_ok()))
    });
    group.bench_function("failsafe", |b| {
        b.iter(|| black_box(failsafe.call(|| Ok::<_, ()>(1)).is_ok()))
    });
    group.finish();
}

criterion_group!(benches, publish, hot_paths);
criterion_main!(benches);
