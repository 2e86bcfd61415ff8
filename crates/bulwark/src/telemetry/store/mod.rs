//! The trace store: finished spans kept in memory, bounded by age, by count and by bytes.
//!
//! Spans enter a ring in the order they end; each ring entry carries a sequence number's worth
//! of links: its trace id and the sequence number of the previous span of the same trace. An
//! index maps each trace to its newest span's sequence number, so a trace is read by walking
//! its chain backwards from there, stopping at the first link older than the ring's head.
//!
//! Eviction is `pop_front` on the ring and touches nothing else: the index is never updated
//! when a span leaves. A trace whose newest span has left simply points below the head, and
//! such stale index entries are swept in one pass once they outnumber the live spans, which
//! keeps the sweep's cost constant per span.
//!
//! Writes far outnumber reads (every span is written; a person or a dashboard reads now and
//! then), so an insert only appends: the index is brought up to date by the next read, which
//! pays for linking the spans that arrived since the previous one (a first pass looks them
//! all up so that the cache misses on a large index overlap). Age and the cap are checked on
//! every insert and read, under the store's [`Clock`]; past the cap the oldest span goes
//! first, one per insert. A trace whose root was evicted keeps its other spans; the tree then
//! shows them as roots.
//!
//! The byte budget bounds what the span cap cannot: spans of very different sizes. Each
//! span's size (its ring slot plus [`FinishedSpan::approx_bytes`]'s heap parts) is computed
//! once, when it is inserted, and kept beside it; the store keeps their sum, and an insert
//! that takes the sum past `max_bytes` evicts oldest-first until it is back under. Evictions
//! are counted by reason ([`TraceStoreStats`]).
//!
//! ```
//! use bulwark::telemetry::{TelemetryLayer, TraceFilter, TraceStore, TraceStoreConfig};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let store = TraceStore::new(TraceStoreConfig { max_spans: 1_000, ..Default::default() });
//! let subscriber = tracing_subscriber::registry().with(TelemetryLayer::new(store.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let _root = tracing::info_span!("workflow").entered();
//!     tracing::info_span!("tool_call", tool = "search").in_scope(|| {});
//! });
//! let trace = &store.recent_traces(&TraceFilter::default())[0];
//! assert_eq!((trace.root_name.as_str(), trace.span_count), ("workflow", 2));
//! ```

mod tree;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use tree::{DEFAULT_LIST_LIMIT, SpanNode, TraceFilter, TraceSummary, TraceTree};

use super::ids::TraceId;
use super::model::FinishedSpan;
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};

/// The original system's time to live for traces: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Spans kept at most unless configured otherwise.
pub const DEFAULT_MAX_SPANS: usize = 100_000;
/// Bytes the stored spans may take unless configured otherwise: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// How long, how many and how many bytes of spans the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStoreConfig {
    /// Spans older than this (since they ended) are evicted. Default: 1 h.
    #[serde(with = "humantime_duration", default = "default_ttl")]
    pub ttl: Duration,
    /// At most this many spans are kept; the oldest go first. Default: 100 000.
    #[serde(default = "default_max_spans")]
    pub max_spans: usize,
    /// At most this many bytes of spans are kept (each span's estimate, see
    /// [`TraceStore::stats`]); the oldest go first. Default: 64 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

