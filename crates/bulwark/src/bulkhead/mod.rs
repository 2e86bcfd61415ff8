//! Bulkhead: at most N calls at once, so one slow dependency cannot take every worker.
//!
//! A [`Bulkhead`] is a fair semaphore of `max_concurrent` slots. A call takes a slot
//! ([`Bulkhead::try_acquire`], or [`Bulkhead::acquire`] which may wait) and holds it as a
//! [`BulkheadPermit`] that frees the slot when dropped: on return, on cancellation and while a
//! panic unwinds. When every slot is taken, a call is refused at once ([`RejectReason::Full`])
//! unless the config has a queue: then up to `max_queue` calls wait in FIFO order, a call
//! beyond them is refused ([`RejectReason::QueueFull`]), and a waiting call gives up after
//! `max_wait` on the [`Clock`](crate::clock::Clock) ([`RejectReason::MaxWait`]). Every decision,
//! with the slots in use and the queue depth, is a [`BulkheadEvent`] for the
//! [`BulkheadObserver`]s. [`KeyedBulkhead`] keeps one bulkhead per key and evicts idle keys.
//! Taking a free slot costs one compare-and-swap.
//!
//! ```
//! use bulwark::bulkhead::{Bulkhead, BulkheadConfig, RejectReason};
//!
//! let bulkhead = Bulkhead::new(BulkheadConfig::new(2))?;
//! let a = bulkhead.try_acquire()?;
//! let _b = bulkhead.try_acquire()?;
//! assert_eq!(bulkhead.try_acquire().unwrap_err().reason, RejectReason::Full);
//! drop(a); // a finished call (or a cancelled or panicking one) frees its slot
//! assert!(bulkhead.try_acquire().is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[allow(clippy::module_inception)]
mod bulkhead;
mod config;
mod error;
mod keyed;
mod observer;

pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadPermit};
pub use config::{BulkheadConfig, ConfigError};
pub use error::{BulkheadRejected, RejectReason};
pub use keyed::KeyedBulkhead;
pub use observer::{BulkheadEvent, BulkheadObserver};
