//! The hedge: attempts started on a delay, raced, the first answer kept and the rest dropped.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use super::config::{ConfigError, HedgeConfig};
use super::observer::{HedgeEvent, HedgeEventKind, HedgeObserver};
use crate::clock::{Clock, MonotonicClock};
use crate::sync::lock;

/// Races a call against hedged copies of itself by a [`HedgeConfig`]; clones share the
/// name, the recent latencies and the observers.
pub struct Hedge<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    name: Arc<str>,
    config: HedgeConfig,
    clock: C,
    observers: Vec<Arc<dyn HedgeObserver>>,
    /// Set when the delay follows a percentile.
    latencies: Option<Latencies>,
}

/// The latencies of the last `window` successful attempts, and the percentile of them that
/// the next calls wait for.
struct Latencies {
    ring: Mutex<Ring>,
    /// The percentile in nanoseconds; `u64::MAX` until `min_samples` latencies are known.
    delay_nanos: AtomicU64,
}

struct Ring {
    samples: Vec<u64>,
    next: usize,
    recorded: u64,
}

impl Latencies {
    fn new(window: u32) -> Self {
        Self {
            ring: Mutex::new(Ring {
                samples: Vec::with_capacity(window as usize),
                next: 0,
                recorded: 0,
            }),
            delay_nanos: AtomicU64::new(u64::MAX),
        }
    }

