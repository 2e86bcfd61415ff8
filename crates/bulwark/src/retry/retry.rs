//! The retry loop: attempts, backoff on the clock, budget, events.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::budget::RetryBudget;
use super::classify::Classify;
use super::config::RetryConfig;
use super::error::{ConfigError, GiveUp, RetryError};
use super::observer::{RetryEvent, RetryEventKind, RetryObserver};
use crate::clock::{Clock, MonotonicClock};

/// Retries a call by a [`RetryConfig`]; clones share the name, budget and observers.
///
/// Each attempt is a fresh future from the closure. Waiting between attempts is a
/// [`Clock::sleep`], so dropping the returned future during a wait (the caller gave up)
/// makes no further attempt.
pub struct Retry<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Clock> {
    name: Arc<str>,
    config: RetryConfig,
    budget: Option<RetryBudget<C>>,
    clock: C,
    observers: Vec<Arc<dyn RetryObserver>>,
}

impl<C: Clock> Clone for Retry<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Retry<MonotonicClock> {
    /// A retry enforcing `config` on the real clock.
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder to set a name, a clock, a shared budget or observers.
    pub fn builder(config: RetryConfig) -> RetryBuilder<MonotonicClock> {
        RetryBuilder {
            name: Arc::from("retry"),
            config,
            clock: MonotonicClock::new(),
            budget: None,
            observers: Vec::new(),
        }
    }
}

impl<C: Clock> Retry<C> {
    /// Runs `attempt` until it succeeds, its error is not retryable ([`Classify`]), the
    /// attempts or the budget run out.
    pub async fn run<T, E, F, Fut>(&self, attempt: F) -> Result<T, RetryError<E>>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_classified(attempt, |e: &E| (e.is_retryable(), e.retry_after()))
            .await
    }

    /// [`run`](Self::run) with a predicate deciding which errors are retryable (the
    /// `retry_after` is then not read).
    pub async fn run_if<T, E, F, Fut>(
        &self,
        attempt: F,
        is_retryable: impl Fn(&E) -> bool,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_classified(attempt, |e: &E| (is_retryable(e), None))
            .await
    }

    /// The loop; `classify` answers (retryable, wait asked for).
    pub(crate) async fn run_classified<T, E, F, Fut>(
        &self,
        mut attempt: F,
        classify: impl Fn(&E) -> (bool, Option<Duration>),
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let inner = &*self.inner;
        if let Some(budget) = &inner.budget {
            budget.deposit();
        }
        let mut previous = Duration::ZERO;
        let mut number = 1;
        loop {
            self.emit(number, RetryEventKind::Attempt);
            let error = match attempt().await {
                Ok(value) => {
                    self.emit(number, RetryEventKind::Succeeded);
                    return Ok(value);
                }
                Err(error) => error,
            };
            let (retryable, retry_after) = classify(&error);
            let retry_after = retry_after.filter(|_| inner.config.honour_retry_after);
            let give_up = if !retryable {
                Some(GiveUp::NotRetryable)
            } else if number >= inner.config.max_attempts {
                Some(GiveUp::Exhausted)
            } else if retry_after.is_some_and(|wait| wait > inner.config.max_retry_after) {
                Some(GiveUp::RetryAfterTooLong)
            } else if inner.budget.as_ref().is_some_and(|b| !b.try_withdraw()) {
                Some(GiveUp::BudgetExhausted)
            } else {
                None
            };
            if let Some(reason) = give_up {
                self.emit(number, RetryEventKind::GaveUp(reason));
                return Err(RetryError {
                    attempts: number,
                    reason,
                    last: error,
                });
            }
            let backoff = inner
                .config
                .backoff
                .delay(number, previous, fastrand::f64());
            previous = backoff;
            let delay = retry_after.map_or(backoff, |wait| wait.max(backoff));
            self.emit(number, RetryEventKind::Retrying { delay, retry_after });
            drop(error);
            if !delay.is_zero() {
                inner.clock.sleep(delay).await;
            }
            number += 1;
        }
    }

    fn emit(&self, attempt: u32, kind: RetryEventKind) {
        if self.inner.observers.is_empty() {
            return;
        }
        let event = RetryEvent {
            name: &self.inner.name,
            attempt,
            kind,
        };
        for observer in &self.inner.observers {
            observer.on_retry_event(&event);
        }
    }

    /// The retry's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The config it enforces.
    pub fn config(&self) -> &RetryConfig {
        &self.inner.config
    }

    /// The budget it draws retries from, if any.
    pub fn budget(&self) -> Option<&RetryBudget<C>> {
        self.inner.budget.as_ref()
    }
}

impl<C: Clock> fmt::Debug for Retry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Retry`]; see [`Retry::builder`].
#[must_use]
pub struct RetryBuilder<C: Clock> {
    name: Arc<str>,
    config: RetryConfig,
    clock: C,
    budget: Option<RetryBudget<C>>,
    observers: Vec<Arc<dyn RetryObserver>>,
}

impl<C: Clock> RetryBuilder<C> {
    /// Names the retry in its events (default `"retry"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads time from `clock` (a [`ManualClock`](crate::clock::ManualClock) in tests). A
    /// budget set earlier is dropped, since it reads the previous clock.
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBuilder<C2> {
        RetryBuilder {
            name: self.name,
            config: self.config,
            clock,
            budget: None,
            observers: self.observers,
        }
    }

    /// Draws retries from `budget`, shared with other retries of the same dependency. Without
    /// it, a budget is made from the config's `budget`, if set.
    pub fn budget(mut self, budget: RetryBudget<C>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Attaches an observer of every attempt.
    pub fn observer(mut self, observer: Arc<dyn RetryObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the config and builds the retry.
    pub fn build(self) -> Result<Retry<C>, ConfigError> {
        self.config.validate()?;
        let budget = match (self.budget, self.config.budget) {
            (Some(shared), _) => Some(shared),
            (None, Some(config)) => Some(RetryBudget::with_clock(config, self.clock.clone())?),
            (None, None) => None,
        };
        Ok(Retry {
            inner: Arc::new(Inner {
                name: self.name,
                config: self.config,
                budget,
                clock: self.clock,
                observers: self.observers,
            }),
        })
    }
}

impl<C: Clock> fmt::Debug for RetryBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
