//! The breaker handle shared by every caller of one protected dependency.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::config::CircuitBreakerConfig;
use super::core::Core;
use super::error::{CircuitBreakerError, ConfigError, Rejected};
use super::listener::{BreakerListener, Listeners, TransitionReason};
use super::permit::{OwnedPermit, Permit};
use super::snapshot::{BreakerSnapshot, WindowCounts};
use super::state::{State, Word};
use crate::clock::{Clock, MonotonicClock};

/// A circuit breaker: fails fast while a dependency is failing, and lets a few trial calls
/// through after a timeout to find out whether it has recovered.
///
/// Clones share the same state, so one breaker can guard every task and every tower service
/// that calls the same dependency.
///
/// ```
/// use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerError, State};
/// use bulwark::clock::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let config = CircuitBreakerConfig::new(2, 1, Duration::from_secs(10), 1);
/// let breaker = CircuitBreaker::builder("search", config).clock(clock.clone()).build()?;
///
/// for _ in 0..2 {
///     let _ = breaker.call(|| Err::<(), _>("timeout"));
/// }
/// match breaker.call(|| Ok::<_, &str>(1)) {
///     Err(CircuitBreakerError::Rejected(r)) => assert_eq!(r.retry_after, Some(Duration::from_secs(10))),
///     other => panic!("expected a rejection, got {other:?}"),
/// }
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(breaker.state(), State::HalfOpen);
/// assert_eq!(breaker.call(|| Ok::<_, &str>(1)), Ok(1));
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok::<(), bulwark::breaker::ConfigError>(())
/// ```
pub struct CircuitBreaker<C: Clock = MonotonicClock> {
    core: Arc<Core<C>>,
}

impl<C: Clock> Clone for CircuitBreaker<C> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl CircuitBreaker<MonotonicClock> {
    /// A breaker named `name` enforcing `config` on the real clock.
    pub fn new(
        name: impl Into<Arc<str>>,
        config: CircuitBreakerConfig,
    ) -> Result<Self, ConfigError> {
        Self::builder(name, config).build()
    }

    /// A builder to set a clock or listeners.
    pub fn builder(
        name: impl Into<Arc<str>>,
        config: CircuitBreakerConfig,
    ) -> CircuitBreakerBuilder<MonotonicClock> {
        CircuitBreakerBuilder {
            name: name.into(),
            config,
            clock: MonotonicClock::new(),
            listeners: Vec::new(),
        }
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// Builds from a config that has been validated.
    pub(crate) fn from_parts(
        name: Arc<str>,
        config: CircuitBreakerConfig,
        clock: C,
        listeners: Vec<Arc<dyn BreakerListener>>,
    ) -> Self {
        Self {
            core: Arc::new(Core::new(name, config, clock, Listeners::new(listeners))),
        }
    }

    /// Runs `f` if the breaker permits it; every `Err` counts as a failure.
    ///
    /// Returns the call's own result, with its error wrapped in
    /// [`CircuitBreakerError::Inner`], or [`CircuitBreakerError::Rejected`] without running
    /// `f`. If `f` panics, the call counts as a failure and the panic continues.
    #[inline]
    pub fn call<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CircuitBreakerError<E>> {
        self.call_with(f, |_| true)
    }

    /// [`call`](Self::call) with a classifier: an error for which `is_failure` returns `false`
    /// (a validation error, an HTTP 4xx) counts as a success, since the dependency answered.
    #[inline]
    pub fn call_with<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
        is_failure: impl FnOnce(&E) -> bool,
    ) -> Result<T, CircuitBreakerError<E>> {
        let ticket = match self.core.acquire() {
            Ok(ticket) => ticket,
            Err(refusal) => return Err(CircuitBreakerError::Rejected(self.core.rejected(refusal))),
        };
        let permit = Permit::new(&self.core, ticket);
        let result = f();
        match &result {
            Ok(_) => permit.success(),
            Err(e) => permit.record(is_failure(e)),
        }
        result.map_err(CircuitBreakerError::Inner)
    }

    /// Awaits `future` if the breaker permits it; every `Err` counts as a failure.
    ///
    /// The future is not polled when the call is rejected. Dropping the returned future
    /// while it runs gives its permit back without counting the call.
    pub async fn call_async<T, E>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, CircuitBreakerError<E>> {
        self.call_async_with(future, |_| true).await
    }

