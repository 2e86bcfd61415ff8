//! Budget errors: a bad definition, and the typed refusal of a call.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::spec::Unit;

/// A budget, a price or a ledger that cannot be built as given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A budget without a name.
    #[error("a budget needs a name")]
    EmptyName,
    /// Two budgets with one name.
    #[error("budget `{0}` is defined twice")]
    Duplicate(String),
    /// A window shorter than a millisecond.
    #[error("budget `{budget}`: a period must be at least 1ms")]
    PeriodTooShort {
        /// The budget.
        budget: String,
    },
    /// A soft limit above the hard limit.
    #[error("budget `{budget}`: soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard {
        /// The budget.
        budget: String,
        /// Its soft limit.
        soft: u64,
        /// Its hard limit.
        hard: u64,
    },
    /// A price that is negative, not a number or above $1M per million tokens.
    #[error("model `{model}`: price {value} is not a dollar amount in [0, 1e6] per 1M tokens")]
    BadPrice {
        /// The model.
        model: String,
        /// The price given.
        value: f64,
    },
    /// A price file that is not valid TOML of the expected shape.
    #[error("price table: {0}")]
    PriceToml(String),
    /// A limit the backend cannot hold exactly (Redis: numbers above 2^53).
    #[error("budget `{budget}`: limit {limit} is above the backend's exact range {max}")]
    LimitTooLarge {
        /// The budget.
        budget: String,
        /// Its limit.
        limit: u64,
        /// The largest limit allowed.
        max: u64,
    },
}

/// A hard budget refused a call: which one, how much is left, when it resets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BudgetExceeded {
    /// The budget's name.
    pub budget: String,
    /// The budget's key (tenant, agent, run…); empty for a global budget.
    pub key: String,
    /// Its unit.
    pub unit: Unit,
    /// Its limit in force (the hard limit, or lower when a provider said so).
    pub limit: u64,
    /// Amount already spent or reserved in the current window.
    pub used: u64,
    /// Amount the call asked for.
    pub requested: u64,
    /// `limit - used`: what a smaller call could still take.
    pub remaining: u64,
    /// Time until the window resets; `None` for a budget that never resets.
    #[serde(
        rename = "resets_in_ms",
        serialize_with = "crate::serde_duration::millis::serialize"
    )]
    pub resets_in: Option<Duration>,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "budget `{}`{}{} exceeded: {} {} requested, {} of {} left",
            self.budget,
            if self.key.is_empty() { "" } else { " for " },
            self.key,
            self.requested,
            self.unit.as_str(),
            self.remaining,
            self.limit
        )?;
        match self.resets_in {
            Some(wait) => write!(f, ", resets in {wait:?}"),
            None => write!(f, ", never resets"),
        }
    }
}

impl std::error::Error for BudgetExceeded {}

/// Why a reservation or a settlement did not happen. Nothing was reserved when it is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A hard limit refused the call.
    #[error(transparent)]
    Exceeded(#[from] BudgetExceeded),
    /// A cost budget is in the stack but the model has no price.
    #[error("model `{0}` has no price, and a cost budget needs one")]
    UnknownModel(String),
    /// No budget of that name is defined.
    #[error("no budget named `{0}`")]
    UnknownBudget(String),
    /// More budgets in one stack than a reservation holds.
    #[error("a call can fall under at most {max} budgets, got {got}")]
    StackTooDeep {
        /// Budgets given.
        got: usize,
        /// The most allowed.
        max: usize,
    },
    /// A reservation record that this ledger did not make or cannot read.
    #[error("invalid reservation record: {0}")]
    InvalidRecord(String),
    /// The shared backend could not decide.
    #[error("budget backend unavailable: {0}")]
    Unavailable(String),
}

impl BudgetError {
    /// The refusal, when a hard limit refused the call.
    pub fn exceeded(&self) -> Option<&BudgetExceeded> {
        match self {
            BudgetError::Exceeded(exceeded) => Some(exceeded),
            _ => None,
        }
    }
}
