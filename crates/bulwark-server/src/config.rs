//! The server's configuration: a TOML file, then `BULWARK_*` environment variables, then
//! command-line flags, each overriding the one before; every field has a default, so no
//! file is needed at all.
//!
//! ```
//! use bulwark_server::config::{Config, Overrides};
//!
//! let file = r#"
//!     [server]
//!     listen = "127.0.0.1:9000"
//!     [ratelimit]
//!     workflow_max_requests = 20
//! "#;
//! let overrides = Overrides { listen: Some("127.0.0.1:9100".parse()?), ..Overrides::default() };
//! let config = Config::from_toml(file, "bulwark.toml".as_ref())?.with_overrides(overrides)?;
//! assert_eq!(config.server.listen.port(), 9100); // the flag wins over the file
//! assert_eq!(config.ratelimit.workflow_max_requests, 20);
//! assert_eq!(config.checkpoints.dir(&config.server.data_dir), config.server.data_dir.join("checkpoints"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// The default folder for embedded state.
pub const DEFAULT_DATA_DIR: &str = "./bulwark-data";
/// The default request body limit, 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid config value `{field}`: {reason}")]
    Invalid {
        /// The dotted key, e.g. `ratelimit.url`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The address is reachable from other machines but no token protects the mutating
    /// endpoints.
    #[error(
        "refusing to listen on non-loopback address {0} without a token: set `server.token_file` \
         (or BULWARK_TOKEN_FILE / --token-file, or a token), or pass --insecure to accept unauthenticated writes"
    )]
    InsecureBind(SocketAddr),
    /// A `[pipelines.<name>]` that cannot be built: the pipeline, the strategy and why.
    #[error("invalid config value `pipelines.{name}`: {reason}")]
    Pipeline {
        /// The pipeline's name.
        name: String,
        /// The strategy and field refused, and why.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`: where and how to listen.
    pub server: ServerConfig,
    /// `[ratelimit]`: the limit on workflow runs.
    pub ratelimit: RateLimitSection,
    /// `[checkpoints]`: where checkpoints live.
    pub checkpoints: CheckpointSection,
    /// `[telemetry]`: trace store and logs.
    pub telemetry: TelemetrySection,
    /// `[demo]`: the simulated flaky tool the demo workflow calls.
    pub demo: DemoSection,
    /// `[workflows]`: how workflow runs are hardened.
    pub workflows: WorkflowSection,
    /// `[breakers]`: the config of the circuit breaker around each workflow dependency
    /// (`failure_threshold`, `success_threshold`, `timeout`, `half_open_max_calls`, ...).
    pub breakers: bulwark::breaker::CircuitBreakerConfig,
    /// `[pipelines.<name>]`: resilience pipelines by name (`strategies`, outer to inner, as
    /// [`bulwark::pipeline::PipelineConfig`]); the demo's tools call theirs
    /// (`search_api`, `analysis_api`, `llm_api`, `review_api`), which default to
    /// `workflows.max_attempts` retries around a `[breakers]` breaker when not set here.
    pub pipelines: std::collections::BTreeMap<String, bulwark::pipeline::PipelineConfig>,
    /// `[alerting]`: alert rules and where alerts go.
    pub alerting: crate::alerting::AlertingSection,
    /// `[budgets]`: token, request and cost budgets and the price table (see `crate::budgets`).
    pub budgets: crate::budgets::BudgetsSection,
}

/// Shortest bearer token accepted, in bytes (issue 12 defect 10: a guessable token is no
/// protection).
pub const MIN_TOKEN_BYTES: usize = 16;

/// `[server]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for embedded state (checkpoints by default).
    pub data_dir: PathBuf,
    /// Bearer token POST and DELETE require, when set (at least 16 bytes, not blank).
    pub token: Option<String>,
    /// A file holding the token (one trailing newline is ignored); an alternative to
    /// `token` that keeps it out of the config file and the process list.
    pub token_file: Option<PathBuf>,
    /// Host names (any port) the `Host` header may carry besides `localhost`, `127.0.0.1`,
    /// `[::1]` and the listen address; `["*"]` allows any.
    pub allowed_hosts: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Allow a non-loopback address without a token.
    pub insecure: bool,
    /// How long in-flight requests get to finish after SIGINT/SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            token: None,
            token_file: None,
            allowed_hosts: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            insecure: false,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Where rate-limit state lives.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RateLimitBackend {
    /// In this process.
    #[default]
    Local,
    /// Shared across replicas through Redis (`url` required).
    Redis,
}

