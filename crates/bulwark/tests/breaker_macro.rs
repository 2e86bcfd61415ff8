//! `#[circuit_breaker]` on sync and async functions and methods.
#![cfg(feature = "macros")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark::breaker::{BreakerRegistry, Rejected, State};
use bulwark::circuit_breaker;

#[derive(Debug, PartialEq)]
enum PaymentError {
    Declined,
    Unavailable(String),
}

impl From<Rejected> for PaymentError {
    fn from(r: Rejected) -> Self {
        Self::Unavailable(r.breaker.to_string())
    }
}

#[circuit_breaker(name = "macro_sync", failure_threshold = 2, timeout = "30s")]
fn charge(amount: u64) -> Result<u64, PaymentError> {
    if amount == 0 {
        return Err(PaymentError::Declined);
    }
    Ok(amount * 2)
}

#[tokio::test]
async fn sync_function_returns_its_own_result_until_the_breaker_opens() {
    assert_eq!(charge(21), Ok(42));
    assert_eq!(charge(0), Err(PaymentError::Declined));
    assert_eq!(charge(0), Err(PaymentError::Declined));
    assert_eq!(
        charge(21),
        Err(PaymentError::Unavailable("macro_sync".into()))
    );
    let breaker = BreakerRegistry::global().get("macro_sync").unwrap();
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.config().failure_threshold, 2);
    assert_eq!(breaker.config().timeout, std::time::Duration::from_secs(30));
}

fn parse(s: &str) -> Result<u32, PaymentError> {
    s.parse().map_err(|_| PaymentError::Declined)
}

#[circuit_breaker(
    name = "macro_async",
    failure_threshold = 1,
    success_threshold = 1,
    half_open_max_calls = 1
)]
async fn fetch(input: &str) -> Result<u32, PaymentError> {
    tokio::task::yield_now().await;
    let n = parse(input)?;
    Ok(n + 1)
}

#[tokio::test]
async fn async_function_propagates_question_mark_errors_and_is_rejected_when_open() {
    assert_eq!(fetch("41").await, Ok(42));
    assert_eq!(fetch("x").await, Err(PaymentError::Declined));
    assert_eq!(
        fetch("41").await,
        Err(PaymentError::Unavailable("macro_async".into()))
    );
    let breaker = BreakerRegistry::global().get("macro_async").unwrap();
    assert_eq!(breaker.snapshot().rejected, 1);
    breaker.reset();
    assert_eq!(fetch("1").await, Ok(2));
}

struct Client {
    base: u32,
}

impl Client {
    #[circuit_breaker(
        name = "macro_method",
        failure_rate = 0.5,
        window_calls = 10,
        minimum_calls = 2
    )]
    async fn get(&self, fail: bool) -> Result<u32, PaymentError> {
        if fail {
            Err(PaymentError::Declined)
        } else {
            Ok(self.base)
        }
    }

    #[circuit_breaker(name = "macro_method_sync", slow_call_threshold = "5s")]
    fn get_sync(&mut self) -> Result<u32, anyhow_like::Error> {
        self.base += 1;
        Ok(self.base)
    }
}

mod anyhow_like {
    /// An error type that accepts any rejection, as `anyhow::Error` does.
    #[derive(Debug)]
    pub(crate) struct Error(pub(crate) String);
    impl From<bulwark::breaker::Rejected> for Error {
        fn from(r: bulwark::breaker::Rejected) -> Self {
            Self(r.to_string())
        }
    }
}

#[tokio::test]
async fn methods_work_and_sliding_window_arguments_configure_the_breaker() {
    let client = Client { base: 7 };
    assert_eq!(client.get(false).await, Ok(7));
    assert_eq!(client.get(true).await, Err(PaymentError::Declined));
    let breaker = BreakerRegistry::global().get("macro_method").unwrap();
    assert_eq!(
        breaker.state(),
        State::Open,
        "1 failure of 2 calls reaches 50 %"
    );
    assert!(breaker.config().sliding_window.is_some());

    let mut client = Client { base: 1 };
    assert_eq!(client.get_sync().unwrap(), 2);
    assert_eq!(client.base, 2);
    let sync = BreakerRegistry::global().get("macro_method_sync").unwrap();
    assert_eq!(
        sync.config().slow_call_threshold,
        Some(std::time::Duration::from_secs(5))
    );
    sync.force_open();
    let refused = client.get_sync().unwrap_err();
    assert!(refused.0.contains("macro_method_sync"), "{}", refused.0);
    assert_eq!(client.base, 2, "a refused call does not run the body");
}
