//! Rules: what is watched, for how long, and what an alert says. [`RuleSpec`] is the form a
//! config file gives (strings and numbers); [`AlertRule::from_spec`] checks it field by field
//! and names the rule and the field in every error.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::matcher::{LabelMatcher, NamePattern, parse_selector};
use crate::breaker::State;

/// Counter Bulwark's checkpoint verification increments; the `checkpoint_corrupt` condition
/// watches it.
pub const CHECKPOINT_CORRUPTIONS: &str =
    crate::telemetry::metrics::names::CHECKPOINT_CORRUPTIONS_TOTAL;

/// Why a rule is not usable. `rule` and `field` name what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("alert rule `{rule}`: field `{field}`: {reason}")]
#[non_exhaustive]
pub struct RuleError {
    /// The rule's name (or `#N` when it has none).
    pub rule: String,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// A comparison of a value with a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Comparison {
    /// `>`
    #[serde(rename = ">")]
    Above,
    /// `>=`
    #[serde(rename = ">=")]
    AtLeast,
    /// `<`
    #[serde(rename = "<")]
    Below,
    /// `<=`
    #[serde(rename = "<=")]
    AtMost,
    /// `==`
    #[serde(rename = "==")]
    Equal,
    /// `!=`
    #[serde(rename = "!=")]
    NotEqual,
}

impl Comparison {
    /// Parses `>`, `>=`, `<`, `<=`, `==` or `!=`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            ">" => Self::Above,
            ">=" => Self::AtLeast,
            "<" => Self::Below,
            "<=" => Self::AtMost,
            "==" => Self::Equal,
            "!=" => Self::NotEqual,
            _ => return None,
        })
    }

    /// The operator as PromQL writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Above => ">",
            Self::AtLeast => ">=",
            Self::Below => "<",
            Self::AtMost => "<=",
            Self::Equal => "==",
            Self::NotEqual => "!=",
        }
    }

    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::AtLeast => value >= threshold,
            Self::Below => value < threshold,
            Self::AtMost => value <= threshold,
            Self::Equal => value == threshold,
            Self::NotEqual => value != threshold,
        }
    }
}

/// What a rule watches. Metric conditions select series of one metric by label matchers and
/// yield one candidate alert per matching series.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// A breaker whose name matches `breaker` is in one of `states`, read from the breaker
    /// registry and its transitions (not sampled): an OPEN shorter than the evaluation interval
    /// still counts. With `min_open`, the breaker must have stayed in the state that long.
    BreakerState {
        /// The names watched.
        breaker: NamePattern,
        /// The states that make the condition true.
        states: Vec<State>,
        /// Hysteresis: time the breaker must have spent in the state.
        min_open: Duration,
    },
    /// A counter's per-second rate over `window` compared with `threshold`.
    Rate {
        /// The counter (its name with or without `_total`).
        metric: String,
        /// Which series.
        matchers: Vec<LabelMatcher>,
        /// The window.
        window: Duration,
        /// The comparison.
        op: Comparison,
        /// The threshold, per second.
        threshold: f64,
    },
    /// A gauge compared with `threshold`.
    Gauge {
        /// The gauge.
        metric: String,
        /// Which series.
        matchers: Vec<LabelMatcher>,
        /// The comparison.
        op: Comparison,
        /// The threshold.
        threshold: f64,
    },
    /// A histogram's `quantile` over the observations of the last `window` compared with
    /// `threshold` (Prometheus' `histogram_quantile` interpolation).
    Quantile {
        /// The histogram.
        metric: String,
        /// Which series.
        matchers: Vec<LabelMatcher>,
        /// The quantile, in `[0, 1]`.
        quantile: f64,
        /// The window.
        window: Duration,
        /// The comparison.
        op: Comparison,
        /// The threshold.
        threshold: f64,
    },
    /// A counter (e.g. steps finished by a run) that did not increase for `window`, after
    /// having been seen for at least that long: a stuck run.
    Stuck {
        /// The counter.
        metric: String,
        /// Which series.
        matchers: Vec<LabelMatcher>,
        /// How long without an increase.
        window: Duration,
    },
    /// A checkpoint failed verification within `window`.
    CheckpointCorrupt {
        /// The window.
        window: Duration,
    },
}

impl Condition {
    /// The metric the condition reads, if it reads one.
    pub fn metric(&self) -> Option<&str> {
        match self {
            Self::Rate { metric, .. }
            | Self::Gauge { metric, .. }
            | Self::Quantile { metric, .. }
            | Self::Stuck { metric, .. } => Some(metric),
            Self::CheckpointCorrupt { .. } => Some(CHECKPOINT_CORRUPTIONS),
            Self::BreakerState { .. } => None,
        }
    }

