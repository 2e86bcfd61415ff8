//! One error type for every endpoint, rendered as `{"error": {"code", "message"}}`.
//!
//! Handlers return [`ApiError`]; axum's own rejections (bad JSON, bad path or query, a body
//! over the limit) are mapped into it by the extractors in [`crate::extract`]; and
//! [`json_errors`] rewrites any other 4xx/5xx a layer produces, so no client ever sees a
//! plain-text error.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every failure an endpoint can answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No route or resource with that name.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not valid JSON, or not the JSON this endpoint takes.
    #[error("{0}")]
    InvalidJson(String),
    /// The body is larger than the configured limit.
    #[error("request body is larger than the configured limit")]
    PayloadTooLarge,
    /// The body is not JSON.
    #[error("expected a request with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// A token is configured and the request did not carry it.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The request is refused whoever sends it: a host not served here, a cross-site write.
    #[error("{message}")]
    Forbidden {
        /// The `code` field (`host_not_allowed`, `cross_origin`).
        code: &'static str,
        /// Why.
        message: String,
    },
    /// Too many requests for this key; the refusal says when a retry can pass. Answered with
    /// `Retry-After` and the `RateLimit-*` headers the rate-limit layer sends.
    #[error("rate limited; retry after {} ms", .0.retry_after.as_millis())]
    RateLimited(bulwark::ratelimit::RateLimited),
    /// The request conflicts with the current state of the resource.
    #[error("{0}")]
    Conflict(String),
    /// A dependency is not available (a breaker is open, a backend is down).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on our side; details are logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for a program (`code`) and for a person (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `not_found`, `invalid_json`, `unauthorized`.
    #[schema(example = "not_found")]
    pub code: String,
    /// A human-readable explanation.
    #[schema(example = "no checkpoint 0190f3c2-...")]
    pub message: String,
}

impl ApiError {
    /// An internal error from anything displayable; the details are logged only.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// The HTTP status and the `code` field.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Longest piece of client input an error message quotes, in bytes.
pub(crate) const MAX_QUOTED: usize = 128;

/// `text` cut to [`MAX_QUOTED`] bytes on a char boundary, for quoting client input in an
/// error message without echoing all of it.
pub(crate) fn clip(text: &str) -> &str {
    let mut cut = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(source) = &self {
            tracing::error!(error = ?source, "request failed");
        }
        let mut response = body(status, code, self.to_string());
        match &self {
            Self::RateLimited(limited) => {
                bulwark::ratelimit::layer::insert_refusal_headers(response.headers_mut(), limited);
            }
            Self::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// Middleware (for `axum::middleware::map_response`) that gives any error response not
/// already in the JSON shape — from a layer or from axum itself — the JSON shape.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (mut parts, original) = response.into_parts();
    let message = match axum::body::to_bytes(original, 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    let rewritten = body(status, &code, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, new_body) = rewritten.into_parts();
    Response::from_parts(parts, new_body)
}
