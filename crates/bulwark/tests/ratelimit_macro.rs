//! `#[rate_limit]` on sync and async functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::rate_limit;
use bulwark::ratelimit::{RateLimitError, RateLimiterRegistry};

#[derive(Debug)]
enum ToolError {
    RateLimited(RateLimitError),
}

impl From<RateLimitError> for ToolError {
    fn from(error: RateLimitError) -> Self {
        Self::RateLimited(error)
    }
}

#[rate_limit(max_requests = 2, time_window = "1h", burst_size = 1)]
fn search(query: &str) -> Result<usize, ToolError> {
    Ok(query.len())
}

#[rate_limit(max_requests = 1, time_window = "1h", name = "macro_async_llm")]
async fn complete(prompt: String) -> Result<String, ToolError> {
    Ok(prompt.to_uppercase())
}

#[rate_limit(max_requests = 1, time_window = "10ms", wait = "1s")]
async fn patient() -> Result<(), RateLimitError> {
    Ok(())
}

#[test]
fn a_sync_function_is_limited_to_its_capacity() {
    assert_eq!(search("abc").unwrap(), 3);
    assert_eq!(search("ab").unwrap(), 2);
    assert_eq!(search("a").unwrap(), 1);
    match search("x") {
        Err(ToolError::RateLimited(RateLimitError::Limited(limited))) => {
            assert!(limited.retry_after > Duration::from_secs(1000));
        }
        other => panic!("expected a rate-limit error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_async_function_is_limited_and_registered_by_name() {
    assert_eq!(complete("hi".into()).await.unwrap(), "HI");
    assert!(matches!(
        complete("again".into()).await,
        Err(ToolError::RateLimited(RateLimitError::Limited(_)))
    ));
    let listed = RateLimiterRegistry::global().list();
    let info = listed
        .iter()
        .find(|info| info.name == "macro_async_llm")
        .unwrap();
    assert_eq!(info.available, Some(0));
    assert_eq!(info.config.time_window, Duration::from_secs(3600));
}

#[tokio::test]
async fn with_wait_an_async_function_waits_for_its_token() {
    // One token per 10 ms: the second and third calls wait (real time, ~20 ms in all) rather
    // than fail.
    for _ in 0..3 {
        patient().await.unwrap();
    }
}