/// `[ratelimit]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitSection {
    /// `"local"` or `"redis"`.
    pub backend: RateLimitBackend,
    /// The Redis URL, for `backend = "redis"`.
    pub url: Option<String>,
    /// Runs admitted per workflow id per `workflow_window`.
    pub workflow_max_requests: u32,
    /// The window of the workflow limit (`"60s"`, `"1m"`).
    #[serde(deserialize_with = "duration")]
    pub workflow_window: Duration,
    /// Extra runs a workflow id may start at once above the steady rate.
    pub workflow_burst: u32,
    /// How many `bulwark serve` replicas share the Redis limit; sets the default
    /// [`fallback_share`](Self::fallback_share) to `1 / replicas`.
    pub replicas: u32,
    /// The fraction (0 < share ≤ 1) of the limit each replica admits on its own while Redis
    /// cannot decide; default `1 / replicas`, so that every replica falling back at once
    /// still admits about the shared limit in total. A larger share keeps a lone surviving
    /// replica closer to the full rate, at the price of up to `share × replicas` times the
    /// limit when all fall back together.
    pub fallback_share: Option<f64>,
}

impl RateLimitSection {
    /// The share of the limit a replica admits alone while Redis is unavailable.
    pub fn effective_fallback_share(&self) -> f64 {
        self.fallback_share
            .unwrap_or_else(|| 1.0 / f64::from(self.replicas.max(1)))
    }
}

impl Default for RateLimitSection {
    fn default() -> Self {
        Self {
            backend: RateLimitBackend::Local,
            url: None,
            workflow_max_requests: 10,
            workflow_window: Duration::from_secs(60),
            workflow_burst: 0,
            replicas: 1,
            fallback_share: None,
        }
    }
}

/// Where checkpoints live.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CheckpointBackend {
    /// Files in a local folder.
    #[default]
    Fs,
    /// A PostgreSQL database (`url` required).
    Postgres,
}

/// `[checkpoints]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CheckpointSection {
    /// `"fs"` or `"postgres"`.
    pub backend: CheckpointBackend,
    /// The folder, for `backend = "fs"`; default `<data_dir>/checkpoints`.
    pub dir: Option<PathBuf>,
    /// The database URL, for `backend = "postgres"`.
    pub url: Option<String>,
    /// Compare the SHA-256 at every load, even when the zstd frames' checksums (or the
    /// encryption's tag) already proved the state intact; default `false`.
    pub verify_on_load: bool,
    /// Compress a checkpoint before its save returns instead of after (the filesystem store
    /// acknowledges an uncompressed form and compacts it in the background by default);
    /// default `false`. PostgreSQL checkpoints are always compressed first.
    pub compress_before_ack: bool,
    /// `[checkpoints.retention]`: what is kept.
    pub retention: RetentionSection,
}

impl CheckpointSection {
    /// The checkpoint folder, given the data dir.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| data_dir.join("checkpoints"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.into(),
            })
        };
        if self.backend == CheckpointBackend::Postgres && self.url.is_none() {
            return invalid("checkpoints.url", "is required when backend = \"postgres\"");
        }
        let retention = &self.retention;
        if retention.keep_last == Some(0) {
            return invalid("checkpoints.retention.keep_last", "must be at least 1");
        }
        if retention.max_checkpoints == Some(0) {
            return invalid(
                "checkpoints.retention.max_checkpoints",
                "must be at least 1",
            );
        }
        if retention.enabled && retention.policy().is_none() {
            return invalid(
                "checkpoints.retention",
                "sets no rule (keep_last, max_age, max_checkpoints, max_total_bytes); \
                 set one or `enabled = false`",
            );
        }
        Ok(())
    }
}

