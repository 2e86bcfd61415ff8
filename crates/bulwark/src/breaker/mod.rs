//! Circuit breaking: fail fast while a dependency is failing, recover by itself.
//!
//! A breaker is CLOSED (calls pass, failures are counted) until `failure_threshold`
//! consecutive failures — or, in sliding-window mode, a failure rate at or above a threshold
//! over the last N calls or T seconds, once `minimum_calls` were seen — open it. OPEN rejects
//! every call at once with a [`Rejected`] that names the breaker and the time until the next
//! trial. Once `timeout` has passed, the next look at the breaker (a call or a state read; there
//! is no timer thread) moves it to HALF_OPEN, which admits at most `half_open_max_calls` trial
//! calls *at once*: the count of outstanding trial permits lives in the same atomic word as the
//! state, so admission is one compare-and-swap and the limit holds under any concurrency. A
//! permit comes back when its call ends, its future is dropped or its closure panics.
//! `success_threshold` successful trials close the breaker; any failed trial reopens it.
//! FORCED_OPEN and DISABLED are manual states left only through [`CircuitBreaker::reset`].
//!
//! In CLOSED a call costs one atomic load to be admitted and, to be counted, one add to a
//! per-thread counter shard plus one load (a compare-and-swap only while a run of failures is
//! being counted). Every change of state is a [`Transition`] delivered to [`BreakerListener`]s
//! and logged through `tracing`.
//!
//! ```
//! use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, State};
//! use bulwark::clock::ManualClock;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! // The original's defaults: 5 failures open it, 60 s timeout, 3 trials, 2 successes close it.
//! let breaker = CircuitBreaker::builder("payment_service", CircuitBreakerConfig::default())
//!     .clock(clock.clone())
//!     .build()?;
//! for _ in 0..5 {
//!     let _ = breaker.call(|| Err::<(), _>("upstream timeout"));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let rejected = breaker.call(|| Ok::<_, ()>(())).unwrap_err();
//! assert_eq!(rejected.rejected().and_then(|r| r.retry_after), Some(Duration::from_secs(60)));
//!
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(breaker.state(), State::HalfOpen);
//! let trials: Vec<_> = (0..4).map(|_| breaker.try_acquire()).collect();
//! assert_eq!(trials.iter().filter(|t| t.is_ok()).count(), 3); // half_open_max_calls
//! for trial in trials.into_iter().flatten().take(2) {
//!     trial.success();
//! }
//! assert_eq!(breaker.state(), State::Closed);
//! # Ok::<(), bulwark::breaker::ConfigError>(())
//! ```

mod circuit_breaker;
mod config;
mod core;
mod error;
pub mod future;
mod layer;
mod listener;
mod permit;
mod registry;
mod service;
mod snapshot;
mod state;
mod stats;
mod ticket;
mod window;

pub use circuit_breaker::{CircuitBreaker, CircuitBreakerBuilder};
pub use config::{CircuitBreakerConfig, SlidingWindow, WindowSize};
pub use error::{CircuitBreakerError, ConfigError, Rejected};
pub use layer::CircuitBreakerLayer;
pub use listener::{BreakerListener, CallEvent, CallOutcome, Transition, TransitionReason};
pub use permit::{OwnedPermit, Permit};
pub use registry::BreakerRegistry;
pub use service::CircuitBreakerService;
pub use snapshot::{BreakerSnapshot, WindowCounts};
pub use state::State;
