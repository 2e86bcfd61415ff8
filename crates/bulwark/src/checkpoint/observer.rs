//! Hooks that watch checkpoint activity. They observe and cannot change an outcome; telemetry
//! attaches here to publish `bulwark_checkpoint_*` metrics.

use std::time::Duration;

use super::error::DecodeError;
use super::id::CheckpointId;
use super::metadata::CheckpointMetadata;

/// Why a checkpoint was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeleteReason {
    /// `delete` was called.
    Requested,
    /// A retention policy removed it.
    Retention,
}

/// One thing that happened, as shown to a [`CheckpointObserver`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum CheckpointEvent<'a> {
    /// A checkpoint was saved durably.
    Saved {
        /// Its metadata (sizes included).
        metadata: &'a CheckpointMetadata,
        /// From the call to the durable return, serialization included.
        duration: Duration,
    },
    /// A checkpoint was loaded and verified.
    Loaded {
        /// Its metadata.
        metadata: &'a CheckpointMetadata,
        /// From the call to the verified state, deserialization included.
        duration: Duration,
    },
    /// A checkpoint failed verification.
    Corrupt {
        /// Its id, when known.
        id: Option<CheckpointId>,
        /// Why.
        error: &'a DecodeError,
    },
    /// A checkpoint was deleted.
    Deleted {
        /// Its id.
        id: CheckpointId,
        /// Why.
        reason: DeleteReason,
    },
    /// A saved checkpoint is larger than the warning size of the budget.
    OverBudget {
        /// Its metadata.
        metadata: &'a CheckpointMetadata,
        /// The warning size it exceeds.
        warn_bytes: u64,
    },
}

/// Observes the checkpoints of the managers it is attached to.
///
/// Called synchronously after the outcome is final, so implementations should be quick.
pub trait CheckpointObserver: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &CheckpointEvent<'_>);
}

impl<F> CheckpointObserver for F
where
    F: Fn(&CheckpointEvent<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &CheckpointEvent<'_>) {
        self(event)
    }
}
