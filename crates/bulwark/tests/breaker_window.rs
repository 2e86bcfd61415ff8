//! Sliding-window mode: the rate threshold, the minimum number of calls, window expiry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, SlidingWindow, State};
use bulwark::clock::ManualClock;

fn breaker(window: SlidingWindow) -> (CircuitBreaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let config =
        CircuitBreakerConfig::new(1, 1, Duration::from_secs(30), 1).with_sliding_window(window);
    let b = CircuitBreaker::builder("window", config)
        .clock(clock.clone())
        .build()
        .unwrap();
    (b, clock)
}

fn counts(b: &CircuitBreaker<ManualClock>) -> (u64, u64) {
    let w = b.snapshot().window.expect("window mode");
    (w.failures, w.calls)
}

fn outcome(b: &CircuitBreaker<ManualClock>, ok: bool) {
    let _ = b.call(|| if ok { Ok(()) } else { Err(()) });
}

#[test]
fn opens_when_the_failure_rate_reaches_the_threshold() {
    let (b, _) = breaker(SlidingWindow::calls(10, 0.5, 4));
    for ok in [true, false, true] {
        outcome(&b, ok);
    }
    assert_eq!(
        b.state(),
        State::Closed,
        "failure_threshold = 1 is not used in window mode"
    );
    outcome(&b, false); // 2 of 4
    assert_eq!(b.state(), State::Open);
}

#[test]
fn stays_closed_below_the_rate_threshold() {
    let (b, _) = breaker(SlidingWindow::calls(10, 0.6, 4));
    for i in 0..100 {
        outcome(&b, i % 2 == 0); // 50 % failures
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(counts(&b), (5, 10));
}

#[test]
fn does_not_open_before_the_minimum_number_of_calls() {
    let (b, _) = breaker(SlidingWindow::calls(100, 0.5, 5));
    for _ in 0..4 {
        outcome(&b, false);
    }
    assert_eq!(b.state(), State::Closed);
    outcome(&b, false);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn count_window_forgets_failures_older_than_the_last_n_calls() {
    let (b, _) = breaker(SlidingWindow::calls(10, 0.5, 10));
    for _ in 0..4 {
        outcome(&b, false);
    }
    for _ in 0..10 {
        outcome(&b, true);
    }
    assert_eq!(counts(&b), (0, 10));
    for _ in 0..4 {
        outcome(&b, false);
    }
    assert_eq!(b.state(), State::Closed, "4 of the last 10 failed");
    outcome(&b, false);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn time_window_expires_failures_after_the_window() {
    let (b, clock) = breaker(SlidingWindow::time(Duration::from_secs(10), 0.5, 2));
    outcome(&b, false);
    clock.advance(Duration::from_secs(10));
    outcome(&b, false);
    assert_eq!(
        b.state(),
        State::Closed,
        "the first failure left the window"
    );
    clock.advance(Duration::from_secs(9));
    outcome(&b, false);
    assert_eq!(b.state(), State::Open, "two failures within 10 s");
}

#[test]
fn half_open_in_window_mode_closes_on_successes_with_an_empty_window() {
    let (b, clock) = breaker(SlidingWindow::calls(10, 0.5, 2));
    outcome(&b, false);
    outcome(&b, false);
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(30));
    outcome(&b, true);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(counts(&b), (0, 0), "closing starts a fresh window");
    outcome(&b, false);
    assert_eq!(b.state(), State::Closed, "one call is below minimum_calls");
}