    /// The longest history the condition needs.
    pub fn window(&self) -> Duration {
        match self {
            Self::Rate { window, .. }
            | Self::Quantile { window, .. }
            | Self::Stuck { window, .. }
            | Self::CheckpointCorrupt { window } => *window,
            Self::Gauge { .. } | Self::BreakerState { .. } => Duration::ZERO,
        }
    }

    /// The condition's kind as configs name it.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::BreakerState { .. } => "breaker_state",
            Self::Rate { .. } => "rate",
            Self::Gauge { .. } => "gauge",
            Self::Quantile { .. } => "quantile",
            Self::Stuck { .. } => "stuck",
            Self::CheckpointCorrupt { .. } => "checkpoint_corrupt",
        }
    }
}

/// One alert rule, checked.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AlertRule {
    /// Its name: the `alertname` label of its alerts.
    pub name: String,
    /// What it watches.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires.
    pub for_: Duration,
    /// How long a firing alert keeps firing after the condition stops holding.
    pub keep_firing_for: Duration,
    /// Labels added to every alert (severity, team...).
    pub labels: BTreeMap<String, String>,
    /// Annotations, templated with `{{ $labels.NAME }}`, `{{ $value }}` and, on breaker
    /// rules, `{{ $next_trial_in }}`.
    pub annotations: BTreeMap<String, String>,
}

impl AlertRule {
    /// A rule with no `for`, labels or annotations.
    pub fn new(name: impl Into<String>, condition: Condition) -> Self {
        Self {
            name: name.into(),
            condition,
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Sets `for`.
    pub fn with_for(mut self, for_: Duration) -> Self {
        self.for_ = for_;
        self
    }

    /// Sets `keep_firing_for`.
    pub fn with_keep_firing_for(mut self, keep: Duration) -> Self {
        self.keep_firing_for = keep;
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Adds an annotation (a template).
    pub fn with_annotation(mut self, name: impl Into<String>, template: impl Into<String>) -> Self {
        self.annotations.insert(name.into(), template.into());
        self
    }

    /// Checks a rule as a config gives it.
    pub fn from_spec(spec: &RuleSpec) -> Result<Self, RuleError> {
        let name = spec.name.trim().to_owned();
        let err = |field: &'static str, reason: String| RuleError {
            rule: name.clone(),
            field,
            reason,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(err(
                "name",
                "must be non-empty letters, digits, `_` or `:` (it becomes the alertname)".into(),
            ));
        }
        let duration = |field: &'static str, v: &Option<String>| -> Result<Duration, RuleError> {
            match v {
                None => Ok(Duration::ZERO),
                Some(text) => humantime::parse_duration(text.trim())
                    .map_err(|e| err(field, format!("`{text}` is not a duration ({e})"))),
            }
        };
        let required = |field: &'static str, v: &Option<String>| -> Result<String, RuleError> {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                err(
                    field,
                    format!("is required by a `{}` condition", spec.condition),
                )
            })
        };
        let window = |v: &Option<String>| -> Result<Duration, RuleError> {
            let w = duration("window", v)?;
            if w.is_zero() {
                return Err(err("window", "is required and must be above zero".into()));
            }
            Ok(w)
        };
        let threshold = || -> Result<f64, RuleError> {
            match &spec.threshold {
                Some(Number::Number(n)) if n.is_finite() => Ok(*n),
                Some(Number::Number(n)) => Err(err("threshold", format!("{n} is not finite"))),
                Some(Number::Text(t)) => Err(err("threshold", format!("`{t}` is not a number"))),
                None => Err(err("threshold", "is required".into())),
            }
        };
        let op = || -> Result<Comparison, RuleError> {
            let text = spec.op.as_deref().unwrap_or(">");
            Comparison::parse(text)
                .ok_or_else(|| err("op", format!("`{text}` is not one of >, >=, <, <=, ==, !=")))
        };
        let matchers = || -> Result<Vec<LabelMatcher>, RuleError> {
            parse_selector(spec.selector.as_deref().unwrap_or("")).map_err(|e| err("selector", e))
        };
        let metric = || -> Result<String, RuleError> {
            let m = required("metric", &spec.metric)?;
            if !m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                || m.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(err("metric", format!("`{m}` is not a metric name")));
            }
            Ok(m)
        };
        let condition = match spec.condition.as_str() {
            "breaker_state" => {
                let pattern = required("breaker", &spec.breaker)?;
                let breaker = NamePattern::new(&pattern).map_err(|e| err("breaker", e))?;
                let states = if spec.states.is_empty() {
                    vec![State::Open]
                } else {
                    spec.states
                        .iter()
                        .map(|s| parse_state(s).ok_or_else(|| err("states", format!("`{s}` is not a breaker state (closed, open, half_open, forced_open, disabled)"))))
                        .collect::<Result<_, _>>()?
                };
                Condition::BreakerState {
                    breaker,
                    states,
                    min_open: duration("min_open", &spec.min_open)?,
                }
            }
            "rate" => Condition::Rate {
                metric: metric()?,
                matchers: matchers()?,
                window: window(&spec.window)?,
                op: op()?,
                threshold: threshold()?,
            },
            "gauge" => Condition::Gauge {
                metric: metric()?,
                matchers: matchers()?,
                op: op()?,
                threshold: threshold()?,
            },
            "quantile" => {
                let quantile = match spec.quantile {
                    Some(Number::Number(q)) if (0.0..=1.0).contains(&q) => q,
                    Some(Number::Number(q)) => {
                        return Err(err("quantile", format!("{q} is not within [0, 1]")));
                    }
                    Some(Number::Text(ref t)) => {
                        return Err(err("quantile", format!("`{t}` is not a number")));
                    }
                    None => return Err(err("quantile", "is required".into())),
                };
                Condition::Quantile {
                    metric: metric()?,
                    matchers: matchers()?,
                    quantile,
                    window: window(&spec.window)?,
                    op: op()?,
                    threshold: threshold()?,
                }
            }
            "stuck" => Condition::Stuck {
                metric: metric()?,
                matchers: matchers()?,
                window: window(&spec.window)?,
            },
            "checkpoint_corrupt" => Condition::CheckpointCorrupt {
                window: match spec.window {
                    None => Duration::from_secs(300),
                    Some(_) => window(&spec.window)?,
                },
            },
            other => {
                return Err(err(
                    "condition",
                    format!(
                        "`{other}` is not one of breaker_state, rate, gauge, quantile, stuck, checkpoint_corrupt"
                    ),
                ));
            }
        };
        for key in spec.labels.keys() {
            if key.is_empty()
                || key.starts_with("__")
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(err("labels", format!("`{key}` is not a label name")));
            }
        }
        Ok(Self {
            name: name.clone(),
            condition,
            for_: duration("for", &spec.for_)?,
            keep_firing_for: duration("keep_firing_for", &spec.keep_firing_for)?,
            labels: spec.labels.clone(),
            annotations: spec.annotations.clone(),
        })
    }
}

