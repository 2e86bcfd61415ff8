//! What one event says: its id, kind, the name of what it is about, what happened and details.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A circuit breaker changed state.
    Breaker,
    /// A rate limiter refused requests.
    Limiter,
    /// A checkpoint was saved, deleted or found corrupt.
    Checkpoint,
    /// A workflow run started, finished a step, finished or failed.
    Workflow,
    /// An alert fired or resolved.
    Alert,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 5] = [
        Self::Breaker,
        Self::Limiter,
        Self::Checkpoint,
        Self::Workflow,
        Self::Alert,
    ];

    /// The snake_case name, as in `?kind=` and in the SSE `event:` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Breaker => "breaker",
            Self::Limiter => "limiter",
            Self::Checkpoint => "checkpoint",
            Self::Workflow => "workflow",
            Self::Alert => "alert",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub(crate) const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One event of the stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Event {
    /// Increasing from 1 within one bus; a reconnecting client sends the last one it saw.
    pub id: u64,
    /// What it is about.
    pub kind: EventKind,
    /// The breaker, limiter, workflow or alert it is about (a checkpoint's workflow id).
    pub name: String,
    /// What happened, in snake_case: `transition`, `rejected`, `saved`, `deleted`, `corrupt`,
    /// `run_started`, `step_done`, `run_finished`, `run_failed`, `fired`, `resolved`.
    pub action: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Details, depending on the kind and action.
    pub data: serde_json::Value,
}

/// An event before the bus gives it an id.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewEvent {
    /// What it is about.
    pub kind: EventKind,
    /// The name of what it is about.
    pub name: String,
    /// What happened.
    pub action: String,
    /// Details.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` about `name`, saying `action`, with `data`.
    pub fn new(
        kind: EventKind,
        name: impl Into<String>,
        action: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            kind,
            name: name.into(),
            action: action.into(),
            data,
        }
    }
}

pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which events a subscriber wants: some kinds and some names, or all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    kinds: u8,
    names: Vec<String>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Also lets events of `kind` through (no kind named means every kind).
    pub fn kind(mut self, kind: EventKind) -> Self {
        self.kinds |= kind.bit();
        self
    }

    /// Also lets events about `name` through (no name named means every name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        (self.kinds == 0 || self.kinds & event.kind.bit() != 0)
            && (self.names.is_empty() || self.names.contains(&event.name))
    }
}
