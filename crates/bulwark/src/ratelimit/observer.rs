//! Hooks that watch a limiter's decisions. They see every decision and cannot change it.

use std::fmt;
use std::time::Duration;

/// One decision of a limiter, as shown to a [`RateLimitObserver`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Decision<'a> {
    /// The limiter's name, when it has one (limiters from a registry always do).
    pub limiter: Option<&'a str>,
    /// The key, for a keyed limiter.
    pub key: Option<&'a dyn fmt::Debug>,
    /// Tokens the request asked for.
    pub requested: u32,
    /// Whether the request was admitted.
    pub allowed: bool,
    /// Whole tokens left after the decision.
    pub available: u32,
    /// For a refusal, how long until the request could pass.
    pub retry_after: Option<Duration>,
}

impl fmt::Debug for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("limiter", &self.limiter)
            .field("key", &self.key)
            .field("requested", &self.requested)
            .field("allowed", &self.allowed)
            .field("available", &self.available)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

/// Observes the decisions of the limiters it is attached to.
///
/// Called synchronously on the deciding thread after the decision is final, so implementations
/// should be quick (increment a counter, send on a channel). A panic in an observer propagates
/// to the caller of the limiter.
pub trait RateLimitObserver: Send + Sync + 'static {
    /// Called once per decision.
    fn on_decision(&self, decision: &Decision<'_>);
}

impl<F> RateLimitObserver for F
where
    F: Fn(&Decision<'_>) + Send + Sync + 'static,
{
    fn on_decision(&self, decision: &Decision<'_>) {
        self(decision)
    }
}
