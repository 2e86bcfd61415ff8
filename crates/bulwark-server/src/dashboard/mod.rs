//! The dashboard: `/` and `/dashboard` answer the page, `/dashboard/assets/{file}` its scripts
//! and styles. Every file is embedded in the binary at build time (`include_bytes!` of
//! `crates/bulwark-server/dashboard/`), so the page works offline and `cargo run` needs no Node.
//! The page reads the same JSON API as curl and follows `/api/observability/events`.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::AppState;

/// One embedded file: its name under `assets/`, its type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../../dashboard/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../dashboard/app.js"),
    },
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../dashboard/views.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../dashboard/app.css"),
    },
];

/// Scripts and styles from this server only; no inline script, no fetch elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn respond(content_type: &'static str, bytes: &'static [u8], cache: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn index() -> Response {
    respond("text/html; charset=utf-8", INDEX, "no-cache")
}

async fn asset(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| respond(a.content_type, a.bytes, "no-cache"))
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard asset {name:?}")))
}

/// The page and its assets.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/assets/{name}", get(asset))
}
