//! A tower layer that rate-limits HTTP requests, globally or per key, answering 429.

mod key;
mod service;

pub use key::{GlobalKey, HeaderKey, KeyExtractor, KeyFn, PeerIp, RequestParts, key_fn};
pub use service::{RateLimit, RateLimitLayer, ResponseFuture, insert_refusal_headers};
