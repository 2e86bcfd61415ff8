//! The trace store: finished spans kept in memory, bounded by age and by count.
//!
//! Spans enter in the order they end. One FIFO of `(inserted_at, trace_id)` records that
//! order, and each trace keeps its spans in the same order, so evicting the oldest span is
//! `pop_front` on both: O(1) per span, whatever the number of traces. Eviction runs on every
//! insert and every read, under the store's [`Clock`]: a span older than the time to live goes,
//! and past the cap the oldest spans go first. A trace whose root was evicted keeps its other
//! spans; the tree then shows them as roots.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::{SpanId, TraceId};
use super::model::FinishedSpan;
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};

/// The original system's time to live for traces: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Spans kept at most unless configured otherwise.
pub const DEFAULT_MAX_SPANS: usize = 100_000;

/// How long and how many spans the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStoreConfig {
    /// Spans older than this (since they ended) are evicted. Default: 1 h.
    #[serde(with = "humantime_duration", default = "default_ttl")]
    pub ttl: Duration,
    /// At most this many spans are kept; the oldest go first. Default: 100 000.
    #[serde(default = "default_max_spans")]
    pub max_spans: usize,
}

fn default_ttl() -> Duration {
    DEFAULT_TTL
}
fn default_max_spans() -> usize {
    DEFAULT_MAX_SPANS
}

impl Default for TraceStoreConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            max_spans: DEFAULT_MAX_SPANS,
        }
    }
}

/// A bounded, in-memory store of finished spans, grouped by trace. Clones share the store.
pub struct TraceStore<C: Clock = MonotonicClock> {
    inner: Arc<Shared<C>>,
}

struct Shared<C> {
    clock: C,
    ttl_nanos: u64,
    max_spans: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    traces: HashMap<TraceId, Spans, BuildHasherDefault<IdHasher>>,
    fifo: VecDeque<(u64, TraceId)>,
    evicted: u64,
}

/// The spans of one trace, in end order. Most traces seen at eviction time are whole, but many
/// hold a single span (one call, one root); keeping that one inline saves an allocation and a
/// cache miss per span.
enum Spans {
    One(Arc<FinishedSpan>),
    Many(VecDeque<Arc<FinishedSpan>>),
}

impl Spans {
    fn push(&mut self, span: Arc<FinishedSpan>) {
        match self {
            Self::One(first) => {
                let mut many = VecDeque::with_capacity(4);
                many.push_back(Arc::clone(first));
                many.push_back(span);
                *self = Self::Many(many);
            }
            Self::Many(many) => many.push_back(span),
        }
    }

