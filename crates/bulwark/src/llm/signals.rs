//! Feeding provider signals back: tighten limiters and budgets, pause on a 429.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::headers::ProviderSignals;
use crate::budget::{BudgetHandle, Ledger};
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};
use crate::ratelimit::RateLimiter;

/// What [`ProviderLimits::apply`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Calls are paused this long (a 429).
    pub paused_for: Option<Duration>,
    /// Tokens taken from the request limiter to match the provider's `remaining`.
    pub limiter_drained: u32,
    /// Whether a budget was tightened.
    pub budget_tightened: bool,
}

/// One provider's local view of its limits, corrected by what its responses say: a limiter
/// or budget more generous than the provider's `remaining` tightens to it, and a 429 pauses
/// every call until the reset the provider named.
pub struct ProviderLimits<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Clock> {
    clock: C,
    paused_until: AtomicU64,
    requests: Option<RateLimiter<C>>,
    request_budget: Option<(Ledger<C>, BudgetHandle)>,
    token_budget: Option<(Ledger<C>, BudgetHandle)>,
}

impl<C: Clock> Clone for ProviderLimits<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> ProviderLimits<C> {
    /// Limits on `clock`, with nothing to tighten yet.
    pub fn new(clock: C) -> Self {
        Self::from_inner(Inner {
            clock,
            paused_until: AtomicU64::new(0),
            requests: None,
            request_budget: None,
            token_budget: None,
        })
    }

    fn from_inner(inner: Inner<C>) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner<C>)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            clock: shared.clock.clone(),
            paused_until: AtomicU64::new(shared.paused_until.load(Ordering::Acquire)),
            requests: shared.requests.clone(),
            request_budget: shared.request_budget.clone(),
            token_budget: shared.token_budget.clone(),
        });
        f(&mut inner);
        Self::from_inner(inner)
    }

    /// The limiter of this provider's requests, drained to the provider's
    /// `remaining-requests` when it holds more.
    pub fn request_limiter(self, limiter: RateLimiter<C>) -> Self {
        self.with(|inner| inner.requests = Some(limiter))
    }

    /// The request budget tightened by `remaining-requests` until its reset.
    pub fn request_budget(self, ledger: Ledger<C>, budget: BudgetHandle) -> Self {
        self.with(|inner| inner.request_budget = Some((ledger, budget)))
    }

    /// The token budget tightened by `remaining-tokens` until its reset.
    pub fn token_budget(self, ledger: Ledger<C>, budget: BudgetHandle) -> Self {
        self.with(|inner| inner.token_budget = Some((ledger, budget)))
    }

    /// Feeds a response's signals back.
    pub fn apply(&self, signals: &ProviderSignals) -> Applied {
        let inner = &*self.inner;
        let mut applied = Applied::default();
        if let Some(pause) = signals.pause_for() {
            let until = inner
                .clock
                .now_nanos()
                .saturating_add(duration_to_nanos(pause));
            inner.paused_until.fetch_max(until, Ordering::AcqRel);
            tracing::info!(?pause, "provider rate limited; pausing calls");
            applied.paused_for = Some(pause);
        }
        if let (Some(limiter), Some(remaining)) =
            (&inner.requests, signals.requests.and_then(|r| r.remaining))
        {
            let remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
            let excess = limiter.available().saturating_sub(remaining);
            if excess > 0 && limiter.try_acquire(excess).unwrap_or(false) {
                applied.limiter_drained = excess;
            }
        }
        for (budget, signal) in [
            (&inner.request_budget, signals.requests),
            (&inner.token_budget, signals.tokens),
        ] {
            if let (Some((ledger, handle)), Some(signal)) = (budget, signal)
                && let Some(remaining) = signal.remaining
            {
                let before = ledger.snapshot_of(*handle).map(|s| s.remaining);
                ledger.tighten(
                    *handle,
                    remaining,
                    signal.reset_in.unwrap_or(Duration::from_secs(60)),
                );
                applied.budget_tightened |=
                    ledger.snapshot_of(*handle).map(|s| s.remaining) != before;
            }
        }
        applied
    }

    /// How long calls are still paused.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = self.inner.paused_until.load(Ordering::Acquire);
        let now = self.inner.clock.now_nanos();
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// Waits on the clock until no pause is in force.
    pub async fn ready(&self) {
        while let Some(wait) = self.paused_for() {
            self.inner.clock.sleep(wait).await;
        }
    }
}

impl<C: Clock> fmt::Debug for ProviderLimits<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderLimits")
            .field("paused_for", &self.paused_for())
            .finish()
    }
}
