//! `[alerting]`: alert rules, evaluation settings and notifiers, and the engine built from them.
//!
//! ```
//! use bulwark_server::config::Config;
//!
//! let file = r#"
//!     [alerting]
//!     interval = "15s"
//!     external_url = "http://bulwark.internal:8000"
//!     [[alerting.alertmanager]]
//!     url = "http://127.0.0.1:9093"
//!     [[alerting.rules]]
//!     name = "PaymentBreakerOpen"
//!     condition = "breaker_state"
//!     breaker = "payment*"
//!     labels = { severity = "page" }
//!     annotations = { summary = "Breaker {{ $labels.name }} is open" }
//! "#;
//! let config = Config::from_toml(file, "bulwark.toml".as_ref())?;
//! assert_eq!(config.alerting.rules()?[0].name, "PaymentBreakerOpen");
//!
//! let bad = file.replace(r#"breaker = "payment*""#, r#"breaker = "pay(ment|out)""#);
//! let error = Config::from_toml(&bad, "bulwark.toml".as_ref())?.validate().unwrap_err().to_string();
//! assert!(error.contains("PaymentBreakerOpen") && error.contains("`breaker`"), "{error}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulwark::alerting::notify::{
    AlertmanagerNotifier, DeliveryPolicy, LogNotifier, Notifier, WebhookNotifier,
};
use bulwark::alerting::{
    AlertEngine, AlertRule, EngineConfig, RuleSpec, check_metrics, rules_from_specs,
};
use bulwark::breaker::BreakerRegistry;
use bulwark::telemetry::metrics::MetricsRegistry;
use serde::Deserialize;

use crate::config::ConfigError;

/// `[alerting]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertingSection {
    /// Time between evaluations (default `15s`).
    pub interval: String,
    /// Time between two sends of a firing alert (default `1m`).
    pub resend_interval: String,
    /// The base of each alert's `generatorURL` (default: `http://` and the listen address).
    pub external_url: Option<String>,
    /// Metric names rules may read besides Bulwark's own.
    pub known_metrics: Vec<String>,
    /// Log every alert (default `true`).
    pub log: bool,
    /// Batches each notifier holds before dropping the oldest (default 256).
    pub queue_capacity: usize,
    /// Attempts for a firing-only batch (default 5; resolves are retried until delivered).
    pub max_attempts: u32,
    /// `[[alerting.alertmanager]]`: Alertmanagers to send to.
    pub alertmanager: Vec<AlertmanagerTarget>,
    /// `[[alerting.webhook]]`: signed webhooks to send to.
    pub webhook: Vec<WebhookTarget>,
    /// `[[alerting.rules]]`.
    pub rules: Vec<RuleSpec>,
}