/// `[checkpoints.retention]`: the policy `POST /api/observability/checkpoints/cleanup`
/// applies when its body sets no rule, and that the server applies by itself every
/// `cleanup_every` saves. A workflow's newest valid checkpoint is always kept. The defaults
/// keep the last 50 checkpoints of each (agent, workflow), none older than 30 days, and at
/// most 50 000 in all, which bounds the fs store's in-memory index (about 1.7 KB per
/// checkpoint) to about 85 MB.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionSection {
    /// `false`: nothing is removed unless a cleanup request sets its own rules.
    pub enabled: bool,
    /// Keep the newest N of each (agent, workflow).
    pub keep_last: Option<usize>,
    /// Remove checkpoints older than this (`"30d"`, `"12h"`, or seconds).
    #[serde(deserialize_with = "optional_duration")]
    pub max_age: Option<Duration>,
    /// Keep at most this many in the whole store, removing the oldest first.
    pub max_checkpoints: Option<usize>,
    /// Keep the stored bytes under this, removing the oldest first (unset by default).
    pub max_total_bytes: Option<u64>,
    /// Saves between automatic cleanups; `0` applies the policy only on request.
    pub cleanup_every: u32,
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_last: Some(50),
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            max_checkpoints: Some(50_000),
            max_total_bytes: None,
            cleanup_every: 1000,
        }
    }
}

impl RetentionSection {
    /// The configured policy; `None` when retention is disabled or sets no rule.
    pub fn policy(&self) -> Option<bulwark::checkpoint::RetentionPolicy> {
        let mut policy = bulwark::checkpoint::RetentionPolicy::default();
        policy.keep_last = self.keep_last;
        policy.max_age = self.max_age;
        policy.max_checkpoints = self.max_checkpoints;
        policy.max_total_bytes = self.max_total_bytes;
        (self.enabled && policy.has_rules()).then_some(policy)
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// `[telemetry]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetrySection {
    /// The `tracing` filter for logs (`RUST_LOG` syntax).
    pub log_filter: String,
    /// The service name spans carry.
    pub service_name: String,
    /// How long finished traces stay in the in-memory store.
    #[serde(deserialize_with = "duration")]
    pub trace_ttl: Duration,
    /// Most spans the in-memory store holds.
    pub max_spans: usize,
    /// Most bytes of spans the in-memory store holds (an estimate per span).
    pub max_trace_bytes: usize,
    /// OTLP collector endpoint, when spans should also be exported.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            log_filter: "info".into(),
            service_name: "bulwark".into(),
            trace_ttl: Duration::from_secs(3600),
            max_spans: 100_000,
            max_trace_bytes: bulwark::telemetry::DEFAULT_MAX_BYTES,
            otlp_endpoint: None,
        }
    }
}

/// `[demo]`: the simulated flaky tool.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DemoSection {
    /// Probability in `[0, 1]` that one tool call fails.
    pub failure_rate: f64,
    /// How long one tool call takes.
    #[serde(deserialize_with = "duration")]
    pub latency: Duration,
}

impl Default for DemoSection {
    fn default() -> Self {
        Self {
            failure_rate: 0.1,
            latency: Duration::from_millis(20),
        }
    }
}

/// `[workflows]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkflowSection {
    /// Accepted for older configs and otherwise unused: durable runs checkpoint every
    /// transition (start, effect, step, interrupt, end).
    pub checkpoint_every: u64,
    /// Attempts per tool call in the pipelines the config does not define (the demo's).
    pub max_attempts: u32,
    /// This replica's name in run leases and 409 answers; default `<host>-<pid>-<random>`.
    pub replica: Option<String>,
    /// How long a run's lease lasts unrenewed (PostgreSQL checkpoints): a dead replica's runs
    /// are taken over after it. Also how often `serve` looks for runs to recover.
    #[serde(deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// Test-only: registers the `counted` workflow (a fan-out and a step whose effects count
    /// their calls in this PostgreSQL database), which the crash and takeover tests run.
    #[doc(hidden)]
    pub test_counter_url: Option<String>,
}

impl Default for WorkflowSection {
    fn default() -> Self {
        Self {
            checkpoint_every: 1,
            max_attempts: 3,
            replica: None,
            lease_ttl: Duration::from_secs(15),
            test_counter_url: None,
        }
    }
}

