//! The composed pipeline and its execution, stage by stage from the outermost.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::builder::PipelineBuilder;
use super::error::PipelineError;
use crate::breaker::{CircuitBreaker, Permit};
use crate::bulkhead::{Bulkhead, BulkheadPermit};
use crate::clock::{Clock, MonotonicClock};
use crate::hedge::Hedge;
use crate::ratelimit::RateLimiter;
use crate::retry::{Classify, GiveUp, Retry};
use crate::timeout::Timeout;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One strategy of a pipeline.
pub(crate) enum Stage<C: Clock> {
    /// Takes one token; waits up to `max_wait` for it when set, else refuses at once.
    RateLimit {
        limiter: RateLimiter<C>,
        max_wait: Option<Duration>,
    },
    Bulkhead(Bulkhead<C>),
    Timeout(Timeout<C>),
    Retry(Retry<C>),
    Hedge(Hedge<C>),
    CircuitBreaker(CircuitBreaker<C>),
}

impl<C: Clock> Stage<C> {
    fn name(&self) -> &'static str {
        match self {
            Self::RateLimit { .. } => "rate_limit",
            Self::Bulkhead(_) => "bulkhead",
            Self::Timeout(_) => "timeout",
            Self::Retry(_) => "retry",
            Self::Hedge(_) => "hedge",
            Self::CircuitBreaker(_) => "circuit_breaker",
        }
    }
}

/// Strategies composed outer to inner around a call: rate limit, bulkhead, timeouts, retry,
/// circuit breaker, in the order they were added. Clones share every strategy (the
/// limiter's tokens, the bulkhead's slots, the breaker's state, the retry budget).
///
/// See the [module docs](super) for the recommended order and what each other order does.
pub struct ResiliencePipeline<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Clock> {
    name: Arc<str>,
    stages: Vec<Stage<C>>,
    clock: C,
}

impl<C: Clock> Clone for ResiliencePipeline<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl ResiliencePipeline<MonotonicClock> {
    /// A builder on the real clock.
    pub fn builder() -> PipelineBuilder<MonotonicClock> {
        PipelineBuilder::new(MonotonicClock::new())
    }
}

impl<C: Clock> ResiliencePipeline<C> {
    /// A builder whose strategies read `clock` (a [`ManualClock`](crate::clock::ManualClock)
    /// in tests).
    pub fn builder_with_clock(clock: C) -> PipelineBuilder<C> {
        PipelineBuilder::new(clock)
    }

    pub(crate) fn from_stages(name: Arc<str>, stages: Vec<Stage<C>>, clock: C) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                stages,
                clock,
            }),
        }
    }

    /// Runs `call` through every strategy. `call` makes one attempt each time it is called (a
    /// retry calls it again), so it must not consume what it captures.
    ///
    /// Returns the call's value, or why it did not succeed: [`PipelineError::Failed`] with the
    /// last attempt's error when it ran, another variant when a strategy refused it. Dropping
    /// the future at any point cancels the attempt in flight, frees its bulkhead slot and
    /// breaker permit, and makes no further attempt. The future is `Send`.
    #[allow(clippy::manual_async_fn)] // spelled out to promise `Send` in the signature
    pub fn execute<'a, T, E, F, Fut>(
        &'a self,
        call: F,
    ) -> impl Future<Output = Result<T, PipelineError<E>>> + Send + 'a
    where
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
        T: Send + 'a,
        E: Classify + Send + 'a,
    {
        async move { segment(&self.inner.stages, &call).await }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The clock its strategies read.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// The strategies, outer to inner, by kind (`rate_limit`, `bulkhead`, `timeout`, `retry`,
    /// `hedge`, `circuit_breaker`).
    pub fn strategies(&self) -> Vec<&'static str> {
        self.inner.stages.iter().map(Stage::name).collect()
    }

    /// The circuit breaker of the pipeline, if it has one (the first, if several).
    pub fn circuit_breaker(&self) -> Option<&CircuitBreaker<C>> {
        self.inner.stages.iter().find_map(|stage| match stage {
            Stage::CircuitBreaker(breaker) => Some(breaker),
            _ => None,
        })
    }

    /// The bulkhead of the pipeline, if it has one (the first, if several).
    pub fn bulkhead(&self) -> Option<&Bulkhead<C>> {
        self.inner.stages.iter().find_map(|stage| match stage {
            Stage::Bulkhead(bulkhead) => Some(bulkhead),
            _ => None,
        })
    }

    /// The retry of the pipeline, if it has one (the first, if several).
    pub fn retry(&self) -> Option<&Retry<C>> {
        self.inner.stages.iter().find_map(|stage| match stage {
            Stage::Retry(retry) => Some(retry),
            _ => None,
        })
    }

    /// The hedge of the pipeline, if it has one (the first, if several).
    pub fn hedge(&self) -> Option<&Hedge<C>> {
        self.inner.stages.iter().find_map(|stage| match stage {
            Stage::Hedge(hedge) => Some(hedge),
            _ => None,
        })
    }

    /// The rate limiter of the pipeline, if it has one (the first, if several).
    pub fn rate_limiter(&self) -> Option<&RateLimiter<C>> {
        self.inner.stages.iter().find_map(|stage| match stage {
            Stage::RateLimit { limiter, .. } => Some(limiter),
            _ => None,
        })
    }
}

