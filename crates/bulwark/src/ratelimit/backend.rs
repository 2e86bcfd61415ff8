//! One contract for every keyed limiter, local or shared, so callers and the conformance
//! tests can treat them alike.

use std::future::Future;
use std::pin::Pin;

use super::error::RateLimitError;
use super::keyed::KeyedRateLimiter;
use super::limiter::Admitted;
use crate::clock::Clock;

/// A future returned by [`RateLimitBackend::check`].
pub type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Admitted, RateLimitError>> + Send + 'a>>;

/// A keyed rate limit that may live in this process or in a shared store.
///
/// Every backend keeps the same contract: GCRA over `max_requests + burst_size` tokens
/// refilling at `max_requests / time_window`, `check` never waits, a refusal carries
/// `retry_after`, a request above the capacity is [`RateLimitError::ExceedsCapacity`].
pub trait RateLimitBackend: Send + Sync {
    /// Takes `tokens` from `key`'s bucket, or says how long until it could.
    fn check<'a>(&'a self, key: &'a str, tokens: u32) -> CheckFuture<'a>;

    /// Tokens a full bucket holds.
    fn capacity(&self) -> u32;

    /// A short name for logs and health reports (`"local"`, `"redis"`).
    fn kind(&self) -> &'static str;
}

impl<C: Clock> RateLimitBackend for KeyedRateLimiter<String, C> {
    fn check<'a>(&'a self, key: &'a str, tokens: u32) -> CheckFuture<'a> {
        let decision = self.check_detailed(&key.to_owned(), tokens);
        Box::pin(std::future::ready(decision))
    }

    fn capacity(&self) -> u32 {
        KeyedRateLimiter::capacity(self)
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}
