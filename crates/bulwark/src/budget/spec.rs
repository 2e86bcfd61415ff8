//! What a budget is: a unit, a limit, an optional soft limit and the period it resets on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::usage::Usage;
use crate::clock::duration_to_nanos;

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// What a budget counts. A call charges each budget of its stack in that budget's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unit {
    /// Input (cached included) plus output tokens: a provider's tokens-per-minute limit.
    Tokens,
    /// Input tokens only, cached included (Anthropic's input-tokens-per-minute limit).
    InputTokens,
    /// Output tokens only (Anthropic's output-tokens-per-minute limit).
    OutputTokens,
    /// One per call: a provider's requests-per-minute limit.
    Requests,
    /// Money, in nano-dollars (10⁻⁹ USD), priced by the ledger's [`PriceTable`](super::PriceTable).
    Cost,
}

impl Unit {
    /// The amount of `usage` in this unit; `cost` is the usage's price in nano-dollars.
    pub(crate) fn amount(self, usage: &Usage, cost: u64) -> u64 {
        match self {
            Unit::Tokens => usage.total_tokens(),
            Unit::InputTokens => usage.input_tokens.saturating_add(usage.cached_input_tokens),
            Unit::OutputTokens => usage.output_tokens,
            Unit::Requests => 1,
            Unit::Cost => cost,
        }
    }

    /// The name used in metrics, the API and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Tokens => "tokens",
            Unit::InputTokens => "input_tokens",
            Unit::OutputTokens => "output_tokens",
            Unit::Requests => "requests",
            Unit::Cost => "nano_usd",
        }
    }
}

/// When a budget's spending goes back to zero. Windows are fixed and aligned on Unix time in
/// UTC: `Every(60s)` resets on each whole minute, `Day` at 00:00 UTC, `Month` on the 1st.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Period {
    /// Fixed windows of this length, aligned on the Unix epoch.
    Every(#[serde(with = "crate::serde_duration")] Duration),
    /// Calendar days, UTC.
    Day,
    /// Calendar months, UTC.
    Month,
    /// Never resets: a budget for one workflow run or one agent's lifetime.
    Never,
}

impl Period {
    /// Windows of one minute: a provider's per-minute limits.
    pub const fn minute() -> Self {
        Period::Every(Duration::from_secs(60))
    }

    /// The window holding `unix_nanos` and the Unix time (nanoseconds) at which it ends
    /// (`u64::MAX` for [`Period::Never`]).
    pub(crate) fn window(self, unix_nanos: u64) -> (u64, u64) {
        match self {
            Period::Every(length) => {
                let length = duration_to_nanos(length).max(1);
                let index = unix_nanos / length;
                (index, index.saturating_add(1).saturating_mul(length))
            }
            Period::Day => {
                let day = unix_nanos / NANOS_PER_DAY;
                (day, day.saturating_add(1).saturating_mul(NANOS_PER_DAY))
            }
            Period::Month => {
                let day = i64::try_from(unix_nanos / NANOS_PER_DAY).unwrap_or(i64::MAX);
                let (year, month, _) = civil_from_days(day);
                let index = u64::try_from(year * 12 + i64::from(month) - 1).unwrap_or(0);
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                let next = u64::try_from(days_from_civil(next_year, next_month, 1)).unwrap_or(0);
                (index, next.saturating_mul(NANOS_PER_DAY))
            }
            Period::Never => (0, u64::MAX),
        }
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's `days_from_civil`.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One kind of budget: every key (tenant, agent, run…) of it gets `limit` per `period`.
///
/// Limits are inclusive: a reservation that brings the amount used to exactly `limit` is
/// admitted, one unit more is refused. The soft limit, when set, is crossed when the amount
/// used reaches it; that is an event (once per window), never a refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BudgetSpec {
    /// The budget's name, e.g. `openai/gpt-4o:tpm` or `tenant:daily_cost`.
    pub name: String,
    /// What it counts.
    pub unit: Unit,
    /// The hard limit per period, inclusive.
    pub limit: u64,
    /// The soft limit per period, inclusive; at most `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_limit: Option<u64>,
    /// When the amount used goes back to zero.
    pub period: Period,
}

impl BudgetSpec {
    /// A budget named `name` of `limit` in `unit` per `period`, without a soft limit.
    pub fn new(name: impl Into<String>, unit: Unit, limit: u64, period: Period) -> Self {
        Self {
            name: name.into(),
            unit,
            limit,
            soft_limit: None,
            period,
        }
    }

    /// A soft limit: crossing it is an event and a metric, not a refusal.
    pub fn soft_limit(mut self, soft_limit: u64) -> Self {
        self.soft_limit = Some(soft_limit);
        self
    }

    /// Checks the spec: a name, a period of at least one millisecond, a soft limit not above
    /// the hard one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if let Period::Every(length) = self.period
            && length < Duration::from_millis(1)
        {
            return Err(ConfigError::PeriodTooShort {
                budget: self.name.clone(),
            });
        }
        if let Some(soft) = self.soft_limit
            && soft > self.limit
        {
            return Err(ConfigError::SoftAboveHard {
                budget: self.name.clone(),
                soft,
                hard: self.limit,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips_over_four_centuries() {
        for days in (-200_000..200_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn month_windows_end_on_the_first_of_the_next_month() {
        // 2026-02-15T12:00:00Z
        let mid_february = 1_771_156_800u64 * 1_000_000_000;
        let (index, end) = Period::Month.window(mid_february);
        assert_eq!(index, 2026 * 12 + 1);
        // 2026-03-01T00:00:00Z
        assert_eq!(end, 1_772_323_200u64 * 1_000_000_000);
        let (next, _) = Period::Month.window(end);
        assert_eq!(next, index + 1);
    }
}
