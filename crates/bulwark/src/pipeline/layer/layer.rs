//! The layer, its response classifier and its body bound.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use tower::Layer;

use super::service::Resilience;
use crate::clock::{Clock, MonotonicClock};
use crate::pipeline::ResiliencePipeline;

/// Decides which response statuses are failures of the wrapped service.
pub(crate) type StatusClassifier = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// The largest request body buffered for replay unless told otherwise: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Runs every request through a [`ResiliencePipeline`].
///
/// The request body is read into memory first (at most
/// [`max_body_bytes`](Self::max_body_bytes); a larger one gets `413 Payload Too Large`), so
/// that a retry can send the same request again. A response whose status is a failure (5xx
/// by default; see [`failure_status`](Self::failure_status)) counts as a failed attempt: the
/// retry may repeat it (honouring its `Retry-After` / `retry-after-ms`) and the breaker counts
/// it; when the pipeline gives up, the last such response is returned as it is. A refusal is
/// answered without calling the service, with the JSON body
/// `{"error":{"code":"...","message":"..."}}`: `429` and `Retry-After` when rate limited,
/// `503` when the bulkhead is full, the circuit open (with `Retry-After`) or the retry budget
/// spent, `504` when a timeout fired. Errors of the inner service pass through unchanged.
///
/// ```
/// use axum::{Router, routing::get};
/// use bulwark::bulkhead::BulkheadConfig;
/// use bulwark::pipeline::{ResilienceLayer, ResiliencePipeline};
///
/// let pipeline = ResiliencePipeline::builder().bulkhead(BulkheadConfig::new(64)).build()?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "ok" }))
///     .layer(ResilienceLayer::new(pipeline));
/// # Ok::<(), bulwark::pipeline::PipelineConfigError>(())
/// ```
#[derive(Clone)]
pub struct ResilienceLayer<C: Clock = MonotonicClock> {
    pipeline: ResiliencePipeline<C>,
    is_failure: StatusClassifier,
    max_body_bytes: usize,
}

impl<C: Clock> ResilienceLayer<C> {
    /// A layer running requests through `pipeline` (clones of the layer share it).
    pub fn new(pipeline: ResiliencePipeline<C>) -> Self {
        Self {
            pipeline,
            is_failure: Arc::new(|status: StatusCode| status.is_server_error()),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Counts a response as a failed attempt when `is_failure(status)` is true (default: 5xx).
    pub fn failure_status(
        mut self,
        is_failure: impl Fn(StatusCode) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_failure = Arc::new(is_failure);
        self
    }

    /// The largest request body read for replay (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The pipeline this layer runs.
    pub fn pipeline(&self) -> &ResiliencePipeline<C> {
        &self.pipeline
    }
}

impl<S, C: Clock> Layer<S> for ResilienceLayer<C> {
    type Service = Resilience<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Resilience::with_parts(
            inner,
            self.pipeline.clone(),
            Arc::clone(&self.is_failure),
            self.max_body_bytes,
        )
    }
}

impl<C: Clock> fmt::Debug for ResilienceLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceLayer")
            .field("pipeline", &self.pipeline)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}
