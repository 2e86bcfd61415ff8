//! `bulwark serve`: flags, configuration layering, binding, graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use bulwark::telemetry::{OtlpConfig, TelemetryConfig, TelemetryGuard, TraceStoreConfig};

use crate::config::{Config, Overrides};
use crate::state::AppState;

/// The flags of `bulwark serve`; each can also come from its `BULWARK_*` variable, and a
/// flag wins over its variable, which wins over the config file.
#[derive(Clone, Debug, Default, clap::Args)]
#[non_exhaustive]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "BULWARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "BULWARK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Folder for checkpoints and other embedded state [default: ./bulwark-data].
    #[arg(long, env = "BULWARK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bearer token POST and DELETE requests must carry (at least 16 bytes). On the command
    /// line it shows in the process list: prefer --token-file or BULWARK_TOKEN.
    #[arg(long, env = "BULWARK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (a trailing newline is ignored).
    #[arg(long, env = "BULWARK_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, env = "BULWARK_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Allow listening beyond loopback without a token.
    #[arg(long, env = "BULWARK_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub insecure: Option<bool>,
    /// Checkpoint folder [default: <data-dir>/checkpoints].
    #[arg(long, env = "BULWARK_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Workflow runs admitted per workflow id per window [default: 10 per minute].
    #[arg(long, env = "BULWARK_WORKFLOW_RATE_LIMIT")]
    pub workflow_rate_limit: Option<u32>,
    /// Log filter, `RUST_LOG` syntax [default: info].
    #[arg(long = "log", env = "BULWARK_LOG")]
    pub log_filter: Option<String>,
}

impl ServeArgs {
    /// The configuration these flags select: the file (if any), with the flags and
    /// variables laid over it, checked.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        let base = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let overrides = Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            body_limit: self.body_limit,
            insecure: self.insecure,
            checkpoint_dir: self.checkpoint_dir.clone(),
            workflow_max_requests: self.workflow_rate_limit,
            log_filter: self.log_filter.clone(),
        };
        base.with_overrides(overrides)
    }

    /// Whether the token came from `--token` rather than `BULWARK_TOKEN` (then it is
    /// visible to every user of the machine in the process list, and the server warns).
    pub fn token_on_command_line(&self) -> bool {
        self.token.is_some() && std::env::var("BULWARK_TOKEN").ok() != self.token
    }
}

/// Installs telemetry for the process: logs to stderr, W3C-id spans into the in-memory
/// trace store (and OTLP when configured), the metrics registry. Drop the guard last: it
/// flushes the exporter.
pub fn init_telemetry(config: &Config) -> anyhow::Result<TelemetryGuard> {
    let mut telemetry = TelemetryConfig::default();
    telemetry.service_name = config.telemetry.service_name.clone();
    // The filter is global, so it also decides which spans exist: keep the request and
    // workflow spans whatever the log level, or the trace store would stay empty.
    telemetry.filter = Some(format!("{},{SPAN_TARGETS}", config.telemetry.log_filter));
    telemetry.store = TraceStoreConfig {
        ttl: config.telemetry.trace_ttl,
        max_spans: config.telemetry.max_spans,
        max_bytes: config.telemetry.max_trace_bytes,
    };
    telemetry.apply_env();
    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        let otlp = OtlpConfig {
            endpoint: Some(endpoint.clone()),
            ..OtlpConfig::default()
        };
        telemetry.otlp = Some(otlp);
    }
    bulwark::telemetry::init(telemetry).context("cannot start telemetry")
}

/// Runs the server until SIGINT or SIGTERM, then lets in-flight requests and workflow runs
/// finish (up to `server.shutdown_grace`) and flushes spans.
pub async fn run(config: Config, telemetry: &TelemetryGuard) -> anyhow::Result<()> {
    let state = AppState::from_parts(&config, telemetry.telemetry().clone()).await?;
    // `#[bulwark::resilient(pipeline = "...")]` in code linked into this process reads the
    // global registry: it gets the configured pipelines.
    let pipelines = state.pipelines().registry();
    for name in pipelines.list() {
        if let Some(pipeline) = pipelines.get(&name) {
            bulwark::pipeline::PipelineRegistry::global().insert(pipeline);
        }
    }
    let app = crate::router(state.clone());
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        data_dir = %state.data_dir().display(),
        auth = state.requires_token(),
        "bulwark serving /api/observability and /api/workflows"
    );
    // Runs a dead process (or, with PostgreSQL, a replica whose lease expired) left running
    // are continued here, now and every lease time to live.
    let recovery = state.spawn_recovery();
    let grace = config.server.shutdown_grace;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = signalled_tx.send(());
    });
    let server = async move { server.await.context("server failed") };
    // Connections that stay open past the grace period must not hold the process forever.
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result?,
        () = deadline => tracing::warn!(?grace, "grace period over; closing open connections"),
    }
    recovery.abort();
    let left = state.drain(grace).await;
    if left > 0 {
        tracing::warn!(left, "workflow runs still running at exit");
    }
    telemetry.flush();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The targets whose info-level spans feed the trace store under any `log_filter`.
const SPAN_TARGETS: &str =
    "bulwark::telemetry::propagation=info,bulwark::durable=info,bulwark_server::workflow=info";

/// Grace period default, for documentation.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
