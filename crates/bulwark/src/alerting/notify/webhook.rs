//! A generic webhook: a JSON body signed with HMAC-SHA256.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Notifier, NotifyError, notice_json, post};
use crate::alerting::alert::{AlertState, Batch};

/// The header carrying `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-bulwark-signature";

/// The signature header's value for `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut out = String::from("sha256=");
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) {
        mac.update(body);
        for b in mac.finalize().into_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// Whether `header` is the signature of `body` (compared in constant time).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 {
        return false;
    }
    let mut tag = [0u8; 32];
    for (i, b) in tag.iter_mut().enumerate() {
        match u8::from_str_radix(&hex[2 * i..2 * i + 2], 16) {
            Ok(v) => *b = v,
            Err(_) => return false,
        }
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Posts `{"version": "1", "status", "alerts": [...]}` (the alerts in Alertmanager's shape,
/// each with its `status`) to a URL, with [`SIGNATURE_HEADER`] and `x-bulwark-delivery` (the
/// batch id, the same on every retry, so a receiver can deduplicate).
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl WebhookNotifier {
    /// A webhook to `url` signed with `secret`, each request bounded by `timeout`.
    pub fn new(
        url: &str,
        secret: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| NotifyError::Transport {
                notifier: "webhook".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            url: url.to_owned(),
            secret: secret.into(),
            client,
        })
    }
}

#[async_trait::async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn send(&self, batch: &Batch) -> Result<(), NotifyError> {
        let status = if batch
            .notices
            .iter()
            .all(|n| n.state == AlertState::Resolved)
        {
            "resolved"
        } else {
            "firing"
        };
        let body = serde_json::json!({
            "version": "1",
            "status": status,
            "alerts": batch.notices.iter().map(notice_json).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| NotifyError::Transport {
            notifier: self.name().to_owned(),
            message: e.to_string(),
        })?;
        let request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, &bytes))
            .header("x-bulwark-delivery", batch.id.to_string())
            .body(bytes);
        post(&self.client, self.name(), request).await
    }
}
