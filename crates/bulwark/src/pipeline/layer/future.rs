//! The response future of [`Resilience`](super::Resilience).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

type Boxed<ResBody, E> = Pin<Box<dyn Future<Output = Result<Response<ResBody>, E>> + Send>>;

/// Resolves to the inner service's response (after any retries), or to the answer of a
/// refusal. Dropping it cancels the attempt in flight and makes no further one.
pub struct ResponseFuture<ResBody, E> {
    inner: Boxed<ResBody, E>,
}

impl<ResBody, E> ResponseFuture<ResBody, E> {
    pub(crate) fn new(inner: Boxed<ResBody, E>) -> Self {
        Self { inner }
    }
}

impl<ResBody, E> Future for ResponseFuture<ResBody, E> {
    type Output = Result<Response<ResBody>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<ResBody, E> fmt::Debug for ResponseFuture<ResBody, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
