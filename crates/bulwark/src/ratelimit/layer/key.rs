//! How a request is mapped to the bucket it draws from.

use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Uri};

/// The parts of a request a [`KeyExtractor`] may look at.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestParts<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request URI.
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request extensions (where servers put the peer address).
    pub extensions: &'a Extensions,
}

impl<'a> RequestParts<'a> {
    /// The parts of `request`.
    pub fn from_request<B>(request: &'a http::Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }
}

/// Maps a request to a rate-limit key.
///
/// Returning `None` sends the request to one shared bucket for every request without a key,
/// so that leaving the key out (dropping a header, say) can never bypass the limit.
pub trait KeyExtractor: Clone + fmt::Debug + Send + Sync + 'static {
    /// The key type.
    type Key: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static;

    /// The key of this request.
    fn extract(&self, request: &RequestParts<'_>) -> Option<Self::Key>;
}

/// Every request shares one bucket.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalKey;

impl KeyExtractor for GlobalKey {
    type Key = ();

    fn extract(&self, _: &RequestParts<'_>) -> Option<()> {
        Some(())
    }
}

/// One bucket per value of a header (an API key, a tenant id, a user id).
#[derive(Clone, Debug)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys requests by the value of header `name`.
    pub fn new(name: HeaderName) -> Self {
        Self { name }
    }
}

impl KeyExtractor for HeaderKey {
    type Key = HeaderValue;

    fn extract(&self, request: &RequestParts<'_>) -> Option<HeaderValue> {
        request.headers.get(&self.name).cloned()
    }
}

/// One bucket per client IP address.
///
/// The address comes from the connection: axum's `ConnectInfo<SocketAddr>` (with the `axum`
/// feature) or a plain `SocketAddr` request extension. Behind a reverse proxy, use
/// [`PeerIp::behind_proxy`] to read the first address of `X-Forwarded-For` instead; only do so
/// when the proxy overwrites that header, since clients can forge it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerIp {
    trust_forwarded_for: bool,
}

impl PeerIp {
    /// Keys by the address of the TCP peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys by the first `X-Forwarded-For` address, falling back to the TCP peer.
    pub fn behind_proxy() -> Self {
        Self {
            trust_forwarded_for: true,
        }
    }
}

impl KeyExtractor for PeerIp {
    type Key = IpAddr;

    fn extract(&self, request: &RequestParts<'_>) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = request
                .headers
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .and_then(|first| first.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        #[cfg(feature = "axum")]
        if let Some(info) = request
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(info.0.ip());
        }
        request.extensions.get::<SocketAddr>().map(SocketAddr::ip)
    }
}

/// A key extractor made from a closure; see [`key_fn`].
#[derive(Clone)]
pub struct KeyFn<F> {
    f: F,
}

/// Keys requests by whatever `f` returns.
///
/// ```
/// use bulwark::ratelimit::layer::{key_fn, RequestParts};
///
/// // one bucket per first path segment: /openai/..., /anthropic/...
/// let by_provider = key_fn(|request: &RequestParts<'_>| {
///     request.uri.path().split('/').nth(1).map(str::to_owned)
/// });
/// # let _ = by_provider;
/// ```
pub fn key_fn<F, K>(f: F) -> KeyFn<F>
where
    F: Fn(&RequestParts<'_>) -> Option<K> + Clone + Send + Sync + 'static,
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
{
    KeyFn { f }
}

impl<F, K> KeyExtractor for KeyFn<F>
where
    F: Fn(&RequestParts<'_>) -> Option<K> + Clone + Send + Sync + 'static,
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
{
    type Key = K;

    fn extract(&self, request: &RequestParts<'_>) -> Option<K> {
        (self.f)(request)
    }
}

impl<F> fmt::Debug for KeyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFn").finish_non_exhaustive()
    }
}
