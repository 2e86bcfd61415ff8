//! A subscriber's end: the replayed backlog, then the live broadcast, filtered.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::bus::DropCounter;
use super::event::{Event, EventFilter};

/// One item of a [`Subscription`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Delivery {
    /// An event.
    Event(Arc<Event>),
    /// The events the subscriber asked to replay are forgotten: re-read the state. Live events
    /// follow.
    Reset {
        /// The newest id when the subscription started.
        last_id: u64,
    },
    /// The subscriber fell too far behind and is dropped; the stream ends after this.
    Lagged {
        /// Events it missed.
        missed: u64,
    },
}

/// The stream of a subscriber, from [`EventBus::subscribe`](super::EventBus::subscribe).
pub struct Subscription {
    reset: Option<u64>,
    backlog: VecDeque<Arc<Event>>,
    live: Option<BroadcastStream<Arc<Event>>>,
    filter: EventFilter,
    counter: Arc<dyn DropCounter>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("backlog", &self.backlog.len())
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        backlog: VecDeque<Arc<Event>>,
        reset: bool,
        receiver: broadcast::Receiver<Arc<Event>>,
        filter: EventFilter,
        counter: Arc<dyn DropCounter>,
        last_id: u64,
    ) -> Self {
        Self {
            reset: reset.then_some(last_id),
            backlog,
            live: Some(BroadcastStream::new(receiver)),
            filter,
            counter,
        }
    }

    /// The next delivery, or `None` once the subscriber was dropped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for Subscription {
    type Item = Delivery;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let this = &mut *self;
        if let Some(last_id) = this.reset.take() {
            return Poll::Ready(Some(Delivery::Reset { last_id }));
        }
        if let Some(event) = this.backlog.pop_front() {
            return Poll::Ready(Some(Delivery::Event(event)));
        }
        loop {
            let Some(live) = this.live.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(live).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.live = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(event))) => {
                    if this.filter.matches(&event) {
                        return Poll::Ready(Some(Delivery::Event(event)));
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(missed)))) => {
                    // Dropping the receiver frees its place in the channel at once.
                    this.live = None;
                    this.counter.count_drop();
                    return Poll::Ready(Some(Delivery::Lagged { missed }));
                }
            }
        }
    }
}
