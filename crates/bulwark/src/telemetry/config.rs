//! What [`init`](super::init) installs, as a plain value that can come from a config file or
//! from the standard `OTEL_*` environment variables.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::metrics::MetricsConfig;
use super::store::{TraceStoreConfig, humantime_duration};

/// Service name when neither the config nor `OTEL_SERVICE_NAME` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "bulwark";

/// Everything [`init`](super::init) sets up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// `service.name` of exported spans. Default `bulwark`; `OTEL_SERVICE_NAME` wins.
    pub service_name: String,
    /// More resource attributes for exported spans (`deployment.environment`,
    /// `openinference.project.name`, ...). `OTEL_RESOURCE_ATTRIBUTES` adds to them.
    pub resource_attributes: BTreeMap<String, String>,
    /// The local trace store's bounds.
    pub store: TraceStoreConfig,
    /// The metrics registry's configuration.
    pub metrics: MetricsConfig,
    /// An `EnvFilter` directive (`info,my_crate=debug`); default: `RUST_LOG`, else `info`.
    pub filter: Option<String>,
    /// Also print logs and events to stderr.
    pub log_to_stderr: bool,
    /// Install the metrics registry as the process's `metrics` recorder.
    pub install_metrics_recorder: bool,
    /// OTLP export; needs the `otlp` feature. `None` keeps spans local.
    pub otlp: Option<OtlpConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            resource_attributes: BTreeMap::new(),
            store: TraceStoreConfig::default(),
            metrics: MetricsConfig::default(),
            filter: None,
            log_to_stderr: true,
            install_metrics_recorder: true,
            otlp: None,
        }
    }
}

/// The transport of OTLP export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention), through a blocking client on
    /// the export thread.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/gRPC (port 4317), through tonic on the export thread's own runtime.
    #[serde(rename = "grpc")]
    Grpc,
}

impl OtlpProtocol {
    /// Reads the value of `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "http/protobuf" => Some(Self::HttpProtobuf),
            "grpc" => Some(Self::Grpc),
            _ => None,
        }
    }
}

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OtlpConfig {
    /// For HTTP the full traces URL (`http://127.0.0.1:4318/v1/traces`), for gRPC the server
    /// address (`http://127.0.0.1:4317`). `None`: the exporter reads
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT` (adding
    /// `/v1/traces` for HTTP), then uses the OTLP default on localhost.
    pub endpoint: Option<String>,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// Time limit of one export request. Default 10 s.
    #[serde(with = "humantime_duration")]
    pub timeout: Duration,
    /// Finished spans waiting for export at most; more are dropped and counted in
    /// `bulwark_telemetry_spans_dropped_total`. Default 2048.
    pub max_queue_size: usize,
    /// Spans per export request at most. Default 512.
    pub max_export_batch_size: usize,
    /// A partial batch is sent after this long. Default 5 s (`OTEL_BSP_SCHEDULE_DELAY`).
    #[serde(with = "humantime_duration")]
    pub scheduled_delay: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: OtlpProtocol::HttpProtobuf,
            timeout: Duration::from_secs(10),
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl OtlpConfig {
    /// Export settings from the standard variables, or `None` when neither
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub fn from_env() -> Option<Self> {
        if env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
            && env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        {
            return None;
        }
        let mut config = Self::default();
        if let Some(protocol) = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .and_then(|p| OtlpProtocol::parse(&p))
        {
            config.protocol = protocol;
        }
        let millis = |name| env(name).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(ms) = millis("OTEL_BSP_SCHEDULE_DELAY") {
            config.scheduled_delay = Duration::from_millis(ms);
        }
        if let Some(n) = millis("OTEL_BSP_MAX_QUEUE_SIZE") {
            config.max_queue_size = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = millis("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            config.max_export_batch_size = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Some(config)
    }
}

impl TelemetryConfig {
    /// The defaults, with `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and the OTLP
    /// variables applied: setting an OTLP endpoint variable is enough to switch export on.
    pub fn from_env() -> Self {
        let mut config = Self::default();
        config.apply_env();
        config
    }

    /// Applies `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and, when `otlp` is unset, the
    /// OTLP endpoint variables to this config.
    pub fn apply_env(&mut self) {
        if let Some(name) = env("OTEL_SERVICE_NAME") {
            self.service_name = name;
        }
        if let Some(attrs) = env("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in attrs.split(',') {
                if let Some((k, v)) = pair.split_once('=') {
                    let (k, v) = (k.trim(), v.trim());
                    if !k.is_empty() {
                        self.resource_attributes
                            .entry(k.to_owned())
                            .or_insert_with(|| v.to_owned());
                    }
                }
            }
        }
        if self.otlp.is_none() {
            self.otlp = OtlpConfig::from_env();
        }
    }
}
