//! What retry needs to know of an error: whether retrying can help, and when.

use std::time::Duration;

/// How [`Retry`](super::Retry) treats an error. Both methods have defaults, so a plain error
/// type opts in with `impl Classify for MyError {}` (every error retryable, no wait asked).
///
/// The pipeline implements it for the limiter's and breaker's rejections (which carry a
/// `retry_after`); [`retry_after_from_headers`](super::retry_after_from_headers) reads the
/// wait an HTTP 429 or 503 asks for.
pub trait Classify {
    /// Whether another attempt could succeed. Return `false` for caller errors (bad input, not
    /// found, forbidden): retrying them only repeats the failure. Default: `true`.
    fn is_retryable(&self) -> bool {
        true
    }

    /// A wait the error asks for before the next attempt (a `Retry-After`, a limiter's
    /// `retry_after`, a breaker's time until its next trial). Retry waits at least this long,
    /// and gives up if it is beyond the config's `max_retry_after`. Default: `None`.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Classify for String {}
impl Classify for &str {}
impl Classify for Box<dyn std::error::Error + Send + Sync> {}
impl Classify for std::convert::Infallible {}

impl Classify for std::io::Error {
    /// Caller errors (`InvalidInput`, `InvalidData`, `NotFound`, `PermissionDenied`,
    /// `AlreadyExists`, `Unsupported`) are not retryable; the rest are.
    fn is_retryable(&self) -> bool {
        use std::io::ErrorKind::*;
        !matches!(
            self.kind(),
            InvalidInput | InvalidData | NotFound | PermissionDenied | AlreadyExists | Unsupported
        )
    }
}

impl Classify for http::StatusCode {
    /// 5xx, 408 (request timeout) and 429 (too many requests) are retryable; other 4xx are the
    /// caller's errors and success codes never reach retry as errors.
    fn is_retryable(&self) -> bool {
        self.is_server_error()
            || *self == http::StatusCode::REQUEST_TIMEOUT
            || *self == http::StatusCode::TOO_MANY_REQUESTS
    }
}
