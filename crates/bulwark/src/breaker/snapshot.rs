//! What the HTTP API lists about a breaker.

use std::time::Duration;

use serde::Serialize;

use super::config::CircuitBreakerConfig;
use super::state::State;
use crate::serde_duration;

/// One breaker as the HTTP API lists it. Durations serialize as whole milliseconds
/// (`*_ms` fields), `null` when absent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The breaker's name.
    pub name: String,
    /// Its state now.
    pub state: State,
    /// The config it enforces.
    pub config: CircuitBreakerConfig,
    /// Calls that succeeded, since the breaker was built.
    pub successes: u64,
    /// Calls that failed (slow calls included), since the breaker was built.
    pub failures: u64,
    /// Calls refused, since the breaker was built.
    pub rejected: u64,
    /// The current run of consecutive failures (CLOSED, consecutive mode).
    pub consecutive_failures: u32,
    /// Trial calls running now.
    pub trials_in_flight: u32,
    /// What the sliding window holds now, in sliding-window mode.
    pub window: Option<WindowCounts>,
    /// Time since the last change of state; `None` if it never changed.
    #[serde(rename = "since_last_transition_ms", with = "serde_duration::millis")]
    pub since_last_transition: Option<Duration>,
    /// Wall-clock time of the last change of state, in milliseconds since the Unix epoch.
    pub last_transition_unix_ms: Option<u64>,
    /// Time until the next trial call is admitted, when OPEN.
    #[serde(rename = "next_trial_in_ms", with = "serde_duration::millis")]
    pub next_trial_in: Option<Duration>,
}

/// The calls a sliding window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WindowCounts {
    /// Failed calls in the window.
    pub failures: u64,
    /// All calls in the window.
    pub calls: u64,
}
