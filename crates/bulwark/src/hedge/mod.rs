//! Hedging: a second attempt when the first is slow, the first answer kept, the other dropped.
//!
//! A [`Hedge`] starts the call, then waits a delay on the [`Clock`](crate::clock::Clock). If
//! no attempt has answered by then, it starts another one beside it, and so on up to
//! `max_hedged_attempts` extra attempts (bounded by [`MAX_HEDGED_ATTEMPTS`]): each is a full
//! extra call, so hedging trades load on the dependency for a shorter tail latency. The
//! attempts are polled together in the caller's task (nothing is spawned); the first `Ok`
//! wins and every attempt still running is **dropped on the spot**, which cancels it (its
//! connection, bulkhead slot or breaker permit is released; wrap only calls that are
//! idempotent or carry an idempotency key). A failed attempt starts the next at once; the
//! call fails with the last error once every attempt has failed, or at once on an error that
//! ends it ([`Hedge::run_if`]: in a pipeline, a caller error).
//!
//! The delay is fixed ([`HedgeConfig::fixed`]) or follows a percentile of the latencies of
//! recent successful attempts ([`HedgeConfig::percentile`]: the nearest-rank percentile of the
//! last `window`, recomputed every tenth of the window, the fixed `delay` until `min_samples`
//! are known). Only winners are measured, so under hedging the percentile leans low: hedges
//! start a little early rather than late. Every hedged attempt, win and failure is a
//! [`HedgeEvent`] for the [`HedgeObserver`]s.
//!
//! ```
//! use bulwark::clock::ManualClock;
//! use bulwark::hedge::{Hedge, HedgeConfig};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = ManualClock::new();
//! let hedge = Hedge::builder(HedgeConfig::fixed(1, Duration::from_millis(200)))
//!     .clock(clock.clone())
//!     .build()?;
//! let attempts = AtomicU32::new(0);
//! let call = hedge.run(|| async {
//!     match attempts.fetch_add(1, Ordering::SeqCst) {
//!         0 => std::future::pending().await, // the first attempt hangs
//!         _ => Ok::<_, String>("from the hedge"),
//!     }
//! });
//! let advance = async {
//!     tokio::task::yield_now().await;
//!     clock.advance(Duration::from_millis(200));
//! };
//! let (answer, ()) = tokio::join!(call, advance);
//! assert_eq!(answer?, "from the hedge");
//! assert_eq!(attempts.load(Ordering::SeqCst), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

mod config;
#[allow(clippy::module_inception)]
mod hedge;
mod observer;

pub use config::{ConfigError, HedgeConfig, MAX_HEDGED_ATTEMPTS};
pub use hedge::{Hedge, HedgeBuilder};
pub use observer::{HedgeEvent, HedgeEventKind, HedgeObserver};
