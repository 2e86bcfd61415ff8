//! axum's extractors with their rejections mapped into [`ApiError`], so a bad path, query or
//! body gets the same JSON error shape as everything else.
//!
//! A JSON body must be sent as exactly `application/json` (parameters such as
//! `; charset=utf-8` allowed; `application/jsonp` or `+json` types are not JSON here) and
//! must be a JSON object: `[0]` or `null` is not read as a struct with defaults, so a body
//! that means something else than the fields it names changes nothing.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body; `Content-Type: application/json` required.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// A JSON object body that may be absent: empty (with or without a content type), blank or
/// `null` give `None`; any other body needs `Content-Type: application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub Option<T>);

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

/// Query parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

/// Whether a `Content-Type` value is `application/json`, in any case, with or without
/// parameters.
pub fn is_json_content_type(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Refuses a body whose JSON value is not an object (checked on its first byte, before
/// parsing, so `[0]` is never read as a struct).
fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ApiError::InvalidJson(
            "the body must be a JSON object (`{...}`)".into(),
        )),
    }
}

fn body_limit_error(status: StatusCode, message: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(error) => ApiError::InvalidJson(error.body_text()),
            JsonRejection::JsonDataError(error) => ApiError::InvalidJson(error.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(error) => {
                body_limit_error(error.status(), error.body_text())
            }
            other => body_limit_error(other.status(), other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        body_limit_error(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(is_json_content_type)
        {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state).await?;
        require_object(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(is_json_content_type);
        let bytes = Bytes::from_request(request, state).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if json != Some(true) {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Blank and `null` mean no body (the document marks the body nullable).
        if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
            return Ok(Self(None));
        }
        require_object(&bytes)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(Some(value)))
    }
}

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}