fn default_max_bytes() -> usize {
    DEFAULT_MAX_BYTES
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
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// No previous span of the same trace.
const NO_LINK: u64 = u64::MAX;

/// A bounded, in-memory store of finished spans, grouped by trace. Clones share the store.
pub struct TraceStore<C: Clock = MonotonicClock> {
    inner: Arc<Shared<C>>,
}

struct Shared<C> {
    clock: C,
    ttl_nanos: u64,
    max_spans: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

/// One stored span and its link to the previous span of its trace.
struct Entry {
    inserted: u64,
    /// This entry's size, from [`Stored::heap_bytes`] at insert.
    bytes: usize,
    trace: TraceId,
    /// Sequence number of the previous span of the same trace, or [`NO_LINK`].
    prev: u64,
    span: Stored,
}

/// A span kept by value in the ring (no allocation of its own, and the oldest spans sit in
/// one sequential stretch of memory), or shared with sinks that also hold it.
enum Stored {
    Owned(FinishedSpan),
    Shared(Arc<FinishedSpan>),
}

impl Stored {
    fn get(&self) -> &FinishedSpan {
        match self {
            Self::Owned(span) => span,
            Self::Shared(span) => span,
        }
    }

    /// Bytes outside the ring slot: the shared span and its `Arc` counters, or the owned
    /// span's heap parts.
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Owned(span) => span.approx_bytes() - std::mem::size_of::<FinishedSpan>(),
            Self::Shared(span) => span.approx_bytes() + 2 * std::mem::size_of::<usize>(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Stored spans, oldest first; `ring[i]` has sequence number `head + i`.
    ring: VecDeque<Entry>,
    head: u64,
    /// How many of the newest entries are not linked into `newest` yet.
    unindexed: usize,
    /// Each trace's newest span; entries below `head` are stale.
    newest: HashMap<TraceId, u64, BuildHasherDefault<IdHasher>>,
    /// The sum of the stored entries' `bytes`.
    bytes: usize,
    evicted: Evictions,
}

/// Spans evicted, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Evictions {
    /// Older than the time to live.
    pub age: u64,
    /// Past the span cap.
    pub count: u64,
    /// Past the byte budget.
    pub bytes: u64,
}

impl Evictions {
    /// Every eviction, whatever its reason.
    pub fn total(&self) -> u64 {
        self.age
            .saturating_add(self.count)
            .saturating_add(self.bytes)
    }
}

/// The store's size and evictions, read without indexing or evicting (cheap enough for
/// every request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TraceStoreStats {
    /// Spans stored.
    pub spans: usize,
    /// Their estimated size: per span its ring slot plus [`FinishedSpan::approx_bytes`]'s
    /// heap parts, the figure the byte budget bounds.
    pub bytes: usize,
    /// The byte budget.
    pub max_bytes: usize,
    /// Evictions since the store was made.
    pub evicted: Evictions,
}

impl State {
    fn entry(&self, seq: u64) -> Option<&Entry> {
        let offset = usize::try_from(seq.checked_sub(self.head)?).ok()?;
        self.ring.get(offset)
    }

    /// Links the entries not yet in the index. A first pass looks every trace up, so that the
    /// cache misses on a large index overlap; the second pass then finds its slots warm.
    fn index_pending(&mut self) {
        let count = self.unindexed.min(self.ring.len());
        self.unindexed = 0;
        if count == 0 {
            return;
        }
        let head = self.head;
        let mut start = self.ring.len() - count;
        while start < self.ring.len() {
            // In chunks small enough that the slots looked up stay in cache until written.
            let end = (start + 64).min(self.ring.len());
            let mut seen = 0u64;
            for entry in self.ring.range(start..end) {
                seen ^= self.newest.get(&entry.trace).copied().unwrap_or(0);
            }
            std::hint::black_box(seen);
            for (offset, entry) in self.ring.range_mut(start..end).enumerate() {
                let seq = head + (start + offset) as u64;
                entry.prev = match self.newest.insert(entry.trace, seq) {
                    Some(prev) if prev >= head => prev,
                    _ => NO_LINK,
                };
            }
            start = end;
        }
        // Stale entries (traces whose spans have all left) are swept once they could
        // outnumber the live ones, so each sweep is paid for by as many inserts.
        if self.newest.len() > 2 * self.ring.len() + 1024 {
            self.newest.retain(|_, newest| *newest >= head);
        }
    }

    /// The spans of `trace`, oldest first.
    fn spans_of(&self, trace: TraceId) -> Vec<&FinishedSpan> {
        let mut spans = Vec::new();
        let mut seq = self.newest.get(&trace).copied().unwrap_or(NO_LINK);
        while seq != NO_LINK {
            match self.entry(seq) {
                Some(entry) if entry.trace == trace => {
                    spans.push(entry.span.get());
                    seq = entry.prev;
                }
                _ => break,
            }
        }
        spans.reverse();
        spans
    }

    /// Every live trace in the index.
    fn live_traces(&self) -> impl Iterator<Item = TraceId> + '_ {
        let head = self.head;
        self.newest
            .iter()
            .filter(move |&(_, &seq)| seq >= head)
            .map(|(&trace, _)| trace)
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
            .field("max_bytes", &self.inner.max_bytes)
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
                max_bytes: config.max_bytes,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The clock the store measures age on.
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    fn raw_lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every mutation is a
        // single push, pop or index update), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `read` on the state with expired spans evicted and every span indexed.
    fn read<R>(&self, read: impl FnOnce(&State) -> R) -> R {
        let mut state = self.raw_lock();
        self.evict(&mut state, self.inner.clock.now_nanos());
        state.index_pending();
        read(&state)
    }

    /// Drops what is too old, too many or too large, where it lies in the ring.
    ///
    /// Past the cap exactly one span leaves per insert: its parts go back to the allocator's
    /// per-thread cache, and the next span's allocations reuse that memory while it is still
    /// warm. (Evicting in batches, to overlap the cache misses of many old spans, measured
    /// slower: a batch overflows that cache and its frees take the allocator's slow path.)
    fn evict(&self, state: &mut State, now: u64) {
        let ring = &mut state.ring;
        let over = ring.len().saturating_sub(self.inner.max_spans);
        // The ring is in insertion order, so the expired spans are a prefix of it.
        let ttl = self.inner.ttl_nanos;
        let is_expired = |entry: &Entry| now.saturating_sub(entry.inserted) >= ttl;
        let expired = match ring.front() {
            Some(oldest) if is_expired(oldest) => ring.partition_point(is_expired),
            _ => 0,
        };
        let count = over.max(expired);
        let mut freed = 0;
        for entry in ring.drain(..count) {
            freed += entry.bytes;
        }
        let mut bytes = state.bytes - freed;
        let mut by_bytes = 0;
        while bytes > self.inner.max_bytes {
            let Some(entry) = ring.pop_front() else { break };
            bytes -= entry.bytes;
            by_bytes += 1;
        }
        if count + by_bytes == 0 {
            return;
        }
        state.bytes = bytes;
        state.evicted.age += expired as u64;
        state.evicted.count += (count - expired) as u64;
        state.evicted.bytes += by_bytes as u64;
        state.head += (count + by_bytes) as u64;
        state.unindexed = state.unindexed.min(state.ring.len());
    }

    /// Adds a finished span, evicting what is too old or too many.
    pub fn insert(&self, span: Arc<FinishedSpan>) {
        self.insert_at(Stored::Shared(span), self.inner.clock.now_nanos());
    }

    /// [`insert`](Self::insert) for a span no one else holds, with the store clock's current
    /// reading, which the caller already has.
    pub(crate) fn insert_owned(&self, span: FinishedSpan, now: u64) {
        self.insert_at(Stored::Owned(span), now);
    }

    /// [`insert`](Self::insert) with the store clock's current reading.
    pub(crate) fn insert_shared(&self, span: Arc<FinishedSpan>, now: u64) {
        self.insert_at(Stored::Shared(span), now);
    }

    fn insert_at(&self, span: Stored, now: u64) {
        let max = self.inner.max_spans;
        if max == 0 {
            return;
        }
        let mut state = self.raw_lock();
        let ring = &mut state.ring;
        if ring.len() == ring.capacity() && ring.capacity() < max {
            // Grow by doubling, but never past the cap: slots are large, and slack past the
            // cap would never be used.
            let wanted = ring.capacity().max(16).saturating_mul(2).min(max);
            ring.reserve_exact(wanted.saturating_sub(ring.len()));
        }
        let bytes = std::mem::size_of::<Entry>() + span.heap_bytes();
        state.bytes += bytes;
        let ring = &mut state.ring;
        ring.push_back(Entry {
            inserted: now,
            bytes,
            trace: span.get().trace_id,
            prev: NO_LINK,
            span,
        });
        state.unindexed += 1;
        self.evict(&mut state, now);
    }

    /// Spans stored now.
    pub fn len(&self) -> usize {
        self.read(|state| state.ring.len())
    }

    /// Whether no span is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Traces stored now.
    pub fn trace_count(&self) -> usize {
        self.read(|state| state.live_traces().count())
    }

    /// Spans evicted since the store was made (by age, by the cap or by the byte budget).
    pub fn evicted(&self) -> u64 {
        self.read(|state| state.evicted.total())
    }

    /// Size and evictions now, without the index work a read does (expired spans still
    /// stored are counted until the next insert or read evicts them).
    pub fn stats(&self) -> TraceStoreStats {
        let state = self.raw_lock();
        TraceStoreStats {
            spans: state.ring.len(),
            bytes: state.bytes,
            max_bytes: self.inner.max_bytes,
            evicted: state.evicted,
        }
    }

    /// Drops every span.
    pub fn clear(&self) {
        let mut state = self.raw_lock();
        state.head += state.ring.len() as u64;
        state.ring.clear();
        state.bytes = 0;
        state.unindexed = 0;
        state.newest.clear();
    }

    /// The spans of one trace, in the order they ended (copies of the stored spans).
    pub fn spans(&self, trace_id: TraceId) -> Vec<Arc<FinishedSpan>> {
        self.read(|state| {
            state
                .spans_of(trace_id)
                .into_iter()
                .map(|span| Arc::new(span.clone()))
                .collect()
        })
    }

    /// One trace as a tree: each span under its parent, siblings by start time. Spans whose
    /// parent is not stored (a remote parent, or one evicted) are roots.
    pub fn get_trace(&self, trace_id: TraceId) -> Option<TraceTree> {
        self.read(|state| {
            let spans = state.spans_of(trace_id);
            (!spans.is_empty()).then(|| TraceTree::build(trace_id, &spans))
        })
    }

    /// Summaries of the stored traces that pass `filter`, most recent start first.
    pub fn recent_traces(&self, filter: &TraceFilter) -> Vec<TraceSummary> {
        let mut out: Vec<TraceSummary> = self.read(|state| {
            state
                .live_traces()
                .map(|trace| {
                    let spans = state.spans_of(trace);
                    TraceSummary::of(trace, spans.into_iter())
                })
                .filter(|summary| filter.accepts(summary))
                .collect()
        });
        out.sort_by(|a, b| {
            b.start_unix_nanos
                .cmp(&a.start_unix_nanos)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        out.truncate(filter.limit.unwrap_or(DEFAULT_LIST_LIMIT));
        out
    }

    /// Bytes the stored spans occupy, by each span's own accounting
    /// ([`FinishedSpan::approx_bytes`]) plus the store's bookkeeping: its ring slot, the
    /// `Arc`'s two counters and the index.
    pub fn approx_bytes(&self) -> usize {
        self.read(|state| {
            let spans: usize = state
                .ring
                .iter()
                .map(|entry| std::mem::size_of::<Entry>() + entry.span.heap_bytes())
                .sum();
            let slack = (state.ring.capacity() - state.ring.len()) * std::mem::size_of::<Entry>();
            let index = state.newest.capacity() * (std::mem::size_of::<(TraceId, u64)>() + 1);
            spans + slack + index
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
