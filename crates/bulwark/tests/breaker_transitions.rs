//! Every transition of the original's table under a manual clock, the manual states, the
//! classifier, slow calls, listeners and the listing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark::breaker::{
    BreakerListener, BreakerRegistry, CallEvent, CallOutcome, CircuitBreaker, CircuitBreakerConfig,
    CircuitBreakerError, State, Transition, TransitionReason,
};
use bulwark::clock::ManualClock;

fn breaker(config: CircuitBreakerConfig) -> (CircuitBreaker<ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder("dep", config)
        .clock(clock.clone())
        .build()
        .unwrap();
    (b, clock)
}

fn fail(b: &CircuitBreaker<ManualClock>) {
    let r = b.call(|| Err::<(), _>("boom"));
    assert!(
        matches!(r, Err(CircuitBreakerError::Inner("boom"))),
        "{r:?}"
    );
}

fn succeed(b: &CircuitBreaker<ManualClock>) {
    assert_eq!(b.call(|| Ok::<_, ()>(7)), Ok(7));
}

#[derive(Default)]
struct Recorder {
    transitions: Mutex<Vec<(State, State, TransitionReason, Duration)>>,
    calls: Mutex<Vec<(CallOutcome, State, Duration)>>,
}

impl BreakerListener for Recorder {
    fn on_transition(&self, t: &Transition<'_>) {
        assert_eq!(t.breaker, "dep");
        self.transitions
            .lock()
            .unwrap()
            .push((t.from, t.to, t.reason, t.at));
    }
    fn on_call(&self, e: &CallEvent<'_>) {
        self.calls
            .lock()
            .unwrap()
            .push((e.outcome, e.state, e.duration));
    }
}

#[test]
fn closed_opens_at_exactly_the_failure_threshold() {
    let (b, _) = breaker(CircuitBreakerConfig::default());
    for _ in 0..4 {
        fail(&b);
        assert_eq!(b.state(), State::Closed);
    }
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_success_ends_a_run_of_consecutive_failures() {
    let (b, _) = breaker(CircuitBreakerConfig::default());
    for _ in 0..4 {
        fail(&b);
    }
    succeed(&b);
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().consecutive_failures, 4);
}

#[test]
fn open_rejects_with_name_and_time_until_the_trial() {
    let (b, clock) = breaker(CircuitBreakerConfig::default());
    for _ in 0..5 {
        fail(&b);
    }
    clock.advance(Duration::from_secs(15));
    let mut ran = false;
    let err = b
        .call(|| {
            ran = true;
            Ok::<_, ()>(())
        })
        .unwrap_err();
    assert!(!ran, "a rejected call must not run");
    let r = err.rejected().unwrap();
    assert_eq!(&*r.breaker, "dep");
    assert_eq!(r.state, State::Open);
    assert_eq!(r.retry_after, Some(Duration::from_secs(45)));
    assert!(r.to_string().contains("'dep' is open"), "{r}");
    assert_eq!(b.next_trial_in(), Some(Duration::from_secs(45)));
}

#[test]
fn open_becomes_half_open_on_read_once_the_timeout_passes() {
    let (b, clock) = breaker(CircuitBreakerConfig::default());
    for _ in 0..5 {
        fail(&b);
    }
    clock.advance(Duration::from_secs(60) - Duration::from_nanos(1));
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_nanos(1));
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.next_trial_in(), None);
}

#[test]
fn half_open_closes_after_success_threshold_successes() {
    let (b, clock) = breaker(CircuitBreakerConfig::default());
    for _ in 0..5 {
        fail(&b);
    }
    clock.advance(Duration::from_secs(60));
    succeed(&b);
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
    // Closed again with a clean count: it takes a full threshold to reopen.
    for _ in 0..4 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn any_failure_in_half_open_reopens_with_a_fresh_timeout() {
    let (b, clock) = breaker(CircuitBreakerConfig::default());
    for _ in 0..5 {
        fail(&b);
    }
    clock.advance(Duration::from_secs(60));
    succeed(&b);
    fail(&b);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.next_trial_in(), Some(Duration::from_secs(60)));
}

