//! The outcome of a pipeline call that did not succeed, and why a pipeline is refused.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{self, Rejected, State};
use crate::bulkhead::{self, BulkheadRejected};
use crate::hedge;
use crate::ratelimit::{self, RateLimitError};
use crate::retry::{self, Classify};
use crate::timeout::{self, TimeoutError};

/// Why a pipeline call did not succeed: the call ran and failed, or a strategy refused it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError<E> {
    /// The call ran (every attempt, with retries) and failed with its own error.
    #[error("{0}")]
    Failed(E),
    /// The rate limiter refused the call (or it could not wait long enough).
    #[error(transparent)]
    RateLimited(RateLimitError),
    /// The bulkhead refused the call: every slot taken, the queue full, or the wait too long.
    #[error(transparent)]
    BulkheadFull(BulkheadRejected),
    /// A timeout fired; the call's future was dropped.
    #[error(transparent)]
    TimedOut(TimeoutError),
    /// The circuit breaker refused the call.
    #[error(transparent)]
    CircuitOpen(Rejected),
    /// The retry budget had no retry left; `last` is the last attempt's outcome.
    #[error("retry budget exhausted after {attempts} attempt(s); last: {last}")]
    RetryBudgetExhausted {
        /// Attempts made.
        attempts: u32,
        /// What the last attempt returned.
        last: Box<PipelineError<E>>,
    },
    /// `execute_blocking` could not start its timer runtime.
    #[error("the blocking executor could not start: {0}")]
    Runtime(Arc<std::io::Error>),
}

/// The kind of outcome, without its data: for logs, metrics and fallbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// [`PipelineError::Failed`].
    Failed,
    /// [`PipelineError::RateLimited`].
    RateLimited,
    /// [`PipelineError::BulkheadFull`].
    BulkheadFull,
    /// [`PipelineError::TimedOut`].
    TimedOut,
    /// [`PipelineError::CircuitOpen`].
    CircuitOpen,
    /// [`PipelineError::RetryBudgetExhausted`].
    RetryBudgetExhausted,
    /// [`PipelineError::Runtime`].
    Runtime,
}

impl OutcomeKind {
    /// The kind as a label value (`failed`, `rate_limited`, `bulkhead_full`, `timed_out`,
    /// `circuit_open`, `retry_budget_exhausted`, `runtime`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RateLimited => "rate_limited",
            Self::BulkheadFull => "bulkhead_full",
            Self::TimedOut => "timed_out",
            Self::CircuitOpen => "circuit_open",
            Self::RetryBudgetExhausted => "retry_budget_exhausted",
            Self::Runtime => "runtime",
        }
    }
}

/// A refusal by the pipeline, without the call's error type: what the `#[resilient]` macro
/// converts into the function's error (`E: From<Rejection>`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// See [`PipelineError::RateLimited`].
    #[error(transparent)]
    RateLimited(RateLimitError),
    /// See [`PipelineError::BulkheadFull`].
    #[error(transparent)]
    BulkheadFull(BulkheadRejected),
    /// See [`PipelineError::TimedOut`].
    #[error(transparent)]
    TimedOut(TimeoutError),
    /// See [`PipelineError::CircuitOpen`].
    #[error(transparent)]
    CircuitOpen(Rejected),
    /// See [`PipelineError::Runtime`].
    #[error("the blocking executor could not start: {0}")]
    Runtime(Arc<std::io::Error>),
    /// No pipeline of that name is registered.
    #[error("no resilience pipeline named '{0}' is registered")]
    UnknownPipeline(Arc<str>),
}

impl<E> PipelineError<E> {
    /// The kind of outcome.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Failed(_) => OutcomeKind::Failed,
            Self::RateLimited(_) => OutcomeKind::RateLimited,
            Self::BulkheadFull(_) => OutcomeKind::BulkheadFull,
            Self::TimedOut(_) => OutcomeKind::TimedOut,
            Self::CircuitOpen(_) => OutcomeKind::CircuitOpen,
            Self::RetryBudgetExhausted { .. } => OutcomeKind::RetryBudgetExhausted,
            Self::Runtime(_) => OutcomeKind::Runtime,
        }
    }

    /// Whether a strategy refused the call (as opposed to the call failing by itself).
    pub fn is_rejection(&self) -> bool {
        !matches!(self, Self::Failed(_))
    }

    /// The call's own error, if the call ran and failed (also behind an exhausted budget).
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Failed(e) => Some(e),
            Self::RetryBudgetExhausted { last, .. } => last.into_inner(),
            _ => None,
        }
    }

    /// The call's own error as it is, or the refusal converted into it; an exhausted budget
    /// gives its last outcome. This is what the `#[resilient]` macro returns.
    pub fn flatten(self) -> E
    where
        E: From<Rejection>,
    {
        match self {
            Self::Failed(e) => e,
            Self::RateLimited(r) => E::from(Rejection::RateLimited(r)),
            Self::BulkheadFull(r) => E::from(Rejection::BulkheadFull(r)),
            Self::TimedOut(r) => E::from(Rejection::TimedOut(r)),
            Self::CircuitOpen(r) => E::from(Rejection::CircuitOpen(r)),
            Self::RetryBudgetExhausted { last, .. } => last.flatten(),
            Self::Runtime(r) => E::from(Rejection::Runtime(r)),
        }
    }
}

impl<E: Classify> Classify for PipelineError<E> {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Failed(e) => e.is_retryable(),
            Self::RateLimited(e) => e.is_retryable(),
            Self::CircuitOpen(r) => r.is_retryable(),
            Self::BulkheadFull(_) | Self::TimedOut(_) => true,
            Self::RetryBudgetExhausted { .. } | Self::Runtime(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Failed(e) => e.retry_after(),
            Self::RateLimited(e) => e.retry_after(),
            Self::CircuitOpen(r) => r.retry_after,
            _ => None,
        }
    }
}

impl Classify for RateLimitError {
    /// Only [`RateLimitError::Limited`] can pass later; the others never will.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Limited(_))
    }

    fn retry_after(&self) -> Option<Duration> {
        RateLimitError::retry_after(self)
    }
}

impl Classify for Rejected {
    /// A forced-open breaker schedules no trial, so retrying it is pointless.
    fn is_retryable(&self) -> bool {
        self.state != State::ForcedOpen
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl<E: Classify> Classify for breaker::CircuitBreakerError<E> {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected(r) => r.is_retryable(),
            Self::Inner(e) => e.is_retryable(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Rejected(r) => r.retry_after,
            Self::Inner(e) => e.retry_after(),
        }
    }
}

impl Classify for BulkheadRejected {}
impl Classify for TimeoutError {}

/// A pipeline that cannot be built: the strategy whose config is refused, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineConfigError {
    /// The retry's config.
    #[error("retry: {0}")]
    Retry(#[from] retry::ConfigError),
    /// A timeout's config.
    #[error("timeout: {0}")]
    Timeout(#[from] timeout::ConfigError),
    /// The bulkhead's config.
    #[error("bulkhead: {0}")]
    Bulkhead(#[from] bulkhead::ConfigError),
    /// The rate limiter's config.
    #[error("rate_limit: {0}")]
    RateLimit(#[from] ratelimit::ConfigError),
    /// The hedge's config.
    #[error("hedge: {0}")]
    Hedge(#[from] hedge::ConfigError),
    /// The circuit breaker's config.
    #[error("circuit_breaker: {0}")]
    CircuitBreaker(#[from] breaker::ConfigError),
}