fn parse_state(text: &str) -> Option<State> {
    Some(match text.trim() {
        "closed" => State::Closed,
        "open" => State::Open,
        "half_open" | "half-open" => State::HalfOpen,
        "forced_open" => State::ForcedOpen,
        "disabled" => State::Disabled,
        _ => return None,
    })
}

/// Checks every spec and refuses duplicate names; the first error wins.
pub fn rules_from_specs(specs: &[RuleSpec]) -> Result<Vec<AlertRule>, RuleError> {
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let mut rule = AlertRule::from_spec(spec).map_err(|mut e| {
            if e.rule.is_empty() {
                e.rule = format!("#{}", i + 1);
            }
            e
        })?;
        if !seen.insert(rule.name.clone()) {
            return Err(RuleError {
                rule: rule.name,
                field: "name",
                reason: "another rule has the same name".into(),
            });
        }
        rule.name.shrink_to_fit();
        rules.push(rule);
    }
    Ok(rules)
}

/// A number as a config file gives it, or the text given instead (refused with a message).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Number {
    /// A number.
    Number(f64),
    /// Anything else written as a string.
    Text(String),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// A rule as a config file writes it (`[[alerting.rules]]`): flat, strings for durations.
///
/// ```toml
/// name = "PaymentBreakerOpen"
/// condition = "breaker_state"   # rate | gauge | quantile | stuck | checkpoint_corrupt
/// breaker = "payment*"
/// states = ["open", "half_open"]
/// for = "0s"
/// keep_firing_for = "1m"
/// labels = { severity = "page" }
/// annotations = { summary = "Breaker {{ $labels.name }} is {{ $labels.state }}" }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSpec {
    /// The rule's name.
    pub name: String,
    /// The condition's kind.
    pub condition: String,
    /// `breaker_state`: the breaker name or glob.
    pub breaker: Option<String>,
    /// `breaker_state`: the states (default `["open"]`).
    pub states: Vec<String>,
    /// `breaker_state`: minimum time in the state.
    pub min_open: Option<String>,
    /// Metric conditions: the metric.
    pub metric: Option<String>,
    /// Metric conditions: label matchers, `{name="payment"}`.
    pub selector: Option<String>,
    /// `rate`, `quantile`, `stuck`, `checkpoint_corrupt`: the window.
    pub window: Option<String>,
    /// The comparison (default `>`).
    pub op: Option<String>,
    /// The threshold.
    pub threshold: Option<Number>,
    /// `quantile`: the quantile.
    pub quantile: Option<Number>,
    /// How long the condition must hold.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// Hysteresis after the condition stops holding.
    pub keep_firing_for: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates).
    pub annotations: BTreeMap<String, String>,
}
