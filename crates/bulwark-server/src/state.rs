//! What every handler can reach: the registries and stores, built once from a [`Config`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bulwark::ratelimit::redis::{FailurePolicy, RedisRateLimiter, RedisSetupError};
use bulwark::ratelimit::{RateLimitBackend, RateLimitConfig, RateLimiterRegistry, RegistryError};
use tokio::sync::Notify;

use crate::config::Config;
use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig};
use bulwark::checkpoint::store::{PostgresStore, PostgresStoreOptions};
use bulwark::checkpoint::{
    CheckpointError, CheckpointStore, FsStore, ListFilter, RetentionPolicy, StateCheckpointManager,
};
use bulwark::checkpoint::{CheckpointEvent, CheckpointObserver};
use bulwark::events::{BreakerEvents, CheckpointEvents, EventBus, LimiterEvents};
use bulwark::ratelimit::{Decision, RateLimitObserver};

use bulwark::telemetry::metrics::{MetricsConfig, MetricsRegistry};
use bulwark::telemetry::observers::{
    BreakerMetricsListener, CheckpointMetricsObserver, RateLimitMetrics,
};
use bulwark::telemetry::{Telemetry, TraceStore, TraceStoreConfig};

use crate::pipelines::{Pipelines, default_pipeline};
use crate::workflow::{Workflows, demo_workflow};
use bulwark::durable::{DurableError, Executor, PostgresLeases};
use bulwark::telemetry::resilience_observers::ResilienceMetrics;