/// Values from the environment and the command line; `None` leaves the file's value.
///
/// Flags and `BULWARK_*` variables are merged into this by the CLI (a flag wins over its
/// variable), then laid over the file by [`Config::with_overrides`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// `--listen` / `BULWARK_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir` / `BULWARK_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--token` / `BULWARK_TOKEN`.
    pub token: Option<String>,
    /// `--token-file` / `BULWARK_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// `--body-limit` / `BULWARK_BODY_LIMIT`.
    pub body_limit: Option<usize>,
    /// `--insecure` / `BULWARK_INSECURE`.
    pub insecure: Option<bool>,
    /// `--checkpoint-dir` / `BULWARK_CHECKPOINT_DIR`.
    pub checkpoint_dir: Option<PathBuf>,
    /// `--workflow-rate-limit` / `BULWARK_WORKFLOW_RATE_LIMIT` (runs per window).
    pub workflow_max_requests: Option<u32>,
    /// `--log` / `BULWARK_LOG`.
    pub log_filter: Option<String>,
}

impl Config {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })
    }

    /// Lays `overrides` over this config and checks the result.
    pub fn with_overrides(mut self, overrides: Overrides) -> Result<Self, ConfigError> {
        let Overrides {
            listen,
            data_dir,
            token,
            token_file,
            body_limit,
            insecure,
            checkpoint_dir,
            workflow_max_requests,
            log_filter,
        } = overrides;
        set(&mut self.server.listen, listen);
        set(&mut self.server.data_dir, data_dir);
        set(&mut self.server.body_limit, body_limit);
        set(&mut self.server.insecure, insecure);
        set(
            &mut self.ratelimit.workflow_max_requests,
            workflow_max_requests,
        );
        set(&mut self.telemetry.log_filter, log_filter);
        // A token given one way replaces one given the other way in a lower layer.
        if token.is_some() {
            self.server.token = token;
            self.server.token_file = None;
        } else if token_file.is_some() {
            self.server.token = None;
            self.server.token_file = token_file;
        }
        self.load_token_file()?;
        if checkpoint_dir.is_some() {
            self.checkpoints.dir = checkpoint_dir;
        }
        self.validate()?;
        Ok(self)
    }

    /// Reads `server.token_file` into `server.token` (once; the file is then forgotten).
    fn load_token_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.server.token_file.take() else {
            return Ok(());
        };
        if self.server.token.is_some() {
            return Err(ConfigError::Invalid {
                field: "server.token_file",
                reason: "set either server.token or server.token_file, not both".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Invalid {
            field: "server.token_file",
            reason: format!("cannot read {}: {error}", path.display()),
        })?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        self.server.token = Some(text.strip_suffix('\r').unwrap_or(text).to_owned());
        Ok(())
    }

    /// Checks ranges and consistency, including the refusal to expose unauthenticated
    /// writes beyond loopback.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if let Some(token) = self.server.token.as_deref() {
            if token.trim().is_empty() {
                return invalid("server.token", "must not be blank (leave it unset instead)");
            }
            if token.len() < MIN_TOKEN_BYTES {
                return invalid("server.token", "must be at least 16 bytes long");
            }
        }
        if self.server.body_limit == 0 {
            return invalid("server.body_limit", "must be at least 1 byte");
        }
        if self.ratelimit.workflow_max_requests == 0 {
            return invalid("ratelimit.workflow_max_requests", "must be at least 1");
        }
        if self.ratelimit.workflow_window.is_zero() {
            return invalid("ratelimit.workflow_window", "must be longer than zero");
        }
        if self.ratelimit.replicas == 0 {
            return invalid("ratelimit.replicas", "must be at least 1");
        }
        if let Some(share) = self.ratelimit.fallback_share
            && !(share > 0.0 && share <= 1.0)
        {
            return invalid(
                "ratelimit.fallback_share",
                "must be above 0 and at most 1 (the fraction of the limit one replica admits)",
            );
        }
        if self.ratelimit.backend == RateLimitBackend::Redis && self.ratelimit.url.is_none() {
            return invalid("ratelimit.url", "is required when backend = \"redis\"");
        }
        self.checkpoints.validate()?;
        if !(0.0..=1.0).contains(&self.demo.failure_rate) {
            return invalid("demo.failure_rate", "must be between 0 and 1");
        }
        if self.workflows.checkpoint_every == 0 {
            return invalid("workflows.checkpoint_every", "must be at least 1");
        }
        if self.workflows.lease_ttl < Duration::from_millis(30) {
            return invalid("workflows.lease_ttl", "must be at least 30ms");
        }
        if self.workflows.max_attempts == 0 {
            return invalid("workflows.max_attempts", "must be at least 1");
        }
        if let Err(error) = self.breakers.validate() {
            return invalid("breakers", &error.to_string());
        }
        for (name, pipeline) in &self.pipelines {
            let pipeline_error = |reason: String| ConfigError::Pipeline {
                name: name.clone(),
                reason,
            };
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(pipeline_error(
                    "a pipeline name is 1 to 128 bytes without control characters".into(),
                ));
            }
            let observers = bulwark::pipeline::PipelineObservers::default();
            pipeline
                .build(name, bulwark::clock::MonotonicClock::new(), &observers)
                .map_err(|error| pipeline_error(error.to_string()))?;
        }
        self.alerting.validate()?;
        let listen = self.server.listen;
        if !listen.ip().is_loopback() && self.server.token.is_none() && !self.server.insecure {
            return Err(ConfigError::InsecureBind(listen));
        }
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// A duration written as `"250ms"`, `"60s"`, `"1m 30s"` (humantime) or as whole seconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        Raw::Text(text) => humantime::parse_duration(&text).map_err(|error| {
            serde::de::Error::custom(format!("invalid duration {text:?}: {error}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))?.with_overrides(Overrides::default())
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.ratelimit.workflow_max_requests, 10);
        assert_eq!(config.ratelimit.workflow_window, Duration::from_secs(60));
    }

    // Issue 11 defect 6: with N replicas the Redis fallback admits 1/N of the limit each.
    #[test]
    fn the_redis_fallback_share_defaults_to_one_over_the_replicas() {
        assert_eq!(parse("").unwrap().ratelimit.effective_fallback_share(), 1.0);
        let config = parse("[ratelimit]\nreplicas = 4\n").unwrap();
        assert_eq!(config.ratelimit.effective_fallback_share(), 0.25);
        let config = parse("[ratelimit]\nreplicas = 4\nfallback_share = 0.5\n").unwrap();
        assert_eq!(config.ratelimit.effective_fallback_share(), 0.5);
        for (text, field) in [
            ("[ratelimit]\nreplicas = 0\n", "ratelimit.replicas"),
            (
                "[ratelimit]\nfallback_share = 0.0\n",
                "ratelimit.fallback_share",
            ),
            (
                "[ratelimit]\nfallback_share = 1.5\n",
                "ratelimit.fallback_share",
            ),
        ] {
            match parse(text) {
                Err(ConfigError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    // Issue 11 defect 9: a count window smaller than `minimum_calls` is a config error.
    #[test]
    fn a_breaker_window_smaller_than_its_minimum_calls_is_refused() {
        let window = |minimum| {
            format!(
                "[breakers]\nsliding_window = {{ size = {{ calls = 20 }}, failure_rate = 0.5, minimum_calls = {minimum} }}\n"
            )
        };
        assert!(parse(&window(20)).is_ok());
        match parse(&window(30)) {
            Err(ConfigError::Invalid { field, reason }) => {
                assert_eq!(field, "breakers");
                assert!(reason.contains("minimum_calls = 30"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_and_env_override_the_file_field_by_field() {
        let file = "[server]\nlisten = \"127.0.0.1:9000\"\nbody_limit = 10\n";
        let config = Config::from_toml(file, Path::new("f"))
            .unwrap()
            .with_overrides(Overrides {
                listen: Some("127.0.0.1:9001".parse().unwrap()),
                token: Some("t".repeat(16)),
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(config.server.listen.port(), 9001);
        assert_eq!(config.server.body_limit, 10);
        assert_eq!(config.server.token, Some("t".repeat(16)));
    }

    #[test]
    fn durations_accept_humantime_text_and_seconds() {
        let config =
            parse("[ratelimit]\nworkflow_window = \"2m\"\n[demo]\nlatency = \"5ms\"\n").unwrap();
        assert_eq!(config.ratelimit.workflow_window, Duration::from_secs(120));
        assert_eq!(config.demo.latency, Duration::from_millis(5));
        let config = parse("[ratelimit]\nworkflow_window = 30\n").unwrap();
        assert_eq!(config.ratelimit.workflow_window, Duration::from_secs(30));
        let error = parse("[ratelimit]\nworkflow_window = \"soon\"\n").unwrap_err();
        assert!(
            error.to_string().contains("invalid duration \"soon\""),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_file_and_the_key() {
        let error = parse("[server]\nlisten_on = \"x\"\n").unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ConfigError::Parse { .. }));
        assert!(
            message.contains("test.toml") && message.contains("listen_on"),
            "{message}"
        );
        let error = parse("[server]\nlisten = \"not an address\"\n").unwrap_err();
        assert!(error.to_string().contains("listen"), "{error}");
    }

    #[test]
    fn remote_backends_require_their_url() {
        let error = parse("[ratelimit]\nbackend = \"redis\"\n").unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Invalid {
                field: "ratelimit.url",
                ..
            }
        ));
        let error = parse("[checkpoints]\nbackend = \"postgres\"\n").unwrap_err();
        assert!(matches!(
            error,
            ConfigError::Invalid {
                field: "checkpoints.url",
                ..
            }
        ));
        let config = parse("[checkpoints]\nbackend = \"postgres\"\nurl = \"postgres://x\"\n");
        assert!(config.is_ok());
        assert!(parse("[checkpoints]\nbackend = \"s3\"\n").is_err());
    }

    #[test]
    fn pipelines_are_read_by_name_and_a_bad_one_is_refused_naming_it() {
        let config = parse(
            "[[pipelines.openai.strategies]]\nkind = \"retry\"\nmax_attempts = 4\n\
             [[pipelines.openai.strategies]]\nkind = \"circuit_breaker\"\nfailure_threshold = 2\n",
        )
        .unwrap();
        assert_eq!(config.pipelines["openai"].strategies.len(), 2);
        let error =
            parse("[[pipelines.search.strategies]]\nkind = \"bulkhead\"\nmax_concurrent = 0\n")
                .unwrap_err();
        match &error {
            ConfigError::Pipeline { name, reason } => {
                assert_eq!(name, "search");
                assert!(
                    reason.contains("bulkhead") && reason.contains("max_concurrent"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("pipelines.search"), "{error}");
        let error = parse("[[pipelines.x.strategies]]\nkind = \"teleport\"\n").unwrap_err();
        assert!(error.to_string().contains("teleport"), "{error}");
    }

    #[test]
    fn a_non_loopback_address_needs_a_token_or_insecure() {
        let error = parse("[server]\nlisten = \"0.0.0.0:8000\"\n").unwrap_err();
        assert!(matches!(error, ConfigError::InsecureBind(_)));
        assert!(error.to_string().contains("--insecure"));
        assert!(
            parse("[server]\nlisten = \"0.0.0.0:8000\"\ntoken = \"0123456789abcdef\"\n").is_ok()
        );
        assert!(parse("[server]\nlisten = \"0.0.0.0:8000\"\ninsecure = true\n").is_ok());
        assert!(parse("[server]\nlisten = \"[::1]:8000\"\n").is_ok());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (text, field) in [
            ("[server]\ntoken = \"\"\n", "server.token"),
            // Issue 12 defect 10: blank and short tokens.
            ("[server]\ntoken = \" \"\n", "server.token"),
            ("[server]\ntoken = \"\t                \"\n", "server.token"),
            ("[server]\ntoken = \"fifteen-bytes!!\"\n", "server.token"),
            ("[server]\nbody_limit = 0\n", "server.body_limit"),
            (
                "[ratelimit]\nworkflow_max_requests = 0\n",
                "ratelimit.workflow_max_requests",
            ),
            ("[demo]\nfailure_rate = 1.5\n", "demo.failure_rate"),
            (
                "[workflows]\ncheckpoint_every = 0\n",
                "workflows.checkpoint_every",
            ),
        ] {
            match parse(text) {
                Err(ConfigError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