    /// Removes the oldest span; returns whether the trace is now empty.
    fn pop_front(&mut self) -> (Option<Arc<FinishedSpan>>, bool) {
        match self {
            Self::One(_) => (None, true),
            Self::Many(many) => {
                let span = many.pop_front();
                (span, many.is_empty())
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<FinishedSpan>> + Clone {
        let (one, many) = match self {
            Self::One(span) => (Some(span), None),
            Self::Many(many) => (None, Some(many.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// Trace ids are random, so their low 64 bits are already a good hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 ^= (value as u64) ^ ((value >> 64) as u64);
    }
}

impl<C: Clock> Clone for TraceStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for TraceStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceStore")
            .field("ttl", &Duration::from_nanos(self.inner.ttl_nanos))
            .field("max_spans", &self.inner.max_spans)
            .field("spans", &self.len())
            .finish()
    }
}

impl Default for TraceStore<MonotonicClock> {
    fn default() -> Self {
        Self::new(TraceStoreConfig::default())
    }
}

impl TraceStore<MonotonicClock> {
    /// A store on the real clock.
    pub fn new(config: TraceStoreConfig) -> Self {
        Self::with_clock(config, MonotonicClock::new())
    }
}

impl<C: Clock> TraceStore<C> {
    /// A store whose time to live is measured on `clock`.
    pub fn with_clock(config: TraceStoreConfig, clock: C) -> Self {
        Self {
            inner: Arc::new(Shared {
                clock,
                ttl_nanos: duration_to_nanos(config.ttl),
                max_spans: config.max_spans,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The clock the store measures age on.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every mutation is a
        // single push or pop), so a poisoned lock is still usable.
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _evicted = self.evict(&mut state);
        state
    }

    /// Evicts what is too old or too many; returns the evicted spans so that the caller can
    /// drop them after releasing the lock.
    ///
    /// Past the cap it evicts a batch (1/256 of the cap, at most 512 spans) rather than one
    /// span per insert: the cold memory of many old spans is then touched in one tight loop,
    /// where the CPU overlaps the cache misses, instead of one miss chain per span closed. The
    /// store never holds more than the cap.
    fn evict(&self, state: &mut State) -> Vec<Spans> {
        let now = self.inner.clock.now_nanos();
        let max = self.inner.max_spans;
        let target = if state.fifo.len() > max {
            max - (max / 256).min(512)
        } else {
            max
        };
        // Pass 1 walks the FIFO (sequential memory); pass 2 touches the index, where the
        // lookups are independent of each other so their cache misses overlap.
        let mut victims = Vec::new();
        while let Some(&(inserted, trace)) = state.fifo.front() {
            let expired = now.saturating_sub(inserted) >= self.inner.ttl_nanos;
            if !expired && state.fifo.len() <= target {
                break;
            }
            state.fifo.pop_front();
            victims.push(trace);
        }
        state.evicted += victims.len() as u64;
        let mut evicted = Vec::with_capacity(victims.len());
        for trace in victims {
            if let Some(spans) = state.traces.get_mut(&trace) {
                let (span, empty) = spans.pop_front();
                if empty {
                    evicted.extend(state.traces.remove(&trace));
                } else {
                    evicted.extend(span.map(Spans::One));
                }
            }
        }
        evicted
    }

    /// Adds a finished span, evicting what is too old or too many.
    pub fn insert(&self, span: Arc<FinishedSpan>) {
        if self.inner.max_spans == 0 {
            return;
        }
        let now = self.inner.clock.now_nanos();
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let trace = span.trace_id;
        match state.traces.entry(trace) {
            std::collections::hash_map::Entry::Occupied(mut spans) => spans.get_mut().push(span),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Spans::One(span));
            }
        }
        state.fifo.push_back((now, trace));
        let evicted = self.evict(&mut state);
        // Old spans are freed after the lock is released.
        drop(state);
        drop(evicted);
    }

    /// Spans stored now.
    pub fn len(&self) -> usize {
        self.lock().fifo.len()
    }

    /// Whether no span is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Traces stored now.
    pub fn trace_count(&self) -> usize {
        self.lock().traces.len()
    }

    /// Spans evicted since the store was made (by age or by the cap).
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Drops every span.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.traces.clear();
        state.fifo.clear();
    }

    /// The spans of one trace, in the order they ended.
    pub fn spans(&self, trace_id: TraceId) -> Vec<Arc<FinishedSpan>> {
        self.lock()
            .traces
            .get(&trace_id)
            .map(|spans| spans.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// One trace as a tree: each span under its parent, siblings by start time. Spans whose
    /// parent is not stored (a remote parent, or one evicted) are roots.
    pub fn get_trace(&self, trace_id: TraceId) -> Option<TraceTree> {
        let spans = self.spans(trace_id);
        if spans.is_empty() {
            return None;
        }
        Some(TraceTree::build(trace_id, &spans))
    }

    /// Summaries of the stored traces that pass `filter`, most recent start first.
    pub fn recent_traces(&self, filter: &TraceFilter) -> Vec<TraceSummary> {
        let state = self.lock();
        let mut out: Vec<TraceSummary> = state
            .traces
            .iter()
            .map(|(id, spans)| TraceSummary::of(*id, spans.iter().map(Arc::as_ref)))
            .filter(|summary| filter.accepts(summary))
            .collect();
        drop(state);
        out.sort_by(|a, b| {
            b.start_unix_nanos
                .cmp(&a.start_unix_nanos)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        out.truncate(filter.limit.unwrap_or(DEFAULT_LIST_LIMIT));
        out
    }

    /// Bytes the stored spans occupy, by each span's own accounting
    /// ([`FinishedSpan::approx_bytes`]) plus the store's per-span bookkeeping.
    pub fn approx_bytes(&self) -> usize {
        let state = self.lock();
        let per_span_index =
            std::mem::size_of::<(u64, TraceId)>() + 2 * std::mem::size_of::<usize>(); // the Arc's two counters
        state
            .traces
            .values()
            .map(|spans| {
                let list = match spans {
                    Spans::One(_) => 0,
                    Spans::Many(many) => many.capacity() * std::mem::size_of::<Arc<FinishedSpan>>(),
                };
                list + spans
                    .iter()
                    .map(|span| span.approx_bytes() + per_span_index)
                    .sum::<usize>()
            })
            .sum::<usize>()
            + state.traces.capacity()
                * (std::mem::size_of::<TraceId>() + std::mem::size_of::<Spans>() + 1)
    }
}

/// Traces listed at most when the filter names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// Which traces [`TraceStore::recent_traces`] lists. Every field is optional; the default lists
/// the 100 most recent traces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceFilter {
    /// Only traces whose root span's name contains this.
    pub name_contains: Option<String>,
    /// Only traces with (`true`) or without (`false`) a span whose status is an error.
    pub has_error: Option<bool>,
    /// Only traces lasting at least this long, in nanoseconds.
    pub min_duration_nanos: Option<u64>,
    /// Only traces that started at or after this time, in nanoseconds since the Unix epoch.
    pub since_unix_nanos: Option<u64>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

impl TraceFilter {
    fn accepts(&self, s: &TraceSummary) -> bool {
        self.name_contains
            .as_deref()
            .is_none_or(|n| s.root_name.contains(n))
            && self.has_error.is_none_or(|e| s.has_error == e)
            && self
                .min_duration_nanos
                .is_none_or(|d| s.duration_nanos >= d)
            && self
                .since_unix_nanos
                .is_none_or(|t| s.start_unix_nanos >= t)
    }
}

/// One line of the recent-traces list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// The name of its earliest root span.
    pub root_name: String,
    /// Its earliest start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// From its earliest start to its latest end, in nanoseconds.
    pub duration_nanos: u64,
    /// Spans stored for it.
    pub span_count: usize,
    /// Whether any of its spans ended with an error status.
    pub has_error: bool,
}

impl TraceSummary {
    fn of<'a>(trace_id: TraceId, spans: impl Iterator<Item = &'a FinishedSpan> + Clone) -> Self {
        let ids: std::collections::HashSet<SpanId> = spans.clone().map(|s| s.span_id).collect();
        let mut start = u64::MAX;
        let mut end = 0;
        let mut count = 0;
        let mut has_error = false;
        let mut root: Option<&FinishedSpan> = None;
        for span in spans {
            count += 1;
            start = start.min(span.start_unix_nanos);
            end = end.max(span.end_unix_nanos);
            has_error |= span.status.is_error();
            let is_root = span.parent_span_id.is_none_or(|p| !ids.contains(&p));
            if is_root && root.is_none_or(|r| span.start_unix_nanos < r.start_unix_nanos) {
                root = Some(span);
            }
        }
        Self {
            trace_id,
            root_name: root.map(|r| r.name.to_string()).unwrap_or_default(),
            start_unix_nanos: start,
            duration_nanos: end.saturating_sub(start),
            span_count: count,
            has_error,
        }
    }
}

/// One trace as a tree of spans.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceTree {
    /// The trace.
    pub trace_id: TraceId,
    /// Its summary line.
    pub summary: TraceSummary,
    /// Its root spans (usually one), each with its descendants.
    pub roots: Vec<SpanNode>,
}

/// A span with its children.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpanNode {
    /// The span.
    #[serde(flatten)]
    pub span: FinishedSpan,
    /// Its children, by start time.
    pub children: Vec<SpanNode>,
}

impl TraceTree {
    fn build(trace_id: TraceId, spans: &[Arc<FinishedSpan>]) -> Self {
        let summary = TraceSummary::of(trace_id, spans.iter().map(Arc::as_ref));
        let index: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, span) in spans.iter().enumerate() {
            match span.parent_span_id.and_then(|p| index.get(&p)) {
                Some(&parent) if parent != i => children[parent].push(i),
                _ => roots.push(i),
            }
        }
        // Depth is bounded by the number of spans, and every span is visited once because each
        // has exactly one parent slot, so this cannot loop even on malformed parent links.
        fn node(i: usize, spans: &[Arc<FinishedSpan>], children: &mut [Vec<usize>]) -> SpanNode {
            let mut kids = std::mem::take(&mut children[i]);
            kids.sort_by_key(|&k| spans[k].start_unix_nanos);
            SpanNode {
                span: FinishedSpan::clone(&spans[i]),
                children: kids.into_iter().map(|k| node(k, spans, children)).collect(),
            }
        }
        roots.sort_by_key(|&k| spans[k].start_unix_nanos);
        let roots = roots
            .into_iter()
            .map(|r| node(r, spans, &mut children))
            .collect();
        Self {
            trace_id,
            summary,
            roots,
        }
    }

    /// Every span in the tree, depth first.
    pub fn iter(&self) -> impl Iterator<Item = &SpanNode> {
        let mut stack: Vec<&SpanNode> = self.roots.iter().rev().collect();
        std::iter::from_fn(move || {
            let next = stack.pop()?;
            stack.extend(next.children.iter().rev());
            Some(next)
        })
    }
}

/// A `Duration` as a human-readable string (`"1h"`, `"90s"`) in serialized form.
pub(crate) mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}
