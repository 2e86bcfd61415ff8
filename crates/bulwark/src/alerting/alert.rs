//! What an alert is, as the API lists it and notifiers send it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Where an alert is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds, `for` has not elapsed yet. Never notified.
    Pending,
    /// Notified, re-sent while it lasts.
    Firing,
    /// Over; announced once.
    Resolved,
}

impl AlertState {
    /// `pending`, `firing` or `resolved`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert: a rule and one label set.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// The rule's name (also the `alertname` label).
    pub rule: String,
    /// Its state.
    pub state: AlertState,
    /// Its labels: the series' labels, the rule's labels and `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, filled in.
    pub annotations: BTreeMap<String, String>,
    /// The value that last made the condition hold.
    pub value: f64,
    /// Since when the condition holds (the breaker's own transition time for breaker rules),
    /// in milliseconds since the Unix epoch.
    pub active_since_unix_ms: u64,
    /// When it started firing.
    pub fired_at_unix_ms: Option<u64>,
    /// When it was resolved.
    pub resolved_at_unix_ms: Option<u64>,
    /// For breaker rules while OPEN: time until the breaker's next trial call.
    #[serde(rename = "next_trial_in_ms", with = "crate::serde_duration::millis")]
    pub next_trial_in: Option<Duration>,
    /// Where to look: the breaker, checkpoint list or rule in the API.
    pub generator_url: String,
}

/// A change of an alert's state, as the event stream carries it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertEvent {
    /// The state entered.
    pub state: AlertState,
    /// The alert after the change.
    pub alert: Alert,
}

/// One alert as a notifier sends it (Alertmanager's v2 `postableAlert` shape).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Notice {
    /// `firing` or `resolved`.
    pub state: AlertState,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started.
    pub starts_at: SystemTime,
    /// While firing: a time safely after the next re-send, so that Alertmanager does not resolve
    /// it between two sends; when resolved: the resolve time.
    pub ends_at: SystemTime,
    /// Where to look.
    pub generator_url: String,
}

/// What one delivery carries: the alerts of one evaluation that are due.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Batch {
    /// Increasing per engine.
    pub id: u64,
    /// The alerts.
    pub notices: Vec<Notice>,
}

impl Batch {
    /// Whether it announces a resolve (such batches are retried until delivered or dropped by
    /// the queue bound, never given up).
    pub fn has_resolve(&self) -> bool {
        self.notices.iter().any(|n| n.state == AlertState::Resolved)
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// RFC 3339 with milliseconds, UTC, as Alertmanager reads it.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
