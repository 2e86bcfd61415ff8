//! [`Resilience`]: the service a [`ResilienceLayer`](super::ResilienceLayer) builds.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use super::future::ResponseFuture;
use super::layer::{DEFAULT_MAX_BODY_BYTES, StatusClassifier};
use crate::clock::{Clock, MonotonicClock};
use crate::pipeline::{PipelineError, ResiliencePipeline};
use crate::retry::{Classify, retry_after_from_headers};

/// An HTTP service behind a resilience pipeline; see
/// [`ResilienceLayer`](super::ResilienceLayer).
#[derive(Clone)]
pub struct Resilience<S, C: Clock = MonotonicClock> {
    inner: S,
    pipeline: ResiliencePipeline<C>,
    is_failure: StatusClassifier,
    max_body_bytes: usize,
}

/// One attempt that did not succeed: a failure response, or an error of the service.
enum Attempt<ResBody, E> {
    Status(Response<ResBody>),
    Service(E),
}

impl<ResBody, E> Classify for Attempt<ResBody, E> {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status(response) => response.status().is_retryable(),
            Self::Service(_) => true,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status(response) => {
                retry_after_from_headers(response.headers(), SystemTime::now())
            }
            Self::Service(_) => None,
        }
    }
}

impl<S, C: Clock> Resilience<S, C> {
    /// `inner` behind `pipeline`, counting 5xx responses as failures.
    pub fn new(inner: S, pipeline: ResiliencePipeline<C>) -> Self {
        Self::with_parts(
            inner,
            pipeline,
            Arc::new(|status: StatusCode| status.is_server_error()),
            DEFAULT_MAX_BODY_BYTES,
        )
    }

    pub(crate) fn with_parts(
        inner: S,
        pipeline: ResiliencePipeline<C>,
        is_failure: StatusClassifier,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            inner,
            pipeline,
            is_failure,
            max_body_bytes,
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

    /// The pipeline requests run through.
    pub fn pipeline(&self) -> &ResiliencePipeline<C> {
        &self.pipeline
    }
}

impl<S, C, B, ResBody> Service<Request<B>> for Resilience<S, C>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    C: Clock,
    B: http_body::Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    /// Always ready: each attempt waits for a clone of the inner service to be ready.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let pipeline = self.pipeline.clone();
        let is_failure = Arc::clone(&self.is_failure);
        let limit = self.max_body_bytes;
        ResponseFuture::new(Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    tracing::debug!(%error, "request body refused before the pipeline");
                    return Ok(json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        &format!("the request body could not be read within {limit} bytes"),
                        None,
                    ));
                }
            };
            let attempt = || {
                let request = Request::from_parts(parts.clone(), B::from(bytes.clone()));
                let service = inner.clone();
                let is_failure = Arc::clone(&is_failure);
                async move {
                    match service.oneshot(request).await {
                        Ok(response) if is_failure(response.status()) => {
                            Err(Attempt::Status(response))
                        }
                        Ok(response) => Ok(response),
                        Err(error) => Err(Attempt::Service(error)),
                    }
                }
            };
            respond(pipeline.execute(attempt).await)
        }))
    }
}

/// The pipeline's outcome as the service's answer.
fn respond<ResBody: From<String>, E>(
    outcome: Result<Response<ResBody>, PipelineError<Attempt<ResBody, E>>>,
) -> Result<Response<ResBody>, E> {
    let error = match outcome {
        Ok(response) => return Ok(response),
        Err(error) => error,
    };
    let message = error.to_string_without_inner();
    match error {
        PipelineError::Failed(Attempt::Status(response)) => Ok(response),
        PipelineError::Failed(Attempt::Service(error)) => Err(error),
        PipelineError::RetryBudgetExhausted { last, .. } => respond(Err(*last)),
        PipelineError::RateLimited(limited) => Ok(json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &message,
            limited.retry_after(),
        )),
        PipelineError::CircuitOpen(rejected) => Ok(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit_open",
            &message,
            rejected.retry_after,
        )),
        PipelineError::BulkheadFull(_) => Ok(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "bulkhead_full",
            &message,
            None,
        )),
        PipelineError::TimedOut(_) => Ok(json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "timed_out",
            &message,
            None,
        )),
        PipelineError::Runtime(_) => Ok(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            None,
        )),
    }
}

impl<ResBody, E> PipelineError<Attempt<ResBody, E>> {
    /// The refusal's message; attempts (responses, service errors) are not displayable.
    fn to_string_without_inner(&self) -> String {
        match self {
            Self::RateLimited(e) => e.to_string(),
            Self::BulkheadFull(e) => e.to_string(),
            Self::TimedOut(e) => e.to_string(),
            Self::CircuitOpen(e) => e.to_string(),
            _ => String::new(),
        }
    }
}

/// A JSON error response in the crate's one error shape, with `Retry-After` in whole seconds
/// (rounded up) when a wait is known.
fn json_error<B: From<String>>(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> Response<B> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(after) = retry_after {
        let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for Resilience<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field("inner", &self.inner)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}