/// The name of the keyed limiter on workflow runs (one bucket per `workflow_id`).
pub const WORKFLOW_LIMITER: &str = "workflows";

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The workflow rate limit is invalid.
    #[error("workflow rate limit: {0}")]
    RateLimit(#[from] RegistryError),
    /// Redis could not be reached for the shared workflow limit.
    #[error("cannot set up the Redis rate limiter: {0}")]
    Redis(#[from] RedisSetupError),
    /// The checkpoint store could not be opened.
    #[error("cannot open the checkpoint store: {0}")]
    Checkpoints(#[from] CheckpointError),
    /// A folder could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The alert rules or notifiers are not usable.
    #[error("{0}")]
    Alerting(#[from] crate::config::ConfigError),
    /// A configured backend is not available in this build.
    #[error("{0}")]
    Unsupported(String),
    /// The workflow executor could not be set up (its leases, or a workflow definition).
    #[error("workflows: {0}")]
    Workflows(String),
    /// A `[pipelines.<name>]` cannot be built.
    #[error("pipeline {name:?}: {source}")]
    Pipeline {
        /// The pipeline.
        name: String,
        /// Why.
        #[source]
        source: bulwark::pipeline::PipelineConfigError,
    },
}

/// Shared state behind the API; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data_dir: PathBuf,
    checkpoint_dir: PathBuf,
    token: Option<Box<[u8]>>,
    body_limit: usize,
    ratelimiters: Arc<RateLimiterRegistry>,
    workflow_limiter: WorkflowLimiter,
    redis_limiter: Option<RedisRateLimiter>,
    workflows: Workflows,
    lease_ttl: Duration,
    checkpoints: StateCheckpointManager,
    /// `[checkpoints.retention]`: what a cleanup without rules applies.
    retention: Option<RetentionPolicy>,
    checkpoint_backend: &'static str,
    breakers: Arc<BreakerRegistry>,
    breaker_config: CircuitBreakerConfig,
    pipelines: Arc<Pipelines>,
    budgets: bulwark::budget::Ledger,
    telemetry: Telemetry,
    tasks: TaskTracker,
    health_probe: Mutex<Option<(Instant, Result<(), String>)>>,
    started: Instant,
    allowed_hosts: crate::guard::AllowedHosts,
    trace_store_reported: crate::telemetry::TraceStoreReported,
    events: EventBus,
    alerts: bulwark::alerting::AlertEngine,
}

impl AppState {
    /// State with the default configuration, rooted at `data_dir`.
    pub async fn new(data_dir: impl Into<PathBuf>) -> Result<Self, StateError> {
        let mut config = Config::default();
        config.server.data_dir = data_dir.into();
        Self::from_config(&config).await
    }

    /// State built from `config`: creates the data and checkpoint folders, the workflow
    /// limiter and the registry holding the demo workflow.
    pub async fn from_config(config: &Config) -> Result<Self, StateError> {
        let store = TraceStore::new(TraceStoreConfig {
            ttl: config.telemetry.trace_ttl,
            max_spans: config.telemetry.max_spans,
            max_bytes: config.telemetry.max_trace_bytes,
        });
        let metrics = MetricsRegistry::new(MetricsConfig::default());
        Self::from_parts(config, Telemetry::new(store, metrics)).await
    }

    /// State built from `config` around an existing trace store and metrics registry (the
    /// ones `bulwark::telemetry::init` installed for the process, for `bulwark serve`).
    pub async fn from_parts(config: &Config, telemetry: Telemetry) -> Result<Self, StateError> {
        let data_dir = config.server.data_dir.clone();
        let checkpoint_dir = config.checkpoints.dir(&data_dir);
        for dir in [&data_dir, &checkpoint_dir] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| StateError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        let store: Arc<dyn CheckpointStore> =
            match (&config.checkpoints.backend, &config.checkpoints.url) {
                (crate::config::CheckpointBackend::Postgres, Some(url)) => Arc::new(
                    PostgresStore::connect(url, PostgresStoreOptions::default())
                        .await
                        .map_err(CheckpointError::from)?,
                ),
                _ => Arc::new(
                    FsStore::open_async(&checkpoint_dir)
                        .await
                        .map_err(CheckpointError::from)?,
                ),
            };
        // Saves, loads, sizes and corruptions become metrics without a line in the runner.
        let retention = config.checkpoints.retention.policy();
        let events = EventBus::default();
        let (checkpoint_metrics, checkpoint_events) = (
            CheckpointMetricsObserver::new(telemetry.metrics()),
            CheckpointEvents::new(events.clone()),
        );
        let mut checkpoints = StateCheckpointManager::builder(store)
            .observer(move |e: &CheckpointEvent<'_>| {
                checkpoint_metrics.on_event(e);
                checkpoint_events.on_event(e);
            })
            .verify_on_load(config.checkpoints.verify_on_load)
            .compress_before_ack(config.checkpoints.compress_before_ack);
        if let Some(policy) = &retention
            && config.checkpoints.retention.cleanup_every > 0
        {
            checkpoints =
                checkpoints.retention(policy.clone(), config.checkpoints.retention.cleanup_every);
        }
        let checkpoints = checkpoints.build()?;
        let checkpoint_backend = match config.checkpoints.backend {
            crate::config::CheckpointBackend::Postgres => "postgres",
            _ => "fs",
        };
        let breakers = Arc::new(BreakerRegistry::new());
        breakers.add_listener(Arc::new(BreakerMetricsListener::new(telemetry.metrics())));
        breakers.add_listener(Arc::new(BreakerEvents::new(events.clone())));
        let (limit_metrics, limit_events) = (
            RateLimitMetrics::new(telemetry.metrics()),
            LimiterEvents::new(events.clone()),
        );
        let ratelimiters = Arc::new(RateLimiterRegistry::with_observer(Arc::new(
            move |d: &Decision<'_>| {
                limit_metrics.on_decision(d);
                limit_events.on_decision(d);
            },
        )));
        let limit = RateLimitConfig::new(
            config.ratelimit.workflow_max_requests,
            config.ratelimit.workflow_window,
            config.ratelimit.workflow_burst,
        );
        let (workflow_limiter, redis_limiter): (Arc<dyn RateLimitBackend>, _) =
            match (&config.ratelimit.backend, &config.ratelimit.url) {
                (crate::config::RateLimitBackend::Redis, Some(url)) => {
                    let limiter = RedisRateLimiter::builder(limit)
                        .prefix("bulwark:workflows")
                        .name(WORKFLOW_LIMITER)
                        .on_failure(FailurePolicy::Fallback {
                            share: config.ratelimit.effective_fallback_share(),
                        })
                        .connect(url)
                        .await?;
                    (Arc::new(limiter.clone()), Some(limiter))
                }
                _ => (
                    Arc::new(ratelimiters.get_or_create_keyed(WORKFLOW_LIMITER, limit)?),
                    None,
                ),
            };
        let pipelines = Arc::new(
            Pipelines::new(
                &config.pipelines,
                default_pipeline(config.workflows.max_attempts, config.breakers),
                Arc::clone(&breakers),
                ResilienceMetrics::new(telemetry.metrics()).observers(),
            )
            .map_err(|(name, source)| StateError::Pipeline { name, source })?,
        );
        let alerts = config.alerting.engine(
            telemetry.metrics(),
            &breakers,
            &format!("http://{}", config.server.listen),
        )?;
        if !alerts.rules().is_empty() {
            tokio::spawn(forward_alert_events(alerts.subscribe(), events.clone()));
            tokio::spawn(alerts.clone().run());
            tokio::spawn(alerts.clone().run_notifiers());
        }
        let workflows = workflows(config, &checkpoints, &pipelines, telemetry.metrics()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                data_dir,
                checkpoint_dir,
                token: config
                    .server
                    .token
                    .as_ref()
                    .map(|token| token.as_bytes().into()),
                body_limit: config.server.body_limit,
                ratelimiters,
                workflow_limiter: WorkflowLimiter(workflow_limiter),
                redis_limiter,
                workflows,
                lease_ttl: config.workflows.lease_ttl,
                checkpoints,
                retention,
                checkpoint_backend,
                breakers,
                breaker_config: config.breakers,
                pipelines,
                budgets: config
                    .budgets
                    .ledger(&telemetry)
                    .map_err(StateError::Unsupported)?,
                telemetry,
                tasks: TaskTracker::default(),
                health_probe: Mutex::default(),
                started: Instant::now(),
                allowed_hosts: crate::guard::AllowedHosts::new(
                    &config.server.allowed_hosts,
                    Some(config.server.listen),
                ),
                trace_store_reported: Default::default(),
                events,
                alerts,
            }),
        })
    }

    /// The folder embedded backends write to.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The folder checkpoints are kept in.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.inner.checkpoint_dir
    }

    /// Seconds since this state was created.
    pub fn uptime_seconds(&self) -> f64 {
        self.inner.started.elapsed().as_secs_f64()
    }

    /// The event stream of this state's breakers, limiters and checkpoints.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The budgets of `[budgets]`, listed at `GET /api/observability/budgets`.
    pub fn budgets(&self) -> &bulwark::budget::Ledger {
        &self.inner.budgets
    }

    /// The rate limiters the API lists (the workflow limiter among them).
    pub fn ratelimiters(&self) -> &Arc<RateLimiterRegistry> {
        &self.inner.ratelimiters
    }

    /// The workflows `POST /api/workflows/{id}/execute` can run; register your own here.
    pub fn workflows(&self) -> &Workflows {
        &self.inner.workflows
    }

    /// Continues, now and then every lease time to live, the runs left `running` that
    /// nobody drives (see `Workflows::recover_forever`); `bulwark serve` calls it at start.
    pub fn spawn_recovery(&self) -> tokio::task::JoinHandle<()> {
        let every = self.inner.lease_ttl;
        tokio::spawn(
            self.inner
                .workflows
                .clone()
                .recover_forever(self.clone(), every),
        )
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// Whether mutating requests need a bearer token.
    pub fn requires_token(&self) -> bool {
        self.inner.token.is_some()
    }

    /// Waits until every workflow run started through the API has finished (for graceful
    /// shutdown), or `timeout` passes; returns the number still running.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.inner.tasks.wait(timeout).await
    }

    pub(crate) fn token(&self) -> Option<&[u8]> {
        self.inner.token.as_deref()
    }

    pub(crate) fn allowed_hosts(&self) -> &crate::guard::AllowedHosts {
        &self.inner.allowed_hosts
    }

    pub(crate) fn trace_store_reported(&self) -> &crate::telemetry::TraceStoreReported {
        &self.inner.trace_store_reported
    }

    pub(crate) fn workflow_limiter(&self) -> &dyn RateLimitBackend {
        &*self.inner.workflow_limiter.0
    }

    /// The shared workflow limiter, when `ratelimit.backend = "redis"`.
    pub(crate) fn redis_limiter(&self) -> Option<&RedisRateLimiter> {
        self.inner.redis_limiter.as_ref()
    }

    /// The configured retention policy (`[checkpoints.retention]`), if any.
    pub fn retention_policy(&self) -> Option<&RetentionPolicy> {
        self.inner.retention.as_ref()
    }

    /// The checkpoint manager workflow runs save into and the API reads.
    pub fn checkpoint_manager(&self) -> &StateCheckpointManager {
        &self.inner.checkpoints
    }

    /// The alert engine (`[alerting]`): its rules, alerts and notifier queues, and
    /// [`subscribe`](bulwark::alerting::AlertEngine::subscribe) for alert events.
    pub fn alerts(&self) -> &bulwark::alerting::AlertEngine {
        &self.inner.alerts
    }

    /// The circuit breakers around workflow dependencies (one per dependency name).
    pub fn breakers(&self) -> &Arc<BreakerRegistry> {
        &self.inner.breakers
    }

    /// The resilience pipelines (`[pipelines.<name>]`, and the demo tools' defaults).
    pub fn pipelines(&self) -> &Arc<Pipelines> {
        &self.inner.pipelines
    }

    /// The config new dependency breakers get.
    pub fn breaker_config(&self) -> CircuitBreakerConfig {
        self.inner.breaker_config
    }

    /// The in-memory trace store the trace endpoints read.
    pub fn trace_store(&self) -> &TraceStore {
        self.inner.telemetry.store()
    }

    /// The metrics registry the metrics endpoints render.
    pub fn metrics(&self) -> &MetricsRegistry {
        self.inner.telemetry.metrics()
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// `"fs"` or `"postgres"`.
    pub(crate) fn checkpoint_backend(&self) -> &'static str {
        self.inner.checkpoint_backend
    }

    /// Whether the checkpoint store works: for the fs store, the folder accepts a new file;
    /// for PostgreSQL, a one-item listing answers. Probed at most once a second so that
    /// health scraping does not turn into load.
    pub(crate) async fn probe_checkpoint_store(&self) -> Result<(), String> {
        if self.inner.checkpoint_backend == "postgres" {
            return self
                .inner
                .checkpoints
                .list(&ListFilter::all().limit(1))
                .await
                .map(|_| ())
                .map_err(|error| format!("PostgreSQL checkpoint store: {error}"));
        }
        self.probe_checkpoint_dir()
    }

    fn probe_checkpoint_dir(&self) -> Result<(), String> {
        let mut cached = self
            .inner
            .health_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, result)) = cached.as_ref()
            && at.elapsed() < Duration::from_secs(1)
        {
            return result.clone();
        }
        let result = probe_writable(&self.inner.checkpoint_dir);
        *cached = Some((Instant::now(), result.clone()));
        result
    }
}

