//! The layer, the service it builds, and the service's response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::key::{GlobalKey, KeyExtractor, RequestParts};
use crate::ratelimit::{
    Admitted, ConfigError, KeyedRateLimiter, RateLimitConfig, RateLimitError, RateLimited,
    RateLimiter,
};

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Rate-limits the services it wraps; each request takes one token.
///
/// Admitted responses carry `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
/// (seconds until the bucket is full). Refused requests never reach the inner service: they
/// get `429 Too Many Requests` with `Retry-After` (whole seconds, rounded up), the same
/// `RateLimit-*` headers and the JSON body `{"error": {"code": "rate_limited", "message": ...}}`.
///
/// Clones of the layer, and every service it builds, share the same buckets.
///
/// ```
/// use axum::{Router, routing::get};
/// use bulwark::ratelimit::RateLimitConfig;
/// use bulwark::ratelimit::layer::{HeaderKey, RateLimitLayer};
/// use http::HeaderName;
///
/// let per_api_key = RateLimitLayer::keyed(
///     RateLimitConfig::per_minute(60).with_burst(10),
///     HeaderKey::new(HeaderName::from_static("x-api-key")),
/// )?;
/// let app: Router = Router::new().route("/chat", get(|| async { "hi" })).layer(per_api_key);
/// # let _ = app;
/// # Ok::<(), bulwark::ratelimit::ConfigError>(())
/// ```
pub struct RateLimitLayer<E: KeyExtractor = GlobalKey> {
    backend: Backend<E::Key>,
    extractor: E,
}

enum Backend<K> {
    Shared(RateLimiter),
    Keyed(KeyedRateLimiter<Option<K>>),
}

impl<K> Clone for Backend<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Shared(limiter) => Self::Shared(limiter.clone()),
            Self::Keyed(limiter) => Self::Keyed(limiter.clone()),
        }
    }
}

impl<E: KeyExtractor> Clone for RateLimitLayer<E> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            extractor: self.extractor.clone(),
        }
    }
}

impl RateLimitLayer<GlobalKey> {
    /// One bucket for every request.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        RateLimiter::new(config).map(Self::from_limiter)
    }

    /// Shares an existing limiter (and its bucket) with the requests of this layer.
    pub fn from_limiter(limiter: RateLimiter) -> Self {
        Self {
            backend: Backend::Shared(limiter),
            extractor: GlobalKey,
        }
    }
}

impl<E: KeyExtractor> RateLimitLayer<E> {
    /// One bucket per key that `extractor` finds; requests without a key share one bucket.
    pub fn keyed(config: RateLimitConfig, extractor: E) -> Result<Self, ConfigError> {
        KeyedRateLimiter::new(config).map(|limiter| Self::from_keyed(limiter, extractor))
    }

    /// Uses an existing keyed limiter, for example one with per-key overrides.
    pub fn from_keyed(limiter: KeyedRateLimiter<Option<E::Key>>, extractor: E) -> Self {
        Self {
            backend: Backend::Keyed(limiter),
            extractor,
        }
    }
}

impl<S, E: KeyExtractor> Layer<S> for RateLimitLayer<E> {
    type Service = RateLimit<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

impl<E: KeyExtractor> fmt::Debug for RateLimitLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RateLimitLayer");
        match &self.backend {
            Backend::Shared(limiter) => s.field("limiter", limiter),
            Backend::Keyed(limiter) => s.field("limiter", limiter),
        };
        s.field("extractor", &self.extractor).finish()
    }
}

/// A service rate-limited by a [`RateLimitLayer`].
pub struct RateLimit<S, E: KeyExtractor = GlobalKey> {
    inner: S,
    layer: RateLimitLayer<E>,
}

