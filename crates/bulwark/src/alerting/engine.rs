//! The evaluation loop: conditions to candidate alerts, candidates to state changes, state
//! changes to notifications.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use super::alert::{Alert, AlertEvent, AlertState, Batch, Notice, unix_ms};
use super::config::EngineConfig;
use super::eval::{self, Candidate, Index};
use super::notify::{NotifierQueue, QueueStats};
use super::rule::{AlertRule, Condition, RuleError};
use super::template::{Vars, render};
use crate::breaker::{BreakerListener, BreakerRegistry, State, Transition};
use crate::clock::{Clock, MonotonicClock, duration_to_nanos};
use crate::telemetry::metrics::MetricsRegistry;

/// Gauge `{rule}`: alerts of a rule firing now.
pub const ALERTS_FIRING: &str = "bulwark_alerts_firing";
/// Counter: evaluations run.
pub const ALERT_EVALUATIONS_TOTAL: &str = "bulwark_alert_evaluations_total";

type Key = (usize, BTreeMap<String, String>);

#[derive(Debug)]
struct Entry {
    state: AlertState,
    active_since: u64,
    fired_at: Option<u64>,
    last_true: u64,
    last_sent: Option<u64>,
    value: f64,
    next_trial_in: Option<Duration>,
    series_labels: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct EvalState {
    alerts: HashMap<Key, Entry>,
    resolved: VecDeque<Alert>,
    histories: eval::Histories,
    last_eval: Option<u64>,
    next_batch: u64,
}

/// Transitions seen since the last evaluation, per breaker: `(state entered, when)`.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    pub(crate) entered: Mutex<HashMap<String, Vec<(State, u64)>>>,
}

impl BreakerListener for Latch {
    fn on_transition(&self, transition: &Transition<'_>) {
        let mut map = self.entered.lock().unwrap_or_else(PoisonError::into_inner);
        let list = map.entry(transition.breaker.to_owned()).or_default();
        // Bounded: a flapping breaker keeps only its latest transitions between evaluations.
        if list.len() >= 64 {
            list.remove(0);
        }
        list.push((transition.to, duration_to_nanos(transition.at)));
    }
}

/// Checks that each metric a rule names is known: one of Bulwark's own (breakers, limiters,
/// checkpoints, telemetry, alerting) or one of `known`.
pub fn check_metrics<'a>(
    rules: &[AlertRule],
    known: impl IntoIterator<Item = &'a str>,
) -> Result<(), RuleError> {
    let known = eval::known_metrics(known);
    for rule in rules {
        if let Some(metric) = rule.condition.metric()
            && !known.contains(eval::base_name(metric))
        {
            return Err(RuleError {
                rule: rule.name.clone(),
                field: "metric",
                reason: format!(
                    "unknown metric `{metric}` (not a Bulwark metric, not registered, not in `known_metrics`)"
                ),
            });
        }
    }
    Ok(())
}

/// Evaluates [`AlertRule`]s over a metrics registry and a breaker registry on a [`Clock`].
///
/// [`evaluate`](Self::evaluate) runs one round; [`run`](Self::run) runs rounds every
/// `interval` on the clock; notifications go to bounded per-notifier queues drained by
/// [`run_notifiers`](Self::run_notifiers), so a slow or hanging notifier never delays an
/// evaluation.
pub struct AlertEngine<C: Clock = MonotonicClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for AlertEngine<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> std::fmt::Debug for AlertEngine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEngine")
            .field("rules", &self.inner.rules.len())
            .field("notifiers", &self.inner.queues.len())
            .finish()
    }
}

struct Inner<C: Clock> {
    rules: Vec<AlertRule>,
    config: EngineConfig,
    metrics: MetricsRegistry,
    breakers: Option<Arc<BreakerRegistry<C>>>,
    latch: Arc<Latch>,
    clock: C,
    wall_at_zero: SystemTime,
    state: Mutex<EvalState>,
    events: broadcast::Sender<AlertEvent>,
    queues: Vec<Arc<NotifierQueue>>,
}

