//! Fallback: the answer used when the pipeline gives up, chosen from the reason.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::error::PipelineError;
use super::pipeline::ResiliencePipeline;
use crate::clock::{Clock, MonotonicClock};
use crate::retry::Classify;

type Handler<T, E> = dyn Fn(&PipelineError<E>) -> Option<T> + Send + Sync;

/// What to answer instead of an error: a value or a function of the reason, optionally only
/// for some reasons.
///
/// ```
/// use bulwark::pipeline::{Fallback, OutcomeKind, PipelineError};
///
/// let cached = Fallback::<&str, String>::value("cached answer")
///     .when(|reason| reason.kind() == OutcomeKind::CircuitOpen || reason.kind() == OutcomeKind::TimedOut);
/// let by_reason = Fallback::<String, String>::with(|reason| format!("degraded: {}", reason.kind().as_str()));
/// # let _ = (cached, by_reason);
/// ```
pub struct Fallback<T, E> {
    handler: Arc<Handler<T, E>>,
}

impl<T, E> Clone for Fallback<T, E> {
    fn clone(&self) -> Self {
        Self {
            handler: Arc::clone(&self.handler),
        }
    }
}

impl<T: Clone + Send + Sync + 'static, E: 'static> Fallback<T, E> {
    /// Answers `value` whatever the reason.
    pub fn value(value: T) -> Self {
        Self::new(move |_| Some(value.clone()))
    }
}

impl<T: 'static, E: 'static> Fallback<T, E> {
    /// Answers `f(reason)` whatever the reason.
    pub fn with(f: impl Fn(&PipelineError<E>) -> T + Send + Sync + 'static) -> Self {
        Self::new(move |reason| Some(f(reason)))
    }

    /// Answers `f(reason)` when it is `Some`; `None` lets the error through.
    pub fn new(f: impl Fn(&PipelineError<E>) -> Option<T> + Send + Sync + 'static) -> Self {
        Self {
            handler: Arc::new(f),
        }
    }

    /// The same fallback, used only when `applies(reason)` is true.
    pub fn when(self, applies: impl Fn(&PipelineError<E>) -> bool + Send + Sync + 'static) -> Self {
        let handler = self.handler;
        Self::new(move |reason| {
            if applies(reason) {
                handler(reason)
            } else {
                None
            }
        })
    }

    /// The fallback's answer for `reason`, if it has one.
    pub fn apply(&self, reason: &PipelineError<E>) -> Option<T> {
        (self.handler)(reason)
    }
}

impl<T, E> fmt::Debug for Fallback<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback").finish_non_exhaustive()
    }
}

/// A [`ResiliencePipeline`] with a [`Fallback`] around it, typed by the call's value and error.
pub struct FallbackPipeline<T, E, C: Clock = MonotonicClock> {
    pipeline: ResiliencePipeline<C>,
    fallback: Fallback<T, E>,
}

impl<T, E, C: Clock> Clone for FallbackPipeline<T, E, C> {
    fn clone(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

impl<T, E, C: Clock> FallbackPipeline<T, E, C> {
    /// `pipeline` with `fallback` around it.
    pub fn new(pipeline: ResiliencePipeline<C>, fallback: Fallback<T, E>) -> Self {
        Self { pipeline, fallback }
    }

    /// The pipeline inside the fallback.
    pub fn pipeline(&self) -> &ResiliencePipeline<C> {
        &self.pipeline
    }
}

impl<T, E, C> FallbackPipeline<T, E, C>
where
    T: Send + 'static,
    E: Classify + Send + 'static,
    C: Clock,
{
    /// [`ResiliencePipeline::execute`], with the fallback's answer in place of an error it
    /// covers.
    pub async fn execute<F, Fut>(&self, call: F) -> Result<T, PipelineError<E>>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let outcome = self.pipeline.execute(call).await;
        self.settle(outcome)
    }

    /// [`ResiliencePipeline::execute_blocking`], with the fallback.
    pub fn execute_blocking<F>(&self, call: F) -> Result<T, PipelineError<E>>
    where
        F: Fn() -> Result<T, E> + Send + Sync,
    {
        let outcome = self.pipeline.execute_blocking(call);
        self.settle(outcome)
    }

    fn settle(&self, outcome: Result<T, PipelineError<E>>) -> Result<T, PipelineError<E>> {
        match outcome {
            Ok(value) => Ok(value),
            Err(reason) => match self.fallback.apply(&reason) {
                Some(value) => {
                    tracing::debug!(
                        pipeline = self.pipeline.name(),
                        reason = reason.kind().as_str(),
                        "fallback answered"
                    );
                    Ok(value)
                }
                None => Err(reason),
            },
        }
    }
}

impl<T, E, C: Clock> fmt::Debug for FallbackPipeline<T, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackPipeline")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}
