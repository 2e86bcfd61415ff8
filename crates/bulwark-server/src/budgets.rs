//! `[budgets]`: the token, request and cost budgets this service enforces, shown at
//! `GET /api/observability/budgets`, with their usage and cost in `/metrics`.
//!
//! ```toml
//! [budgets]
//! reservation_ttl = "10m"
//! [[budgets.budget]]
//! name = "tenant:daily_cost"
//! unit = "cost"            # tokens | input_tokens | output_tokens | requests | cost (nano-USD)
//! limit = 5_000_000_000    # $5.00
//! soft_limit = 4_000_000_000
//! period = "day"           # "day" | "month" | "never" | { every = "60s" }
//! [budgets.prices."gpt-4o"]
//! input = 2.50             # dollars per 1M tokens
//! cached_input = 1.25
//! output = 10.00
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bulwark::budget::{
    BudgetEvent, BudgetObserver, BudgetSpec, DEFAULT_RESERVATION_TTL, Ledger, ModelPrice,
    PriceTable,
};
use bulwark::telemetry::Telemetry;
use serde::Deserialize;

/// `[budgets]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BudgetsSection {
    /// `[[budgets.budget]]`: one entry a budget.
    pub budget: Vec<BudgetSpec>,
    /// `[budgets.prices."model"]`: dollars per 1M input, cached input and output tokens.
    pub prices: BTreeMap<String, ModelPrice>,
    /// How long a reservation may stay unsettled before it is given back.
    #[serde(with = "humantime_serde_compat")]
    pub reservation_ttl: Duration,
}

impl Default for BudgetsSection {
    fn default() -> Self {
        Self {
            budget: Vec::new(),
            prices: BTreeMap::new(),
            reservation_ttl: DEFAULT_RESERVATION_TTL,
        }
    }
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl BudgetsSection {
    /// The ledger, with an observer publishing usage, cost and budget events as metrics.
    pub fn ledger(&self, telemetry: &Telemetry) -> Result<Ledger, String> {
        let mut prices = PriceTable::new();
        for (model, price) in &self.prices {
            prices
                .insert(model.clone(), *price)
                .map_err(|e| format!("[budgets.prices]: {e}"))?;
        }
        let mut builder = Ledger::builder()
            .prices(prices)
            .reservation_ttl(self.reservation_ttl)
            .observer(Arc::new(BudgetMetrics {
                telemetry: telemetry.clone(),
            }));
        for spec in &self.budget {
            builder = builder.budget(spec.clone());
        }
        builder.build().map_err(|e| format!("[budgets]: {e}"))
    }
}

/// Budget events as metrics, named after the OpenTelemetry GenAI conventions where they exist,
/// in Prometheus form: `gen_ai_client_token_usage{gen_ai_token_type, gen_ai_request_model}`
/// (`gen_ai.client.token.usage`), then `bulwark_budget_*` for cost, rejections, soft-limit
/// crossings and expired reservations.
struct BudgetMetrics {
    telemetry: Telemetry,
}

impl BudgetObserver for BudgetMetrics {
    fn on_budget_event(&self, event: &BudgetEvent<'_>) {
        let metrics = self.telemetry.metrics();
        // A metric that cannot be recorded (a label-set cap reached) never affects a call.
        let result = match event {
            BudgetEvent::Settled {
                model, usage, cost, ..
            } => {
                let model = model.unwrap_or("unknown");
                let input = usage.input_tokens + usage.cached_input_tokens;
                metrics
                    .add_counter(
                        "gen_ai_client_token_usage",
                        input,
                        &[
                            ("gen_ai_token_type", "input"),
                            ("gen_ai_request_model", model),
                        ],
                    )
                    .and_then(|()| {
                        metrics.add_counter(
                            "gen_ai_client_token_usage",
                            usage.output_tokens,
                            &[
                                ("gen_ai_token_type", "output"),
                                ("gen_ai_request_model", model),
                            ],
                        )
                    })
                    .and_then(|()| {
                        metrics.add_counter(
                            "bulwark_budget_cost_nano_usd",
                            *cost,
                            &[("gen_ai_request_model", model)],
                        )
                    })
            }
            BudgetEvent::Rejected(exceeded) => metrics.add_counter(
                "bulwark_budget_rejections",
                1,
                &[("budget", exceeded.budget.as_str())],
            ),
            BudgetEvent::SoftLimitCrossed { budget, .. } => metrics.add_counter(
                "bulwark_budget_soft_limit_crossings",
                1,
                &[("budget", budget)],
            ),
            BudgetEvent::Expired { .. } => {
                metrics.add_counter("bulwark_budget_expired_reservations", 1, &[])
            }
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "budget metric not recorded");
        }
    }
}
