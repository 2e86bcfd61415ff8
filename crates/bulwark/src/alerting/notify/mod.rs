//! Notifiers and their delivery queues.
//!
//! Each notifier has a bounded FIFO of [`Batch`]es. Evaluation only pushes (a lock and a
//! `VecDeque::push_back`), so a notifier that is slow, down or hanging never delays it; when
//! the queue is full the oldest batch is dropped and counted
//! (`bulwark_alert_notifications_dropped_total{notifier}`). One task per notifier sends the
//! batch at the head: on failure it waits (exponential backoff on the engine's clock) and
//! tries again. A batch that only carries firing alerts is given up after `max_attempts`
//! (the next re-send carries them again); a batch that carries a resolve is retried until it
//! is delivered or the queue bound drops it, so a resolve is never lost silently.

mod alertmanager;
mod log;
mod webhook;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::Counter;
use tokio::sync::Notify;

pub use self::alertmanager::AlertmanagerNotifier;
pub use self::log::LogNotifier;
pub use self::webhook::{SIGNATURE_HEADER, WebhookNotifier, sign, verify};
use super::alert::Batch;
use crate::clock::Clock;
use crate::telemetry::metrics::MetricsRegistry;

/// Counter `{notifier}`: batches delivered.
pub const NOTIFICATIONS_SENT_TOTAL: &str = "bulwark_alert_notifications_sent_total";
/// Counter `{notifier}`: delivery attempts that failed.
pub const NOTIFICATION_FAILURES_TOTAL: &str = "bulwark_alert_notification_failures_total";
/// Counter `{notifier}`: firing-only batches given up after `max_attempts`.
pub const NOTIFICATIONS_GIVEN_UP_TOTAL: &str = "bulwark_alert_notifications_given_up_total";
/// Counter `{notifier}`: batches dropped because the queue was full.
pub const NOTIFICATIONS_DROPPED_TOTAL: &str = "bulwark_alert_notifications_dropped_total";

pub(crate) const NOTIFY_METRICS: [&str; 4] = [
    NOTIFICATIONS_SENT_TOTAL,
    NOTIFICATION_FAILURES_TOTAL,
    NOTIFICATIONS_GIVEN_UP_TOTAL,
    NOTIFICATIONS_DROPPED_TOTAL,
];

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The receiver answered with a status that is not a success.
    #[error("{notifier}: HTTP {status}: {body}")]
    Status {
        /// The notifier.
        notifier: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The request could not be made or timed out.
    #[error("{notifier}: {message}")]
    Transport {
        /// The notifier.
        notifier: String,
        /// What went wrong.
        message: String,
    },
}

/// Somewhere alerts are sent. Implementations make one attempt per call; retries, backoff and
/// the queue are the engine's.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + fmt::Debug + 'static {
    /// A short name, for metrics and logs (`alertmanager`, `webhook`, `log`).
    fn name(&self) -> &str;

    /// Sends one batch.
    async fn send(&self, batch: &Batch) -> Result<(), NotifyError>;
}

/// Queue bound, attempts and backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryPolicy {
    /// Batches held per notifier (default 256); beyond it the oldest is dropped.
    pub queue_capacity: usize,
    /// Attempts for a firing-only batch (default 5).
    pub max_attempts: u32,
    /// Wait after the first failure (default 500 ms), doubled after each further one.
    pub initial_backoff: Duration,
    /// The longest wait (default 30 s).
    pub max_backoff: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl DeliveryPolicy {
    /// A policy.
    pub fn new(
        queue_capacity: usize,
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        Self {
            queue_capacity: queue_capacity.max(1),
            max_attempts: max_attempts.max(1),
            initial_backoff,
            max_backoff: max_backoff.max(initial_backoff),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A notifier's queue now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The notifier.
    pub notifier: String,
    /// Batches waiting (the one being sent included).
    pub queued: usize,
    /// Batches delivered.
    pub sent: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Batches given up.
    pub given_up: u64,
    /// Batches dropped by the bound.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    failures: u64,
    given_up: u64,
    dropped: u64,
}

struct Handles {
    sent: Counter,
    failures: Counter,
    given_up: Counter,
    dropped: Counter,
}

pub(crate) struct NotifierQueue {
    notifier: Arc<dyn Notifier>,
    policy: DeliveryPolicy,
    items: Mutex<(VecDeque<Arc<Batch>>, Counts)>,
    wake: Notify,
    handles: Handles,
}

impl fmt::Debug for NotifierQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierQueue")
            .field("notifier", &self.notifier.name())
            .finish()
    }
}

