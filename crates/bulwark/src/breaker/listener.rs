//! Hooks that watch a breaker: every change of state and every call's outcome. They observe and
//! cannot change a decision.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::state::State;

/// Why a breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// CLOSED → OPEN: `failure_threshold` consecutive failures.
    FailureThreshold,
    /// CLOSED → OPEN: the sliding window's failure rate crossed its threshold.
    FailureRate,
    /// OPEN → HALF_OPEN: the timeout passed.
    TimeoutElapsed,
    /// HALF_OPEN → CLOSED: `success_threshold` trials succeeded.
    TrialsSucceeded,
    /// HALF_OPEN → OPEN: a trial failed.
    TrialFailed,
    /// [`CircuitBreaker::reset`](super::CircuitBreaker::reset).
    Reset,
    /// [`CircuitBreaker::force_open`](super::CircuitBreaker::force_open).
    ForcedOpen,
    /// [`CircuitBreaker::disable`](super::CircuitBreaker::disable).
    Disabled,
}

impl TransitionReason {
    /// A short snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FailureThreshold => "failure_threshold",
            Self::FailureRate => "failure_rate",
            Self::TimeoutElapsed => "timeout_elapsed",
            Self::TrialsSucceeded => "trials_succeeded",
            Self::TrialFailed => "trial_failed",
            Self::Reset => "reset",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }
}

/// One change of state.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Transition<'a> {
    /// The breaker's name.
    pub breaker: &'a str,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: TransitionReason,
    /// When, on the breaker's clock.
    pub at: Duration,
    /// When, on the wall clock (for alerts and the HTTP API).
    pub wall_time: SystemTime,
}

/// How one call ended, as seen by [`BreakerListener::on_call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The call ran and succeeded (or failed with an error the classifier does not count).
    Success,
    /// The call ran and failed.
    Failure,
    /// The call succeeded but took longer than `slow_call_threshold`; counted as a failure.
    SlowCall,
    /// The breaker refused the call; it did not run.
    Rejected,
    /// The call was admitted but dropped (cancelled) before it finished; counted as neither.
    Cancelled,
}

impl CallOutcome {
    /// A short snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::SlowCall => "slow_call",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One call's outcome.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct CallEvent<'a> {
    /// The breaker's name.
    pub breaker: &'a str,
    /// How the call ended.
    pub outcome: CallOutcome,
    /// The state in which the call was admitted (or refused).
    pub state: State,
    /// How long the call ran, on the breaker's clock; zero for a rejection.
    pub duration: Duration,
}

/// Observes the breakers it is attached to.
///
/// Called synchronously on the thread that caused the event, after the decision is final, so
/// implementations should be quick (count, log, send on a channel). A closure
/// `Fn(&Transition<'_>)` is a listener that sees transitions only; implement the trait to see
/// call outcomes too. A panic in a listener propagates to the breaker's caller.
pub trait BreakerListener: Send + Sync + 'static {
    /// Called once per change of state.
    fn on_transition(&self, transition: &Transition<'_>);

    /// Called once per call outcome, including rejections. Does nothing unless overridden.
    fn on_call(&self, event: &CallEvent<'_>) {
        let _ = event;
    }

    /// Whether this listener wants [`on_call`](Self::on_call); `true` unless overridden.
    /// While no listener of a breaker wants calls, its calls read no clock and notify no one:
    /// a listener that only follows transitions returns `false` and costs the hot path
    /// nothing. Read once, when the listener is added.
    fn wants_calls(&self) -> bool {
        true
    }
}

impl<F> BreakerListener for F
where
    F: Fn(&Transition<'_>) + Send + Sync + 'static,
{
    fn on_transition(&self, transition: &Transition<'_>) {
        self(transition)
    }

    fn wants_calls(&self) -> bool {
        false
    }
}

/// The listeners of one breaker. Reading is one relaxed load while there are none.
#[derive(Default)]
pub(crate) struct Listeners {
    any: AtomicBool,
    /// Whether any listener wants call outcomes ([`BreakerListener::wants_calls`]).
    any_calls: AtomicBool,
    list: RwLock<Arc<[Arc<dyn BreakerListener>]>>,
}

impl Listeners {
    pub(crate) fn new(initial: Vec<Arc<dyn BreakerListener>>) -> Self {
        Self {
            any: AtomicBool::new(!initial.is_empty()),
            any_calls: AtomicBool::new(initial.iter().any(|l| l.wants_calls())),
            list: RwLock::new(initial.into()),
        }
    }

    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Whether any listener wants call outcomes: one relaxed load.
    #[inline]
    pub(crate) fn any_calls(&self) -> bool {
        self.any_calls.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, listener: Arc<dyn BreakerListener>) {
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = list.to_vec();
        if listener.wants_calls() {
            self.any_calls.store(true, Ordering::Release);
        }
        next.push(listener);
        *list = next.into();
        self.any.store(true, Ordering::Release);
    }

    /// Calls `f` on every listener, on a snapshot of the list taken without holding the lock
    /// while listeners run (so a listener may add listeners).
    pub(crate) fn each(&self, mut f: impl FnMut(&dyn BreakerListener)) {
        if !self.any() {
            return;
        }
        let list = Arc::clone(&self.list.read().unwrap_or_else(PoisonError::into_inner));
        for listener in list.iter() {
            f(listener.as_ref());
        }
    }
}
