//! `#[resilient(pipeline = "...")]` on sync and async functions and methods.
#![cfg(feature = "macros")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulwark::bulkhead::BulkheadConfig;
use bulwark::pipeline::{PipelineRegistry, Rejection, ResiliencePipeline};
use bulwark::resilient;
use bulwark::retry::{Backoff, Classify, RetryConfig};

#[derive(Debug, PartialEq)]
enum LlmError {
    Overloaded,
    BadPrompt,
    Refused(String),
}

impl Classify for LlmError {
    fn is_retryable(&self) -> bool {
        *self == Self::Overloaded
    }
}

impl From<Rejection> for LlmError {
    fn from(rejection: Rejection) -> Self {
        Self::Refused(rejection.to_string())
    }
}

fn register(name: &str, attempts: u32) {
    let pipeline = ResiliencePipeline::builder()
        .name(name)
        .bulkhead(BulkheadConfig::new(4))
        .retry(RetryConfig::new(
            attempts,
            Backoff::constant(Duration::from_millis(1)),
        ))
        .build()
        .unwrap();
    PipelineRegistry::global().insert(pipeline);
}

static ASYNC_CALLS: AtomicU32 = AtomicU32::new(0);

#[resilient(pipeline = "macro_async")]
async fn complete(prompt: &str) -> Result<String, LlmError> {
    let n = ASYNC_CALLS.fetch_add(1, Ordering::SeqCst);
    if prompt.is_empty() {
        return Err(LlmError::BadPrompt);
    }
    if n < 2 {
        return Err(LlmError::Overloaded);
    }
    Ok(format!("answer to {prompt}"))
}

#[tokio::test]
async fn an_async_function_is_retried_by_its_pipeline_and_keeps_its_own_errors() {
    register("macro_async", 3);
    assert_eq!(complete("why").await, Ok("answer to why".to_string()));
    assert_eq!(ASYNC_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(complete("").await, Err(LlmError::BadPrompt));
    assert_eq!(
        ASYNC_CALLS.load(Ordering::SeqCst),
        4,
        "a caller error is not retried"
    );
}

static SYNC_CALLS: AtomicU32 = AtomicU32::new(0);

#[resilient(pipeline = "macro_sync")]
fn lookup(key: u32) -> Result<u32, LlmError> {
    SYNC_CALLS.fetch_add(1, Ordering::SeqCst);
    if key == 0 {
        Err(LlmError::Overloaded)
    } else {
        Ok(key * 2)
    }
}

#[test]
fn a_sync_function_goes_through_execute_blocking() {
    register("macro_sync", 2);
    assert_eq!(lookup(21), Ok(42));
    assert_eq!(lookup(0), Err(LlmError::Overloaded));
    assert_eq!(SYNC_CALLS.load(Ordering::SeqCst), 3);
}

struct Agent {
    name: String,
}

impl Agent {
    #[resilient(pipeline = "macro_method")]
    async fn run(&self, step: u32) -> Result<String, LlmError> {
        Ok(format!("{} step {step}", self.name))
    }
}

#[tokio::test]
async fn methods_work_and_a_full_bulkhead_becomes_the_functions_error() {
    register("macro_method", 1);
    let agent = Agent {
        name: "planner".into(),
    };
    assert_eq!(agent.run(1).await, Ok("planner step 1".to_string()));
    let pipeline = PipelineRegistry::global().get("macro_method").unwrap();
    let slots: Vec<_> = (0..4)
        .map(|_| pipeline.bulkhead().unwrap().try_acquire().unwrap())
        .collect();
    match agent.run(2).await {
        Err(LlmError::Refused(message)) => assert!(message.contains("bulkhead"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(slots);
}

#[resilient(pipeline = "never_registered")]
async fn orphan() -> Result<(), LlmError> {
    Ok(())
}

#[tokio::test]
async fn an_unknown_pipeline_is_an_error_not_a_silent_pass_through() {
    match orphan().await {
        Err(LlmError::Refused(message)) => assert!(message.contains("never_registered")),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
