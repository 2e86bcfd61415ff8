//! The primitives' observer hooks, turned into events on a bus. No primitive learns of the bus.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use super::bus::EventBus;
use super::event::{EventKind, NewEvent};
use crate::breaker::{BreakerListener, Transition};
use crate::checkpoint::{CheckpointEvent, CheckpointObserver};
use crate::clock::{Clock, MonotonicClock};
use crate::ratelimit::{Decision, RateLimitObserver};

/// A breaker listener that publishes each transition.
#[derive(Clone, Debug)]
pub struct BreakerEvents {
    bus: EventBus,
}

impl BreakerEvents {
    /// Publishes on `bus`.
    pub fn new(bus: EventBus) -> Self {
        Self { bus }
    }
}

impl BreakerListener for BreakerEvents {
    /// Transitions only: a breaker with just this listener reads no clock per call.
    fn wants_calls(&self) -> bool {
        false
    }

    fn on_transition(&self, t: &Transition<'_>) {
        self.bus.publish_at(
            NewEvent::new(
                EventKind::Breaker,
                t.breaker,
                "transition",
                json!({
                    "from": t.from.as_str(),
                    "to": t.to.as_str(),
                    "reason": t.reason.as_str(),
                }),
            ),
            t.wall_time,
        );
    }
}

/// Keys of the aggregation map above which it is cleared (bounding its memory).
const MAX_KEYS: usize = 4096;

/// A limiter observer that publishes rejections, at most one event per limiter and key per
/// second: the first rejection of a key in a second is published at once with `count`, the
/// rejections of that key since its previous event (this one included); later ones in the
/// same second are only counted and carried by the key's next event. Admissions cost one
/// branch.
#[derive(Debug)]
pub struct LimiterEvents<C: Clock = MonotonicClock> {
    bus: EventBus,
    clock: C,
    window: Mutex<HashMap<String, (u64, u64)>>,
}

impl LimiterEvents {
    /// Publishes on `bus`, with seconds on the real clock.
    pub fn new(bus: EventBus) -> Self {
        Self::with_clock(bus, MonotonicClock::new())
    }
}

impl<C: Clock> LimiterEvents<C> {
    /// Publishes on `bus`, with seconds on `clock`.
    pub fn with_clock(bus: EventBus, clock: C) -> Self {
        Self {
            bus,
            clock,
            window: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: Clock> RateLimitObserver for LimiterEvents<C> {
    fn on_decision(&self, d: &Decision<'_>) {
        if d.allowed {
            return;
        }
        let limiter = d.limiter.unwrap_or("unnamed");
        let key = d.key.map(|k| format!("{k:?}"));
        let second = self.clock.now().as_secs();
        let count = {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            if window.len() >= MAX_KEYS {
                window.clear();
            }
            let slot = format!("{limiter}\u{0}{}", key.as_deref().unwrap_or(""));
            let entry = window.entry(slot).or_insert((u64::MAX, 0));
            entry.1 += 1;
            if entry.0 == second {
                return;
            }
            entry.0 = second;
            std::mem::take(&mut entry.1)
        };
        self.bus.publish(NewEvent::new(
            EventKind::Limiter,
            limiter,
            "rejected",
            json!({
                "key": key,
                "count": count,
                "requested": d.requested,
                "retry_after_ms": d.retry_after.map(duration_ms),
            }),
        ));
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A checkpoint observer that publishes saves, deletions and corruptions (not loads).
#[derive(Clone, Debug)]
pub struct CheckpointEvents {
    bus: EventBus,
}

impl CheckpointEvents {
    /// Publishes on `bus`.
    pub fn new(bus: EventBus) -> Self {
        Self { bus }
    }
}

impl CheckpointObserver for CheckpointEvents {
    fn on_event(&self, event: &CheckpointEvent<'_>) {
        let event = match event {
            CheckpointEvent::Saved {
                metadata: m,
                duration,
            } => NewEvent::new(
                EventKind::Checkpoint,
                m.workflow_id.clone(),
                "saved",
                json!({
                    "checkpoint_id": m.id.to_string(),
                    "agent_id": m.agent_id,
                    "sequence": m.sequence,
                    "codec": m.codec,
                    "stored_size": m.stored_size,
                    "duration_ms": duration_ms(*duration),
                }),
            ),
            CheckpointEvent::Deleted { id, reason } => NewEvent::new(
                EventKind::Checkpoint,
                "",
                "deleted",
                json!({ "checkpoint_id": id.to_string(), "reason": reason }),
            ),
            CheckpointEvent::Corrupt { id, error } => NewEvent::new(
                EventKind::Checkpoint,
                "",
                "corrupt",
                json!({
                    "checkpoint_id": id.map(|id| id.to_string()),
                    "error": error.to_string(),
                }),
            ),
            _ => return,
        };
        self.bus.publish(event);
    }
}
