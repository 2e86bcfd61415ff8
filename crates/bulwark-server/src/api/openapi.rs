//! `GET /api/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! `#[utoipa::path]` annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{breakers, checkpoints, health, metrics, ratelimiters, traces, workflows};
use crate::error::{ErrorBody, ErrorDetail};

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Bulwark API", description = "Observability of Bulwark's primitives and hardened workflow runs"),
    paths(
        health::health,
        ratelimiters::list,
        checkpoints::list,
        checkpoints::show,
        checkpoints::delete,
        checkpoints::cleanup,
        traces::list,
        traces::show,
        metrics::snapshot,
        metrics::reset,
        metrics::prometheus,
        breakers::list,
        breakers::show,
        breakers::reset,
        breakers::force_open,
        breakers::disable,
        workflows::execute,
        document,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "observability", description = "State of the rate limiters, breakers, checkpoints and telemetry"),
        (name = "checkpoints", description = "Durable, verified checkpoints of workflow state"),
        (name = "circuit-breakers", description = "The breakers around workflow dependencies"),
        (name = "telemetry", description = "Traces and metrics"),
        (name = "workflows", description = "Hardened workflow runs"),
    )
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "observability",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"))
)]
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
