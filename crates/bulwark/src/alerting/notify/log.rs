//! Alerts written to the log through `tracing`.

use super::{Notifier, NotifyError};
use crate::alerting::alert::{AlertState, Batch};

/// Logs each alert: firing at WARN, resolved at INFO, target `bulwark::alerting`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> &str {
        "log"
    }

    async fn send(&self, batch: &Batch) -> Result<(), NotifyError> {
        for n in &batch.notices {
            let alertname = n.labels.get("alertname").map_or("", String::as_str);
            let labels = serde_json::to_string(&n.labels).unwrap_or_default();
            let summary = n.annotations.get("summary").map_or("", String::as_str);
            match n.state {
                AlertState::Resolved => {
                    tracing::info!(target: "bulwark::alerting", alertname, labels, summary, "alert resolved");
                }
                _ => {
                    tracing::warn!(target: "bulwark::alerting", alertname, labels, summary, url = n.generator_url, "alert firing")
                }
            }
        }
        Ok(())
    }
}