impl<S, E: KeyExtractor> RateLimit<S, E> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, E: KeyExtractor> Clone for RateLimit<S, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, E: KeyExtractor> fmt::Debug for RateLimit<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, E, B, ResBody> Service<Request<B>> for RateLimit<S, E>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    E: KeyExtractor,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let decision = match &self.layer.backend {
            Backend::Shared(limiter) => limiter.check_detailed(1),
            Backend::Keyed(limiter) => {
                let key = self
                    .layer
                    .extractor
                    .extract(&RequestParts::from_request(&request));
                limiter.check_detailed(&key, 1)
            }
        };
        match decision {
            Ok(admitted) => ResponseFuture {
                kind: Kind::Admitted {
                    future: self.inner.call(request),
                    admitted,
                    _body: std::marker::PhantomData,
                },
            },
            Err(error) => ResponseFuture {
                kind: Kind::Refused { error },
            },
        }
    }
}

pin_project! {
    /// The response future of [`RateLimit`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProjection]
    enum Kind<F, B> {
        // Admitted: the inner service is serving the request.
        Admitted {
            #[pin]
            future: F,
            admitted: Admitted,
            _body: std::marker::PhantomData<fn() -> B>,
        },
        // Refused: the response is built when polled.
        Refused { error: RateLimitError },
    }
}

impl<F, B, Error> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, Error>>,
    B: From<String>,
{
    type Output = Result<Response<B>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Admitted {
                future, admitted, ..
            } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                let headers = response.headers_mut();
                headers.insert(RATELIMIT_LIMIT, HeaderValue::from(admitted.capacity));
                headers.insert(RATELIMIT_REMAINING, HeaderValue::from(admitted.remaining));
                headers.insert(RATELIMIT_RESET, seconds(admitted.reset_after));
                Poll::Ready(Ok(response))
            }
            KindProjection::Refused { error } => Poll::Ready(Ok(refusal(error))),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Admitted { admitted, .. } => f
                .debug_struct("ResponseFuture")
                .field("admitted", admitted)
                .finish(),
            Kind::Refused { error } => f
                .debug_struct("ResponseFuture")
                .field("refused", error)
                .finish(),
        }
    }
}

fn refusal<B: From<String>>(error: &RateLimitError) -> Response<B> {
    let (status, code) = match error {
        RateLimitError::Limited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "rate_limit_misconfigured",
        ),
    };
    let message = serde_json::Value::String(error.to_string());
    let body = format!(r#"{{"error":{{"code":"{code}","message":{message}}}}}"#);
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let RateLimitError::Limited(limited) = error {
        insert_refusal_headers(headers, limited);
    }
    response
}

/// Writes the headers of a refused request — `Retry-After`, `RateLimit-Limit`,
/// `RateLimit-Remaining` and `RateLimit-Reset` (whole seconds, rounded up) — so that a service
/// answering its own 429 sends what [`RateLimitLayer`] sends.
///
/// ```
/// use bulwark::ratelimit::{RateLimitConfig, RateLimitError, RateLimiter};
/// use bulwark::ratelimit::layer::insert_refusal_headers;
///
/// let limiter = RateLimiter::new(RateLimitConfig::per_minute(1))?;
/// limiter.check(1)?;
/// let Err(RateLimitError::Limited(limited)) = limiter.check(1) else { unreachable!() };
/// let mut headers = http::HeaderMap::new();
/// insert_refusal_headers(&mut headers, &limited);
/// assert_eq!(headers["ratelimit-limit"], "1");
/// assert_eq!(headers["ratelimit-remaining"], "0");
/// assert!(headers.contains_key("retry-after"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn insert_refusal_headers(headers: &mut http::HeaderMap, limited: &RateLimited) {
    headers.insert(RETRY_AFTER, seconds(limited.retry_after));
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(limited.capacity));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(limited.available));
    headers.insert(RATELIMIT_RESET, seconds(limited.retry_after));
}

/// Whole seconds, rounded up, as HTTP's delta-seconds.
fn seconds(duration: Duration) -> HeaderValue {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    HeaderValue::from(whole)
}
