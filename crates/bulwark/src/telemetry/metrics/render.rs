//! Reading the registry out: a JSON-serializable snapshot and Prometheus text exposition.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::cell::Cell;
use super::names::{BUILTIN_HELP, OVERFLOW_TOTAL};
use super::registry::{MetricKind, MetricsRegistry, overflow_labels};

/// Every metric at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// The metrics, by name.
    pub metrics: Vec<MetricSnapshot>,
}

/// One metric and its series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSnapshot {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Its description, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Its series, by labels.
    pub series: Vec<SeriesSnapshot>,
    /// Lookups of label sets beyond the cap, folded into the overflow series.
    pub overflowed: u64,
}

/// One series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesSnapshot {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    #[serde(flatten)]
    pub value: SeriesValue,
}

/// A series' value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SeriesValue {
    /// A counter's total.
    Counter {
        /// The total.
        value: u64,
    },
    /// A gauge's value.
    Gauge {
        /// The value (`null` in JSON when not finite).
        value: f64,
    },
    /// A histogram.
    Histogram {
        /// Values recorded.
        count: u64,
        /// Their sum.
        sum: f64,
        /// Cumulative counts per upper bound (the `+Inf` bucket is `count`).
        buckets: Vec<Bucket>,
    },
}

/// A cumulative histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound (inclusive).
    pub le: f64,
    /// Values at or below it.
    pub count: u64,
}

fn value_of(cell: &Cell) -> SeriesValue {
    match cell {
        Cell::Counter(c) => SeriesValue::Counter {
            value: c.0.load(Ordering::Relaxed),
        },
        Cell::Gauge(g) => SeriesValue::Gauge { value: g.get() },
        Cell::Histogram(h) => {
            let mut cumulative = 0;
            let buckets = h
                .bounds
                .iter()
                .zip(h.buckets.iter())
                .map(|(le, n)| {
                    cumulative += n.load(Ordering::Relaxed);
                    Bucket {
                        le: *le,
                        count: cumulative,
                    }
                })
                .collect();
            let inf = h.buckets.last().map_or(0, |b| b.load(Ordering::Relaxed));
            SeriesValue::Histogram {
                // Read from the buckets so that `count` always equals the `+Inf` bucket even
                // while values are being recorded.
                count: cumulative + inf,
                sum: f64::from_bits(h.sum.load(Ordering::Relaxed)),
                buckets,
            }
        }
    }
}

impl MetricsRegistry {
    /// Every metric and series now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let help = self
            .inner
            .help
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let families = self
            .inner
            .families
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let metrics = families
            .iter()
            .map(|(name, family)| {
                let mut series: Vec<SeriesSnapshot> = family
                    .series
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .map(|(labels, cell)| SeriesSnapshot {
                        labels: labels.iter().cloned().collect(),
                        value: value_of(cell),
                    })
                    .collect();
                if let Some(cell) = family.overflow.get() {
                    series.push(SeriesSnapshot {
                        labels: overflow_labels().iter().cloned().collect(),
                        value: value_of(cell),
                    });
                }
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                MetricSnapshot {
                    name: name.clone(),
                    kind: family.kind,
                    help: help.get(name).cloned().or_else(|| {
                        BUILTIN_HELP
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, h)| (*h).to_owned())
                    }),
                    series,
                    overflowed: family.folded.load(Ordering::Relaxed),
                }
            })
            .collect();
        MetricsSnapshot { metrics }
    }

    /// Prometheus text exposition (format 0.0.4): histograms as cumulative `_bucket` series
    /// with `le` labels plus `_sum` and `_count`; counters named with a `_total` suffix.
    pub fn render_prometheus(&self) -> String {
        self.snapshot().to_prometheus()
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn labels(out: &mut String, labels: &BTreeMap<String, String>, extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra)
    {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out.push('}');
}

impl MetricsSnapshot {
    /// The snapshot as Prometheus text exposition.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut overflowed = Vec::new();
        for metric in &self.metrics {
            let name = match metric.kind {
                MetricKind::Counter if !metric.name.ends_with("_total") => {
                    format!("{}_total", metric.name)
                }
                _ => metric.name.clone(),
            };
            match &metric.help {
                Some(help) => {
                    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# HELP {name} {} (no description registered)",
                        metric.name
                    );
                }
            }
            let _ = writeln!(out, "# TYPE {name} {}", metric.kind.as_str());
            for series in &metric.series {
                match &series.value {
                    SeriesValue::Counter { value } => {
                        out.push_str(&name);
                        labels(&mut out, &series.labels, None);
                        let _ = writeln!(out, " {value}");
                    }
                    SeriesValue::Gauge { value } => {
                        out.push_str(&name);
                        labels(&mut out, &series.labels, None);
                        let _ = writeln!(out, " {}", float(*value));
                    }
                    SeriesValue::Histogram {
                        count,
                        sum,
                        buckets,
                    } => {
                        for bucket in buckets {
                            let _ = write!(out, "{name}_bucket");
                            labels(&mut out, &series.labels, Some(("le", &float(bucket.le))));
                            let _ = writeln!(out, " {}", bucket.count);
                        }
                        let _ = write!(out, "{name}_bucket");
                        labels(&mut out, &series.labels, Some(("le", "+Inf")));
                        let _ = writeln!(out, " {count}");
                        let _ = write!(out, "{name}_sum");
                        labels(&mut out, &series.labels, None);
                        let _ = writeln!(out, " {}", float(*sum));
                        let _ = write!(out, "{name}_count");
                        labels(&mut out, &series.labels, None);
                        let _ = writeln!(out, " {count}");
                    }
                }
            }
            if metric.overflowed > 0 {
                overflowed.push((metric.name.as_str(), metric.overflowed));
            }
        }
        if !overflowed.is_empty() {
            let _ = writeln!(
                out,
                "# HELP {OVERFLOW_TOTAL} Label sets folded into a metric's overflow series because it held the maximum number of series."
            );
            let _ = writeln!(out, "# TYPE {OVERFLOW_TOTAL} counter");
            for (metric, n) in overflowed {
                let _ = writeln!(
                    out,
                    "{OVERFLOW_TOTAL}{{metric=\"{}\"}} {n}",
                    escape_label(metric)
                );
            }
        }
        out
    }
}
