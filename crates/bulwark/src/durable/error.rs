//! Why a step did not produce its next state, and why the executor refused a request.

use std::fmt;
use std::time::Duration;

use crate::breaker::{CircuitBreakerError, Rejected};
use crate::checkpoint::{CheckpointError, CheckpointId, StoreError};
use crate::ratelimit::{RateLimitError, RateLimited};

use super::record::RunStatus;

/// What the executor does with a failed step attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// Try the step again after a backoff, while attempts and the step's time budget last.
    Retryable,
    /// Do not retry: the run fails.
    Fatal,
    /// Stop and wait for a person: the run becomes `waiting` until
    /// [`Executor::resume`](super::Executor::resume), which runs the step again.
    Pause,
}

/// A step's (or an effect's) failure: a message, a class and, for retryable errors, the
/// earliest useful time to retry (a 429's `Retry-After`, a limiter's or an open breaker's).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct StepError {
    /// What went wrong.
    pub message: String,
    /// What the executor does about it.
    pub class: ErrorClass,
    /// Do not retry before this much time has passed.
    pub retry_after: Option<Duration>,
    /// A pause that waits for input ([`StepContext::interrupt`](super::StepContext::interrupt))
    /// rather than one caused by a failure: only the latter marks the attempt's span an error.
    pub(crate) for_input: bool,
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(after) = self.retry_after {
            write!(f, " (retry after {} ms)", after.as_millis())?;
        }
        Ok(())
    }
}

impl StepError {
    fn new(class: ErrorClass, message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            class,
            retry_after: None,
            for_input: false,
        }
    }

    /// A pause waiting for a person's input, not caused by a failure.
    pub(crate) fn waiting_for_input(message: impl fmt::Display) -> Self {
        Self {
            for_input: true,
            ..Self::pause(message)
        }
    }

    /// A failure worth retrying (a timeout, a 5xx, a dropped connection).
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }

    /// A failure that retrying cannot fix (a 4xx, a bug): the run fails.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self::new(ErrorClass::Fatal, message)
    }

    /// A failure a person must look at: the run waits for [`Executor::resume`](super::Executor::resume).
    pub fn pause(message: impl fmt::Display) -> Self {
        Self::new(ErrorClass::Pause, message)
    }

    /// The same error, not to be retried before `after`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

/// An open breaker: retryable once its next trial is due.
impl From<Rejected> for StepError {
    fn from(rejected: Rejected) -> Self {
        let retry_after = rejected.retry_after;
        Self {
            retry_after,
            ..Self::retryable(rejected)
        }
    }
}

/// A call through a breaker: a refusal as [`From<Rejected>`], the call's own error retryable.
impl<E: fmt::Display> From<CircuitBreakerError<E>> for StepError {
    fn from(error: CircuitBreakerError<E>) -> Self {
        match error {
            CircuitBreakerError::Rejected(rejected) => rejected.into(),
            CircuitBreakerError::Inner(inner) => Self::retryable(inner),
        }
    }
}

/// A limiter's refusal: retryable after its `retry_after`.
impl From<RateLimited> for StepError {
    fn from(limited: RateLimited) -> Self {
        Self::retryable(limited).with_retry_after(limited.retry_after)
    }
}

/// Any limiter failure: retryable when waiting can help, fatal otherwise.
impl From<RateLimitError> for StepError {
    fn from(error: RateLimitError) -> Self {
        match (&error, error.retry_after()) {
            (_, Some(after)) => Self::retryable(&error).with_retry_after(after),
            (RateLimitError::Unavailable(_), None) => Self::retryable(error),
            _ => Self::fatal(error),
        }
    }
}

