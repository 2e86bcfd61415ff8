//! Timeout: a bound on how long a call may take, per attempt or overall.
//!
//! A [`Timeout`] races the call's future against a [`Clock::sleep`](crate::clock::Clock::sleep)
//! of its limit, polling the call first. When the sleep wins, the call's future is dropped on
//! the spot (so whatever it held, a connection or a permit, is released, and a future that is
//! not cancellation safe must not be wrapped) and the answer is a [`TimeoutError`] that says
//! which timeout fired ([`TimeoutKind::Attempt`] for one attempt, [`TimeoutKind::Overall`] for
//! the whole call with its retries) and after how long. Each expiry is a [`TimeoutEvent`] for
//! the [`TimeoutObserver`]s. A call that answers on its first poll costs one clock read; the
//! timer (one sleep on the clock) is armed only for a call still pending after it.
//!
//! ```
//! use bulwark::clock::ManualClock;
//! use bulwark::timeout::{Timeout, TimeoutKind};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = ManualClock::new();
//! let timeout = Timeout::builder(Duration::from_secs(2)).clock(clock.clone()).build()?;
//! let call = timeout.run(std::future::pending::<()>());
//! let advance = async {
//!     tokio::task::yield_now().await;
//!     clock.advance(Duration::from_secs(2));
//! };
//! let (result, ()) = tokio::join!(call, advance);
//! let error = result.unwrap_err();
//! assert_eq!((error.kind, error.after), (TimeoutKind::Attempt, Duration::from_secs(2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

#[allow(clippy::module_inception)]
mod timeout;

pub use timeout::{
    ConfigError, Timeout, TimeoutBuilder, TimeoutConfig, TimeoutError, TimeoutEvent, TimeoutKind,
    TimeoutObserver,
};
