//! Bearer-token authentication of mutating requests.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// When the state has a token, POST, PUT, PATCH and DELETE must carry
/// `Authorization: Bearer <token>`; the comparison takes the same time wherever the tokens
/// differ (only the length can show through timing).
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mutating = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if let (true, Some(expected)) = (mutating, state.token())
        && let Err(error) = check(&request, expected)
    {
        return error.into_response();
    }
    next.run(request).await
}

fn check(request: &Request, expected: &[u8]) -> Result<(), ApiError> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "this endpoint requires `Authorization: Bearer <token>`",
        ))?
        .as_bytes();
    let given = value
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| &value[7..])
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must use the Bearer scheme",
        ))?;
    if bool::from(given.ct_eq(expected)) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("invalid bearer token"))
    }
}