/// Why the [`Executor`](super::Executor) refused or could not finish a request. Refusals
/// (everything but `Checkpoint` and `Conflict`) are decided before anything is written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// No workflow of that name is registered.
    #[error("unknown workflow {name:?}")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
    },
    /// A workflow of that name is registered already.
    #[error("workflow {name:?} is registered twice")]
    DuplicateWorkflow {
        /// The name.
        name: String,
    },
    /// A workflow definition is unusable (no steps, a repeated step name, a bad join).
    #[error("workflow {workflow:?} is invalid: {reason}")]
    InvalidWorkflow {
        /// The workflow.
        workflow: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run id that cannot name a run.
    #[error("invalid run id {run_id:?}: {reason}")]
    InvalidRunId {
        /// The id given.
        run_id: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No run with this id has a checkpoint.
    #[error("run {run_id:?} not found")]
    RunNotFound {
        /// The id asked for.
        run_id: String,
    },
    /// A run with this id exists already.
    #[error("run {run_id:?} exists already")]
    RunExists {
        /// The id.
        run_id: String,
    },
    /// The run is being executed by this executor right now.
    #[error("run {run_id:?} is running in this process")]
    AlreadyRunning {
        /// The id.
        run_id: String,
    },
    /// The request needs the run in another status (resume of a run that is not waiting,
    /// cancel of a finished run, recovery of a waiting run).
    #[error("run {run_id:?} is {status}, not {expected}")]
    WrongStatus {
        /// The run.
        run_id: String,
        /// Its status.
        status: RunStatus,
        /// The status the request needs.
        expected: &'static str,
    },
    /// The checkpoint is not one of the run's (another run's or workflow's, or not a run's).
    #[error("checkpoint {checkpoint} is not a checkpoint of run {run_id:?}: {reason}")]
    ForeignCheckpoint {
        /// The checkpoint given.
        checkpoint: CheckpointId,
        /// The run it was expected to belong to.
        run_id: String,
        /// What it belongs to instead.
        reason: String,
    },
    /// A state (an initial state, or a forked state after its patch) that the workflow's
    /// state type does not accept.
    #[error("state for workflow {workflow:?} does not deserialize: {reason}")]
    BadState {
        /// The workflow.
        workflow: String,
        /// The deserializer's complaint.
        reason: String,
    },
    /// A resume input that the waiting run cannot take (an unknown-outcome answer that is not
    /// a [`Resolution`](super::Resolution)).
    #[error("run {run_id:?} cannot take this input: {reason}")]
    BadInput {
        /// The run.
        run_id: String,
        /// What is wrong with the input.
        reason: String,
    },
    /// Another executor wrote the run's history since this one read it: this one stops.
    #[error(
        "run {run_id:?} was written by another executor (expected head {expected:?}, found {actual:?})"
    )]
    Conflict {
        /// The run.
        run_id: String,
        /// The head this executor expected.
        expected: Option<CheckpointId>,
        /// The head found.
        actual: Option<CheckpointId>,
    },
    /// Another executor holds the run's lease and has not let it expire.
    #[error("run {run_id:?} is running on {owner:?}")]
    LeasedElsewhere {
        /// The run.
        run_id: String,
        /// The lease's holder.
        owner: String,
    },
    /// This executor's lease on the run could not be renewed: it stopped driving the run.
    #[error("lost the lease on run {run_id:?}")]
    LeaseLost {
        /// The run.
        run_id: String,
    },
    /// The lease store failed.
    #[error(transparent)]
    Lease(super::lease::LeaseError),
    /// The checkpoint store failed.
    #[error(transparent)]
    Checkpoint(CheckpointError),
}

impl DurableError {
    pub(crate) fn checkpoint(run_id: &str, error: CheckpointError) -> Self {
        match error {
            CheckpointError::Store(StoreError::Conflict { expected, actual }) => Self::Conflict {
                run_id: run_id.to_owned(),
                expected,
                actual,
            },
            other => Self::Checkpoint(other),
        }
    }
}

/// The longest run id accepted.
pub const MAX_RUN_ID_LEN: usize = 128;

/// Run ids are 1 to [`MAX_RUN_ID_LEN`] ASCII letters, digits, `-`, `_` or `.`, and not only dots.
pub(crate) fn validate_run_id(run_id: &str) -> Result<(), DurableError> {
    let reason = if run_id.is_empty() {
        "must not be empty"
    } else if run_id.len() > MAX_RUN_ID_LEN {
        "is longer than 128 bytes"
    } else if !run_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "may hold only ASCII letters, digits, '-', '_' and '.'"
    } else if run_id.bytes().all(|b| b == b'.') {
        "must not be only dots"
    } else {
        return Ok(());
    };
    Err(DurableError::InvalidRunId {
        run_id: run_id.to_owned(),
        reason,
    })
}
