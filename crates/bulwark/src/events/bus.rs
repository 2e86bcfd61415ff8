//! The bus: a bounded replay ring of recent events and a bounded broadcast to live subscribers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use super::event::{Event, EventFilter, NewEvent, unix_ms};
use super::subscription::Subscription;

/// How large the bus's buffers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventBusConfig {
    /// Events kept for replay to a reconnecting subscriber (`Last-Event-ID`).
    pub replay: usize,
    /// Events a live subscriber may fall behind before it is dropped.
    pub subscriber_buffer: usize,
    /// How often a transport (the SSE route) sends a keep-alive on an idle stream.
    pub heartbeat: Duration,
}

impl Default for EventBusConfig {
    fn default() -> Self {
        Self {
            replay: 1024,
            subscriber_buffer: 256,
            heartbeat: Duration::from_secs(15),
        }
    }
}

impl EventBusConfig {
    /// The defaults with `replay` events kept and `subscriber_buffer` of slack per subscriber.
    pub fn new(replay: usize, subscriber_buffer: usize) -> Self {
        Self {
            replay: replay.max(1),
            subscriber_buffer: subscriber_buffer.max(1),
            ..Self::default()
        }
    }

    /// With keep-alives every `heartbeat`.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }
}

/// Counters of a bus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EventBusStats {
    /// Events published.
    pub published: u64,
    /// Subscribers dropped because they fell more than `subscriber_buffer` behind.
    pub dropped_subscribers: u64,
    /// Subscribers attached now.
    pub subscribers: usize,
    /// The id of the newest event, 0 before the first.
    pub last_id: u64,
}

/// The in-process event bus; cheap to clone (clones share the stream).
#[derive(Clone, Debug)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EventBusConfig,
    ring: Mutex<Ring>,
    sender: broadcast::Sender<Arc<Event>>,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Ring {
    last_id: u64,
    events: VecDeque<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(EventBusConfig::default())
    }
}

impl EventBus {
    /// An empty bus.
    pub fn new(config: EventBusConfig) -> Self {
        let config = EventBusConfig::new(config.replay, config.subscriber_buffer)
            .heartbeat(config.heartbeat);
        let (sender, _) = broadcast::channel(config.subscriber_buffer);
        Self {
            inner: Arc::new(Inner {
                config,
                ring: Mutex::new(Ring {
                    last_id: 0,
                    events: VecDeque::with_capacity(config.replay),
                }),
                sender,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &EventBusConfig {
        &self.inner.config
    }

    /// Gives `event` the next id, keeps it for replay and offers it to every subscriber.
    /// Never waits on a subscriber: one that is full is dropped at its next read.
    pub fn publish(&self, event: NewEvent) -> u64 {
        self.publish_at(event, SystemTime::now())
    }

    /// [`publish`](Self::publish) with the wall-clock time given.
    pub fn publish_at(&self, event: NewEvent, time: SystemTime) -> u64 {
        let mut ring = self
            .inner
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ring.last_id += 1;
        let event = Arc::new(Event {
            id: ring.last_id,
            kind: event.kind,
            name: event.name,
            action: event.action,
            time_ms: unix_ms(time),
            data: event.data,
        });
        if ring.events.len() == self.inner.config.replay {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // Sent under the lock, so a subscriber joining between the replay and the live part
        // neither misses nor repeats an event. No receiver is not an error.
        let _ = self.inner.sender.send(event);
        ring.last_id
    }

    /// Every event from now on that passes `filter`.
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        let ring = self
            .inner
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Subscription::new(
            VecDeque::new(),
            false,
            self.inner.sender.subscribe(),
            filter,
            Arc::clone(&self.inner) as Arc<dyn DropCounter>,
            ring.last_id,
        )
    }

    /// The events after `last_id` still kept, then every new one, each passing `filter`.
    /// When events after `last_id` were already forgotten (or `last_id` is from another bus,
    /// newer than any here), the subscription starts with a
    /// [`Delivery::Reset`](super::Delivery::Reset): the subscriber should re-read the state.
    pub fn subscribe_after(&self, last_id: u64, filter: EventFilter) -> Subscription {
        let ring = self
            .inner
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let oldest = ring.events.front().map_or(ring.last_id + 1, |e| e.id);
        let reset = last_id > ring.last_id || last_id + 1 < oldest;
        let backlog = if reset {
            VecDeque::new()
        } else {
            ring.events
                .iter()
                .filter(|e| e.id > last_id && filter.matches(e))
                .cloned()
                .collect()
        };
        Subscription::new(
            backlog,
            reset,
            self.inner.sender.subscribe(),
            filter,
            Arc::clone(&self.inner) as Arc<dyn DropCounter>,
            ring.last_id,
        )
    }

    /// Counters.
    pub fn stats(&self) -> EventBusStats {
        let last_id = self
            .inner
            .ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_id;
        EventBusStats {
            published: last_id,
            dropped_subscribers: self.inner.dropped.load(Ordering::Relaxed),
            subscribers: self.inner.sender.receiver_count(),
            last_id,
        }
    }
}

/// Where a subscription counts itself when it is dropped for lagging.
pub(crate) trait DropCounter: Send + Sync + std::fmt::Debug {
    fn count_drop(&self);
}

impl DropCounter for Inner {
    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("bulwark_events_subscribers_dropped_total").increment(1);
        tracing::warn!("an event subscriber fell behind and was dropped");
    }
}
