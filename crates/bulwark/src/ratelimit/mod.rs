//! Token-bucket rate limiting: one limit, or one per key.
//!
//! The algorithm is GCRA (the generic cell rate algorithm, "virtual scheduling" form): a
//! bucket of `max_requests + burst_size` tokens refilling continuously at
//! `max_requests / time_window` is represented by a single number, the instant at which the
//! bucket would be full again (its theoretical arrival time, TAT). Taking `n` tokens at `now`
//! moves the TAT to `max(TAT, now) + n × interval`, and is allowed when that lands no later
//! than `now + capacity × interval`. One `AtomicU64` holds the TAT and a compare-and-swap
//! loop updates it, so deciding never locks, never allocates and needs no refill thread; a
//! refusal knows exactly how long until it would pass (`retry_after`).
//!
//! ```
//! use bulwark::clock::ManualClock;
//! use bulwark::ratelimit::{RateLimitConfig, RateLimiter};
//! use std::time::Duration;
//!
//! // The original system's example: 100 per minute with a burst of 20 admits 120 at once.
//! let clock = ManualClock::new();
//! let limiter = RateLimiter::builder(RateLimitConfig::new(100, Duration::from_secs(60), 20))
//!     .clock(clock.clone())
//!     .build()?;
//! let admitted = (0..200).filter(|_| limiter.try_acquire(1).unwrap_or(false)).count();
//! assert_eq!(admitted, 120);
//! let refused = limiter.check(1).unwrap_err();
//! assert_eq!(refused.retry_after(), Some(Duration::from_millis(600)));
//! # Ok::<(), bulwark::ratelimit::ConfigError>(())
//! ```

mod backend;
mod config;
mod error;
mod gcra;
mod keyed;
pub mod layer;
mod limiter;
mod observer;
#[cfg(feature = "redis")]
pub mod redis;
mod registry;

pub use backend::{CheckFuture, RateLimitBackend};
pub use config::RateLimitConfig;
pub use error::{ConfigError, ExceedsCapacity, RateLimitError, RateLimited};
pub use keyed::{KeyedRateLimiter, KeyedRateLimiterBuilder, MAX_KEY_OVERRIDES};
pub use limiter::{Admitted, DEFAULT_MAX_WAIT, RateLimiter, RateLimiterBuilder};
pub use observer::{Decision, RateLimitObserver};
pub use registry::{RateLimiterInfo, RateLimiterRegistry, RegistryError};
