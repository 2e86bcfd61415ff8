//! Hooks that watch a bulkhead's decisions. They see every decision and cannot change it.

use super::error::RejectReason;

/// One decision of a bulkhead, as shown to a [`BulkheadObserver`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct BulkheadEvent<'a> {
    /// The bulkhead's name.
    pub name: &'a str,
    /// `None` when the call got a slot, the reason when it was refused.
    pub rejected: Option<RejectReason>,
    /// Calls holding a slot right after the decision.
    pub in_flight: u32,
    /// Calls waiting in the queue right after the decision.
    pub queued: u32,
}

/// Observes the decisions of the bulkheads it is attached to, synchronously; keep it quick.
pub trait BulkheadObserver: Send + Sync + 'static {
    /// Called once per decision.
    fn on_bulkhead_event(&self, event: &BulkheadEvent<'_>);
}

impl<F> BulkheadObserver for F
where
    F: Fn(&BulkheadEvent<'_>) + Send + Sync + 'static,
{
    fn on_bulkhead_event(&self, event: &BulkheadEvent<'_>) {
        self(event)
    }
}