#[test]
fn half_open_admits_at_most_n_trials_until_one_returns() {
    let (b, clock) = breaker(CircuitBreakerConfig::new(1, 5, Duration::from_secs(1), 2));
    fail(&b);
    clock.advance(Duration::from_secs(1));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert_eq!(p1.state(), State::HalfOpen);
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(
        (refused.state, refused.retry_after),
        (State::HalfOpen, None)
    );
    p1.success();
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop((p2, p3));
    assert_eq!(b.snapshot().trials_in_flight, 0);
}

#[test]
fn outcome_of_a_call_admitted_before_a_transition_does_not_count_after_it() {
    let (b, clock) = breaker(CircuitBreakerConfig::new(2, 1, Duration::from_secs(1), 1));
    let slow = b.try_acquire().unwrap();
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.state(), State::HalfOpen);
    // The CLOSED-era call finishing now is neither a trial success nor a trial failure.
    slow.failure();
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn force_open_rejects_everything_until_reset() {
    let (b, clock) = breaker(CircuitBreakerConfig::default());
    b.force_open();
    assert_eq!(b.state(), State::ForcedOpen);
    clock.advance(Duration::from_secs(3600));
    let err = b.call(|| Ok::<_, ()>(())).unwrap_err();
    let r = err.rejected().unwrap();
    assert_eq!((r.state, r.retry_after), (State::ForcedOpen, None));
    b.reset();
    succeed(&b);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn disabled_lets_every_call_through_and_never_trips() {
    let (b, _) = breaker(CircuitBreakerConfig::new(1, 1, Duration::from_secs(1), 1));
    b.disable();
    for _ in 0..10 {
        fail(&b);
    }
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.snapshot().failures, 10);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    fail(&b);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn reset_closes_an_open_breaker_and_forgets_failures() {
    let (b, _) = breaker(CircuitBreakerConfig::new(2, 1, Duration::from_secs(60), 1));
    fail(&b);
    fail(&b);
    assert_eq!(b.state(), State::Open);
    b.reset();
    fail(&b);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn errors_the_classifier_ignores_count_as_successes() {
    let (b, _) = breaker(CircuitBreakerConfig::new(2, 1, Duration::from_secs(60), 1));
    let not_found = |status: &u16| *status >= 500;
    for _ in 0..5 {
        let r = b.call_with(|| Err::<(), u16>(404), not_found);
        assert_eq!(r, Err(CircuitBreakerError::Inner(404)));
    }
    assert_eq!(b.state(), State::Closed);
    let _ = b.call_with(|| Err::<(), u16>(503), not_found);
    let _ = b.call_with(|| Err::<(), u16>(502), not_found);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_call_slower_than_the_slow_call_threshold_is_a_failure() {
    let config = CircuitBreakerConfig::new(2, 1, Duration::from_secs(60), 1)
        .with_slow_call_threshold(Duration::from_secs(2));
    let (b, clock) = breaker(config);
    for _ in 0..2 {
        let r = b.call(|| {
            clock.advance(Duration::from_secs(3));
            Ok::<_, ()>(1)
        });
        assert_eq!(r, Ok(1), "a slow call still returns its result");
    }
    assert_eq!(b.state(), State::Open);
    let s = b.snapshot();
    assert_eq!((s.successes, s.failures), (0, 2));
}

#[test]
fn listeners_see_every_transition_and_every_call_outcome() {
    let recorder = Arc::new(Recorder::default());
    let clock = ManualClock::new();
    let b = CircuitBreaker::builder(
        "dep",
        CircuitBreakerConfig::new(1, 1, Duration::from_secs(5), 1),
    )
    .clock(clock.clone())
    .listener(recorder.clone())
    .build()
    .unwrap();
    let _ = b.call(|| {
        clock.advance(Duration::from_millis(250));
        Err::<(), _>(())
    });
    let _ = b.call(|| Ok::<_, ()>(()));
    clock.advance(Duration::from_secs(5));
    let _ = b.call(|| Ok::<_, ()>(()));
    b.force_open();
    b.disable();
    b.reset();
    use State::*;
    use TransitionReason as R;
    let transitions = recorder.transitions.lock().unwrap().clone();
    let ms = Duration::from_millis;
    assert_eq!(
        transitions,
        vec![
            (Closed, Open, R::FailureThreshold, ms(250)),
            (Open, HalfOpen, R::TimeoutElapsed, ms(5250)),
            (HalfOpen, Closed, R::TrialsSucceeded, ms(5250)),
            (Closed, ForcedOpen, R::ForcedOpen, ms(5250)),
            (ForcedOpen, Disabled, R::Disabled, ms(5250)),
            (Disabled, Closed, R::Reset, ms(5250)),
        ]
    );
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            (CallOutcome::Failure, Closed, ms(250)),
            (CallOutcome::Rejected, Open, Duration::ZERO),
            (CallOutcome::Success, HalfOpen, Duration::ZERO),
        ]
    );
}

#[test]
fn a_closure_is_a_transition_listener() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let (b, _) = breaker(CircuitBreakerConfig::new(1, 1, Duration::from_secs(5), 1));
    b.add_listener(Arc::new(move |t: &Transition<'_>| {
        sink.lock().unwrap().push((t.from, t.to));
    }));
    fail(&b);
    assert_eq!(*seen.lock().unwrap(), vec![(State::Closed, State::Open)]);
}