/// Runs `stages` around `call` in a boxed future: what a strategy that wraps the rest (a
/// timeout, a retry, a hedge) calls, since the stage list is known only at run time.
fn run<'a, T, E, F, Fut, C: Clock>(
    stages: &'a [Stage<C>],
    call: &'a F,
) -> BoxFuture<'a, Result<T, PipelineError<E>>>
where
    F: Fn() -> Fut + Send + Sync + 'a,
    Fut: Future<Output = Result<T, E>> + Send + 'a,
    T: Send + 'a,
    E: Classify + Send + 'a,
{
    Box::pin(segment(stages, call))
}

/// What a refusing stage holds while the stages inside it run.
enum Guard<'a, C: Clock> {
    /// Held for its drop, which frees the slot.
    Slot(#[allow(dead_code)] BulkheadPermit),
    Breaker(Permit<'a, C>),
}

/// Guards one segment holds at most; a longer run of refusing stages continues in a nested
/// segment.
const GUARDS: usize = 4;

/// Runs `stages` from the outermost. The stages that only refuse or admit (rate limit,
/// bulkhead, breaker) run in this future's own loop, holding their guards in place; the first
/// stage that wraps the rest (timeout, retry, hedge) runs the rest as a nested boxed segment.
/// So a call pays one allocation per wrapping stage (and per retry attempt), not per stage.
/// On the way out the guards are settled innermost first: a breaker counts a success, a
/// failure (the call's retryable error, or a timeout), or nothing (a caller error counts as a
/// success; a refusal further in was not a call of the dependency).
async fn segment<'a, T, E, F, Fut, C: Clock>(
    stages: &'a [Stage<C>],
    call: &'a F,
) -> Result<T, PipelineError<E>>
where
    F: Fn() -> Fut + Send + Sync + 'a,
    Fut: Future<Output = Result<T, E>> + Send + 'a,
    T: Send + 'a,
    E: Classify + Send + 'a,
{
    let mut guards: [Option<Guard<'a, C>>; GUARDS] = [None, None, None, None];
    let mut held = 0;
    let mut index = 0;
    let result = loop {
        let Some(stage) = stages.get(index) else {
            break call().await.map_err(PipelineError::Failed);
        };
        let rest = &stages[index + 1..];
        match stage {
            _ if held == GUARDS => break run(&stages[index..], call).await,
            Stage::RateLimit { limiter, max_wait } => {
                let admitted = match max_wait {
                    None => limiter.check(1),
                    Some(wait) => limiter.acquire_with_max_wait(1, *wait).await,
                };
                if let Err(refused) = admitted {
                    break Err(PipelineError::RateLimited(refused));
                }
            }
            Stage::Bulkhead(bulkhead) => match bulkhead.acquire().await {
                Ok(slot) => {
                    guards[held] = Some(Guard::Slot(slot));
                    held += 1;
                }
                Err(refused) => break Err(PipelineError::BulkheadFull(refused)),
            },
            Stage::CircuitBreaker(breaker) => match breaker.try_acquire() {
                Ok(permit) => {
                    guards[held] = Some(Guard::Breaker(permit));
                    held += 1;
                }
                Err(refused) => break Err(PipelineError::CircuitOpen(refused)),
            },
            Stage::Timeout(timeout) => {
                break match timeout.run(run(rest, call)).await {
                    Ok(result) => result,
                    Err(expired) => Err(PipelineError::TimedOut(expired)),
                };
            }
            Stage::Retry(retry) => {
                let outcome = retry
                    .run_classified(
                        || run(rest, call),
                        |e: &PipelineError<E>| (e.is_retryable(), e.retry_after()),
                    )
                    .await;
                break match outcome {
                    Ok(value) => Ok(value),
                    Err(gave_up) if gave_up.reason == GiveUp::BudgetExhausted => {
                        Err(PipelineError::RetryBudgetExhausted {
                            attempts: gave_up.attempts,
                            last: Box::new(gave_up.last),
                        })
                    }
                    Err(gave_up) => Err(gave_up.last),
                };
            }
            // Every copy would meet an error that is not retryable (a caller error): stop there.
            Stage::Hedge(hedge) => {
                break hedge
                    .run_if(|| run(rest, call), |e: &PipelineError<E>| !e.is_retryable())
                    .await;
            }
        }
        index += 1;
    };
    for guard in guards[..held].iter_mut().rev() {
        if let Some(Guard::Breaker(permit)) = guard.take() {
            match &result {
                Ok(_) => permit.success(),
                // A caller error means the dependency answered: not a failure of it.
                Err(PipelineError::Failed(e)) => permit.record(e.is_retryable()),
                Err(PipelineError::TimedOut(_)) => permit.failure(),
                // Refused further in: the dependency was not called; do not count it.
                Err(_) => drop(permit),
            }
        }
    }
    result
}

impl<C: Clock> fmt::Debug for ResiliencePipeline<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResiliencePipeline")
            .field("name", &self.inner.name)
            .field("strategies", &self.strategies())
            .finish()
    }
}
