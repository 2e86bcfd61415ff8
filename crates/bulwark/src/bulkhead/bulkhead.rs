//! One bulkhead shared by every clone: a semaphore, a bounded queue count, and hooks.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{BulkheadConfig, ConfigError};
use super::error::{BulkheadRejected, RejectReason};
use super::observer::{BulkheadEvent, BulkheadObserver};
use crate::clock::{Clock, MonotonicClock};

/// At most N calls at once, with an optional bounded queue; clones share the slots.
///
/// A slot is a [`BulkheadPermit`]: it goes back when the permit is dropped, so a call that
/// returns, is cancelled (its future dropped) or panics frees its slot.
pub struct Bulkhead<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    name: Arc<str>,
    config: BulkheadConfig,
    slots: Arc<Semaphore>,
    queued: AtomicU32,
    clock: C,
    observers: Vec<Arc<dyn BulkheadObserver>>,
}

/// A slot in a [`Bulkhead`]; dropping it frees the slot.
#[must_use = "the slot is freed as soon as the permit is dropped"]
#[derive(Debug)]
pub struct BulkheadPermit {
    _permit: OwnedSemaphorePermit,
}

impl<C: Clock> Clone for Bulkhead<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Bulkhead<MonotonicClock> {
    /// A bulkhead enforcing `config` on the real clock.
    pub fn new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder to set a name, a clock or observers.
    pub fn builder(config: BulkheadConfig) -> BulkheadBuilder<MonotonicClock> {
        BulkheadBuilder {
            name: Arc::from("bulkhead"),
            config,
            clock: MonotonicClock::new(),
            observers: Vec::new(),
        }
    }
}

/// Takes one place in the queue on creation, gives it back on drop (also when the waiting
/// future is cancelled).
struct QueuePlace<'a>(&'a AtomicU32);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C: Clock> Bulkhead<C> {
    /// Builds from a config that has been validated.
    pub(crate) fn from_parts(
        name: Arc<str>,
        config: BulkheadConfig,
        clock: C,
        observers: Vec<Arc<dyn BulkheadObserver>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_concurrent as usize)),
                name,
                config,
                queued: AtomicU32::new(0),
                clock,
                observers,
            }),
        }
    }

    /// Takes a slot if one is free now; never waits, never queues.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadRejected> {
        match Arc::clone(&self.inner.slots).try_acquire_owned() {
            Ok(permit) => {
                self.emit(None);
                Ok(BulkheadPermit { _permit: permit })
            }
            Err(_) => Err(self.reject(RejectReason::Full)),
        }
    }

    /// Takes a slot, waiting in the queue (when the config has one) for at most `max_wait`.
    /// Dropping the future while it waits leaves the queue.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadRejected> {
        let inner = &*self.inner;
        if let Ok(permit) = Arc::clone(&inner.slots).try_acquire_owned() {
            self.emit(None);
            return Ok(BulkheadPermit { _permit: permit });
        }
        if inner.config.max_queue == 0 {
            return Err(self.reject(RejectReason::Full));
        }
        let max_queue = inner.config.max_queue;
        if inner
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < max_queue).then_some(q + 1)
            })
            .is_err()
        {
            return Err(self.reject(RejectReason::QueueFull));
        }
        let place = QueuePlace(&inner.queued);
        let wait = Arc::clone(&inner.slots).acquire_owned();
        let permit = match inner.config.max_wait {
            None => wait.await.ok(),
            Some(max_wait) => {
                let sleep = inner.clock.sleep(max_wait);
                tokio::select! {
                    biased;
                    permit = wait => permit.ok(),
                    () = sleep => {
                        drop(place);
                        return Err(self.reject(RejectReason::MaxWait(max_wait)));
                    }
                }
            }
        };
        drop(place);
        match permit {
            Some(permit) => {
                self.emit(None);
                Ok(BulkheadPermit { _permit: permit })
            }
            // The semaphore is never closed; report it as full rather than panic.
            None => Err(self.reject(RejectReason::Full)),
        }
    }

    /// Runs `future` in a slot (waiting for one as [`acquire`](Self::acquire) does).
    pub async fn run<F: Future>(&self, future: F) -> Result<F::Output, BulkheadRejected> {
        let _permit = self.acquire().await?;
        Ok(future.await)
    }

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> u32 {
        let free = u32::try_from(self.inner.slots.available_permits()).unwrap_or(u32::MAX);
        self.inner.config.max_concurrent.saturating_sub(free)
    }

    /// Calls waiting in the queue now.
    pub fn queued(&self) -> u32 {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Whether no call holds a slot or waits for one (a keyed bulkhead may then drop it).
    pub fn is_idle(&self) -> bool {
        self.in_flight() == 0 && self.queued() == 0
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The config it enforces.
    pub fn config(&self) -> &BulkheadConfig {
        &self.inner.config
    }

    fn reject(&self, reason: RejectReason) -> BulkheadRejected {
        self.emit(Some(reason));
        tracing::debug!(bulkhead = %self.inner.name, reason = reason.as_str(), "bulkhead refused a call");
        BulkheadRejected {
            bulkhead: Arc::clone(&self.inner.name),
            reason,
            max_concurrent: self.inner.config.max_concurrent,
        }
    }

    fn emit(&self, rejected: Option<RejectReason>) {
        if self.inner.observers.is_empty() {
            return;
        }
        let event = BulkheadEvent {
            name: &self.inner.name,
            rejected,
            in_flight: self.in_flight(),
            queued: self.queued(),
        };
        for observer in &self.inner.observers {
            observer.on_bulkhead_event(&event);
        }
    }
}

impl<C: Clock> fmt::Debug for Bulkhead<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish()
    }
}

/// Builds a [`Bulkhead`]; see [`Bulkhead::builder`].
#[must_use]
pub struct BulkheadBuilder<C: Clock> {
    name: Arc<str>,
    config: BulkheadConfig,
    clock: C,
    observers: Vec<Arc<dyn BulkheadObserver>>,
}

impl<C: Clock> BulkheadBuilder<C> {
    /// Names the bulkhead in its rejections and events (default `"bulkhead"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads time (for `max_wait`) from `clock`.
    pub fn clock<C2: Clock>(self, clock: C2) -> BulkheadBuilder<C2> {
        BulkheadBuilder {
            name: self.name,
            config: self.config,
            clock,
            observers: self.observers,
        }
    }

    /// Attaches an observer of every decision.
    pub fn observer(mut self, observer: Arc<dyn BulkheadObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the config and builds the bulkhead.
    pub fn build(self) -> Result<Bulkhead<C>, ConfigError> {
        self.config.validate()?;
        Ok(Bulkhead::from_parts(
            self.name,
            self.config,
            self.clock,
            self.observers,
        ))
    }
}

impl<C: Clock> fmt::Debug for BulkheadBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
