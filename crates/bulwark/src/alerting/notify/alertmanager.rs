//! Prometheus Alertmanager, through its v2 API (`POST /api/v2/alerts`).

use std::time::Duration;

use super::{Notifier, NotifyError, notice_json, post};
use crate::alerting::alert::Batch;

/// Sends alerts to one Alertmanager: a JSON array of `postableAlert`s (`labels`,
/// `annotations`, `startsAt`, `endsAt`, `generatorURL`). Alertmanager deduplicates by label
/// set, so re-sending a firing alert is how it is kept alive; `endsAt` in the past resolves it.
#[derive(Debug, Clone)]
pub struct AlertmanagerNotifier {
    url: String,
    client: reqwest::Client,
}

impl AlertmanagerNotifier {
    /// A notifier to the Alertmanager at `base_url` (e.g. `http://127.0.0.1:9093`), each
    /// request bounded by `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| NotifyError::Transport {
                notifier: "alertmanager".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            url: format!("{}/api/v2/alerts", base_url.trim_end_matches('/')),
            client,
        })
    }
}

#[async_trait::async_trait]
impl Notifier for AlertmanagerNotifier {
    fn name(&self) -> &str {
        "alertmanager"
    }

    async fn send(&self, batch: &Batch) -> Result<(), NotifyError> {
        let body: Vec<serde_json::Value> = batch
            .notices
            .iter()
            .map(|n| {
                let mut v = notice_json(n);
                if let Some(o) = v.as_object_mut() {
                    // Not part of postableAlert: Alertmanager derives it from endsAt.
                    o.remove("status");
                }
                v
            })
            .collect();
        post(
            &self.client,
            self.name(),
            self.client.post(&self.url).json(&body),
        )
        .await
    }
}
