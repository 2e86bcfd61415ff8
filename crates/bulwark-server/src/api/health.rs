//! `GET /health`: whether each component can do its job.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark::breaker::State as BreakerState;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorDetail;
use crate::state::AppState;

/// A component's (or the whole service's) condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Working.
    Healthy,
    /// Working with reduced capacity (e.g. a circuit breaker is open).
    Degraded,
    /// Not working.
    Unhealthy,
}

/// One component.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Component {
    status: Status,
    detail: String,
}

/// The health report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// The worst status of any component.
    status: Status,
    version: &'static str,
    uptime_seconds: f64,
    /// Per component: `checkpoint_store`, `trace_store`, `rate_limiters`,
    /// `circuit_breakers` (any not closed: degraded), `workflows`.
    components: BTreeMap<&'static str, Component>,
    /// Present when unhealthy, so that every 5xx carries the API's error shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

fn component(status: Status, detail: impl Into<String>) -> Component {
    Component {
        status,
        detail: detail.into(),
    }
}

/// The service's health, component by component.
#[utoipa::path(
    get,
    path = "/api/observability/health",
    tag = "observability",
    responses(
        (status = 200, description = "Healthy or degraded", body = Health),
        (status = 503, description = "A component is unhealthy", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let mut components = BTreeMap::new();
    let dir = state.checkpoint_dir().display().to_string();
    // Damaged checkpoint files (headers that do not decode) leave the store working but
    // lose data: degraded, with their names (issue 12 defect 4).
    let unreadable = state
        .checkpoint_manager()
        .store()
        .unreadable()
        .await
        .unwrap_or_default();
    components.insert(
        "checkpoint_store",
        match state.probe_checkpoint_store().await {
            Ok(()) if !unreadable.is_empty() => {
                let names: Vec<_> = unreadable.iter().take(5).map(|u| u.name.as_str()).collect();
                component(
                    Status::Degraded,
                    format!(
                        "{} checkpoint file(s) do not decode (see `bulwark checkpoints verify`): {}{}",
                        unreadable.len(),
                        names.join(", "),
                        if unreadable.len() > names.len() { ", ..." } else { "" }
                    ),
                )
            }
            Ok(()) if state.checkpoint_backend() == "postgres" => {
                component(Status::Healthy, "PostgreSQL store answers")
            }
            Ok(()) => component(Status::Healthy, format!("fs store at {dir} is writable")),
            Err(error) => component(Status::Unhealthy, error),
        },
    );
    let limiters = state.ratelimiters().list().len();
    components.insert(
        "rate_limiters",
        match state.redis_limiter() {
            None => component(
                Status::Healthy,
                format!("{limiters} limiter(s), local backend"),
            ),
            // Decisions fall back to a local limiter while Redis is away: degraded, not down.
            Some(redis) if redis.ping().await => component(
                Status::Healthy,
                "workflow limit shared through Redis (reachable)",
            ),
            Some(_) => component(
                Status::Degraded,
                "Redis unreachable: workflow limits decided locally until it returns",
            ),
        },
    );
    let traces = state.trace_store();
    let stored = traces.stats();
    components.insert(
        "trace_store",
        component(
            Status::Healthy,
            format!(
                "in memory: {} span(s) in {} trace(s), {} of {} bytes; evicted by age {}, count {}, bytes {}",
                traces.len(),
                traces.trace_count(),
                stored.bytes,
                stored.max_bytes,
                stored.evicted.age,
                stored.evicted.count,
                stored.evicted.bytes,
            ),
        ),
    );
    let snapshots = state.breakers().snapshot();
    let open: Vec<_> = snapshots
        .iter()
        .filter(|b| {
            matches!(
                b.state,
                BreakerState::Open | BreakerState::ForcedOpen | BreakerState::HalfOpen
            )
        })
        .map(|b| format!("{} ({})", b.name, b.state))
        .collect();
    components.insert(
        "circuit_breakers",
        if open.is_empty() {
            component(
                Status::Healthy,
                format!("{} breaker(s), all closed", snapshots.len()),
            )
        } else {
            component(Status::Degraded, format!("not closed: {}", open.join(", ")))
        },
    );
    let workflows = state.workflows().names();
    components.insert(
        "workflows",
        component(
            if workflows.is_empty() {
                Status::Degraded
            } else {
                Status::Healthy
            },
            format!("registered: {}", workflows.join(", ")),
        ),
    );
    let status = components
        .values()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Healthy);
    let code = if status == Status::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let error = (status == Status::Unhealthy).then(|| {
        let failing: Vec<_> = components
            .iter()
            .filter(|(_, c)| c.status == Status::Unhealthy)
            .map(|(name, c)| format!("{name}: {}", c.detail))
            .collect();
        ErrorDetail {
            code: "unhealthy".into(),
            message: failing.join("; "),
        }
    });
    let body = Health {
        error,
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.uptime_seconds(),
        components,
    };
    (code, Json(body)).into_response()
}
