//! Conditions to candidates: which label sets make a rule's condition hold right now.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::matcher::{LabelMatcher, NamePattern};
use super::rule::{AlertRule, Condition};
use super::series::{History, Sample};
use crate::breaker::{BreakerRegistry, State};
use crate::clock::{Clock, duration_to_nanos};
use crate::telemetry::metrics::names::BUILTIN_HELP;
use crate::telemetry::metrics::{MetricSnapshot, MetricsSnapshot, SeriesSnapshot, SeriesValue};

/// Sample histories: metric (base name) → series labels → history.
pub(crate) type Histories = HashMap<String, HashMap<BTreeMap<String, String>, History>>;

/// A label set whose condition holds now.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
    /// When the condition started to hold, when the source knows (a breaker's transition).
    pub(crate) since: Option<u64>,
    /// Until when it held (now, or the end of a stint that ended before this evaluation).
    pub(crate) held_until: u64,
    /// It held between two evaluations and no longer does.
    pub(crate) transient: bool,
    pub(crate) next_trial_in: Option<Duration>,
}

/// A counter's name without `_total`: the registry may hold it either way.
pub(crate) fn base_name(metric: &str) -> &str {
    metric.strip_suffix("_total").unwrap_or(metric)
}

/// The snapshot's metrics by base name.
pub(crate) struct Index<'a> {
    by_name: HashMap<&'a str, &'a MetricSnapshot>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(snapshot: &'a MetricsSnapshot) -> Self {
        Self {
            by_name: snapshot
                .metrics
                .iter()
                .map(|m| (base_name(&m.name), m))
                .collect(),
        }
    }

    fn series(&self, metric: &str) -> &'a [SeriesSnapshot] {
        self.by_name
            .get(base_name(metric))
            .map_or(&[], |m| m.series.as_slice())
    }
}

pub(crate) fn known_metrics<'a>(extra: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    BUILTIN_HELP
        .iter()
        .map(|(n, _)| *n)
        .chain([
            super::engine::ALERTS_FIRING,
            super::engine::ALERT_EVALUATIONS_TOTAL,
        ])
        .chain(super::notify::NOTIFY_METRICS)
        .map(|n| base_name(n).to_owned())
        .chain(extra.into_iter().map(|n| base_name(n).to_owned()))
        .collect()
}

fn selected<'a>(
    series: &'a [SeriesSnapshot],
    matchers: &'a [LabelMatcher],
) -> impl Iterator<Item = &'a SeriesSnapshot> + 'a {
    series
        .iter()
        .filter(move |s| matchers.iter().all(|m| m.matches(&s.labels)))
}

/// Appends this evaluation's sample to every series a windowed rule reads.
pub(crate) fn update_histories(
    rules: &[AlertRule],
    index: &Index<'_>,
    histories: &mut Histories,
    now: u64,
    last_eval: Option<u64>,
) {
    let mut keep: HashMap<&str, Duration> = HashMap::new();
    for rule in rules {
        if matches!(
            rule.condition,
            Condition::Gauge { .. } | Condition::BreakerState { .. }
        ) {
            continue;
        }
        if let Some(m) = rule.condition.metric() {
            let w = keep.entry(base_name(m)).or_default();
            *w = (*w).max(rule.condition.window());
        }
    }
    for (metric, window) in keep {
        let per_series = histories.entry(metric.to_owned()).or_default();
        for s in index.series(metric) {
            let sample = match &s.value {
                SeriesValue::Counter { value } => Sample::Counter(*value as f64),
                SeriesValue::Histogram { count, buckets, .. } => Sample::Histogram {
                    buckets: buckets.clone(),
                    count: *count,
                },
                SeriesValue::Gauge { .. } => continue,
            };
            let history = match per_series.get_mut(&s.labels) {
                Some(h) => h,
                None => {
                    let mut h = History::new(now);
                    if let Some(prev) = last_eval {
                        // Seen for the first time after an evaluation that did not see it: it
                        // was zero then.
                        h.push(prev, sample.zero(), window);
                    }
                    per_series.entry(s.labels.clone()).or_insert(h)
                }
            };
            history.push(now, sample, window);
            history.seen_at = now;
        }
        per_series.retain(|_, h| h.seen_at == now);
    }
    histories.retain(|_, s| !s.is_empty());
}

