//! Circuit breaker overhead beside `failsafe` 1.3, in the same run.
//!
//! * `closed/1`, `closed/2`: a closed breaker's `call` over a trivial closure, on one thread
//!   and on two threads sharing the breaker (time per call per thread). Each Bulwark mode is
//!   compared with the closest failsafe policy: consecutive failures with failsafe's
//!   `consecutive_failures`; the sliding windows (time and count) with failsafe's default policy
//!   (success rate over a time window, or else consecutive failures).
//! * `rejected/1`: the cost of a call refused by an open breaker.
//!
//! Time is each thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so that other processes on a
//! shared machine do not inflate one case and not its peer; set `BENCH_WALL_CLOCK=1` to measure
//! wall-clock time instead. Two-thread cases report the slower thread.
//!
//! `cargo bench -p bulwark --bench breaker`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "support/timing.rs"]
mod timing;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Duration;

use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, SlidingWindow};
use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::{CircuitBreaker as _, Config, backoff, failure_policy};
use timing::timed;

fn consecutive() -> CircuitBreaker {
    CircuitBreaker::new("bench", CircuitBreakerConfig::default()).unwrap()
}

fn time_window() -> CircuitBreaker {
    let config = CircuitBreakerConfig::default().with_sliding_window(SlidingWindow::time(
        Duration::from_secs(30),
        0.5,
        10,
    ));
    CircuitBreaker::new("bench", config).unwrap()
}

fn count_window() -> CircuitBreaker {
    let config =
        CircuitBreakerConfig::default().with_sliding_window(SlidingWindow::calls(100, 0.5, 10));
    CircuitBreaker::new("bench", config).unwrap()
}

fn failsafe_consecutive() -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    Config::new()
        .failure_policy(failure_policy::consecutive_failures(
            5,
            backoff::constant(Duration::from_secs(60)),
        ))
        .build()
}

fn failsafe_default() -> impl failsafe::CircuitBreaker + Clone + Send + Sync {
    Config::new().build()
}

/// Runs `per_thread(iters)` on `threads` threads started together; the slowest thread's time.
fn parallel(threads: usize, iters: u64, per_thread: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    timed(|| per_thread(iters))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn ours(b: &CircuitBreaker, iters: u64) {
    for _ in 0..iters {
        black_box(b.call(|| Ok::<u64, ()>(black_box(1))).is_ok());
    }
}

fn theirs(b: &impl failsafe::CircuitBreaker, iters: u64) {
    for _ in 0..iters {
        black_box(b.call(|| Ok::<u64, ()>(black_box(1))).is_ok());
    }
}

fn closed(c: &mut Criterion) {
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("closed/{threads}"));
        let pairs: [(&str, CircuitBreaker); 3] = [
            ("bulwark_consecutive", consecutive()),
            ("bulwark_time_window", time_window()),
            ("bulwark_count_window", count_window()),
        ];
        for (name, breaker) in &pairs {
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| parallel(threads, iters, |n| ours(breaker, n)))
            });
        }
        group.bench_function("no_breaker", |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |n| {
                    for _ in 0..n {
                        let _ = black_box(black_box(|| Ok::<u64, ()>(black_box(1)))());
                    }
                })
            })
        });
        let fc = failsafe_consecutive();
        group.bench_function("failsafe_consecutive", |b| {
            b.iter_custom(|iters| parallel(threads, iters, |n| theirs(&fc, n)))
        });
        let fd = failsafe_default();
        group.bench_function("failsafe_default", |b| {
            b.iter_custom(|iters| parallel(threads, iters, |n| theirs(&fd, n)))
        });
        group.finish();
    }
}

fn rejected(c: &mut Criterion) {
    let mut group = c.benchmark_group("rejected/1");
    let open = consecutive();
    for _ in 0..5 {
        let _ = open.call(|| Err::<(), ()>(()));
    }
    assert!(open.call(|| Ok::<(), ()>(())).is_err());
    group.bench_function("bulwark_open", |b| {
        b.iter_custom(|iters| parallel(1, iters, |n| ours(&open, n)))
    });
    let peer = failsafe_consecutive();
    for _ in 0..5 {
        let _ = peer.call(|| Err::<(), ()>(()));
    }
    assert!(peer.call(|| Ok::<(), ()>(())).is_err());
    group.bench_function("failsafe_open", |b| {
        b.iter_custom(|iters| parallel(1, iters, |n| theirs(&peer, n)))
    });
    group.finish();
}

criterion_group!(benches, closed, rejected);
criterion_main!(benches);
