//! The state machine against a small reference model, over random calls, held permits, clock
//! advances and manual operations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, Permit, State};
use bulwark::clock::{Clock, ManualClock};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// A call that runs to completion with this outcome.
    Call(bool),
    /// Take a permit and hold it.
    Hold,
    /// Settle the held permit at this index (modulo the number held) with this outcome.
    Settle(usize, bool),
    /// Drop a held permit unsettled.
    Drop(usize),
    Advance(u64),
    Reset,
    ForceOpen,
    Disable,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<bool>().prop_map(Op::Call),
        2 => Just(Op::Hold),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Settle(i, ok)),
        1 => any::<usize>().prop_map(Op::Drop),
        3 => (0u64..4_000).prop_map(Op::Advance),
        1 => Just(Op::Reset),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
    ]
}

/// The contract, written as plainly as possible.
#[derive(Debug)]
struct Model {
    failure_threshold: u32,
    success_threshold: u32,
    timeout: u64,
    max_trials: u32,
    state: State,
    /// Changes whenever `state` is entered anew.
    era: u64,
    /// CLOSED: consecutive failures; HALF_OPEN: successful trials.
    count: u32,
    opened_at: u64,
    trials: u32,
    successes: u64,
    failures: u64,
    rejected: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Held {
    state: State,
    era: u64,
}

impl Model {
    fn enter(&mut self, state: State, now: u64) {
        self.state = state;
        self.era += 1;
        self.count = 0;
        if state == State::Open {
            self.opened_at = now;
        }
    }

    fn look(&mut self, now: u64) -> State {
        if self.state == State::Open && now >= self.opened_at + self.timeout {
            self.enter(State::HalfOpen, now);
        }
        self.state
    }

    /// `Ok(held)` or `Err(retry_after)`.
    fn acquire(&mut self, now: u64) -> Result<Held, Option<u64>> {
        let admitted = match self.look(now) {
            State::Closed | State::Disabled => true,
            State::HalfOpen if self.trials < self.max_trials => {
                self.trials += 1;
                true
            }
            _ => false,
        };
        if admitted {
            Ok(Held {
                state: self.state,
                era: self.era,
            })
        } else {
            self.rejected += 1;
            Err((self.state == State::Open).then(|| self.opened_at + self.timeout - now))
        }
    }

    fn settle(&mut self, held: Held, outcome: Option<bool>, now: u64) {
        match outcome {
            Some(true) => self.successes += 1,
            Some(false) => self.failures += 1,
            None => {}
        }
        if held.state == State::HalfOpen {
            self.trials -= 1;
        }
        let (Some(ok), true) = (outcome, held.era == self.era && held.state == self.state) else {
            return;
        };
        match (self.state, ok) {
            (State::Closed, true) => self.count = 0,
            (State::Closed, false) => {
                self.count += 1;
                if self.count >= self.failure_threshold {
                    self.enter(State::Open, now);
                }
            }
            (State::HalfOpen, true) => {
                self.count += 1;
                if self.count >= self.success_threshold {
                    self.enter(State::Closed, now);
                }
            }
            (State::HalfOpen, false) => self.enter(State::Open, now),
            _ => {}
        }
    }
}

fn check(config: (u32, u32, u64, u32), ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (failure_threshold, success_threshold, timeout_ms, max_trials) = config;
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder(
        "model",
        CircuitBreakerConfig::new(
            failure_threshold,
            success_threshold,
            Duration::from_millis(timeout_ms),
            max_trials,
        ),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let mut model = Model {
        failure_threshold,
        success_threshold,
        timeout: timeout_ms,
        max_trials,
        state: State::Closed,
        era: 0,
        count: 0,
        opened_at: 0,
        trials: 0,
        successes: 0,
        failures: 0,
        rejected: 0,
    };
    let mut held: Vec<(Permit<'_, ManualClock>, Held)> = Vec::new();
    for op in ops {
        let now = clock.now().as_millis() as u64;
        match op {
            Op::Call(ok) => {
                let expected = model.acquire(now);
                let got = breaker.call(|| if ok { Ok(()) } else { Err(()) });
                match (expected, got) {
                    (Ok(h), Ok(()) | Err(bulwark::breaker::CircuitBreakerError::Inner(()))) => {
                        model.settle(h, Some(ok), now)
                    }
                    (Err(retry), Err(bulwark::breaker::CircuitBreakerError::Rejected(r))) => {
                        prop_assert_eq!(r.retry_after, retry.map(Duration::from_millis));
                    }
                    (e, g) => prop_assert!(false, "{op:?}: model {e:?}, breaker {g:?}"),
                }
            }
            Op::Hold => match (model.acquire(now), breaker.try_acquire()) {
                (Ok(h), Ok(p)) => {
                    prop_assert_eq!(p.state(), h.state);
                    held.push((p, h));
                }
                (Err(retry), Err(r)) => {
                    prop_assert_eq!(r.retry_after, retry.map(Duration::from_millis))
                }
                (e, g) => prop_assert!(false, "hold: model {e:?}, breaker {:?}", g.map(|_| ())),
            },
            Op::Settle(i, ok) if !held.is_empty() => {
                let (p, h) = held.remove(i % held.len());
                model.settle(h, Some(ok), now);
                p.record(!ok);
            }
            Op::Drop(i) if !held.is_empty() => {
                let (p, h) = held.remove(i % held.len());
                model.settle(h, None, now);
                drop(p);
            }
            Op::Settle(..) | Op::Drop(_) => {}
            Op::Advance(ms) => clock.advance(Duration::from_millis(ms)),
            Op::Reset => {
                breaker.reset();
                model.enter(State::Closed, now);
            }
            Op::ForceOpen => {
                breaker.force_open();
                model.enter(State::ForcedOpen, now);
            }
            Op::Disable => {
                breaker.disable();
                model.enter(State::Disabled, now);
            }
        }
        let now = clock.now().as_millis() as u64;
        prop_assert_eq!(breaker.state(), model.look(now), "after {:?}", op);
        let s = breaker.snapshot();
        prop_assert_eq!(s.trials_in_flight, model.trials);
        prop_assert!(s.trials_in_flight <= max_trials);
        prop_assert_eq!(
            (s.successes, s.failures, s.rejected),
            (model.successes, model.failures, model.rejected)
        );
        let expected_next = (model.state == State::Open)
            .then(|| Duration::from_millis(model.opened_at + model.timeout - now));
        prop_assert_eq!(s.next_trial_in, expected_next);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_agrees_with_the_reference_model(
        config in (1u32..5, 1u32..4, 0u64..5_000, 1u32..4),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        check(config, ops)?;
    }
}
