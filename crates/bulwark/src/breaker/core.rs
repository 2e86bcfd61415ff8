//! The state machine shared by every clone of a breaker.
//!
//! Invariants:
//! * Every change of the [`Word`] is one compare-and-swap. Changes that keep the epoch (counting
//!   a failure in CLOSED, taking or returning a trial permit, counting a successful trial) run
//!   lock-free; changes of state (new epoch) take `transitions`, a mutex that only orders them
//!   with the writes that go with them (`opened_at`, clearing the window, the transition time).
//! * `opened_at` is written before the word that publishes OPEN, and read only after a word in
//!   OPEN was seen, so a reader of OPEN sees its opening time (or a later one).
//! * A permit's outcome changes the state only if the state is still the one (same epoch) that
//!   issued the permit; a trial permit always returns its slot in `trials`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::CircuitBreakerConfig;
use super::error::Rejected;
use super::listener::{CallEvent, CallOutcome, Listeners, Transition, TransitionReason};
use super::state::{State, Word};
use super::stats::Stats;
use super::ticket::{Finish, NO_START, Refusal, Role, Ticket};
use super::window::Window;
use crate::clock::{Clock, duration_to_nanos};

const NEVER: u64 = u64::MAX;

pub(crate) struct Core<C> {
    word: AtomicU64,
    opened_at: AtomicU64,
    transitions: Mutex<()>,
    last_transition: AtomicU64,
    last_transition_wall_ms: AtomicU64,
    window: Option<Window>,
    timeout: u64,
    slow: Option<u64>,
    pub(crate) stats: Stats,
    pub(crate) clock: C,
    pub(crate) config: CircuitBreakerConfig,
    pub(crate) name: Arc<str>,
    pub(crate) listeners: Listeners,
}

impl<C: Clock> Core<C> {
    /// Builds the state machine; `config` must have been validated.
    pub(crate) fn new(
        name: Arc<str>,
        config: CircuitBreakerConfig,
        clock: C,
        listeners: Listeners,
    ) -> Self {
        Self {
            word: AtomicU64::new(Word::INITIAL.0),
            opened_at: AtomicU64::new(0),
            transitions: Mutex::new(()),
            last_transition: AtomicU64::new(NEVER),
            last_transition_wall_ms: AtomicU64::new(NEVER),
            window: config.sliding_window.as_ref().map(Window::new),
            timeout: duration_to_nanos(config.timeout),
            slow: config.slow_call_threshold.map(duration_to_nanos),
            stats: Stats::default(),
            clock,
            config,
            name,
            listeners,
        }
    }

    #[inline]
    fn load(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    #[inline]
    fn ticket(&self, epoch: u32, role: Role) -> (Ticket, u64) {
        let start = if self.slow.is_some() || self.listeners.any_calls() {
            self.clock.now_nanos().min(NO_START - 1)
        } else {
            NO_START
        };
        (Ticket::new(epoch, role), start)
    }

    /// Admits a call or says why not. CLOSED costs one atomic load.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<(Ticket, u64), Refusal> {
        let w = self.load();
        if w.kind() == State::Closed {
            return Ok(self.ticket(w.epoch(), Role::Closed));
        }
        self.acquire_slow(w)
    }

    #[cold]
    fn acquire_slow(&self, mut w: Word) -> Result<(Ticket, u64), Refusal> {
        loop {
            match w.kind() {
                State::Closed => return Ok(self.ticket(w.epoch(), Role::Closed)),
                State::Disabled => return Ok(self.ticket(w.epoch(), Role::Disabled)),
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let wait = self.until_trial(self.clock.now_nanos());
                    if wait > 0 {
                        return Err(self.reject(State::Open, Some(wait)));
                    }
                    self.half_open(w.epoch());
                    w = self.load();
                }
                State::HalfOpen => {
                    if w.trials() >= self.config.half_open_max_calls {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    let next = w.with_trials(w.trials() + 1);
                    match self.word.compare_exchange_weak(
                        w.0,
                        next.0,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Ok(self.ticket(w.epoch(), Role::Trial)),
                        Err(actual) => w = Word(actual),
                    }
                }
            }
        }
    }

    /// Nanoseconds until the current OPEN period ends (zero when it has).
    fn until_trial(&self, now: u64) -> u64 {
        self.opened_at
            .load(Ordering::Acquire)
            .saturating_add(self.timeout)
            .saturating_sub(now)
    }

