//! The registry: families of series by name, series by label set, lock-free recording.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};
use serde::{Deserialize, Serialize};

use super::cell::Cell;
use super::config::MetricsConfig;
use super::names::{OVERFLOW_LABEL, OVERFLOW_LABEL_VALUE};

/// The three kinds of metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Only goes up (or is reset).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution, in buckets.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Why a metric could not be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The name is not a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    #[error(
        "invalid metric name {0:?}: use letters, digits, '_' and ':', not starting with a digit"
    )]
    InvalidName(String),
    /// A label name is not a Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__...`).
    #[error(
        "invalid label name {0:?}: use letters, digits and '_', not starting with a digit or '__'"
    )]
    InvalidLabel(String),
    /// The name is already registered as another kind.
    #[error("metric {name:?} is a {existing}, not a {requested}")]
    KindMismatch {
        /// The metric.
        name: String,
        /// What it is.
        existing: &'static str,
        /// What was asked for.
        requested: &'static str,
    },
    /// Histogram boundaries must be finite and strictly increasing, at least one.
    #[error("histogram buckets for {0:?} must be finite, strictly increasing and not empty")]
    InvalidBuckets(String),
    /// Another `metrics` recorder is already installed in this process.
    #[error("a metrics recorder is already installed")]
    RecorderAlreadyInstalled,
}

pub(crate) fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Makes any string a valid metric (or, with `colons = false`, label) name: invalid
/// characters become `_`, a leading digit gets a `_` before it.
pub(crate) fn sanitize(name: &str, colons: bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    if !colons && out.starts_with("__") {
        out.replace_range(0..1, "x");
    }
    out
}

/// Sorted `(name, value)` pairs identifying one series of a metric.
pub(crate) type Labels = Box<[(String, String)]>;

/// All series of one metric name.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) kind: MetricKind,
    pub(crate) bounds: Arc<[f64]>,
    pub(crate) series: RwLock<HashMap<Labels, Cell>>,
    pub(crate) overflow: OnceLock<Cell>,
    pub(crate) folded: AtomicU64,
}

/// Passes `metrics::Key`'s precomputed hash straight through.
#[derive(Default)]
struct KeyHash(u64);

impl Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached if `Key`'s Hash impl ever writes bytes: fold them in (FNV-1a).
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

pub(crate) struct Inner {
    pub(crate) config: MetricsConfig,
    pub(crate) families: RwLock<BTreeMap<String, Arc<Family>>>,
    by_key: RwLock<HashMap<Key, Cell, BuildHasherDefault<KeyHash>>>,
    pub(crate) help: Mutex<HashMap<String, String>>,
}

