//! `GET /api/openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! `#[utoipa::path]` annotations, then given the limits the server enforces (the
//! [`Contract`] modifier), so that a request valid under the document is one the server
//! accepts: id patterns and lengths, `limit` ranges, unsigned integers as `minimum: 0`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    alerts, breakers, budgets, checkpoints, health, metrics, ratelimiters, traces, workflows,
};
use crate::error::{ErrorBody, ErrorDetail};

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Bulwark API", description = "Observability of Bulwark's primitives and hardened workflow runs"),
    paths(
        health::health,
        alerts::list,
        alerts::rules,
        ratelimiters::list,
        budgets::list,
        checkpoints::list,
        checkpoints::show,
        checkpoints::state,
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
        workflows::definitions,
        workflows::runs,
        workflows::show,
        workflows::resume,
        workflows::cancel,
        workflows::fork,
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

/// A checkpoint id: a UUIDv7 in its canonical hyphenated form.
pub const CHECKPOINT_ID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// A W3C trace id: 32 lowercase hex digits (all zeros is a valid request that finds nothing).
pub const TRACE_ID_PATTERN: &str = "^[0-9a-f]{32}$";
/// A workflow run id ([`crate::workflow::valid_run_id`]).
pub const RUN_ID_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";
/// A retention age the server reads (a subset of humantime: one number and one unit).
pub const MAX_AGE_PATTERN: &str = "^[1-9][0-9]{0,5}(s|m|h|d)$";

/// Declares the limits the handlers enforce but the annotations cannot say.
#[derive(Debug)]
struct Contract;

fn string_schema(pattern: &str, min: usize, max: usize) -> serde_json::Value {
    serde_json::json!({
        "type": "string", "pattern": pattern, "minLength": min, "maxLength": max,
    })
}

/// A `u64` the server reads: 0 to `u64::MAX`.
fn unsigned() -> serde_json::Value {
    serde_json::json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
}

impl Contract {
    /// The schema a parameter of this name and place really takes, if the annotation's is
    /// looser.
    fn parameter(name: &str, location: &str) -> Option<serde_json::Value> {
        Some(match (name, location) {
            ("checkpoint_id", _) | ("cursor", "query") => {
                string_schema(CHECKPOINT_ID_PATTERN, 36, 36)
            }
            ("trace_id", "path") => string_schema(TRACE_ID_PATTERN, 32, 32),
            ("workflow_id" | "run_id", "path") => string_schema(RUN_ID_PATTERN, 1, 128),
            ("workflow", "query") => serde_json::json!({"type": "string", "minLength": 1}),
            ("name", "path") => serde_json::json!({"type": "string", "minLength": 1}),
            ("limit", "query") => serde_json::json!({
                "type": "integer", "format": "int64", "minimum": 1,
                "maximum": crate::api::MAX_LIMIT,
            }),
            ("min_duration_ms", "query") => unsigned(),
            _ => return None,
        })
    }

    fn patch(document: &mut serde_json::Value) {
        let Some(paths) = document["paths"].as_object_mut() else {
            return;
        };
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                if let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(|p| p.as_array_mut())
                {
                    for parameter in parameters {
                        let name = parameter["name"].as_str().unwrap_or_default();
                        let location = parameter["in"].as_str().unwrap_or_default();
                        if let Some(schema) = Self::parameter(name, location) {
                            parameter["schema"] = schema;
                        }
                    }
                }
                if path == "/api/observability/checkpoints/cleanup" {
                    Self::cleanup_body(operation);
                }
            }
        }
        let schemas = &mut document["components"]["schemas"];
        // Inputs and patches are any JSON value (`null` the same as absent).
        for (schema, field) in [
            ("ExecuteRequest", "input"),
            ("ExecuteRequest", "state"),
            ("ResumeRequest", "input"),
            ("ForkRequest", "patch"),
            ("RunView", "state"),
            ("InterruptView", "payload"),
        ] {
            if let Some(body) = schemas.get_mut(schema) {
                if schema.ends_with("Request") {
                    body["additionalProperties"] = serde_json::Value::Bool(false);
                    // Absent is the same as `null`: a request need not send it.
                    if let Some(required) = body.get_mut("required").and_then(|r| r.as_array_mut())
                    {
                        required.retain(|name| name != field);
                    }
                }
                if let Some(property) = body.pointer_mut(&format!("/properties/{field}")) {
                    let description = property["description"].clone();
                    *property = serde_json::json!({ "description": description });
                }
            }
        }
        if let Some(fork) = schemas.pointer_mut("/ForkRequest/properties/checkpoint_id") {
            *fork = string_schema(CHECKPOINT_ID_PATTERN, 36, 36);
        }
        if let Some(execute) = schemas.get_mut("ExecuteRequest") {
            execute["additionalProperties"] = serde_json::Value::Bool(false);
            if let Some(workflow) = execute.pointer_mut("/properties/workflow") {
                *workflow = serde_json::json!({
                    "type": ["string", "null"], "minLength": 1, "maxLength": 128,
                    "description": "The registered workflow definition to run; default `demo`",
                });
            }
        }
    }

    /// The retention policy the cleanup handler really takes: every rule optional (none means
    /// the configured policy), `null` the same as absent, counts at least 1, no other fields.
    fn cleanup_body(operation: &mut serde_json::Value) {
        let Some(schema) = operation.pointer_mut("/requestBody/content/application~1json/schema")
        else {
            return;
        };
        let count =
            serde_json::json!({"type": ["integer", "null"], "minimum": 1, "maximum": u64::MAX});
        *schema = serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "keep_last": count,
                "max_checkpoints": count,
                "max_age": {"type": ["string", "null"], "pattern": MAX_AGE_PATTERN},
                "max_total_bytes": {"type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX},
                "dry_run": {"type": ["boolean", "null"]},
            },
        });
    }
}

/// The served document: utoipa's, with [`Contract`]'s limits written in. The patch works on
/// the JSON itself, since some of what it declares (a property that takes any JSON value)
/// has no utoipa type to go back into.
pub fn document_json() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    Contract::patch(&mut document);
    document
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "observability",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"))
)]
pub(crate) async fn document() -> Json<serde_json::Value> {
    Json(document_json())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_served_document_carries_the_contracts_limits() {
        let document = document_json();
        let parameter = |path: &str, method: &str| {
            document["paths"][path][method]["parameters"][0]["schema"].clone()
        };
        assert_eq!(
            parameter("/api/observability/checkpoints/{checkpoint_id}", "get")["pattern"],
            CHECKPOINT_ID_PATTERN
        );
        assert_eq!(
            parameter("/api/observability/traces/{trace_id}", "get")["pattern"],
            TRACE_ID_PATTERN
        );
        assert_eq!(
            parameter("/api/workflows/runs/{run_id}", "get")["pattern"],
            RUN_ID_PATTERN
        );
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["ExecuteRequest"]["additionalProperties"], false);
        let required = schemas["ExecuteRequest"]["required"].as_array().cloned();
        assert!(
            required.unwrap_or_default().is_empty(),
            "an empty execute body is valid"
        );
        let operations = document["paths"].as_object().unwrap().values();
        for operation in operations.flat_map(|item| item.as_object().unwrap().values()) {
            assert!(!operation["parameters"].is_null() || operation.get("parameters").is_none());
        }
        assert!(
            schemas["RunView"]["properties"]["state"]
                .get("type")
                .is_none()
        );
        assert_eq!(
            schemas["ForkRequest"]["properties"]["checkpoint_id"]["pattern"],
            CHECKPOINT_ID_PATTERN
        );
    }
}
