//! `/events`: the event stream as Server-Sent Events, and its counters.
//!
//! Each event is `id: <n>`, `event: <kind>` (breaker, limiter, checkpoint, workflow, alert)
//! and `data: <the event as JSON>`. A client that reconnects sends `Last-Event-ID` and gets the
//! events it missed from the bus's replay ring; when they are gone it gets `event: reset` and
//! should re-read the state. A subscriber that falls too far behind also gets `reset`, then the
//! stream ends (a browser's `EventSource` reconnects by itself). Comment lines (`: heartbeat`)
//! keep proxies from closing an idle stream.
//!
//! The stream is a read, like every other GET of the API: it needs no token (the guard's
//! host allow-list still applies). It shows what `/circuit-breakers`, `/rate-limiters` and
//! `/checkpoints` already show to anyone who may read, and a browser's `EventSource` cannot
//! send an `Authorization` header, so a token would have to travel in the URL, where logs keep it.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use bulwark::events::{Delivery, EventBusStats, EventFilter, EventKind};
use serde::Deserialize;
use tokio_stream::{Stream, StreamExt};

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Query of `GET /events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Comma-separated kinds; all when absent.
    kind: Option<String>,
    /// Comma-separated names; all when absent.
    name: Option<String>,
    /// Replay after this id, as `Last-Event-ID` does (which wins when both are given); for a
    /// first connection that wants the kept history (`0` for all of it).
    last_event_id: Option<u64>,
    /// Heartbeat interval in milliseconds (100 to 60 000); the bus's default when absent.
    heartbeat_ms: Option<u64>,
}

fn filter(query: &EventsQuery) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter::all();
    for kind in split(query.kind.as_deref()) {
        let kind = EventKind::parse(kind).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown event kind {kind:?}; one of breaker, limiter, checkpoint, workflow, alert"
            ))
        })?;
        filter = filter.kind(kind);
    }
    for name in split(query.name.as_deref()) {
        filter = filter.name(name);
    }
    Ok(filter)
}

fn split(list: Option<&str>) -> impl Iterator<Item = &str> {
    list.into_iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID must be an event id (an integer)".into())
                })
        })
        .transpose()
}

fn to_sse(delivery: Delivery) -> SseEvent {
    match delivery {
        Delivery::Event(event) => SseEvent::default()
            .id(event.id.to_string())
            .event(event.kind.as_str())
            .json_data(&*event)
            .unwrap_or_else(|_| SseEvent::default().comment("unserializable event")),
        Delivery::Reset { last_id } => SseEvent::default()
            .id(last_id.to_string())
            .event("reset")
            .data(format!("{{\"last_id\":{last_id}}}")),
        Delivery::Lagged { missed } => SseEvent::default()
            .event("reset")
            .data(format!("{{\"missed\":{missed}}}")),
        _ => SseEvent::default().comment("unknown delivery"),
    }
}

/// `GET /events`: the live stream, replayed after `Last-Event-ID`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let filter = filter(&query)?;
    let heartbeat = match query.heartbeat_ms {
        None => state.events().config().heartbeat,
        Some(ms @ 100..=60_000) => Duration::from_millis(ms),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "heartbeat_ms must be between 100 and 60000".into(),
            ));
        }
    };
    let bus = state.events();
    let subscription = match last_event_id(&headers)?.or(query.last_event_id) {
        Some(id) => bus.subscribe_after(id, filter),
        None => bus.subscribe(filter),
    };
    let stream = subscription.map(|d| Ok(to_sse(d)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// `GET /events/stats`: events published, subscribers attached and dropped.
pub(crate) async fn stats(State(state): State<AppState>) -> Json<EventBusStats> {
    Json(state.events().stats())
}
