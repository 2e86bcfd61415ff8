//! A retry budget shared by every caller of one dependency (Finagle's `RetryBudget`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};
use crate::serde_duration;
use crate::sync::lock;

/// Buckets the window is split into; the window slides by one bucket at a time.
const BUCKETS: usize = 10;

/// How many retries a [`RetryBudget`] allows: at most `ratio` retries per call over the last
/// `window`, plus `min_retries_per_second` that are always allowed (so that a dependency with
/// little traffic can still be retried). Finagle's defaults: 20 % over 10 s, 10 per second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Retries allowed per call, in `[0, 1]`.
    pub ratio: f64,
    /// How far back calls and retries are counted.
    #[serde(with = "serde_duration")]
    pub window: Duration,
    /// Retries per second allowed whatever the traffic.
    pub min_retries_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            window: Duration::from_secs(10),
            min_retries_per_second: 10,
        }
    }
}

impl RetryBudgetConfig {
    /// Checks the ratio (`[0, 1]`) and the window (longer than zero).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.ratio) {
            return Err(ConfigError::BudgetRatio { ratio: self.ratio });
        }
        if self.window.is_zero() {
            return Err(ConfigError::BudgetWindow);
        }
        Ok(())
    }
}

/// Retries left for one dependency, shared by all its callers (clones share the budget).
///
/// Every call [`deposit`](Self::deposit)s `ratio` of a retry; every retry
/// [`try_withdraw`](Self::try_withdraw)s one, and is refused when the balance over the window
/// (`ratio × calls + min_retries_per_second × window − retries`) is below one. When most calls
/// fail, retries stop at `ratio` of the traffic instead of multiplying it by `max_attempts`.
/// The counts live in a ring of ten buckets behind one small lock, on the [`Clock`].
///
/// ```
/// use bulwark::clock::ManualClock;
/// use bulwark::retry::{RetryBudget, RetryBudgetConfig};
/// use std::time::Duration;
///
/// let config = RetryBudgetConfig { ratio: 0.5, window: Duration::from_secs(10), min_retries_per_second: 0 };
/// let budget = RetryBudget::with_clock(config, ManualClock::new())?;
/// for _ in 0..4 {
///     budget.deposit();
/// }
/// let retries = (0..10).filter(|_| budget.try_withdraw()).count();
/// assert_eq!(retries, 2);
/// # Ok::<(), bulwark::retry::ConfigError>(())
/// ```
pub struct RetryBudget<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    config: RetryBudgetConfig,
    bucket_nanos: u64,
    /// Always-allowed retries over the window, scaled like the deposits.
    reserve: u64,
    ring: Mutex<Ring>,
    clock: C,
}

/// Deposits and withdrawals are kept in thousandths of a retry, so a ratio of 0.2 deposits 200.
const SCALE: f64 = 1000.0;

#[derive(Default)]
struct Ring {
    /// Bucket index (time / bucket length) of the newest bucket.
    head: u64,
    deposits: [u64; BUCKETS],
    withdrawals: [u64; BUCKETS],
}

impl Ring {
    /// Moves the ring forward to `index`, clearing the buckets that fell out of the window.
    fn advance(&mut self, index: u64) {
        if index <= self.head {
            return;
        }
        let steps = (index - self.head).min(BUCKETS as u64);
        for step in 1..=steps {
            let slot = slot(self.head + step);
            self.deposits[slot] = 0;
            self.withdrawals[slot] = 0;
        }
        self.head = index;
    }
}

fn slot(index: u64) -> usize {
    usize::try_from(index % BUCKETS as u64).unwrap_or(0)
}

impl<C: Clock> Clone for RetryBudget<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl RetryBudget<MonotonicClock> {
    /// A budget on the real clock.
    pub fn new(config: RetryBudgetConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, MonotonicClock::new())
    }
}

impl<C: Clock> RetryBudget<C> {
    /// A budget reading time from `clock`.
    pub fn with_clock(config: RetryBudgetConfig, clock: C) -> Result<Self, ConfigError> {
        config.validate()?;
        let bucket_nanos = (duration_to_nanos(config.window) / BUCKETS as u64).max(1);
        let reserve =
            (f64::from(config.min_retries_per_second) * config.window.as_secs_f64() * SCALE) as u64;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                bucket_nanos,
                reserve,
                ring: Mutex::new(Ring::default()),
                clock,
            }),
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        let index = self.inner.clock.now_nanos() / self.inner.bucket_nanos;
        let mut ring = lock(&self.inner.ring);
        ring.advance(index);
        ring
    }

    /// Records one call (a first attempt).
    pub fn deposit(&self) {
        let amount = (self.inner.config.ratio * SCALE) as u64;
        let mut ring = self.ring();
        let head = slot(ring.head);
        ring.deposits[head] = ring.deposits[head].saturating_add(amount);
    }

    /// Takes one retry if the budget has one; `false` means "do not retry".
    pub fn try_withdraw(&self) -> bool {
        let mut ring = self.ring();
        let balance = self.balance_of(&ring);
        if balance < SCALE as u64 {
            return false;
        }
        let head = slot(ring.head);
        ring.withdrawals[head] = ring.withdrawals[head].saturating_add(SCALE as u64);
        true
    }

    fn balance_of(&self, ring: &Ring) -> u64 {
        let deposits: u64 = ring.deposits.iter().sum();
        let withdrawals: u64 = ring.withdrawals.iter().sum();
        (deposits + self.inner.reserve).saturating_sub(withdrawals)
    }

    /// Whole retries the budget would allow now.
    pub fn available(&self) -> u64 {
        let ring = self.ring();
        self.balance_of(&ring) / SCALE as u64
    }

    /// The config it enforces.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.inner.config
    }
}

impl<C: Clock> fmt::Debug for RetryBudget<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
