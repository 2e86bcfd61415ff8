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

/// Parses an object body as `T`. JSON Schema counts `1.0` as an integer, so a body that fails
/// only because a whole number is written with a fraction is read again with such numbers as
/// integers; any other failure is the first parse's error (which names the field, and refuses
/// duplicate keys).
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    require_object(bytes)?;
    let error = match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => return Ok(value),
        Err(error) => error,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(error.into());
    };
    if !whole_floats_to_integers(&mut value) {
        return Err(error.into());
    }
    serde_json::from_value(value).map_err(|_| error.into())
}

/// Rewrites every float with no fraction that fits an `i64` or `u64` as that integer;
/// returns whether any was.
fn whole_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            let integer = if float.fract() != 0.0 || !float.is_finite() {
                None
            } else if float >= 0.0 && float < u64::MAX as f64 {
                Some(serde_json::Number::from(float as u64))
            } else if float < 0.0 && float >= i64::MIN as f64 {
                Some(serde_json::Number::from(float as i64))
            } else {
                None
            };
            integer.map(|n| *number = n).is_some()
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| whole_floats_to_integers(item) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, item| whole_floats_to_integers(item) | any),
        _ => false,
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
        parse_body(&bytes).map(Self)
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
        parse_body(&bytes).map(|value| Self(Some(value)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Policy {
        keep_last: Option<u64>,
        ratio: Option<f64>,
    }

    #[test]
    fn whole_floats_are_integers_and_everything_else_keeps_its_error() {
        let parsed: Policy = parse_body(br#"{"keep_last": 2.0, "ratio": 0.5}"#).unwrap();
        assert_eq!(
            parsed,
            Policy {
                keep_last: Some(2),
                ratio: Some(0.5)
            }
        );
        for bad in [
            &br#"{"keep_last": 2.5}"#[..],
            br#"{"keep_last": -1.0}"#,
            br#"{"keep_last": 1, "keep_last": 2}"#,
            br#"{"keep_last": 1.0, "other": 1}"#,
            b"[1.0]",
        ] {
            assert!(
                parse_body::<Policy>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
