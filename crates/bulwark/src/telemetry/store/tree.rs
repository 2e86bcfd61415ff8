//! Reading the store: filters, one-line trace summaries and trace trees.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::super::ids::{SpanId, TraceId};
use super::super::model::FinishedSpan;

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
    pub(super) fn accepts(&self, s: &TraceSummary) -> bool {
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
    pub(super) fn of<'a>(
        trace_id: TraceId,
        spans: impl Iterator<Item = &'a FinishedSpan> + Clone,
    ) -> Self {
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
    pub(super) fn build(trace_id: TraceId, spans: &[&FinishedSpan]) -> Self {
        let summary = TraceSummary::of(trace_id, spans.iter().copied());
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
        fn node(i: usize, spans: &[&FinishedSpan], children: &mut [Vec<usize>]) -> SpanNode {
            let mut kids = std::mem::take(&mut children[i]);
            kids.sort_by_key(|&k| spans[k].start_unix_nanos);
            SpanNode {
                span: FinishedSpan::clone(spans[i]),
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
