//! [`CircuitBreakerLayer`]: a breaker around an HTTP service.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use tower::Layer;

use super::circuit_breaker::CircuitBreaker;
use super::service::CircuitBreakerService;
use crate::clock::{Clock, MonotonicClock};

/// Decides which response statuses count as failures of the wrapped service.
pub(crate) type StatusClassifier = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// Wraps an HTTP service in a circuit breaker.
///
/// By default a 5xx response or an error of the inner service counts as a failure; change the
/// first with [`failure_status`](Self::failure_status) (inner errors always count). While the
/// breaker refuses calls, the service answers `503 Service Unavailable` at once, without
/// calling the inner service, with a `Retry-After` header (whole seconds, rounded up; `1` when
/// half-open with every trial slot taken, absent when forced open) and the JSON body
/// `{"error":{"code":"circuit_open","message":"..."}}`.
///
/// ```
/// use axum::{Router, routing::get};
/// use bulwark::breaker::{CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer};
///
/// let breaker = CircuitBreaker::new("upstream", CircuitBreakerConfig::default())?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "ok" }))
///     .layer(CircuitBreakerLayer::new(breaker));
/// # Ok::<(), bulwark::breaker::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreakerLayer<C: Clock = MonotonicClock> {
    breaker: CircuitBreaker<C>,
    is_failure: StatusClassifier,
}

impl<C: Clock> CircuitBreakerLayer<C> {
    /// A layer guarding services with `breaker` (clones of the layer share it).
    pub fn new(breaker: CircuitBreaker<C>) -> Self {
        Self {
            breaker,
            is_failure: Arc::new(|status: StatusCode| status.is_server_error()),
        }
    }

    /// Counts a response as a failure when `is_failure(status)` is true (default: 5xx).
    pub fn failure_status(
        mut self,
        is_failure: impl Fn(StatusCode) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_failure = Arc::new(is_failure);
        self
    }

    /// The breaker this layer uses.
    pub fn breaker(&self) -> &CircuitBreaker<C> {
        &self.breaker
    }
}

impl<S, C: Clock> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::with_classifier(
            inner,
            self.breaker.clone(),
            Arc::clone(&self.is_failure),
        )
    }
}

impl<C: Clock> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