/// Counters, gauges and histograms with labels; rendered as Prometheus text or a JSON snapshot.
/// Clones share the registry.
///
/// Three ways to record, all into the same series: the original system's calls
/// ([`increment_counter`](Self::increment_counter), [`set_gauge`](Self::set_gauge),
/// [`record_histogram`](Self::record_histogram)); pre-registered handles
/// ([`counter`](Self::counter) and friends, the fastest); and, once
/// [`install`](Self::install)ed, the `metrics` facade (`metrics::counter!` from any crate).
///
/// Each metric holds at most [`MetricsConfig::max_series_per_metric`] label sets; label sets
/// beyond that share one series labelled `otel_metric_overflow="true"`, and each such
/// lookup is counted (`bulwark_metrics_overflow_total{metric}` in the text output), so a label
/// carrying user or run ids cannot exhaust memory.
#[derive(Clone)]
pub struct MetricsRegistry {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families = self
            .inner
            .families
            .read()
            .map(|f| f.len())
            .unwrap_or_default();
        f.debug_struct("MetricsRegistry")
            .field("metrics", &families)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new(MetricsConfig::default())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new(config: MetricsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                families: RwLock::default(),
                by_key: RwLock::default(),
                help: Mutex::default(),
            }),
        }
    }

    /// The process-wide registry that [`telemetry::init`](crate::telemetry::init) installs as
    /// the `metrics` recorder and the built-in observers report to.
    pub fn global() -> &'static MetricsRegistry {
        GLOBAL.get_or_init(MetricsRegistry::default)
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &MetricsConfig {
        &self.inner.config
    }

    /// Installs this registry as the process's `metrics` recorder, so `metrics::counter!` and
    /// friends from any crate record here. Only one recorder can ever be installed.
    pub fn install(&self) -> Result<(), MetricsError> {
        metrics::set_global_recorder(self.clone())
            .map_err(|_| MetricsError::RecorderAlreadyInstalled)
    }

    /// Sets the `# HELP` text of a metric.
    pub fn describe(&self, name: &str, help: impl Into<String>) {
        self.inner
            .help
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), help.into());
    }

    fn family(&self, name: &str, kind: MetricKind) -> Result<Arc<Family>, MetricsError> {
        let existing = read(&self.inner.families).get(name).cloned();
        let family = match existing {
            Some(family) => family,
            None => {
                let mut families = write(&self.inner.families);
                Arc::clone(families.entry(name.to_owned()).or_insert_with(|| {
                    Arc::new(Family {
                        kind,
                        bounds: self.inner.config.buckets_for(name).into(),
                        series: RwLock::default(),
                        overflow: OnceLock::new(),
                        folded: AtomicU64::new(0),
                    })
                }))
            }
        };
        if family.kind != kind {
            return Err(MetricsError::KindMismatch {
                name: name.to_owned(),
                existing: family.kind.as_str(),
                requested: kind.as_str(),
            });
        }
        Ok(family)
    }

    /// The series for `labels` (sorted) of `name`, and whether it is the overflow series.
    fn series(
        &self,
        name: &str,
        kind: MetricKind,
        labels: Vec<(String, String)>,
    ) -> Result<(Cell, bool), MetricsError> {
        let family = self.family(name, kind)?;
        if let Some(cell) = read(&family.series).get(labels.as_slice()) {
            return Ok((cell.clone(), false));
        }
        let mut series = write(&family.series);
        if let Some(cell) = series.get(labels.as_slice()) {
            return Ok((cell.clone(), false));
        }
        if series.len() < self.inner.config.max_series_per_metric {
            let cell = Cell::new(kind, &family.bounds);
            series.insert(labels.into_boxed_slice(), cell.clone());
            return Ok((cell, false));
        }
        drop(series);
        family.folded.fetch_add(1, Ordering::Relaxed);
        let cell = family
            .overflow
            .get_or_init(|| Cell::new(kind, &family.bounds))
            .clone();
        Ok((cell, true))
    }

    fn checked(
        &self,
        name: &str,
        kind: MetricKind,
        labels: &[(&str, &str)],
    ) -> Result<Cell, MetricsError> {
        if !valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_owned()));
        }
        let mut owned = Vec::with_capacity(labels.len());
        for (key, value) in labels {
            if !valid_label_name(key) || *key == OVERFLOW_LABEL {
                return Err(MetricsError::InvalidLabel((*key).to_owned()));
            }
            owned.push(((*key).to_owned(), (*value).to_owned()));
        }
        owned.sort();
        owned.dedup_by(|a, b| a.0 == b.0);
        self.series(name, kind, owned).map(|(cell, _)| cell)
    }

    /// A handle on the counter `name{labels}`: record through it without any lookup.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter, MetricsError> {
        match self.checked(name, MetricKind::Counter, labels)? {
            Cell::Counter(c) => Ok(Counter::from_arc(c)),
            _ => Ok(Counter::noop()),
        }
    }

    /// A handle on the gauge `name{labels}`.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge, MetricsError> {
        match self.checked(name, MetricKind::Gauge, labels)? {
            Cell::Gauge(g) => Ok(Gauge::from_arc(g)),
            _ => Ok(Gauge::noop()),
        }
    }

    /// A handle on the histogram `name{labels}`.
    pub fn histogram(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<Histogram, MetricsError> {
        match self.checked(name, MetricKind::Histogram, labels)? {
            Cell::Histogram(h) => Ok(Histogram::from_arc(h)),
            _ => Ok(Histogram::noop()),
        }
    }

    /// Adds one to the counter `name{labels}` (the original system's `increment_counter`).
    pub fn increment_counter(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        self.add_counter(name, 1, labels)
    }

    /// Adds `value` to the counter `name{labels}`.
    pub fn add_counter(
        &self,
        name: &str,
        value: u64,
        labels: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        if let Cell::Counter(c) = self.checked(name, MetricKind::Counter, labels)? {
            c.increment(value);
        }
        Ok(())
    }

    /// Sets the gauge `name{labels}` (the original system's `set_gauge`).
    pub fn set_gauge(
        &self,
        name: &str,
        value: f64,
        labels: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        if let Cell::Gauge(g) = self.checked(name, MetricKind::Gauge, labels)? {
            g.set(value);
        }
        Ok(())
    }

    /// Records `value` in the histogram `name{labels}` (the original system's
    /// `record_histogram`).
    pub fn record_histogram(
        &self,
        name: &str,
        value: f64,
        labels: &[(&str, &str)],
    ) -> Result<(), MetricsError> {
        if let Cell::Histogram(h) = self.checked(name, MetricKind::Histogram, labels)? {
            h.record(value);
        }
        Ok(())
    }

    /// Zeroes every counter and histogram (buckets, count, sum) and the overflow counts.
    /// Gauges keep their values: they describe the present (a breaker's state gauge still
    /// reads 1 for the state it is in), not an accumulation since the last reset. Series and
    /// handles stay registered, so handles held elsewhere keep recording here.
    pub fn reset(&self) {
        for family in read(&self.inner.families).values() {
            for cell in read(&family.series).values() {
                cell.reset();
            }
            if let Some(cell) = family.overflow.get() {
                cell.reset();
            }
            family.folded.store(0, Ordering::Relaxed);
        }
    }

    fn facade(&self, key: &Key, kind: MetricKind) -> Option<Cell> {
        if let Some(cell) = read(&self.inner.by_key).get(key) {
            return Some(cell.clone());
        }
        let name = sanitize(key.name(), true);
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (sanitize(l.key(), false), l.value().to_owned()))
            .filter(|(k, _)| k != OVERFLOW_LABEL)
            .collect();
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        let (cell, folded) = self.series(&name, kind, labels).ok()?;
        // Overflowed keys are not cached, so the cache stays bounded by the series cap.
        if !folded {
            write(&self.inner.by_key).insert(key.clone(), cell.clone());
        }
        Some(cell)
    }

    fn describe_key(&self, key: KeyName, description: SharedString) {
        self.describe(&sanitize(key.as_str(), true), description.into_owned());
    }
}

impl metrics::Recorder for MetricsRegistry {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe_key(key, description);
    }
    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe_key(key, description);
    }
    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe_key(key, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.facade(key, MetricKind::Counter) {
            Some(Cell::Counter(c)) => Counter::from_arc(c),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        match self.facade(key, MetricKind::Gauge) {
            Some(Cell::Gauge(g)) => Gauge::from_arc(g),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        match self.facade(key, MetricKind::Histogram) {
            Some(Cell::Histogram(h)) => Histogram::from_arc(h),
            _ => Histogram::noop(),
        }
    }
}

static GLOBAL: OnceLock<MetricsRegistry> = OnceLock::new();

/// Makes the global registry one built from `config`, unless it already exists.
pub(crate) fn install_global(config: MetricsConfig) -> MetricsRegistry {
    GLOBAL.get_or_init(|| MetricsRegistry::new(config)).clone()
}

pub(crate) fn overflow_labels() -> Labels {
    vec![(OVERFLOW_LABEL.to_owned(), OVERFLOW_LABEL_VALUE.to_owned())].into_boxed_slice()
}
