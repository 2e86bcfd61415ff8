//! The event stream: what the primitives do, as a stream of numbered events that a UI, a log
//! or the server's SSE route follows live.
//!
//! ## How it works
//!
//! An [`EventBus`] holds two bounded buffers. The **replay ring** keeps the last
//! `replay` events; each event gets the next id (1, 2, ...) under the ring's lock. The
//! **broadcast** (a `tokio::sync::broadcast` channel of `subscriber_buffer` slots) offers each
//! event to every live subscriber. Publishing takes the ring's lock, pushes, and sends on the
//! broadcast, which never waits: a subscriber that has not read `subscriber_buffer` events
//! finds at its next read that it lagged, gets [`Delivery::Lagged`], is dropped and counted
//! (`bulwark_events_subscribers_dropped_total`, [`EventBusStats::dropped_subscribers`]). So a
//! slow or stuck subscriber never slows a primitive; publishing costs one short lock and one
//! allocation whether there are 0 or 200 subscribers (each subscriber reads the shared
//! `Arc<Event>`).
//!
//! [`EventBus::subscribe_after`] replays the kept events after a given id (the SSE
//! `Last-Event-ID`) and continues live; both happen under the lock, so nothing is missed or
//! repeated between the two. When the events after that id are already forgotten, the
//! subscription starts with [`Delivery::Reset`]: re-read the state, then follow.
//!
//! Events come from the observer hooks the primitives already have: [`BreakerEvents`] (a
//! breaker listener), [`LimiterEvents`] (a limiter observer that aggregates rejections per key
//! and second) and [`CheckpointEvents`] (a checkpoint observer). Workflow runners and alert
//! evaluators publish their own with [`EventBus::publish`].
//!
//! ```
//! use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig};
//! use bulwark::events::{BreakerEvents, Delivery, EventBus, EventFilter, EventKind};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let bus = EventBus::default();
//! let breakers = BreakerRegistry::new();
//! breakers.add_listener(Arc::new(BreakerEvents::new(bus.clone())));
//! let mut events = bus.subscribe(EventFilter::all().kind(EventKind::Breaker));
//!
//! breakers.get_or_create("llm", CircuitBreakerConfig::default())?.force_open();
//!
//! let Some(Delivery::Event(event)) = events.recv().await else { panic!("no event") };
//! assert_eq!((event.id, event.name.as_str(), event.data["to"].as_str()), (1, "llm", Some("forced_open")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bus;
mod event;
mod observers;
mod subscription;

pub use bus::{EventBus, EventBusConfig, EventBusStats};
pub use event::{Event, EventFilter, EventKind, NewEvent};
pub use observers::{BreakerEvents, CheckpointEvents, LimiterEvents};
pub use subscription::{Delivery, Subscription};
