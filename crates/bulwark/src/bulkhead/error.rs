//! What a bulkhead answers when it refuses a call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a bulkhead refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Every slot was taken and the bulkhead has no queue.
    Full,
    /// Every slot was taken and the queue was full too.
    QueueFull,
    /// The call waited in the queue for `max_wait` without getting a slot.
    MaxWait(Duration),
}

impl RejectReason {
    /// The reason as a label value: `full`, `queue_full`, `max_wait`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::QueueFull => "queue_full",
            Self::MaxWait(_) => "max_wait",
        }
    }
}

/// A call was refused without being run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct BulkheadRejected {
    /// The bulkhead's name.
    pub bulkhead: Arc<str>,
    /// Why.
    pub reason: RejectReason,
    /// The bulkhead's `max_concurrent`.
    pub max_concurrent: u32,
}

impl fmt::Display for BulkheadRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bulkhead '{}' refused the call: ", self.bulkhead)?;
        match self.reason {
            RejectReason::Full => write!(f, "all {} slots are taken", self.max_concurrent),
            RejectReason::QueueFull => write!(
                f,
                "all {} slots are taken and the queue is full",
                self.max_concurrent
            ),
            RejectReason::MaxWait(waited) => write!(f, "no slot freed within {waited:?}"),
        }
    }
}
