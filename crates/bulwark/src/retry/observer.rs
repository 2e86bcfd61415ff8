//! Hooks that watch a retry's attempts. They see every event and cannot change it.

use std::time::Duration;

use super::error::GiveUp;

/// What happened, as shown to a [`RetryObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEventKind {
    /// An attempt is starting.
    Attempt,
    /// The attempt succeeded.
    Succeeded,
    /// The attempt failed and another follows after `delay`.
    Retrying {
        /// The wait before the next attempt.
        delay: Duration,
        /// The wait the error asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The attempt failed and no other follows.
    GaveUp(GiveUp),
}

/// One event of a [`Retry`](super::Retry).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a> {
    /// The retry's name (its pipeline's name in a pipeline).
    pub name: &'a str,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// What happened.
    pub kind: RetryEventKind,
}

/// Observes the events of the retries it is attached to, synchronously; keep it quick.
pub trait RetryObserver: Send + Sync + 'static {
    /// Called once per event.
    fn on_retry_event(&self, event: &RetryEvent<'_>);
}

impl<F> RetryObserver for F
where
    F: Fn(&RetryEvent<'_>) + Send + Sync + 'static,
{
    fn on_retry_event(&self, event: &RetryEvent<'_>) {
        self(event)
    }
}