    /// [`call_async`](Self::call_async) with a classifier, as in [`call_with`](Self::call_with).
    pub async fn call_async_with<T, E>(
        &self,
        future: impl Future<Output = Result<T, E>>,
        is_failure: impl FnOnce(&E) -> bool,
    ) -> Result<T, CircuitBreakerError<E>> {
        let ticket = match self.core.acquire() {
            Ok(ticket) => ticket,
            Err(refusal) => return Err(CircuitBreakerError::Rejected(self.core.rejected(refusal))),
        };
        let permit = Permit::new(&self.core, ticket);
        let result = future.await;
        match &result {
            Ok(_) => permit.success(),
            Err(e) => permit.record(is_failure(e)),
        }
        result.map_err(CircuitBreakerError::Inner)
    }

    /// Asks to make one call; the permit must then be settled (or dropped).
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        match self.core.acquire() {
            Ok(ticket) => Ok(Permit::new(&self.core, ticket)),
            Err(refusal) => Err(self.core.rejected(refusal)),
        }
    }

    /// [`try_acquire`](Self::try_acquire) returning a permit that owns a handle on the breaker.
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit<C>, Rejected> {
        match self.core.acquire() {
            Ok(ticket) => Ok(OwnedPermit::new(Arc::clone(&self.core), ticket)),
            Err(refusal) => Err(self.core.rejected(refusal)),
        }
    }

    /// The current state. OPEN whose timeout has passed is reported (and becomes) HALF_OPEN.
    pub fn state(&self) -> State {
        self.core.state()
    }

    /// Time until the next trial call is admitted, when OPEN.
    pub fn next_trial_in(&self) -> Option<Duration> {
        self.core.next_trial_in()
    }

    /// Back to CLOSED with every count cleared.
    pub fn reset(&self) {
        self.core.transition(
            &|w: Word| Some(w.next(State::Closed)),
            TransitionReason::Reset,
        );
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.core.transition(
            &|w: Word| Some(w.next(State::ForcedOpen)),
            TransitionReason::ForcedOpen,
        );
    }

    /// Lets every call through and never trips until [`reset`](Self::reset); calls are still
    /// counted.
    pub fn disable(&self) {
        self.core.transition(
            &|w: Word| Some(w.next(State::Disabled)),
            TransitionReason::Disabled,
        );
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The config it enforces.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.core.config
    }

    /// The clock it reads.
    pub fn clock(&self) -> &C {
        &self.core.clock
    }

    /// Attaches a listener, in addition to any already attached.
    pub fn add_listener(&self, listener: Arc<dyn BreakerListener>) {
        self.core.listeners.add(listener);
    }

    /// Everything the HTTP API lists about this breaker.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let state = self.state();
        let word = self.core.word();
        let totals = self.core.stats.totals();
        let now = self.core.clock.now_nanos();
        let last = self.core.last_transition();
        BreakerSnapshot {
            name: self.core.name.to_string(),
            state,
            config: self.core.config,
            successes: totals.successes,
            failures: totals.failures,
            rejected: totals.rejected,
            consecutive_failures: if word.kind() == State::Closed
                && self.core.config.sliding_window.is_none()
            {
                word.count()
            } else {
                0
            },
            trials_in_flight: word.trials(),
            window: self
                .core
                .window_tally()
                .map(|(failures, calls)| WindowCounts { failures, calls }),
            since_last_transition: last.map(|(at, _)| Duration::from_nanos(now.saturating_sub(at))),
            last_transition_unix_ms: last.map(|(_, wall)| wall),
            next_trial_in: self.core.next_trial_in(),
        }
    }
}

impl<C: Clock> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.core.name)
            .field("state", &self.core.word().kind())
            .field("config", &self.core.config)
            .finish()
    }
}

/// Builds a [`CircuitBreaker`]; see [`CircuitBreaker::builder`].
#[must_use]
pub struct CircuitBreakerBuilder<C: Clock> {
    name: Arc<str>,
    config: CircuitBreakerConfig,
    clock: C,
    listeners: Vec<Arc<dyn BreakerListener>>,
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    /// Reads time from `clock` (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            name: self.name,
            config: self.config,
            clock,
            listeners: self.listeners,
        }
    }

    /// Attaches a listener that sees every transition (and, if it implements
    /// [`BreakerListener::on_call`], every call).
    pub fn listener(mut self, listener: Arc<dyn BreakerListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Validates the config and builds the breaker, CLOSED.
    pub fn build(self) -> Result<CircuitBreaker<C>, ConfigError> {
        self.config.validate()?;
        Ok(CircuitBreaker::from_parts(
            self.name,
            self.config,
            self.clock,
            self.listeners,
        ))
    }
}

impl<C: Clock> fmt::Debug for CircuitBreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}
