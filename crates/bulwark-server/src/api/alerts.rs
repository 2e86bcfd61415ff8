//! `/alerts` and `/alert-rules`: the alert engine's current alerts and its rules.

use axum::Json;
use axum::extract::State;
use bulwark::alerting::export::expression;
use bulwark::alerting::notify::QueueStats;
use bulwark::alerting::{Alert, AlertState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// An alert state to filter on.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StateFilter {
    /// Condition holds, `for` not elapsed.
    Pending,
    /// Notified.
    Firing,
    /// Over, listed for a while.
    Resolved,
}

/// `GET /alerts` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertsQuery {
    /// Only alerts in this state.
    state: Option<StateFilter>,
    /// Only alerts of this rule.
    rule: Option<String>,
}

/// Current alerts and the notifiers' queues.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertList {
    /// Pending and firing alerts by rule and labels, then recently resolved ones (each with
    /// `rule`, `state`, `labels`, `annotations`, `value`, `active_since_unix_ms`,
    /// `fired_at_unix_ms`, `resolved_at_unix_ms`, `next_trial_in_ms`, `generator_url`).
    #[schema(value_type = Vec<Object>)]
    alerts: Vec<Alert>,
    /// Each notifier's queue depth and delivery counts.
    #[schema(value_type = Vec<Object>)]
    notifiers: Vec<QueueStats>,
}

/// Lists current alerts.
#[utoipa::path(
    get,
    path = "/api/observability/alerts",
    tag = "observability",
    params(AlertsQuery),
    responses(
        (status = 200, description = "Alerts", body = AlertList),
        (status = 400, description = "Bad filter", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AlertsQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let engine = state.alerts();
    let wanted = query.state.map(|s| match s {
        StateFilter::Pending => AlertState::Pending,
        StateFilter::Firing => AlertState::Firing,
        StateFilter::Resolved => AlertState::Resolved,
    });
    let alerts = engine
        .alerts()
        .into_iter()
        .filter(|a| wanted.is_none_or(|w| a.state == w))
        .filter(|a| query.rule.as_ref().is_none_or(|r| &a.rule == r))
        .collect();
    Ok(Json(AlertList {
        alerts,
        notifiers: engine.queue_stats(),
    }))
}

/// One rule as the API lists it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleView {
    /// The rule's name (`alertname`).
    name: String,
    /// The condition's kind.
    condition: &'static str,
    /// The same condition in PromQL (as `bulwark alerts export-rules` writes it).
    expr: String,
    /// `for`, in milliseconds.
    for_ms: u64,
    /// `keep_firing_for`, in milliseconds.
    keep_firing_for_ms: u64,
    /// Labels added to its alerts.
    #[schema(value_type = Object)]
    labels: std::collections::BTreeMap<String, String>,
    /// Annotation templates.
    #[schema(value_type = Object)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The rules and how often they run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleList {
    /// Time between evaluations, in milliseconds.
    interval_ms: u64,
    /// The rules.
    rules: Vec<RuleView>,
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Lists the alert rules.
#[utoipa::path(
    get,
    path = "/api/observability/alert-rules",
    tag = "observability",
    responses((status = 200, description = "Rules", body = RuleList))
)]
pub(crate) async fn rules(State(state): State<AppState>) -> Json<RuleList> {
    let engine = state.alerts();
    let rules = engine
        .rules()
        .iter()
        .map(|r| RuleView {
            name: r.name.clone(),
            condition: r.condition.kind(),
            expr: expression(r).0,
            for_ms: millis(r.for_),
            keep_firing_for_ms: millis(r.keep_firing_for),
            labels: r.labels.clone(),
            annotations: r.annotations.clone(),
        })
        .collect();
    Json(RuleList {
        interval_ms: millis(engine.config().interval),
        rules,
    })
}
