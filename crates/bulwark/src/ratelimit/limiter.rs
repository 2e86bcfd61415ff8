//! One bucket shared by every clone of a [`RateLimiter`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::config::RateLimitConfig;
use super::error::{ConfigError, ExceedsCapacity, RateLimitError, RateLimited};
use super::gcra::{Gcra, Refusal};
use super::observer::{Decision, RateLimitObserver};
use crate::clock::{Clock, MonotonicClock};

/// How long [`RateLimiter::acquire`] waits at most unless told otherwise.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);

/// A token-bucket rate limiter: lock-free, one atomic word of state, no background thread.
///
/// Clones share the same bucket, so a limiter can be handed to every task and every tower
/// service that must share one limit.
///
/// ```
/// use bulwark::clock::ManualClock;
/// use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::builder(RateLimitConfig::new(10, Duration::from_secs(1), 0))
///     .clock(clock.clone())
///     .build()?;
/// assert!(limiter.try_acquire(10)?);
/// assert!(!limiter.try_acquire(1)?);
/// clock.advance(Duration::from_millis(100)); // one token refills every 100 ms
/// assert!(limiter.try_acquire(1)?);
/// # Ok::<(), bulwark::ratelimit::RateLimitError>(())
/// ```
pub struct RateLimiter<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    /// Alone on its cache line: every admitted request writes it, and the read-only fields
    /// beside it would otherwise be invalidated in every other core's cache each time.
    tat: CachePadded<AtomicU64>,
    gcra: Gcra,
    clock: C,
    config: RateLimitConfig,
    name: Option<Arc<str>>,
    max_wait: Duration,
    observer: Option<Arc<dyn RateLimitObserver>>,
}

/// A request that was admitted, with the bucket's state right after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Admitted {
    /// Whole tokens left.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// Tokens a full bucket holds.
    pub capacity: u32,
}

impl<C: Clone + Clock> Clone for RateLimiter<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl RateLimiter<MonotonicClock> {
    /// A limiter enforcing `config` on the real clock.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder to set a name, a clock, an observer or the maximum wait.
    pub fn builder(config: RateLimitConfig) -> RateLimiterBuilder<MonotonicClock> {
        RateLimiterBuilder {
            config,
            clock: MonotonicClock::new(),
            name: None,
            max_wait: DEFAULT_MAX_WAIT,
            observer: None,
        }
    }
}

impl<C: Clock> RateLimiter<C> {
    /// Takes `tokens` if the bucket holds them now; never waits.
    ///
    /// `Ok(false)` means "not now"; a request larger than the bucket's capacity is an
    /// [`ExceedsCapacity`] error, since it could never pass.
    #[inline]
    pub fn try_acquire(&self, tokens: u32) -> Result<bool, ExceedsCapacity> {
        match self.decide(tokens) {
            Ok(_) => Ok(true),
            Err(Ok(_)) => Ok(false),
            Err(Err(exceeds)) => Err(exceeds),
        }
    }

    /// Takes `tokens` if the bucket holds them now, or says how long until it will.
    #[inline]
    pub fn check(&self, tokens: u32) -> Result<(), RateLimitError> {
        self.check_detailed(tokens).map(|_| ())
    }

    /// Like [`check`](Self::check), and on success reports the bucket's state after the
    /// request (what `RateLimit-Remaining` and `RateLimit-Reset` headers carry).
    pub fn check_detailed(&self, tokens: u32) -> Result<Admitted, RateLimitError> {
        match self.decide(tokens) {
            Ok((tat, now)) => Ok(Admitted {
                remaining: self.inner.gcra.available(tat, now),
                reset_after: self.inner.gcra.until_full(tat, now),
                capacity: self.inner.gcra.capacity(),
            }),
            Err(Ok(limited)) => Err(limited.into()),
            Err(Err(exceeds)) => Err(exceeds.into()),
        }
    }

    /// Waits until `tokens` can be taken, at most the limiter's maximum wait
    /// ([`DEFAULT_MAX_WAIT`] unless set on the builder).
    ///
    /// When the wait the bucket needs is longer than that, it fails at once with
    /// [`RateLimitError::Limited`] rather than sleeping for nothing. Cancellation safe: nothing
    /// is reserved before the tokens are taken, so dropping the future loses no tokens.
    pub async fn acquire(&self, tokens: u32) -> Result<(), RateLimitError> {
        self.acquire_with_max_wait(tokens, self.inner.max_wait)
            .await
    }

    /// [`acquire`](Self::acquire) with an explicit maximum wait.
    pub async fn acquire_with_max_wait(
        &self,
        tokens: u32,
        max_wait: Duration,
    ) -> Result<(), RateLimitError> {
        wait_until_admitted(&self.inner.clock, max_wait, || self.check(tokens)).await
    }

    /// Whole tokens in the bucket now.
    pub fn available(&self) -> u32 {
        let now = self.inner.clock.now_nanos();
        self.inner
            .gcra
            .available(self.inner.tat.load(Ordering::Acquire), now)
    }

