//! Bulwark's limiter beside `governor`, the crate a Rust user would otherwise pick, in one run.
//!
//! `cargo bench -p bulwark --bench ratelimit`. Besides criterion's timings it prints the
//! memory each keyed limiter holds per key (counted by an instrumented allocator).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bulwark::clock::{Clock, MonotonicClock};
use bulwark::ratelimit::{KeyedRateLimiter, RateLimitConfig, RateLimiter};
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter as Governor};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A limit high enough that every request in the benchmark is admitted.
const RATE: u32 = 1_000_000_000;

fn ours() -> RateLimiter {
    RateLimiter::new(RateLimitConfig::per_second(RATE)).unwrap()
}

fn theirs() -> governor::DefaultDirectRateLimiter {
    Governor::direct(Quota::per_second(NonZeroU32::new(RATE).unwrap()))
}

fn clocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock_read");
    let clock = MonotonicClock::new();
    group.bench_function("bulwark_monotonic", |b| {
        b.iter(|| black_box(clock.now_nanos()))
    });
    group.bench_function("std_instant", |b| b.iter(|| black_box(Instant::now())));
    let quanta = quanta::Clock::new();
    group.bench_function("quanta_raw", |b| b.iter(|| black_box(quanta.now())));
    group.finish();
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("direct_1_thread");
    let limiter = ours();
    group.bench_function("bulwark_try_acquire", |b| {
        b.iter(|| black_box(limiter.try_acquire(1)))
    });
    let governor = theirs();
    group.bench_function("governor_check", |b| b.iter(|| black_box(governor.check())));
    group.finish();
}

/// Time for each of two threads to make one decision on a shared limiter, so the throughput
/// of the pair is two decisions per reported time.
fn two_threads(c: &mut Criterion) {
    fn run(iters: u64, decide: impl Fn() + Sync) -> Duration {
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            decide();
                        }
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .max()
                .unwrap()
        })
    }
    let mut group = c.benchmark_group("direct_2_threads");
    let limiter = ours();
    group.bench_function("bulwark_try_acquire", |b| {
        b.iter_custom(|iters| {
            run(iters, || {
                let _ = black_box(limiter.try_acquire(1));
            })
        })
    });
    let governor = theirs();
    group.bench_function("governor_check", |b| {
        b.iter_custom(|iters| {
            run(iters, || {
                let _ = black_box(governor.check());
            })
        })
    });
    group.finish();
}

fn keyed(c: &mut Criterion) {
    for keys in [10_000u64, 1_000_000] {
        let mut group = c.benchmark_group(format!("keyed_{keys}_keys"));
        // A fixed pseudo-random walk over the key space, the same for both crates.
        let sequence: Vec<u64> = (0..keys)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % keys)
            .collect();

        // One token per second with a burst of a million: every request in the run is
        // admitted and every key stays active (its bucket is not full again), so both crates
        // hold all the keys and the comparison is like for like.
        let config = RateLimitConfig::new(1, Duration::from_secs(1), 1_000_000);
        let quota = Quota::with_period(Duration::from_secs(1))
            .unwrap()
            .allow_burst(NonZeroU32::new(1_000_001).unwrap());
        let before = Region::new(GLOBAL);
        let limiter = KeyedRateLimiter::<u64>::new(config).unwrap();
        for key in 0..keys {
            limiter.try_acquire(&key, 1).unwrap();
        }
        let ours_bytes =
            before.change().bytes_allocated as i64 - before.change().bytes_deallocated as i64;

        let before = Region::new(GLOBAL);
        let governor = Governor::keyed(quota);
        for key in 0..keys {
            let _ = governor.check_key(&key);
        }
        let theirs_bytes =
            before.change().bytes_allocated as i64 - before.change().bytes_deallocated as i64;
        println!(
            "memory with {keys} keys: bulwark {:.1} bytes/key, governor {:.1} bytes/key, ratio {:.2}",
            ours_bytes as f64 / keys as f64,
            theirs_bytes as f64 / keys as f64,
            ours_bytes as f64 / theirs_bytes as f64
        );

        let mut i = 0usize;
        group.bench_function("bulwark_check_key", |b| {
            b.iter(|| {
                i = (i + 1) % sequence.len();
                black_box(limiter.try_acquire(&sequence[i], 1))
            })
        });
        let mut i = 0usize;
        group.bench_function("governor_check_key", |b| {
            b.iter(|| {
                i = (i + 1) % sequence.len();
                black_box(governor.check_key(&sequence[i]))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, clocks, one_thread, two_threads, keyed);
criterion_main!(benches);
