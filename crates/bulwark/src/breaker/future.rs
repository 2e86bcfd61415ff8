//! The response future of [`CircuitBreakerService`](super::CircuitBreakerService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use super::layer::StatusClassifier;
use super::permit::OwnedPermit;
use crate::clock::Clock;

pin_project! {
    /// Resolves to the inner service's response (settling the call's permit when it does), or
    /// at once to the 503 of a refused request. Dropping it before it resolves gives the permit
    /// back without counting the call.
    pub struct ResponseFuture<F, C: Clock, ResBody> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedPermit<C>>,
        rejected: Option<Response<ResBody>>,
        is_failure: Option<StatusClassifier>,
    }
}

impl<F, C: Clock, ResBody> ResponseFuture<F, C, ResBody> {
    pub(crate) fn admitted(inner: F, permit: OwnedPermit<C>, is_failure: StatusClassifier) -> Self {
        Self {
            inner: Some(inner),
            permit: Some(permit),
            rejected: None,
            is_failure: Some(is_failure),
        }
    }

    pub(crate) fn rejected(response: Response<ResBody>) -> Self {
        Self {
            inner: None,
            permit: None,
            rejected: Some(response),
            is_failure: None,
        }
    }
}

impl<F, C, ResBody, E> Future for ResponseFuture<F, C, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    C: Clock,
{
    type Output = Result<Response<ResBody>, E>;

    /// Polling again after completion stays pending.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(response) = this.rejected.take() {
            return Poll::Ready(Ok(response));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let result = ready!(inner.poll(cx));
        this.inner.set(None);
        if let Some(permit) = this.permit.take() {
            let failed = match (&result, this.is_failure.as_ref()) {
                (Ok(response), Some(is_failure)) => is_failure(response.status()),
                (Ok(response), None) => response.status().is_server_error(),
                (Err(_), _) => true,
            };
            permit.record(failed);
        }
        Poll::Ready(result)
    }
}

impl<F, C: Clock, ResBody> fmt::Debug for ResponseFuture<F, C, ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("rejected", &self.rejected.is_some())
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