    /// OPEN (of `epoch`) → HALF_OPEN; the caller has seen the timeout pass.
    fn half_open(&self, epoch: u32) {
        self.transition(
            &|w: Word| {
                (w.kind() == State::Open && w.epoch() == epoch).then(|| w.next(State::HalfOpen))
            },
            TransitionReason::TimeoutElapsed,
        );
    }

    #[cold]
    fn reject(&self, state: State, wait: Option<u64>) -> Refusal {
        self.stats.rejected();
        self.notify_call(CallOutcome::Rejected, state, Duration::ZERO);
        Refusal::new(state, wait)
    }

    /// The public form of a refusal (kept out of [`acquire`](Self::acquire) so that the
    /// refusal travels as one word and the error is built where the caller keeps it).
    #[inline]
    pub(crate) fn rejected(&self, refusal: Refusal) -> Rejected {
        Rejected {
            breaker: Arc::clone(&self.name),
            state: refusal.state(),
            retry_after: refusal.wait().map(Duration::from_nanos),
        }
    }

    /// Settles a permit. The common case, a success in CLOSED (consecutive mode, nobody timing
    /// calls), is one add to this thread's counter shard and one load of the word.
    #[inline]
    pub(crate) fn finish(&self, ticket: Ticket, start: u64, finish: Finish) {
        if finish == Finish::Success
            && ticket.role() == Some(Role::Closed)
            && start == NO_START
            && self.window.is_none()
        {
            self.stats.success();
            if self.load().count() != 0 {
                self.record_closed(ticket.epoch(), false, None);
            }
            return;
        }
        self.finish_slow(ticket, start, finish);
    }

    fn finish_slow(&self, ticket: Ticket, start: u64, finish: Finish) {
        let Some(role) = ticket.role() else { return };
        let start = (start != NO_START).then_some(start);
        let mut end = None;
        let outcome = match finish {
            Finish::Success => match (self.slow, start) {
                (Some(slow), Some(start)) => {
                    let now = self.clock.now_nanos();
                    end = Some(now);
                    if now.saturating_sub(start) > slow {
                        CallOutcome::SlowCall
                    } else {
                        CallOutcome::Success
                    }
                }
                _ => CallOutcome::Success,
            },
            Finish::Failure => CallOutcome::Failure,
            Finish::Cancelled => CallOutcome::Cancelled,
        };
        match outcome {
            CallOutcome::Success => self.stats.success(),
            CallOutcome::Cancelled => {}
            _ => self.stats.failure(),
        }
        let failed = matches!(outcome, CallOutcome::Failure | CallOutcome::SlowCall);
        match role {
            Role::Disabled => {}
            Role::Closed if outcome == CallOutcome::Cancelled => {}
            Role::Closed => self.record_closed(ticket.epoch(), failed, end),
            Role::Trial => self.finish_trial(ticket.epoch(), outcome),
        }
        if let Some(start) = start
            && self.listeners.any_calls()
        {
            let end = end.unwrap_or_else(|| self.clock.now_nanos());
            let duration = Duration::from_nanos(end.saturating_sub(start));
            self.notify_call(outcome, ticket.state(), duration);
        }
    }

    fn record_closed(&self, epoch: u32, failed: bool, now: Option<u64>) {
        let current = |w: Word| w.kind() == State::Closed && w.epoch() == epoch;
        match &self.window {
            None if failed => {
                let threshold = self.config.failure_threshold;
                self.update(
                    |w| {
                        current(w).then(|| {
                            let count = w.count() + 1;
                            if count >= threshold {
                                w.next(State::Open)
                            } else {
                                w.with_count(count)
                            }
                        })
                    },
                    TransitionReason::FailureThreshold,
                );
            }
            None => {
                // A success ends a run of failures; writing only when there is a run keeps
                // the common case a read of a shared cache line.
                if self.load().count() != 0 {
                    self.update(
                        |w| (current(w) && w.count() != 0).then(|| w.with_count(0)),
                        TransitionReason::Reset,
                    );
                }
            }
            Some(window) => {
                if !current(self.load()) {
                    return;
                }
                let now = now.unwrap_or_else(|| self.clock.now_nanos());
                if window.record(now, failed) {
                    self.update(
                        |w| current(w).then(|| w.next(State::Open)),
                        TransitionReason::FailureRate,
                    );
                }
            }
        }
    }

