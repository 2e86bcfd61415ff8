//! `GET /health`: is each component able to do its job.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::state::AppState;

/// The health report.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
    uptime_seconds: f64,
}

pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "healthy",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.uptime_seconds(),
    })
}
