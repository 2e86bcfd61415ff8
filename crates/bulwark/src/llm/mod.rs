//! LLM provider signals and failure classes, feeding limiters, budgets, retries and breakers.
//!
//! **Signals.** [`ProviderSignals`] reads what a response says: OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (resets as Go durations, `6m0s`),
//! Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
//! (resets as RFC 3339 instants) and the generic `retry-after` (seconds or an HTTP-date) and
//! `retry-after-ms`. It takes an `http::Response` or a status and a header map, so it works
//! with reqwest, hyper or any client. A value that does not parse is ignored and counted
//! (`malformed`, and a counter), never an error. [`ProviderLimits`] feeds them back: a request
//! limiter or a budget that holds more than the provider's `remaining` tightens to it (never
//! loosens), and a 429 pauses calls until the provider's `retry-after` (or the reset of the
//! exhausted limit) on the crate's clock.
//!
//! **Usage.** [`usage_from_openai`] and [`usage_from_anthropic`] read a response's usage into
//! a [`Usage`](crate::budget::Usage) to settle a reservation with; a negative or fractional
//! count is a typed [`UsageError`], so a budget can never be credited by bad input.
//!
//! **Failure classes.** [`LlmClassifier`] sorts provider errors and completions into
//! [`FailureClass`]es — rate limited, overloaded (529, 503), timeout, server error, context
//! length exceeded, content refusal, invalid tool-call JSON (arguments that do not parse or do
//! not match the tool's JSON Schema), empty completion, bad request — each with a default
//! [`Treatment`] (retryable? a breaker failure?) that can be overridden. The resulting
//! [`LlmError`] plugs into the existing hooks: it implements [`Classify`](crate::retry::Classify)
//! for retries (its `retry_after` is the provider's), and [`LlmError::is_breaker_failure`] is
//! the breaker's `call_with` classifier, so a 529 opens a breaker and a 400 does not.
//!
//! ```
//! use bulwark::llm::{FailureClass, LlmClassifier, ProviderSignals};
//! use bulwark::retry::Classify;
//! use http::{HeaderMap, StatusCode};
//! use std::time::{Duration, SystemTime};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-ratelimit-remaining-tokens", "120".parse()?);
//! headers.insert("x-ratelimit-reset-tokens", "1m30s".parse()?);
//! headers.insert("retry-after", "2".parse()?);
//! let signals = ProviderSignals::from_parts(StatusCode::TOO_MANY_REQUESTS, &headers, SystemTime::now());
//! let tokens = signals.tokens.ok_or("no token signal")?;
//! assert_eq!((tokens.remaining, tokens.reset_in), (Some(120), Some(Duration::from_secs(90))));
//! assert_eq!(signals.pause_for(), Some(Duration::from_secs(2)));
//!
//! let classifier = LlmClassifier::new();
//! let error = classifier.classify_status(&signals, b"{}").ok_or("not an error")?;
//! assert_eq!(error.class, FailureClass::RateLimited);
//! assert!(error.is_retryable() && !error.is_breaker_failure());
//! assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classify;
mod headers;
mod schema;
mod signals;
mod usage;

pub use classify::{FailureClass, LlmClassifier, LlmError, ToolSchema, Treatment};
pub use headers::{LimitSignal, ProviderSignals, parse_go_duration, parse_rfc3339};
pub use schema::validate as validate_schema;
pub use signals::{Applied, ProviderLimits};
pub use usage::{UsageError, usage_from_anthropic, usage_from_openai};
