//! The storage of one series: atomic cells that handles record into without a lock.
//!
//! A counter is one `AtomicU64`; a gauge is an `f64` stored as bits in one, updated by
//! compare-and-swap; a histogram keeps one counter per bucket (not cumulative; the renderer
//! sums them), a total count and a sum. Every handle on a series shares its cell through an
//! `Arc`, so recording is an atomic add and never takes the registry's locks.
//!
//! ```
//! use bulwark::telemetry::metrics::MetricsRegistry;
//!
//! let registry = MetricsRegistry::default();
//! let calls = registry.counter("bulwark_demo_calls_total", &[]).unwrap();
//! calls.increment(2);
//! assert!(registry.render_prometheus().contains("bulwark_demo_calls_total 2"));
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{CounterFn, GaugeFn, HistogramFn};

use super::registry::MetricKind;

#[derive(Debug, Default)]
pub(crate) struct CounterCell(pub(crate) AtomicU64);

impl CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub(crate) struct GaugeCell(pub(crate) AtomicU64);

fn add_f64(cell: &AtomicU64, delta: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + delta).to_bits())
    });
}

impl GaugeCell {
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        add_f64(&self.0, value);
    }
    fn decrement(&self, value: f64) {
        add_f64(&self.0, -value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Counts per bucket (not cumulative), total count and sum.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    pub(crate) bounds: Arc<[f64]>,
    /// One more than `bounds`: the last is the `+Inf` bucket.
    pub(crate) buckets: Box<[AtomicU64]>,
    pub(crate) count: AtomicU64,
    pub(crate) sum: AtomicU64,
}

impl HistogramCell {
    pub(super) fn new(bounds: Arc<[f64]>) -> Self {
        Self {
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

impl HistogramFn for HistogramCell {
    #[inline]
    fn record(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self.bounds.partition_point(|bound| *bound < value);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.sum, value);
    }
}

/// One series' storage, shared with every handle on it.
#[derive(Clone, Debug)]
pub(crate) enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

impl Cell {
    pub(super) fn new(kind: MetricKind, bounds: &Arc<[f64]>) -> Self {
        match kind {
            MetricKind::Counter => Self::Counter(Arc::default()),
            MetricKind::Gauge => Self::Gauge(Arc::default()),
            MetricKind::Histogram => {
                Self::Histogram(Arc::new(HistogramCell::new(Arc::clone(bounds))))
            }
        }
    }

    /// Zeroes what accumulates (counters, histograms). A gauge describes the present (a
    /// breaker's state, a queue's depth), so it keeps its value: zeroing it would report a
    /// state nobody is in until its source next changes.
    pub(super) fn reset(&self) {
        match self {
            Self::Counter(c) => c.0.store(0, Ordering::Relaxed),
            Self::Gauge(_) => {}
            Self::Histogram(h) => {
                for bucket in h.buckets.iter() {
                    bucket.store(0, Ordering::Relaxed);
                }
                h.count.store(0, Ordering::Relaxed);
                h.sum.store(0f64.to_bits(), Ordering::Relaxed);
            }
        }
    }
}