    fn finish_trial(&self, epoch: u32, outcome: CallOutcome) {
        let threshold = self.config.success_threshold;
        let reason = match outcome {
            CallOutcome::Success => TransitionReason::TrialsSucceeded,
            _ => TransitionReason::TrialFailed,
        };
        self.update(
            |w| {
                let released = w.with_trials(w.trials().saturating_sub(1));
                if w.kind() != State::HalfOpen || w.epoch() != epoch {
                    return Some(released);
                }
                Some(match outcome {
                    CallOutcome::Cancelled => released,
                    CallOutcome::Success if w.count() + 1 >= threshold => {
                        released.next(State::Closed)
                    }
                    CallOutcome::Success => released.with_count(w.count() + 1),
                    _ => released.next(State::Open),
                })
            },
            reason,
        );
    }

    /// Applies `f` to the word: lock-free while `f` keeps the epoch, through
    /// [`transition`](Self::transition) when it starts a new one.
    #[inline]
    fn update(&self, f: impl Fn(Word) -> Option<Word>, reason: TransitionReason) {
        let mut w = self.load();
        loop {
            let Some(next) = f(w) else { return };
            if next.epoch() != w.epoch() {
                self.transition(&f, reason);
                return;
            }
            match self
                .word
                .compare_exchange_weak(w.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => w = Word(actual),
            }
        }
    }

    /// Applies `f` under the transition lock, with the writes that go with a change of state,
    /// then tells the listeners (after releasing the lock, so a listener may read the breaker).
    #[cold]
    pub(crate) fn transition(&self, f: &dyn Fn(Word) -> Option<Word>, reason: TransitionReason) {
        let guard = self
            .transitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now_nanos();
        let mut w = self.load();
        let (from, to) = loop {
            let Some(next) = f(w) else { return };
            if next.kind() == State::Open && next.epoch() != w.epoch() {
                self.opened_at.store(now, Ordering::Release);
            }
            match self
                .word
                .compare_exchange(w.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (w, next),
                Err(actual) => w = Word(actual),
            }
        };
        if from.epoch() == to.epoch() {
            return;
        }
        if let Some(window) = &self.window {
            window.clear();
        }
        if from.kind() == to.kind() {
            return;
        }
        let wall_time = SystemTime::now();
        let wall_ms = wall_time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(NEVER - 1))
            .unwrap_or(0);
        self.last_transition.store(now, Ordering::Release);
        self.last_transition_wall_ms
            .store(wall_ms, Ordering::Release);
        drop(guard);
        self.notify_transition(&Transition {
            breaker: &self.name,
            from: from.kind(),
            to: to.kind(),
            reason,
            at: Duration::from_nanos(now),
            wall_time,
        });
    }

    fn notify_transition(&self, t: &Transition<'_>) {
        if t.to == State::Open || t.to == State::ForcedOpen {
            tracing::warn!(
                breaker = t.breaker,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = t.reason.as_str(),
                "circuit breaker opened"
            );
        } else {
            tracing::info!(
                breaker = t.breaker,
                from = t.from.as_str(),
                to = t.to.as_str(),
                reason = t.reason.as_str(),
                "circuit breaker changed state"
            );
        }
        self.listeners.each(|l| l.on_transition(t));
    }

    fn notify_call(&self, outcome: CallOutcome, state: State, duration: Duration) {
        self.listeners.each(|l| {
            if !l.wants_calls() {
                return;
            }
            l.on_call(&CallEvent {
                breaker: &self.name,
                outcome,
                state,
                duration,
            })
        });
    }

    /// The current state, moving OPEN to HALF_OPEN first if its timeout has passed.
    pub(crate) fn state(&self) -> State {
        let w = self.load();
        if w.kind() == State::Open && self.until_trial(self.clock.now_nanos()) == 0 {
            self.half_open(w.epoch());
            return self.load().kind();
        }
        w.kind()
    }

    /// The raw word, for listings (after [`state`](Self::state) has done any lazy transition).
    pub(crate) fn word(&self) -> Word {
        self.load()
    }

    /// Time until the next trial, when OPEN.
    pub(crate) fn next_trial_in(&self) -> Option<Duration> {
        (self.state() == State::Open)
            .then(|| Duration::from_nanos(self.until_trial(self.clock.now_nanos())))
    }

    /// Clock time of the last change of state, and the same on the wall clock (ms since the
    /// Unix epoch); `None` before the first.
    pub(crate) fn last_transition(&self) -> Option<(u64, u64)> {
        let at = self.last_transition.load(Ordering::Acquire);
        (at != NEVER).then(|| (at, self.last_transition_wall_ms.load(Ordering::Acquire)))
    }

    /// Failures and calls in the sliding window now, in sliding-window mode.
    pub(crate) fn window_tally(&self) -> Option<(u64, u64)> {
        self.window.as_ref().map(|w| {
            let t = w.tally(self.clock.now_nanos());
            (t.failures, t.total)
        })
    }
}
