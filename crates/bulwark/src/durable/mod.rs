//! Durable workflows (placeholder doc, completed below).

mod context;
mod definition;
mod drive;
mod error;
mod executor;
mod live;
mod record;
mod retry;
mod store;

pub use context::{OnUnknown, Resolution, StepContext, UnknownCheck};
pub use definition::{
    BoxFuture, BranchFailure, BranchOutcome, FanOut, Join, StepInfo, Workflow, WorkflowInfo,
};
pub use error::{DurableError, ErrorClass, MAX_RUN_ID_LEN, StepError};
pub use executor::{Executor, ExecutorBuilder};
pub use record::{
    BranchRecord, EffectRecord, EffectState, HistoryEntry, InterruptKind, Origin, PendingInterrupt,
    RunRecord, RunStatus, RunSummary, Timings,
};
pub use retry::{RetryPolicy, StepPolicy};
