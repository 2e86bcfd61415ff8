//! The timeout, its error, its config and its hook.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, MonotonicClock, Sleep};
use crate::serde_duration;

/// Which timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The bound on one attempt (a timeout inside a retry, or used alone).
    Attempt,
    /// The bound on the whole call, retries and waits included (a timeout outside a retry).
    Overall,
}

impl TimeoutKind {
    /// The kind as a label value: `attempt` or `overall`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Attempt => "attempt",
            Self::Overall => "overall",
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call did not finish in time; its future was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} timeout fired after {after:?}")]
#[non_exhaustive]
pub struct TimeoutError {
    /// Which timeout fired.
    pub kind: TimeoutKind,
    /// The limit that was reached.
    pub after: Duration,
}

/// A timeout that cannot be enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The limit is zero: every call would time out.
    #[error("the timeout must be longer than zero")]
    Zero,
}

/// A timeout as a plain value, for configs: `{ timeout = "10s" }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// The limit.
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
}

/// One expiry, as shown to a [`TimeoutObserver`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TimeoutEvent<'a> {
    /// The timeout's name (its pipeline's name in a pipeline).
    pub name: &'a str,
    /// Which timeout fired.
    pub kind: TimeoutKind,
    /// The limit that was reached.
    pub after: Duration,
}

/// Observes the expiries of the timeouts it is attached to, synchronously; keep it quick.
pub trait TimeoutObserver: Send + Sync + 'static {
    /// Called once per expiry.
    fn on_timeout(&self, event: &TimeoutEvent<'_>);
}

impl<F> TimeoutObserver for F
where
    F: Fn(&TimeoutEvent<'_>) + Send + Sync + 'static,
{
    fn on_timeout(&self, event: &TimeoutEvent<'_>) {
        self(event)
    }
}

/// Bounds how long a call may take; clones share the limit and observers.
pub struct Timeout<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    name: Arc<str>,
    limit: Duration,
    kind: TimeoutKind,
    clock: C,
    observers: Vec<Arc<dyn TimeoutObserver>>,
}

impl<C: Clock> Clone for Timeout<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Timeout<MonotonicClock> {
    /// A per-attempt timeout of `limit` on the real clock.
    pub fn new(limit: Duration) -> Result<Self, ConfigError> {
        Self::builder(limit).build()
    }

    /// A builder to set a name, the kind, a clock or observers.
    pub fn builder(limit: Duration) -> TimeoutBuilder<MonotonicClock> {
        TimeoutBuilder {
            name: Arc::from("timeout"),
            limit,
            kind: TimeoutKind::Attempt,
            clock: MonotonicClock::new(),
            observers: Vec::new(),
        }
    }
}

impl<C: Clock> Timeout<C> {
    /// Awaits `future` for at most the limit; past it the future is dropped and the answer is
    /// a [`TimeoutError`].
    ///
    /// The timer is armed only when the future is still pending after its first poll, with the
    /// time left from the start: a call that answers at once pays one clock read, no timer.
    pub async fn run<F: Future>(&self, future: F) -> Result<F::Output, TimeoutError> {
        let inner = &*self.inner;
        let started = inner.clock.now_nanos();
        let mut future = pin!(future);
        let mut sleep: Option<Sleep> = None;
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            let sleep = sleep.get_or_insert_with(|| {
                let elapsed = inner.clock.now_nanos().saturating_sub(started);
                inner
                    .clock
                    .sleep(inner.limit.saturating_sub(Duration::from_nanos(elapsed)))
            });
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(self.expired())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    fn expired(&self) -> TimeoutError {
        let inner = &*self.inner;
        let error = TimeoutError {
            kind: inner.kind,
            after: inner.limit,
        };
        if !inner.observers.is_empty() {
            let event = TimeoutEvent {
                name: &inner.name,
                kind: error.kind,
                after: error.after,
            };
            for observer in &inner.observers {
                observer.on_timeout(&event);
            }
        }
        tracing::debug!(timeout = %inner.name, kind = %error.kind, after = ?error.after, "timed out");
        error
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.inner.limit
    }

    /// Which timeout this is.
    pub fn kind(&self) -> TimeoutKind {
        self.inner.kind
    }

    /// The timeout's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl<C: Clock> fmt::Debug for Timeout<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("name", &self.inner.name)
            .field("limit", &self.inner.limit)
            .field("kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Timeout`]; see [`Timeout::builder`].
#[must_use]
pub struct TimeoutBuilder<C: Clock> {
    name: Arc<str>,
    limit: Duration,
    kind: TimeoutKind,
    clock: C,
    observers: Vec<Arc<dyn TimeoutObserver>>,
}

impl<C: Clock> TimeoutBuilder<C> {
    /// Names the timeout in its events (default `"timeout"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Which timeout its errors report (default [`TimeoutKind::Attempt`]).
    pub fn kind(mut self, kind: TimeoutKind) -> Self {
        self.kind = kind;
        self
    }

    /// Reads time from `clock`.
    pub fn clock<C2: Clock>(self, clock: C2) -> TimeoutBuilder<C2> {
        TimeoutBuilder {
            name: self.name,
            limit: self.limit,
            kind: self.kind,
            clock,
            observers: self.observers,
        }
    }

    /// Attaches an observer of every expiry.
    pub fn observer(mut self, observer: Arc<dyn TimeoutObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Checks the limit and builds the timeout.
    pub fn build(self) -> Result<Timeout<C>, ConfigError> {
        if self.limit.is_zero() {
            return Err(ConfigError::Zero);
        }
        Ok(Timeout {
            inner: Arc::new(Inner {
                name: self.name,
                limit: self.limit,
                kind: self.kind,
                clock: self.clock,
                observers: self.observers,
            }),
        })
    }
}

impl<C: Clock> fmt::Debug for TimeoutBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutBuilder")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}
