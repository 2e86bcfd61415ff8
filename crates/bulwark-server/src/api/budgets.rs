//! `GET /budgets`: every budget key with its spending now.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::state::AppState;

/// One budget for one key.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BudgetView {
    /// The budget's name.
    budget: String,
    /// The key (tenant, agent, run…); empty for a global budget.
    key: String,
    /// `tokens`, `input_tokens`, `output_tokens`, `requests` or `nano_usd`.
    unit: &'static str,
    /// The limit in force now.
    limit: u64,
    /// The soft limit, if any.
    soft_limit: Option<u64>,
    /// Settled in the current window.
    spent: u64,
    /// Held by calls in flight.
    reserved: u64,
    /// What a call can still reserve.
    remaining: u64,
    /// Milliseconds until the window resets; null when it never does.
    resets_in_ms: Option<u64>,
}

/// The list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BudgetList {
    budgets: Vec<BudgetView>,
}

/// Lists the budgets.
#[utoipa::path(
    get,
    path = "/api/observability/budgets",
    tag = "observability",
    responses(
        (status = 200, description = "Every budget key in use, sorted by budget and key", body = BudgetList),
        (status = 405, description = "Wrong method", body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<BudgetList> {
    let mut budgets: Vec<BudgetView> = state
        .budgets()
        .snapshot()
        .into_iter()
        .map(|s| BudgetView {
            budget: s.budget,
            key: s.key,
            unit: s.unit.as_str(),
            limit: s.limit,
            soft_limit: s.soft_limit,
            spent: s.spent,
            reserved: s.reserved,
            remaining: s.remaining,
            resets_in_ms: s
                .resets_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
        .collect();
    budgets.sort_by(|a, b| (&a.budget, &a.key).cmp(&(&b.budget, &b.key)));
    Json(BudgetList { budgets })
}