#[test]
fn registry_gives_the_same_breaker_for_a_name_and_lists_them() {
    let clock = ManualClock::new();
    let registry = BreakerRegistry::with_clock(clock.clone());
    let recorder = Arc::new(Recorder::default());
    registry.add_listener(recorder.clone());
    let a = registry
        .get_or_create(
            "dep",
            CircuitBreakerConfig::new(1, 1, Duration::from_secs(30), 1),
        )
        .unwrap();
    let again = registry
        .get_or_create("dep", CircuitBreakerConfig::default())
        .unwrap();
    assert_eq!(
        again.config().failure_threshold,
        1,
        "an existing breaker keeps its config"
    );
    registry
        .get_or_create("other", CircuitBreakerConfig::default())
        .unwrap();
    let _ = a.call(|| Err::<(), _>(()));
    clock.advance(Duration::from_secs(10));
    let _ = again.call(|| Ok::<_, ()>(()));

    let list = registry.snapshot();
    assert_eq!(
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["dep", "other"]
    );
    let dep = &list[0];
    assert_eq!(dep.state, State::Open);
    assert_eq!((dep.failures, dep.successes, dep.rejected), (1, 0, 1));
    assert_eq!(dep.since_last_transition, Some(Duration::from_secs(10)));
    assert_eq!(dep.next_trial_in, Some(Duration::from_secs(20)));
    assert!(dep.last_transition_unix_ms.is_some());
    assert_eq!(list[1].since_last_transition, None);
    assert_eq!(recorder.transitions.lock().unwrap().len(), 1);

    let json = serde_json::to_value(dep).unwrap();
    assert_eq!(json["state"], "open");
    assert_eq!(json["next_trial_in_ms"], 20_000);
    assert_eq!(json["config"]["timeout"], "30s");
    assert_eq!(json["rejected"], 1);

    assert!(
        registry
            .get_or_create(
                "bad",
                CircuitBreakerConfig::new(0, 1, Duration::from_secs(1), 1)
            )
            .is_err()
    );
    assert!(registry.get("bad").is_none());
    registry.reset_all();
    assert_eq!(a.state(), State::Closed);
}

#[test]
fn global_registry_is_one_per_process() {
    let a = BreakerRegistry::global()
        .get_or_create("transitions-test-global", CircuitBreakerConfig::default())
        .unwrap();
    a.force_open();
    let b = BreakerRegistry::global()
        .get("transitions-test-global")
        .unwrap();
    assert_eq!(b.state(), State::ForcedOpen);
}

/// Collects what a `tracing` fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_transition_is_a_tracing_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let (b, clock) = breaker(CircuitBreakerConfig::new(1, 1, Duration::from_secs(1), 1));
        fail(&b);
        clock.advance(Duration::from_secs(1));
        succeed(&b);
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].contains("WARN") && lines[0].contains("circuit breaker opened"));
    assert!(
        lines[0].contains("breaker=\"dep\"") || lines[0].contains("breaker=dep"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("reason=\"failure_threshold\"")
            || lines[0].contains("reason=failure_threshold")
    );
    assert!(
        lines[1].contains("to=\"half_open\"") || lines[1].contains("to=half_open"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("INFO") && lines[2].contains("trials_succeeded"),
        "{}",
        lines[2]
    );
}
