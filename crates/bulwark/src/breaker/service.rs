//! [`CircuitBreakerService`]: the service a [`CircuitBreakerLayer`](super::CircuitBreakerLayer)
//! builds.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use tower::Service;

use super::circuit_breaker::CircuitBreaker;
use super::error::Rejected;
use super::future::ResponseFuture;
use super::layer::StatusClassifier;
use super::state::State;
use crate::clock::{Clock, MonotonicClock};

/// An HTTP service guarded by a circuit breaker; see
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
#[derive(Clone)]
pub struct CircuitBreakerService<S, C: Clock = MonotonicClock> {
    inner: S,
    breaker: CircuitBreaker<C>,
    is_failure: StatusClassifier,
}

impl<S, C: Clock> CircuitBreakerService<S, C> {
    /// Guards `inner` with `breaker`, counting 5xx responses and errors as failures.
    pub fn new(inner: S, breaker: CircuitBreaker<C>) -> Self {
        Self::with_classifier(
            inner,
            breaker,
            Arc::new(|status: StatusCode| status.is_server_error()),
        )
    }

    pub(crate) fn with_classifier(
        inner: S,
        breaker: CircuitBreaker<C>,
        is_failure: StatusClassifier,
    ) -> Self {
        Self {
            inner,
            breaker,
            is_failure,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The breaker guarding the service.
    pub fn breaker(&self) -> &CircuitBreaker<C> {
        &self.breaker
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for CircuitBreakerService<S, C>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    C: Clock,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => ResponseFuture::admitted(
                self.inner.call(request),
                permit,
                Arc::clone(&self.is_failure),
            ),
            Err(rejected) => ResponseFuture::rejected(rejection(&rejected)),
        }
    }
}

/// The 503 a refused request gets.
fn rejection<B: From<String>>(rejected: &Rejected) -> Response<B> {
    let body = serde_json::json!({
        "error": { "code": "circuit_open", "message": rejected.to_string() }
    })
    .to_string();
    let mut response = Response::new(B::from(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let retry_after = match (rejected.retry_after, rejected.state) {
        (Some(after), _) => Some(after.as_secs() + u64::from(after.subsec_nanos() > 0)),
        (None, State::HalfOpen) => Some(1),
        (None, _) => None,
    };
    if let Some(seconds) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for CircuitBreakerService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
