//! The resilience pipeline: rate limit, bulkhead, timeouts, retry, circuit breaker and
//! fallback, composed around a call in one place (Polly v8's shape).
//!
//! A [`ResiliencePipeline`] is a list of strategies applied **outer to inner in the order they
//! were added**; the call sits inside the last. Each strategy either refuses the call (the
//! limiter has no token, the bulkhead no slot, the breaker is open), bounds it (a timeout
//! drops the inner future when it fires) or repeats it (a retry calls everything inside it
//! again). The outcome is typed: [`PipelineError::Failed`] carries the call's own error when
//! the call ran, and every refusal has its own variant ([`PipelineError::RateLimited`],
//! [`BulkheadFull`](PipelineError::BulkheadFull), [`TimedOut`](PipelineError::TimedOut),
//! [`CircuitOpen`](PipelineError::CircuitOpen),
//! [`RetryBudgetExhausted`](PipelineError::RetryBudgetExhausted)). A [`Fallback`] applies to
//! the outcome of the whole pipeline, so it is always outermost. Pipelines come from code
//! ([`ResiliencePipeline::builder`]), from a serde [`PipelineConfig`] (TOML, durations as
//! `"30s"`), or by name from a [`PipelineRegistry`]; [`ResilienceLayer`] puts one in front of
//! an HTTP service, and `#[bulwark::resilient(pipeline = "...")]` around a function.
//!
//! Retries classify errors through [`Classify`](crate::retry::Classify): the limiter's and
//! breaker's refusals are retryable after their `retry_after`; a caller error (`is_retryable`
//! false) is neither retried nor counted as a breaker failure, since the dependency answered.
//! A refusal from a strategy inside the breaker is not counted by it either.
//!
//! # The order to pick
//!
//! ```text
//! fallback > rate_limit > bulkhead > timeout (overall) > retry > [hedge >] circuit_breaker > timeout (per attempt) > call
//! ```
//!
//! * **Retry outside the breaker** (as above): the breaker sees every attempt, so a failing
//!   dependency opens it after `failure_threshold` attempts, and from then on the retry meets
//!   a [`CircuitOpen`](PipelineError::CircuitOpen) whose `retry_after` (the time until the
//!   trial) is beyond a short `max_retry_after`: it gives up at once instead of hammering.
//!   *Pitfall of the other order* (breaker outside retry): the breaker sees one failure per
//!   call after all its retries, so it opens `max_attempts` times later and the dependency
//!   takes `max_attempts` times more calls first. With a dependency that always fails,
//!   `failure_threshold = 3`, `max_attempts = 3` and four calls: retry > breaker makes **3**
//!   attempts, counts **3** breaker failures and refuses **3** calls; breaker > retry makes
//!   **9** attempts, counts **3** failures and refuses **1** call (tested in
//!   `tests/pipeline_order.rs`).
//! * **A timeout outside the retry is an overall timeout** (its errors say
//!   [`TimeoutKind::Overall`](crate::timeout::TimeoutKind::Overall)): it bounds every attempt
//!   and wait together. Inside the retry it is per attempt, and each timed-out attempt is
//!   retried. With only an overall timeout, one hung attempt spends the whole time.
//! * **Rate limit outside the retry** admits a call once, whatever its retries: right for
//!   admission control of incoming work. When the limit guards an upstream's quota (a paid
//!   LLM API), put it inside the retry (or inside the breaker) so every attempt takes a
//!   token; a refusal there is retried after its `retry_after`.
//! * **Bulkhead outside the retry** holds its slot through the backoff waits, so the
//!   concurrency it bounds is that of calls; inside, the slot is freed between attempts.
//! * **Hedge** ([`PipelineBuilder::hedge`]) just outside the breaker: each hedged attempt takes
//!   its own breaker permit and per-attempt timeout, and a loser dropped unfinished gives its
//!   permit back without counting. *Outside the bulkhead* it would not be bounded by it;
//!   *outside the retry*, each hedged copy would run its own retries, multiplying the attempts
//!   (`(1 + max_hedged_attempts) × max_attempts` against a dead dependency).
//! * **The retry budget** ([`RetryConfig::budget`](crate::retry::RetryConfig::budget)) is
//!   what stops a retry storm when most calls fail; a pipeline from a registry shares one
//!   budget among all its callers.
//!
//! ```
//! use bulwark::breaker::{CircuitBreakerConfig, State};
//! use bulwark::clock::ManualClock;
//! use bulwark::pipeline::{PipelineError, ResiliencePipeline};
//! use bulwark::retry::{Backoff, RetryConfig};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = ManualClock::new();
//! let mut retry = RetryConfig::new(3, Backoff::constant(Duration::ZERO));
//! retry.max_retry_after = Duration::from_secs(1);
//! let pipeline = ResiliencePipeline::builder_with_clock(clock.clone())
//!     .name("openai")
//!     .timeout(Duration::from_secs(30))
//!     .retry(retry)
//!     .circuit_breaker_config(CircuitBreakerConfig::new(3, 1, Duration::from_secs(60), 1))
//!     .build()?;
//!
//! let failing = || async { Err::<(), String>("503 from upstream".into()) };
//! let first = pipeline.execute(failing).await;
//! assert!(matches!(first, Err(PipelineError::Failed(ref e)) if e == "503 from upstream"));
//! assert_eq!(pipeline.circuit_breaker().map(|b| b.state()), Some(State::Open));
//! // The breaker refuses at once; its 60 s until the trial is beyond max_retry_after.
//! let second = pipeline.execute(failing).await;
//! assert!(matches!(second, Err(PipelineError::CircuitOpen(_))));
//!
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(pipeline.execute(|| async { Ok::<_, String>(42) }).await.ok(), Some(42));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

mod blocking;
mod builder;
mod config;
mod error;
mod fallback;
pub mod layer;
mod observers;
#[allow(clippy::module_inception)]
mod pipeline;
mod registry;

pub use builder::{FallbackBuilder, PipelineBuilder};
pub use config::{PipelineConfig, RateLimitStrategy, StrategyConfig};
pub use error::{OutcomeKind, PipelineConfigError, PipelineError, Rejection};
pub use fallback::{Fallback, FallbackPipeline};
pub use layer::{Resilience, ResilienceLayer};
pub use observers::PipelineObservers;
pub use pipeline::ResiliencePipeline;
pub use registry::PipelineRegistry;
