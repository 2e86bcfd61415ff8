//! `execute_blocking`: the async pipeline driven from synchronous code.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::runtime::{Builder, Runtime};

use super::error::PipelineError;
use super::pipeline::ResiliencePipeline;
use crate::clock::Clock;
use crate::retry::Classify;

thread_local! {
    /// One timer-only runtime per thread that calls `execute_blocking`, made on first use.
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

impl<C: Clock> ResiliencePipeline<C> {
    /// Runs the synchronous `call` through every strategy, blocking the thread while the
    /// pipeline waits (backoff, queue, rate limit).
    ///
    /// The waits run on a small single-threaded runtime owned by the calling thread. Called
    /// from inside an async runtime, the pipeline runs on a scoped helper thread instead, so
    /// it never blocks the runtime's own worker in a nested `block_on`. A timeout cannot
    /// interrupt a call that is already running on this thread: it fires only at the next
    /// wait, and an attempt that overran is still returned.
    pub fn execute_blocking<T, E, F>(&self, call: F) -> Result<T, PipelineError<E>>
    where
        F: Fn() -> Result<T, E> + Send + Sync,
        T: Send,
        E: Classify + Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|scope| {
                match scope.spawn(|| self.block_on_local(&call)).join() {
                    Ok(outcome) => outcome,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            });
        }
        self.block_on_local(&call)
    }

    fn block_on_local<T, E, F>(&self, call: &F) -> Result<T, PipelineError<E>>
    where
        F: Fn() -> Result<T, E> + Send + Sync,
        T: Send,
        E: Classify + Send,
    {
        RUNTIME.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                match Builder::new_current_thread().enable_time().build() {
                    Ok(runtime) => *slot = Some(runtime),
                    Err(error) => return Err(PipelineError::Runtime(Arc::new(error))),
                }
            }
            match slot.as_ref() {
                Some(runtime) => runtime.block_on(self.execute(|| std::future::ready(call()))),
                None => Err(PipelineError::Runtime(Arc::new(std::io::Error::other(
                    "no runtime",
                )))),
            }
        })
    }
}