    /// The config this limiter enforces.
    pub fn config(&self) -> &RateLimitConfig {
        &self.inner.config
    }

    /// Tokens a full bucket holds.
    pub fn capacity(&self) -> u32 {
        self.inner.gcra.capacity()
    }

    /// The limiter's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The time one token takes to refill (`time_window / max_requests`, rounded up to whole
    /// nanoseconds so that rounding never loosens the limit).
    pub fn refill_interval(&self) -> Duration {
        self.inner.gcra.emission_interval()
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// Fills the bucket again, forgetting every token taken.
    pub fn reset(&self) {
        self.inner.tat.store(0, Ordering::Release);
    }

    /// The decision: `Ok((new_tat, now))`, `Err(Ok(limited))` for "not now", `Err(Err(..))`
    /// for "never". Observers are told here, once, after the decision is final.
    #[inline]
    fn decide(&self, tokens: u32) -> Result<(u64, u64), Result<RateLimited, ExceedsCapacity>> {
        let inner = &*self.inner;
        let capacity = inner.gcra.capacity();
        if tokens > capacity {
            return Err(Err(ExceedsCapacity {
                requested: tokens,
                capacity,
            }));
        }
        let now = inner.clock.now_nanos();
        let mut tat = inner.tat.load(Ordering::Acquire);
        let result = loop {
            match inner.gcra.decide(tat, now, tokens) {
                Ok(new_tat) => match inner.tat.compare_exchange_weak(
                    tat,
                    new_tat,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break Ok((new_tat, now)),
                    Err(current) => tat = current,
                },
                Err(refusal) => break Err(limited(refusal, tokens, capacity)),
            }
        };
        if let Some(observer) = &inner.observer {
            notify(observer.as_ref(), inner, &result, tokens);
        }
        result.map_err(Ok)
    }
}

/// Retries `check` after each refusal's `retry_after` on `clock`, giving up at once when the
/// wait would end past `max_wait`. Nothing is reserved between tries, so dropping the future
/// at any await loses no tokens.
pub(crate) async fn wait_until_admitted<C: Clock>(
    clock: &C,
    max_wait: Duration,
    mut check: impl FnMut() -> Result<(), RateLimitError>,
) -> Result<(), RateLimitError> {
    let deadline = clock.now().saturating_add(max_wait);
    loop {
        match check() {
            Err(RateLimitError::Limited(limited)) => {
                if clock.now().saturating_add(limited.retry_after) > deadline {
                    return Err(limited.into());
                }
                clock.sleep(limited.retry_after).await;
            }
            other => return other,
        }
    }
}

/// Aligns its content to 128 bytes: the cache-line size, doubled for CPUs whose adjacent-line
/// prefetcher pulls lines in pairs.
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) fn limited(refusal: Refusal, requested: u32, capacity: u32) -> RateLimited {
    RateLimited {
        retry_after: Duration::from_nanos(refusal.wait_nanos),
        available: refusal.available,
        requested,
        capacity,
    }
}

#[cold]
fn notify<C>(
    observer: &dyn RateLimitObserver,
    inner: &Inner<C>,
    result: &Result<(u64, u64), RateLimited>,
    tokens: u32,
) {
    let (allowed, available, retry_after) = match result {
        Ok((tat, now)) => (true, inner.gcra.available(*tat, *now), None),
        Err(limited) => (false, limited.available, Some(limited.retry_after)),
    };
    observer.on_decision(&Decision {
        limiter: inner.name.as_deref(),
        key: None,
        requested: tokens,
        allowed,
        available,
        retry_after,
    });
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("available", &self.available())
            .finish()
    }
}

/// Builds a [`RateLimiter`]; see [`RateLimiter::builder`].
#[must_use]
pub struct RateLimiterBuilder<C: Clock> {
    config: RateLimitConfig,
    clock: C,
    name: Option<Arc<str>>,
    max_wait: Duration,
    observer: Option<Arc<dyn RateLimitObserver>>,
}

impl<C: Clock> RateLimiterBuilder<C> {
    /// Names the limiter; the name is shown to observers and in registry listings.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Reads time from `clock` (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn clock<C2: Clock>(self, clock: C2) -> RateLimiterBuilder<C2> {
        RateLimiterBuilder {
            config: self.config,
            clock,
            name: self.name,
            max_wait: self.max_wait,
            observer: self.observer,
        }
    }

    /// The longest [`RateLimiter::acquire`] waits before giving up.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Attaches an observer that sees every decision.
    pub fn observer(mut self, observer: Arc<dyn RateLimitObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Validates the config and builds the limiter, with a full bucket.
    pub fn build(self) -> Result<RateLimiter<C>, ConfigError> {
        let gcra = Gcra::new(&self.config)?;
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                gcra,
                tat: CachePadded(AtomicU64::new(0)),
                clock: self.clock,
                config: self.config,
                name: self.name,
                max_wait: self.max_wait,
                observer: self.observer,
            }),
        })
    }
}

impl<C: Clock> fmt::Debug for RateLimiterBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterBuilder")
            .field("config", &self.config)
            .field("name", &self.name)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}