impl Default for AlertingSection {
    fn default() -> Self {
        Self {
            interval: "15s".into(),
            resend_interval: "1m".into(),
            external_url: None,
            known_metrics: Vec::new(),
            log: true,
            queue_capacity: 256,
            max_attempts: 5,
            alertmanager: Vec::new(),
            webhook: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `[[alerting.alertmanager]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertmanagerTarget {
    /// Its base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// Request timeout (default `10s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `[[alerting.webhook]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WebhookTarget {
    /// The URL to POST to.
    pub url: String,
    /// The HMAC-SHA256 key.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the key (one trailing newline is ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Request timeout (default `10s`).
    #[serde(default)]
    pub timeout: Option<String>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn duration(field: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| invalid(field, format!("`{text}` is not a duration ({e})")))?;
    if d.is_zero() {
        return Err(invalid(field, "must be longer than zero"));
    }
    Ok(d)
}

fn http_url(field: &'static str, url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(invalid(field, format!("`{url}` is not an http(s) URL")));
    }
    Ok(())
}

impl AlertingSection {
    /// The rules, checked (metrics included): the first bad one is named with its field.
    pub fn rules(&self) -> Result<Vec<AlertRule>, ConfigError> {
        let rules =
            rules_from_specs(&self.rules).map_err(|e| invalid("alerting.rules", e.to_string()))?;
        check_metrics(&rules, self.known_metrics().iter().map(String::as_str))
            .map_err(|e| invalid("alerting.rules", e.to_string()))?;
        Ok(rules)
    }

    /// The server's own metrics and `known_metrics`.
    fn known_metrics(&self) -> Vec<String> {
        use crate::telemetry::{
            HTTP_REQUEST_SECONDS, HTTP_REQUESTS_TOTAL, TRACE_STORE_BYTES,
            TRACE_STORE_EVICTIONS_TOTAL, WORKFLOW_STEP_SECONDS, WORKFLOW_STEPS_TOTAL,
        };
        [
            HTTP_REQUESTS_TOTAL,
            HTTP_REQUEST_SECONDS,
            WORKFLOW_STEPS_TOTAL,
            WORKFLOW_STEP_SECONDS,
            TRACE_STORE_BYTES,
            TRACE_STORE_EVICTIONS_TOTAL,
        ]
        .into_iter()
        .map(str::to_owned)
        .chain(self.known_metrics.iter().cloned())
        .collect()
    }

    /// The evaluation interval.
    pub fn interval(&self) -> Result<Duration, ConfigError> {
        duration("alerting.interval", &self.interval)
    }

    /// Checks every field without building anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.interval()?;
        duration("alerting.resend_interval", &self.resend_interval)?;
        if let Some(url) = &self.external_url {
            http_url("alerting.external_url", url)?;
        }
        if self.queue_capacity == 0 {
            return Err(invalid("alerting.queue_capacity", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("alerting.max_attempts", "must be at least 1"));
        }
        for target in &self.alertmanager {
            http_url("alerting.alertmanager.url", &target.url)?;
            if let Some(t) = &target.timeout {
                duration("alerting.alertmanager.timeout", t)?;
            }
        }
        for target in &self.webhook {
            http_url("alerting.webhook.url", &target.url)?;
            if let Some(t) = &target.timeout {
                duration("alerting.webhook.timeout", t)?;
            }
            match (&target.secret, &target.secret_file) {
                (Some(s), None) if s.len() >= 16 => {}
                (Some(_), None) => {
                    return Err(invalid(
                        "alerting.webhook.secret",
                        "must be at least 16 bytes",
                    ));
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(invalid(
                        "alerting.webhook.secret",
                        "set exactly one of `secret` and `secret_file`",
                    ));
                }
            }
        }
        self.rules().map(drop)
    }

    fn notifiers(&self) -> Result<Vec<Arc<dyn Notifier>>, ConfigError> {
        let timeout = |field, t: &Option<String>| match t {
            Some(t) => duration(field, t),
            None => Ok(Duration::from_secs(10)),
        };
        let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
        if self.log {
            out.push(Arc::new(LogNotifier));
        }
        for target in &self.alertmanager {
            let t = timeout("alerting.alertmanager.timeout", &target.timeout)?;
            let n = AlertmanagerNotifier::new(&target.url, t)
                .map_err(|e| invalid("alerting.alertmanager", e.to_string()))?;
            out.push(Arc::new(n));
        }
        for target in &self.webhook {
            let t = timeout("alerting.webhook.timeout", &target.timeout)?;
            let secret = match (&target.secret, &target.secret_file) {
                (Some(s), _) => s.clone().into_bytes(),
                (None, Some(path)) => {
                    let mut text = std::fs::read(path).map_err(|e| {
                        invalid(
                            "alerting.webhook.secret_file",
                            format!("{}: {e}", path.display()),
                        )
                    })?;
                    if text.last() == Some(&b'\n') {
                        text.pop();
                    }
                    text
                }
                (None, None) => return Err(invalid("alerting.webhook.secret", "is required")),
            };
            let n = WebhookNotifier::new(&target.url, secret, t)
                .map_err(|e| invalid("alerting.webhook", e.to_string()))?;
            out.push(Arc::new(n));
        }
        Ok(out)
    }

    /// The engine over the server's metrics and breakers; `default_url` is the base of
    /// `generatorURL` when `external_url` is unset.
    pub fn engine(
        &self,
        metrics: &MetricsRegistry,
        breakers: &Arc<BreakerRegistry>,
        default_url: &str,
    ) -> Result<AlertEngine, ConfigError> {
        let mut config = EngineConfig::default()
            .with_interval(self.interval()?)
            .with_resend_interval(duration("alerting.resend_interval", &self.resend_interval)?)
            .with_external_url(
                self.external_url
                    .clone()
                    .unwrap_or_else(|| default_url.to_owned()),
            )
            .with_delivery(DeliveryPolicy::new(
                self.queue_capacity,
                self.max_attempts,
                Duration::from_millis(500),
                Duration::from_secs(30),
            ));
        config.known_metrics = self.known_metrics();
        config.notifiers = self.notifiers()?;
        AlertEngine::new(
            self.rules()?,
            config,
            metrics.clone(),
            Some(Arc::clone(breakers)),
            bulwark::clock::MonotonicClock::new(),
        )
        .map_err(|e| invalid("alerting.rules", e.to_string()))
    }
}