/// The executor with the demo on the server's checkpoints; with PostgreSQL checkpoints, under
/// leases in the same database, held as this replica (`workflows.replica`, default
/// `<host>-<pid>-<random>`), so that replicas share runs and take over a dead one's.
async fn workflows(
    config: &Config,
    checkpoints: &StateCheckpointManager,
    pipelines: &Arc<Pipelines>,
    metrics: &MetricsRegistry,
) -> Result<Workflows, StateError> {
    let replica = config.workflows.replica.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "bulwark".into());
        format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
    });
    let demo = demo_workflow(
        config.demo.failure_rate,
        config.demo.latency,
        Arc::clone(pipelines),
    );
    let mut builder = Executor::builder(checkpoints.clone()).workflow(demo);
    if let (crate::config::CheckpointBackend::Postgres, Some(url)) =
        (&config.checkpoints.backend, &config.checkpoints.url)
    {
        let leases = PostgresLeases::connect(url)
            .await
            .map_err(|e| StateError::Workflows(e.to_string()))?;
        builder = builder.leases(leases, replica.clone(), config.workflows.lease_ttl);
    }
    if let Some(url) = &config.workflows.test_counter_url {
        let counted = crate::workflow::counted_workflow(url, &replica)
            .await
            .map_err(StateError::Workflows)?;
        builder = builder.workflow(counted);
    }
    let executor = builder
        .build()
        .map_err(|e: DurableError| StateError::Workflows(e.to_string()))?;
    Ok(Workflows::new(executor, replica, metrics.clone()))
}

fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".health-probe-{}", std::process::id()));
    std::fs::write(&probe, b"ok")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|error| format!("{} is not writable: {error}", dir.display()))
}

struct WorkflowLimiter(Arc<dyn RateLimitBackend>);

impl std::fmt::Debug for WorkflowLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WorkflowLimiter")
            .field(&self.0.kind())
            .finish()
    }
}

/// Counts tasks that must finish before the process exits.
#[derive(Debug, Default)]
pub(crate) struct TaskTracker {
    active: AtomicUsize,
    idle: Notify,
}

/// Held while a tracked task runs.
#[derive(Debug)]
pub(crate) struct TaskToken(AppState);

impl Drop for TaskToken {
    fn drop(&mut self) {
        let tasks = &self.0.inner.tasks;
        if tasks.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            tasks.idle.notify_waiters();
        }
    }
}

impl TaskTracker {
    pub(crate) fn token(&self, state: &AppState) -> TaskToken {
        self.active.fetch_add(1, Ordering::AcqRel);
        TaskToken(state.clone())
    }

    async fn wait(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.idle.notified();
            let active = self.active.load(Ordering::Acquire);
            if active == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.active.load(Ordering::Acquire);
            }
        }
    }
}

/// Publishes each alert change (pending, firing, resolved) on the event stream as an `alert`
/// event named by its rule, until the engine is gone. A stream that fell behind skips what it
/// missed (the broadcast says how many) rather than stalling the engine.
async fn forward_alert_events(
    mut changes: tokio::sync::broadcast::Receiver<bulwark::alerting::AlertEvent>,
    events: EventBus,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(change) => {
                let data = serde_json::to_value(&change.alert).unwrap_or_default();
                events.publish(bulwark::events::NewEvent::new(
                    bulwark::events::EventKind::Alert,
                    change.alert.rule.clone(),
                    change.state.as_str(),
                    data,
                ));
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "alert events skipped on the event stream");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