    /// Records one latency. The percentile is recomputed (a selection over at most `window`
    /// values) when `min_samples` is first reached and then every tenth of the window, so a
    /// call's cost does not grow with the window.
    fn record(&self, config: &HedgeConfig, percentile: f64, nanos: u64) {
        let mut ring = lock(&self.ring);
        let window = config.window as usize;
        if ring.samples.len() < window {
            ring.samples.push(nanos);
        } else {
            let next = ring.next;
            ring.samples[next] = nanos;
        }
        ring.next = (ring.next + 1) % window;
        ring.recorded += 1;
        let min = u64::from(config.min_samples.max(1));
        let every = (window / 10).max(1) as u64;
        if ring.recorded < min || (ring.recorded > min && !ring.recorded.is_multiple_of(every)) {
            return;
        }
        let mut sorted = ring.samples.clone();
        drop(ring);
        // The nearest-rank percentile: the smallest sample at or above `percentile` of them.
        let rank = ((percentile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        let (_, value, _) = sorted.select_nth_unstable(rank - 1);
        self.delay_nanos.store(*value, Ordering::Release);
    }
}

/// One attempt in flight.
struct Running<Fut> {
    future: Pin<Box<Fut>>,
    number: u32,
    started: u64,
}

impl<C: Clock> Clone for Hedge<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl Hedge<MonotonicClock> {
    /// A hedge enforcing `config` on the real clock.
    pub fn new(config: HedgeConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder to set a name, a clock or observers.
    pub fn builder(config: HedgeConfig) -> HedgeBuilder<MonotonicClock> {
        HedgeBuilder {
            name: Arc::from("hedge"),
            config,
            clock: MonotonicClock::new(),
            observers: Vec::new(),
        }
    }
}

impl<C: Clock> Hedge<C> {
    /// Runs `attempt`, and again after each delay while no attempt has answered, up to
    /// `1 + max_hedged_attempts` attempts at once; the first `Ok` wins and every other attempt
    /// still running is dropped. A failed attempt starts the next one at once (if any is
    /// left); when every attempt has failed, the last error is returned.
    pub async fn run<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_if(attempt, |_| false).await
    }

    /// [`run`](Self::run), where an error for which `ends_call` is true (a caller error, which
    /// every copy would meet) is returned at once and the other attempts are dropped.
    pub async fn run_if<T, E, F, Fut>(
        &self,
        mut attempt: F,
        ends_call: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let inner = &*self.inner;
        let max = 1 + inner.config.max_hedged_attempts;
        let delay = self.delay();
        let mut running: Vec<Running<Fut>> = Vec::with_capacity(max as usize);
        running.push(Running {
            future: Box::pin(attempt()),
            number: 1,
            started: inner.clock.now_nanos(),
        });
        let mut started = 1;
        let mut timer = Some(inner.clock.sleep(delay));
        poll_fn(move |cx| {
            loop {
                let mut hedge_now = false;
                let mut i = 0;
                while i < running.len() {
                    let Poll::Ready(result) = running[i].future.as_mut().poll(cx) else {
                        i += 1;
                        continue;
                    };
                    let done = running.swap_remove(i);
                    match result {
                        Ok(value) => {
                            self.record(inner.clock.now_nanos().saturating_sub(done.started));
                            let cancelled = running.len() as u32;
                            running.clear();
                            self.emit(done.number, HedgeEventKind::Won { cancelled });
                            return Poll::Ready(Ok(value));
                        }
                        Err(error)
                            if ends_call(&error) || (running.is_empty() && started >= max) =>
                        {
                            let cancelled = running.len() as u32;
                            running.clear();
                            self.emit(done.number, HedgeEventKind::Failed { cancelled });
                            return Poll::Ready(Err(error));
                        }
                        // Others still run, or another may start: the error is not the last.
                        Err(_) => hedge_now |= started < max,
                    }
                }
                let waited = if hedge_now {
                    Some(Duration::ZERO)
                } else if let Some(sleep) = timer.as_mut() {
                    sleep.as_mut().poll(cx).is_ready().then_some(delay)
                } else {
                    None
                };
                let Some(waited) = waited else {
                    return Poll::Pending;
                };
                started += 1;
                running.push(Running {
                    future: Box::pin(attempt()),
                    number: started,
                    started: inner.clock.now_nanos(),
                });
                self.emit(started, HedgeEventKind::Hedged { delay: waited });
                timer = (started < max).then(|| inner.clock.sleep(delay));
            }
        })
        .await
    }

    /// The wait before the next hedged attempt: the percentile of recent latencies once enough
    /// are known, the config's `delay` otherwise.
    pub fn delay(&self) -> Duration {
        let inner = &*self.inner;
        match &inner.latencies {
            Some(latencies) => match latencies.delay_nanos.load(Ordering::Acquire) {
                u64::MAX => inner.config.delay,
                nanos => Duration::from_nanos(nanos),
            },
            None => inner.config.delay,
        }
    }

    fn record(&self, nanos: u64) {
        let inner = &*self.inner;
        if let (Some(latencies), Some(percentile)) = (&inner.latencies, inner.config.percentile) {
            latencies.record(&inner.config, percentile, nanos);
        }
    }

    fn emit(&self, attempt: u32, kind: HedgeEventKind) {
        let inner = &*self.inner;
        if !matches!(kind, HedgeEventKind::Won { cancelled: 0 }) {
            tracing::debug!(hedge = %inner.name, attempt, ?kind, "hedge");
        }
        if inner.observers.is_empty() {
            return;
        }
        let event = HedgeEvent {
            name: &inner.name,
            attempt,
            kind,
        };
        for observer in &inner.observers {
            observer.on_hedge_event(&event);
        }
    }

    /// The hedge's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The config it enforces.
    pub fn config(&self) -> &HedgeConfig {
        &self.inner.config
    }
}

impl<C: Clock> fmt::Debug for Hedge<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("delay", &self.delay())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hedge`]; see [`Hedge::builder`].
#[must_use]
pub struct HedgeBuilder<C: Clock> {
    name: Arc<str>,
    config: HedgeConfig,
    clock: C,
    observers: Vec<Arc<dyn HedgeObserver>>,
}

impl<C: Clock> HedgeBuilder<C> {
    /// Names the hedge in its events (default `"hedge"`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads time (delays and latencies) from `clock`.
    pub fn clock<C2: Clock>(self, clock: C2) -> HedgeBuilder<C2> {
        HedgeBuilder {
            name: self.name,
            config: self.config,
            clock,
            observers: self.observers,
        }
    }

    /// Attaches an observer of every event.
    pub fn observer(mut self, observer: Arc<dyn HedgeObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the config and builds the hedge.
    pub fn build(self) -> Result<Hedge<C>, ConfigError> {
        self.config.validate()?;
        let latencies = self
            .config
            .percentile
            .map(|_| Latencies::new(self.config.window));
        Ok(Hedge {
            inner: Arc::new(Inner {
                name: self.name,
                config: self.config,
                clock: self.clock,
                observers: self.observers,
                latencies,
            }),
        })
    }
}

impl<C: Clock> fmt::Debug for HedgeBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
