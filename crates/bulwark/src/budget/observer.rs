//! Budget events for telemetry and alerting: observers see them and cannot change a decision.

use super::error::BudgetExceeded;
use super::spec::Unit;
use super::usage::Usage;

/// Something that happened to a budget.
#[derive(Debug)]
#[non_exhaustive]
pub enum BudgetEvent<'a> {
    /// A hard limit refused a call.
    Rejected(&'a BudgetExceeded),
    /// The amount used reached a soft limit (reported once per window).
    SoftLimitCrossed {
        /// The budget.
        budget: &'a str,
        /// Its key.
        key: &'a str,
        /// Its unit.
        unit: Unit,
        /// Amount used (spent and reserved) now.
        used: u64,
        /// The soft limit.
        soft_limit: u64,
    },
    /// A reservation was never settled and was given back at its deadline.
    Expired {
        /// The reservation's id.
        id: &'a str,
    },
    /// A call was settled with its real usage.
    Settled {
        /// The model, when the call named one.
        model: Option<&'a str>,
        /// The usage reported.
        usage: &'a Usage,
        /// Its cost in nano-dollars (zero without a price).
        cost: u64,
        /// Whether a budget ended above its limit (the call used more than it reserved).
        overspent: bool,
    },
}

/// Hears every [`BudgetEvent`] of a ledger, after the decision and outside its lock.
pub trait BudgetObserver: Send + Sync + 'static {
    /// Called once per event.
    fn on_budget_event(&self, event: &BudgetEvent<'_>);
}