impl<C: Clock> AlertEngine<C> {
    /// An engine over `metrics` (and `breakers`, for breaker rules) on `clock`. Checks that each
    /// metric a rule names is known: one of Bulwark's own, one already in the registry, or one
    /// of `config.known_metrics`.
    pub fn new(
        rules: Vec<AlertRule>,
        config: EngineConfig,
        metrics: MetricsRegistry,
        breakers: Option<Arc<BreakerRegistry<C>>>,
        clock: C,
    ) -> Result<Self, RuleError> {
        let snapshot = metrics.snapshot();
        check_metrics(
            &rules,
            snapshot
                .metrics
                .iter()
                .map(|m| m.name.as_str())
                .chain(config.known_metrics.iter().map(String::as_str)),
        )?;
        for rule in &rules {
            if matches!(rule.condition, Condition::BreakerState { .. }) && breakers.is_none() {
                return Err(RuleError {
                    rule: rule.name.clone(),
                    field: "condition",
                    reason: "a breaker_state rule needs a breaker registry".into(),
                });
            }
        }
        let latch = Arc::new(Latch::default());
        if let Some(b) = &breakers {
            b.add_listener(Arc::clone(&latch) as Arc<dyn BreakerListener>);
        }
        let wall_at_zero = SystemTime::now()
            .checked_sub(clock.now())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let queues = config
            .notifiers
            .iter()
            .map(|n| Arc::new(NotifierQueue::new(Arc::clone(n), config.delivery, &metrics)))
            .collect();
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                rules,
                config,
                metrics,
                breakers,
                latch,
                clock,
                wall_at_zero,
                state: Mutex::new(EvalState::default()),
                events,
                queues,
            }),
        })
    }

    /// Sets the wall-clock time that the clock's zero stands for (tests on a manual clock).
    pub fn with_wall_clock_at_zero(self, at: SystemTime) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.wall_at_zero = at;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.inner.rules
    }

    /// The config.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Alert events (pending, firing, resolved) from now on: the hook the event stream and
    /// other observers subscribe to. A receiver that falls behind loses the oldest events.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.inner.events.subscribe()
    }

    /// Each notifier's queue: depth and counts.
    pub fn queue_stats(&self) -> Vec<QueueStats> {
        self.inner.queues.iter().map(|q| q.stats()).collect()
    }

    fn wall(&self, nanos: u64) -> SystemTime {
        self.inner.wall_at_zero + Duration::from_nanos(nanos)
    }

    /// Pending and firing alerts, then recently resolved ones, newest last.
    pub fn alerts(&self) -> Vec<Alert> {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<Alert> = state
            .alerts
            .iter()
            .map(|(key, e)| self.to_alert(key, e, None))
            .collect();
        out.sort_by(|a, b| (&a.rule, &a.labels).cmp(&(&b.rule, &b.labels)));
        out.extend(state.resolved.iter().cloned());
        out
    }

    fn to_alert(&self, key: &Key, e: &Entry, resolved_at: Option<u64>) -> Alert {
        let rule = &self.inner.rules[key.0];
        let mut labels = e.series_labels.clone();
        for (k, v) in &rule.labels {
            labels.insert(k.clone(), v.clone());
        }
        labels.insert("alertname".into(), rule.name.clone());
        let vars = Vars {
            labels: &labels,
            value: e.value,
            next_trial_in: e.next_trial_in,
        };
        let annotations = rule
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), render(t, &vars)))
            .collect();
        Alert {
            rule: rule.name.clone(),
            state: if resolved_at.is_some() {
                AlertState::Resolved
            } else {
                e.state
            },
            generator_url: eval::generator_url(
                &self.inner.config.external_url,
                rule,
                &e.series_labels,
            ),
            labels,
            annotations,
            value: e.value,
            active_since_unix_ms: unix_ms(self.wall(e.active_since)),
            fired_at_unix_ms: e.fired_at.map(|t| unix_ms(self.wall(t))),
            resolved_at_unix_ms: resolved_at.map(|t| unix_ms(self.wall(t))),
            next_trial_in: e.next_trial_in,
        }
    }

    /// Runs one evaluation now; returns the state changes it made (also broadcast to
    /// [`subscribe`](Self::subscribe)rs) and queues the notifications that are due.
    pub fn evaluate(&self) -> Vec<AlertEvent> {
        let inner = &*self.inner;
        let now = inner.clock.now_nanos();
        let snapshot = inner.metrics.snapshot();
        let entered = std::mem::take(
            &mut *inner
                .latch
                .entered
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *state;
        let index = Index::new(&snapshot);
        eval::update_histories(&inner.rules, &index, &mut st.histories, now, st.last_eval);
        let mut events = Vec::new();
        let mut seen: HashSet<Key> = HashSet::new();
        for (i, rule) in inner.rules.iter().enumerate() {
            let candidates: Vec<Candidate> = match &rule.condition {
                Condition::BreakerState {
                    breaker,
                    states,
                    min_open,
                } => match &inner.breakers {
                    Some(registry) => eval::breaker_candidates(
                        registry, breaker, states, *min_open, &entered, now,
                    ),
                    None => Vec::new(),
                },
                other => eval::metric_candidates(other, &index, &st.histories, now),
            };
            let for_ = duration_to_nanos(rule.for_);
            for c in candidates {
                let key: Key = (i, c.labels);
                let held = c.held_until.saturating_sub(c.since.unwrap_or(now));
                match st.alerts.get_mut(&key) {
                    Some(e) => {
                        e.value = c.value;
                        e.last_true = now;
                        e.next_trial_in = c.next_trial_in;
                        if e.state == AlertState::Pending
                            && c.held_until.saturating_sub(e.active_since) >= for_
                        {
                            e.state = AlertState::Firing;
                            e.fired_at = Some(now);
                            events.push((key.clone(), AlertState::Firing));
                        }
                    }
                    None => {
                        if c.transient && held < for_ {
                            // Entered and left the state between two evaluations, for less
                            // than `for`: it never fires.
                            continue;
                        }
                        let firing = held >= for_;
                        let since = c.since.unwrap_or(now);
                        st.alerts.insert(
                            key.clone(),
                            Entry {
                                state: if firing {
                                    AlertState::Firing
                                } else {
                                    AlertState::Pending
                                },
                                active_since: since,
                                fired_at: firing.then_some(now),
                                last_true: now,
                                last_sent: None,
                                value: c.value,
                                next_trial_in: c.next_trial_in,
                                series_labels: key.1.clone(),
                            },
                        );
                        events.push((key.clone(), AlertState::Pending));
                        if firing {
                            events.push((key.clone(), AlertState::Firing));
                        }
                    }
                }
                seen.insert(key);
            }
        }
        // Alerts whose condition no longer holds.
        let mut gone = Vec::new();
        for (key, e) in &st.alerts {
            if seen.contains(key) {
                continue;
            }
            let keep = duration_to_nanos(inner.rules[key.0].keep_firing_for);
            if e.state == AlertState::Pending || now.saturating_sub(e.last_true) >= keep {
                gone.push(key.clone());
            }
        }
        let mut notices = Vec::new();
        let mut out = Vec::new();
        for key in gone {
            if let Some(e) = st.alerts.remove(&key)
                && e.state == AlertState::Firing
            {
                let alert = self.to_alert(&key, &e, Some(now));
                notices.push(self.notice(&alert, now));
                out.push(AlertEvent {
                    state: AlertState::Resolved,
                    alert: alert.clone(),
                });
                st.resolved.push_back(alert);
            }
        }
        let keep_resolved = duration_to_nanos(inner.config.keep_resolved);
        while st.resolved.len() > inner.config.max_resolved
            || st.resolved.front().is_some_and(|a| {
                a.resolved_at_unix_ms.is_some_and(|t| {
                    t.saturating_add(keep_resolved / 1_000_000) < unix_ms(self.wall(now))
                })
            })
        {
            st.resolved.pop_front();
        }
        for (key, s) in events {
            if let Some(e) = st.alerts.get(&key) {
                out.push(AlertEvent {
                    state: s,
                    alert: self.to_alert(&key, e, None),
                });
            }
        }
        // Firing alerts due: new ones and those not re-sent for `resend_interval`.
        let resend = duration_to_nanos(inner.config.resend_interval);
        let mut firing_per_rule: HashMap<&str, f64> =
            inner.rules.iter().map(|r| (r.name.as_str(), 0.0)).collect();
        for (key, e) in st.alerts.iter_mut() {
            if e.state != AlertState::Firing {
                continue;
            }
            *firing_per_rule
                .entry(inner.rules[key.0].name.as_str())
                .or_default() += 1.0;
            if e.last_sent.is_none_or(|t| now.saturating_sub(t) >= resend) {
                e.last_sent = Some(now);
                let alert = self.to_alert(key, e, None);
                notices.push(self.notice(&alert, now));
            }
        }
        st.last_eval = Some(now);
        let batch_id = st.next_batch;
        if !notices.is_empty() {
            st.next_batch += 1;
        }
        drop(state);
        for (rule, n) in firing_per_rule {
            let _ = inner.metrics.set_gauge(ALERTS_FIRING, n, &[("rule", rule)]);
        }
        let _ = inner
            .metrics
            .increment_counter(ALERT_EVALUATIONS_TOTAL, &[]);
        if !notices.is_empty() {
            let batch = Arc::new(Batch {
                id: batch_id,
                notices,
            });
            for q in &inner.queues {
                q.push(Arc::clone(&batch));
            }
        }
        for ev in &out {
            // No receiver is fine: nobody subscribed.
            let _ = inner.events.send(ev.clone());
        }
        out
    }

    fn notice(&self, alert: &Alert, now: u64) -> Notice {
        let cfg = &self.inner.config;
        let resolved = alert.state == AlertState::Resolved;
        let ends_at = if resolved {
            self.wall(now)
        } else {
            // Prometheus' choice: four times the longer of the evaluation and re-send intervals,
            // so two sends can be lost before Alertmanager resolves the alert by itself.
            self.wall(now) + cfg.interval.max(cfg.resend_interval) * 4
        };
        Notice {
            state: if resolved {
                AlertState::Resolved
            } else {
                AlertState::Firing
            },
            labels: alert.labels.clone(),
            annotations: alert.annotations.clone(),
            starts_at: SystemTime::UNIX_EPOCH + Duration::from_millis(alert.active_since_unix_ms),
            ends_at,
            generator_url: alert.generator_url.clone(),
        }
    }

    /// Evaluates every `interval` on the clock, forever (spawn it; drop the task to stop).
    pub async fn run(self) {
        loop {
            self.evaluate();
            self.inner.clock.sleep(self.inner.config.interval).await;
        }
    }

    /// Delivers queued notifications, one task per notifier, forever (spawn it). Backoff
    /// between attempts waits on the engine's clock.
    pub async fn run_notifiers(self) {
        let mut tasks = tokio::task::JoinSet::new();
        for q in &self.inner.queues {
            let q = Arc::clone(q);
            let clock = self.inner.clock.clone();
            tasks.spawn(async move { q.run(clock).await });
        }
        while tasks.join_next().await.is_some() {}
    }
}
