//! Retry: more attempts for a call that failed, without turning an outage into a storm.
//!
//! A [`Retry`] runs a call up to `max_attempts` times. Between attempts it waits a
//! [`Backoff`] delay (constant, linear, exponential, or the AWS full / decorrelated jitter
//! formulas, each capped) on the [`Clock`](crate::clock::Clock), and at least the
//! `retry_after` the error carries ([`Classify::retry_after`]: a limiter's or breaker's
//! rejection, an HTTP `Retry-After` read by [`retry_after_from_headers`]). It stops early when
//! the error is not retryable ([`Classify::is_retryable`], by default every error but caller
//! errors is), when the wait asked for is beyond `max_retry_after`, or when the shared
//! [`RetryBudget`] has no retry left: every call deposits `ratio` of a retry, every retry
//! withdraws one, so under a 100 % failure storm retries stay at `ratio` of the traffic (plus a
//! small always-allowed rate) instead of multiplying it. Every attempt is a [`RetryEvent`] for
//! the [`RetryObserver`]s. Dropping the future while it waits makes no further attempt.
//!
//! ```
//! use bulwark::clock::{Clock, ManualClock};
//! use bulwark::retry::{Backoff, GiveUp, Retry, RetryConfig};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = ManualClock::new();
//! let config = RetryConfig::new(3, Backoff::constant(Duration::from_secs(1)));
//! let retry = Retry::builder(config).clock(clock.clone()).build()?;
//! let calls = AtomicU32::new(0);
//! let run = retry.run(|| async {
//!     calls.fetch_add(1, Ordering::Relaxed);
//!     Err::<(), _>("upstream 503".to_string())
//! });
//! let advance = async {
//!     for _ in 0..2 {
//!         tokio::task::yield_now().await;
//!         clock.advance(Duration::from_secs(1));
//!     }
//! };
//! let (result, ()) = tokio::join!(run, advance);
//! let error = result.unwrap_err();
//! assert_eq!((error.attempts, error.reason), (3, GiveUp::Exhausted));
//! assert_eq!(calls.load(Ordering::Relaxed), 3);
//! assert_eq!(clock.now(), Duration::from_secs(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

mod backoff;
mod budget;
mod classify;
mod config;
mod error;
mod http;
mod observer;
#[allow(clippy::module_inception)]
mod retry;

pub use backoff::Backoff;
pub use budget::{RetryBudget, RetryBudgetConfig};
pub use classify::Classify;
pub use config::RetryConfig;
pub use error::{ConfigError, GiveUp, RetryError};
pub use http::retry_after_from_headers;
pub use observer::{RetryEvent, RetryEventKind, RetryObserver};
pub use retry::{Retry, RetryBuilder};
