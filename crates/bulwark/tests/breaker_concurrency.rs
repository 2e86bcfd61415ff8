//! Strict half-open admission under concurrency, and permits coming back on cancellation and
//! panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, State};
use bulwark::clock::ManualClock;

const MAX_TRIALS: u32 = 3;

fn half_open_breaker(success_threshold: u32) -> (CircuitBreaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let config =
        CircuitBreakerConfig::new(1, success_threshold, Duration::from_secs(1), MAX_TRIALS);
    let b = CircuitBreaker::builder("stress", config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = b.call(|| Err::<(), _>(()));
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.state(), State::HalfOpen);
    (b, clock)
}

/// Many tasks hammer a breaker that keeps cycling OPEN → HALF_OPEN → (OPEN | CLOSED → OPEN),
/// holding trial permits across yields, settling, failing, and dropping them. The number of
/// HALF_OPEN-admitted calls alive at once is tracked outside the breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_never_has_more_than_max_trials_in_flight_under_contention() {
    let (b, clock) = half_open_breaker(4);
    let in_flight = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let trials = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let (b, clock) = (b.clone(), clock.clone());
        let (in_flight, peak, trials) = (in_flight.clone(), peak.clone(), trials.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..300u64 {
                let Ok(permit) = b.try_acquire() else {
                    if b.state() == State::Open {
                        clock.advance(Duration::from_millis(250));
                    }
                    tokio::task::yield_now().await;
                    continue;
                };
                let trial = permit.state() == State::HalfOpen;
                if trial {
                    trials.fetch_add(1, Ordering::Relaxed);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    assert!(now <= MAX_TRIALS, "{now} trials in flight");
                }
                for _ in 0..(i % 3) {
                    tokio::task::yield_now().await;
                }
                if trial {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                match (task + i) % 7 {
                    0 => permit.failure(),
                    1 => drop(permit),
                    _ => permit.success(),
                }
                if b.state() == State::Closed && (task + i) % 5 == 0 {
                    // Trip it again so the run keeps going through HALF_OPEN.
                    let _ = b.call(|| Err::<(), _>(()));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= MAX_TRIALS);
    assert!(
        trials.load(Ordering::Relaxed) > 100,
        "the run must exercise HALF_OPEN"
    );
    assert_eq!(b.snapshot().trials_in_flight, 0, "every permit came back");
}

/// The same with OS threads racing on the admission CAS directly.
#[test]
fn half_open_admission_is_strict_across_os_threads() {
    let (b, _clock) = half_open_breaker(u32::MAX >> 12);
    let in_flight = AtomicU32::new(0);
    let peak = AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..20_000 {
                    if let Ok(permit) = b.try_acquire() {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now(); // let other threads try while this trial runs
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                }
            });
        }
    });
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=MAX_TRIALS).contains(&peak), "peak {peak}");
    assert_eq!(b.snapshot().trials_in_flight, 0);
}

#[tokio::test]
async fn a_cancelled_trial_gives_its_slot_back_without_counting() {
    let (b, _clock) = half_open_breaker(1);
    let mut held = Vec::new();
    for _ in 0..MAX_TRIALS - 1 {
        held.push(b.try_acquire().unwrap());
    }
    let task = {
        let b = b.clone();
        tokio::spawn(async move { b.call_async(std::future::pending::<Result<(), ()>>()).await })
    };
    // Wait until the spawned call holds the last slot.
    while b.snapshot().trials_in_flight < MAX_TRIALS {
        tokio::task::yield_now().await;
    }
    assert!(b.try_acquire().is_err());
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(b.snapshot().trials_in_flight, MAX_TRIALS - 1);
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.successes, s.failures),
        (State::HalfOpen, 0, 1),
        "only the opening failure"
    );
    held.push(b.try_acquire().unwrap());
}

#[test]
fn a_panicking_trial_gives_its_slot_back_and_counts_as_a_failure() {
    let (b, _clock) = half_open_breaker(1);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _ = b.call(|| -> Result<(), ()> { panic!("tool crashed") });
    }));
    assert!(result.is_err());
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.trials_in_flight, s.failures),
        (State::Open, 0, 2)
    );
}

#[tokio::test]
async fn a_panicking_async_trial_gives_its_slot_back() {
    let (b, _clock) = half_open_breaker(1);
    let task = {
        let b = b.clone();
        tokio::spawn(async move {
            b.call_async(async {
                tokio::task::yield_now().await;
                panic!("tool crashed");
                #[allow(unreachable_code)]
                Ok::<(), ()>(())
            })
            .await
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    let s = b.snapshot();
    assert_eq!((s.state, s.trials_in_flight), (State::Open, 0));
}

#[test]
fn trials_from_an_earlier_half_open_still_count_against_the_limit() {
    let (b, clock) = half_open_breaker(1);
    let old: Vec<_> = (0..MAX_TRIALS - 1)
        .map(|_| b.try_acquire().unwrap())
        .collect();
    b.try_acquire().unwrap().failure(); // reopen while two trials still run
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.state(), State::HalfOpen);
    let new = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err(), "2 old + 1 new trials = the limit");
    drop(old);
    let more: Vec<_> = (0..MAX_TRIALS - 1)
        .map(|_| b.try_acquire().unwrap())
        .collect();
    assert_eq!(more.len(), 2);
    drop(new);
}
