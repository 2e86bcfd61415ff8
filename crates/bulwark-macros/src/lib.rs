//! Attribute macros for Bulwark, the Rust forms of the original decorators. Use them through
//! the `bulwark` crate's re-exports (`bulwark::rate_limit`); the code they generate names
//! `::bulwark`, so the calling crate must depend on `bulwark`.

use proc_macro::TokenStream;

mod rate_limit;

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
