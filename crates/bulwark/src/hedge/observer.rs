//! Hooks that watch a hedge's attempts. They see every event and cannot change it.

use std::time::Duration;

/// What happened, as shown to a [`HedgeObserver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeEventKind {
    /// A hedged attempt started, `delay` after the previous one (zero when the previous one
    /// failed and the next started at once).
    Hedged {
        /// The wait that passed before it.
        delay: Duration,
    },
    /// The attempt answered first; `cancelled` attempts still running were dropped.
    Won {
        /// Attempts dropped unfinished.
        cancelled: u32,
    },
    /// Every attempt failed (or one failed with an error that ends the call); `cancelled`
    /// attempts still running were dropped.
    Failed {
        /// Attempts dropped unfinished.
        cancelled: u32,
    },
}

/// One event of a [`Hedge`](super::Hedge).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct HedgeEvent<'a> {
    /// The hedge's name (its pipeline's name in a pipeline).
    pub name: &'a str,
    /// The attempt's number, from 1 (the first, unhedged attempt).
    pub attempt: u32,
    /// What happened.
    pub kind: HedgeEventKind,
}

/// Observes the events of the hedges it is attached to, synchronously; keep it quick.
pub trait HedgeObserver: Send + Sync + 'static {
    /// Called once per event.
    fn on_hedge_event(&self, event: &HedgeEvent<'_>);
}

impl<F> HedgeObserver for F
where
    F: Fn(&HedgeEvent<'_>) + Send + Sync + 'static,
{
    fn on_hedge_event(&self, event: &HedgeEvent<'_>) {
        self(event)
    }
}
