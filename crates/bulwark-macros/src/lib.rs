//! Attribute macros for Bulwark, the Rust forms of the original decorators, and
//! `#[resilient]` for resilience pipelines. Use them through
//! the `bulwark` crate's re-exports (`bulwark::rate_limit`); the code they generate names
//! `::bulwark`, so the calling crate must depend on `bulwark`.

use proc_macro::TokenStream;

mod circuit_breaker;
mod rate_limit;
mod resilient;

/// Rate-limits a function returning `Result<_, E>` where `E: From<bulwark::ratelimit::RateLimitError>`.
///
/// Arguments: `max_requests = N` (required), `time_window = "60s"` (required, a humantime
/// duration), `burst_size = N` (default 0), `name = "..."` (optional: registers the limiter in
/// the process-wide registry under that name, so it is listed by the HTTP API), and, on
/// `async fn` only, `wait = "5s"` to wait up to that long for a token instead of failing at once.
#[proc_macro_attribute]
pub fn rate_limit(attr: TokenStream, item: TokenStream) -> TokenStream {
    rate_limit::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Guards a function with a circuit breaker from the process-wide registry
/// (`bulwark::breaker::BreakerRegistry::global()`), the Rust form of the original decorator.
///
/// Works on sync and `async` functions returning `Result<T, E>` where
/// `E: From<bulwark::breaker::Rejected>`: every `Err` the body returns counts as a failure and
/// is returned unchanged; a refused call returns `Err(E::from(rejected))` without running the
/// body. The breaker is looked up once per function and cached in a `static`.
///
/// Arguments: `name = "..."` (required, the registry key), `failure_threshold = 5`,
/// `success_threshold = 2`, `timeout = "60s"`, `half_open_max_calls = 3` (defaults shown),
/// `slow_call_threshold = "2s"`, and for sliding-window mode `failure_rate = 0.5` with either
/// `window_calls = 100` or `window = "30s"`, and `minimum_calls = 10`. Durations are humantime
/// strings; an invalid config is a compile error.
///
/// ```ignore
/// #[bulwark::circuit_breaker(name = "payment_service", failure_threshold = 5, timeout = "30s")]
/// async fn charge(amount: u64) -> Result<Receipt, PaymentError> { /* ... */ }
/// ```
#[proc_macro_attribute]
pub fn circuit_breaker(attr: TokenStream, item: TokenStream) -> TokenStream {
    circuit_breaker::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Runs a function through the resilience pipeline of that name in the process-wide registry
/// (`bulwark::pipeline::PipelineRegistry::global()`), registered beforehand from code or from
/// the server's config.
///
/// Works on sync and `async` functions returning `Result<T, E>` where
/// `E: bulwark::retry::Classify + From<bulwark::pipeline::Rejection>`: the body is one
/// attempt (a retry runs it again, so it must not move its arguments out: clone them); the
/// last attempt's `Err` is returned unchanged, and a refusal (rate limited, bulkhead full,
/// timed out, circuit open, or no pipeline of that name) becomes `Err(E::from(rejection))`.
/// Sync functions go through `execute_blocking`.
///
/// ```ignore
/// #[bulwark::resilient(pipeline = "openai")]
/// async fn complete(prompt: &str) -> Result<String, LlmError> { /* ... */ }
/// ```
#[proc_macro_attribute]
pub fn resilient(attr: TokenStream, item: TokenStream) -> TokenStream {
    resilient::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