pub(crate) fn metric_candidates(
    condition: &Condition,
    index: &Index<'_>,
    histories: &Histories,
    now: u64,
) -> Vec<Candidate> {
    let candidate = |labels: &BTreeMap<String, String>, value: f64| Candidate {
        labels: labels.clone(),
        value,
        since: None,
        held_until: now,
        transient: false,
        next_trial_in: None,
    };
    let history = |metric: &str, labels: &BTreeMap<String, String>| {
        histories.get(base_name(metric)).and_then(|h| h.get(labels))
    };
    let mut out = Vec::new();
    match condition {
        Condition::Gauge {
            metric,
            matchers,
            op,
            threshold,
        } => {
            for s in selected(index.series(metric), matchers) {
                if let SeriesValue::Gauge { value } = s.value
                    && op.holds(value, *threshold)
                {
                    out.push(candidate(&s.labels, value));
                }
            }
        }
        Condition::Rate {
            metric,
            matchers,
            window,
            op,
            threshold,
        } => {
            for s in selected(index.series(metric), matchers) {
                if let Some(v) = history(metric, &s.labels).and_then(|h| h.rate(now, *window))
                    && op.holds(v, *threshold)
                {
                    out.push(candidate(&s.labels, v));
                }
            }
        }
        Condition::Quantile {
            metric,
            matchers,
            quantile,
            window,
            op,
            threshold,
        } => {
            for s in selected(index.series(metric), matchers) {
                if let Some(v) =
                    history(metric, &s.labels).and_then(|h| h.quantile(now, *window, *quantile))
                    && op.holds(v, *threshold)
                {
                    out.push(candidate(&s.labels, v));
                }
            }
        }
        Condition::Stuck {
            metric,
            matchers,
            window,
        } => {
            let w = duration_to_nanos(*window);
            for s in selected(index.series(metric), matchers) {
                if let Some(h) = history(metric, &s.labels)
                    && now.saturating_sub(h.first_seen) >= w
                    && now.saturating_sub(h.last_increase) >= w
                {
                    out.push(candidate(
                        &s.labels,
                        now.saturating_sub(h.last_increase) as f64 / 1e9,
                    ));
                }
            }
        }
        Condition::CheckpointCorrupt { window } => {
            let metric = super::rule::CHECKPOINT_CORRUPTIONS;
            for s in index.series(metric) {
                if let Some(v) = history(metric, &s.labels).and_then(|h| h.increase(now, *window))
                    && v > 0.0
                {
                    out.push(candidate(&s.labels, v));
                }
            }
        }
        Condition::BreakerState { .. } => {}
    }
    out
}

/// Breakers in a watched state now, or for a while since the last evaluation (from their own
/// transitions, so an OPEN shorter than the interval is seen).
pub(crate) fn breaker_candidates<C: Clock>(
    registry: &BreakerRegistry<C>,
    pattern: &NamePattern,
    states: &[State],
    min_open: Duration,
    entered: &HashMap<String, Vec<(State, u64)>>,
    now: u64,
) -> Vec<Candidate> {
    let min = duration_to_nanos(min_open);
    let mut out: Vec<Candidate> = Vec::new();
    for breaker in registry.breakers() {
        if !pattern.matches(breaker.name()) {
            continue;
        }
        let snap = breaker.snapshot();
        let stints = entered.get(breaker.name()).map_or(&[][..], Vec::as_slice);
        let labels = |s: State| -> BTreeMap<String, String> {
            [
                ("name".to_owned(), breaker.name().to_owned()),
                ("state".to_owned(), s.as_str().to_owned()),
            ]
            .into()
        };
        let mut current_labels = None;
        if states.contains(&snap.state) {
            let since = stints
                .iter()
                .rev()
                .find(|(s, _)| *s == snap.state)
                .map(|(_, at)| *at)
                .or_else(|| {
                    snap.since_last_transition
                        .map(|d| now.saturating_sub(duration_to_nanos(d)))
                })
                .unwrap_or(0);
            if now.saturating_sub(since) >= min {
                let l = labels(snap.state);
                current_labels = Some(l.clone());
                out.push(Candidate {
                    labels: l,
                    value: 1.0,
                    since: Some(since),
                    held_until: now,
                    transient: false,
                    next_trial_in: snap.next_trial_in,
                });
            }
        }
        // Stints that began and ended since the last evaluation (the last one is the current
        // state, handled above).
        for (i, (s, at)) in stints.iter().enumerate() {
            let Some((_, end)) = stints.get(i + 1) else {
                break;
            };
            if !states.contains(s) || end.saturating_sub(*at) < min {
                continue;
            }
            let l = labels(*s);
            if current_labels.as_ref() == Some(&l) {
                continue;
            }
            match out.iter_mut().find(|c| c.labels == l) {
                Some(c) if c.transient && end - at > c.held_until - c.since.unwrap_or(0) => {
                    c.since = Some(*at);
                    c.held_until = *end;
                }
                Some(_) => {}
                None => out.push(Candidate {
                    labels: l,
                    value: 1.0,
                    since: Some(*at),
                    held_until: *end,
                    transient: true,
                    next_trial_in: None,
                }),
            }
        }
    }
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where an alert points: the breaker, the checkpoint list, or the rule's alerts in the API.
pub(crate) fn generator_url(
    base: &str,
    rule: &AlertRule,
    labels: &BTreeMap<String, String>,
) -> String {
    let base = base.trim_end_matches('/');
    match &rule.condition {
        Condition::BreakerState { .. } => format!(
            "{base}/api/observability/circuit-breakers/{}",
            percent_encode(labels.get("name").map_or("", String::as_str))
        ),
        Condition::CheckpointCorrupt { .. } => format!("{base}/api/observability/checkpoints"),
        _ => format!(
            "{base}/api/observability/alerts?rule={}",
            percent_encode(&rule.name)
        ),
    }
}