impl NotifierQueue {
    pub(crate) fn new(
        notifier: Arc<dyn Notifier>,
        policy: DeliveryPolicy,
        metrics: &MetricsRegistry,
    ) -> Self {
        let name = notifier.name().to_owned();
        let counter = |metric: &str| {
            metrics
                .counter(metric, &[("notifier", &name)])
                .unwrap_or_else(|_| Counter::noop())
        };
        let handles = Handles {
            sent: counter(NOTIFICATIONS_SENT_TOTAL),
            failures: counter(NOTIFICATION_FAILURES_TOTAL),
            given_up: counter(NOTIFICATIONS_GIVEN_UP_TOTAL),
            dropped: counter(NOTIFICATIONS_DROPPED_TOTAL),
        };
        Self {
            notifier,
            policy: DeliveryPolicy::new(
                policy.queue_capacity,
                policy.max_attempts,
                policy.initial_backoff,
                policy.max_backoff,
            ),
            items: Mutex::new((VecDeque::new(), Counts::default())),
            wake: Notify::new(),
            handles,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<Arc<Batch>>, Counts)> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, batch: Arc<Batch>) {
        {
            let mut items = self.lock();
            while items.0.len() >= self.policy.queue_capacity {
                if let Some(old) = items.0.pop_front() {
                    items.1.dropped += 1;
                    self.handles.dropped.increment(1);
                    tracing::warn!(
                        notifier = self.notifier.name(),
                        batch = old.id,
                        resolve = old.has_resolve(),
                        "alert notification queue full: oldest batch dropped"
                    );
                }
            }
            items.0.push_back(batch);
        }
        self.wake.notify_one();
    }

    pub(crate) fn stats(&self) -> QueueStats {
        let items = self.lock();
        QueueStats {
            notifier: self.notifier.name().to_owned(),
            queued: items.0.len(),
            sent: items.1.sent,
            failures: items.1.failures,
            given_up: items.1.given_up,
            dropped: items.1.dropped,
        }
    }

    fn head(&self) -> Option<Arc<Batch>> {
        self.lock().0.front().cloned()
    }

    /// Removes the head if it is still `id` (the bound may have dropped it meanwhile).
    fn finish(&self, id: u64, f: impl FnOnce(&mut Counts)) {
        let mut items = self.lock();
        if items.0.front().is_some_and(|b| b.id == id) {
            items.0.pop_front();
        }
        f(&mut items.1);
    }

    pub(crate) async fn run<C: Clock>(self: Arc<Self>, clock: C) {
        loop {
            let notified = self.wake.notified();
            let Some(batch) = self.head() else {
                notified.await;
                continue;
            };
            let mut failures = 0u32;
            loop {
                match self.notifier.send(&batch).await {
                    Ok(()) => {
                        self.handles.sent.increment(1);
                        self.finish(batch.id, |c| c.sent += 1);
                        break;
                    }
                    Err(error) => {
                        failures += 1;
                        self.handles.failures.increment(1);
                        self.lock().1.failures += 1;
                        tracing::warn!(notifier = self.notifier.name(), batch = batch.id, attempt = failures, %error, "alert notification failed");
                        if !batch.has_resolve() && failures >= self.policy.max_attempts {
                            self.handles.given_up.increment(1);
                            self.finish(batch.id, |c| c.given_up += 1);
                            tracing::error!(
                                notifier = self.notifier.name(),
                                batch = batch.id,
                                "alert notification given up"
                            );
                            break;
                        }
                        clock.sleep(self.policy.backoff(failures)).await;
                        if self.head().is_none_or(|h| h.id != batch.id) {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// The JSON form of one notice, shared by the Alertmanager and webhook bodies.
pub(crate) fn notice_json(n: &super::alert::Notice) -> serde_json::Value {
    serde_json::json!({
        "status": n.state.as_str(),
        "labels": n.labels,
        "annotations": n.annotations,
        "startsAt": super::alert::rfc3339(n.starts_at),
        "endsAt": super::alert::rfc3339(n.ends_at),
        "generatorURL": n.generator_url,
    })
}

pub(crate) async fn post(
    client: &reqwest::Client,
    notifier: &str,
    request: reqwest::RequestBuilder,
) -> Result<(), NotifyError> {
    let _ = client;
    let response = request.send().await.map_err(|e| NotifyError::Transport {
        notifier: notifier.to_owned(),
        message: e.to_string(),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(200);
    Err(NotifyError::Status {
        notifier: notifier.to_owned(),
        status: status.as_u16(),
        body,
    })
}
