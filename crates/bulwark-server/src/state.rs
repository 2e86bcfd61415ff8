//! What every handler can reach: the registries and stores, built once from a [`Config`].

use std::collections::HashSet;
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

use bulwark::telemetry::metrics::{MetricsConfig, MetricsRegistry};
use bulwark::telemetry::observers::{
    BreakerMetricsListener, CheckpointMetricsObserver, RateLimitMetrics,
};
use bulwark::telemetry::{SpanExt, Telemetry, TraceStore, TraceStoreConfig};

use crate::workflow::{BreakerGuard, DependencyGuard, WorkflowRegistry, demo_workflow};

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
    /// A configured backend is not available in this build.
    #[error("{0}")]
    Unsupported(String),
}

/// How workflow runs are hardened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunSettings {
    pub(crate) checkpoint_every: u64,
    pub(crate) max_attempts: u32,
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
    workflows: WorkflowRegistry,
    run_settings: RunSettings,
    checkpoints: StateCheckpointManager,
    /// `[checkpoints.retention]`: what a cleanup without rules applies.
    retention: Option<RetentionPolicy>,
    checkpoint_backend: &'static str,
    breakers: Arc<BreakerRegistry>,
    budgets: bulwark::budget::Ledger,
    guard: Arc<BreakerGuard>,
    telemetry: Telemetry,
    running: Mutex<HashSet<String>>,
    tasks: TaskTracker,
    health_probe: Mutex<Option<(Instant, Result<(), String>)>>,
    started: Instant,
    allowed_hosts: crate::guard::AllowedHosts,
    trace_store_reported: crate::telemetry::TraceStoreReported,
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
        let mut checkpoints = StateCheckpointManager::builder(store)
            .observer(CheckpointMetricsObserver::new(telemetry.metrics()))
            .verify_on_load(config.checkpoints.verify_on_load);
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
        let guard = Arc::new(BreakerGuard {
            registry: Arc::clone(&breakers),
            config: config.breakers,
        });
        let ratelimiters = Arc::new(RateLimiterRegistry::with_observer(Arc::new(
            RateLimitMetrics::new(telemetry.metrics()),
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
        let workflows = WorkflowRegistry::new();
        workflows.register(demo_workflow(config.demo.failure_rate, config.demo.latency));
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
                run_settings: RunSettings {
                    checkpoint_every: config.workflows.checkpoint_every,
                    max_attempts: config.workflows.max_attempts,
                },
                checkpoints,
                retention,
                checkpoint_backend,
                breakers,
                budgets: config
                    .budgets
                    .ledger(&telemetry)
                    .map_err(StateError::Unsupported)?,
                guard,
                telemetry,
                running: Mutex::default(),
                tasks: TaskTracker::default(),
                health_probe: Mutex::default(),
                started: Instant::now(),
                allowed_hosts: crate::guard::AllowedHosts::new(
                    &config.server.allowed_hosts,
                    Some(config.server.listen),
                ),
                trace_store_reported: Default::default(),
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

    /// The budgets of `[budgets]`, listed at `GET /api/observability/budgets`.
    pub fn budgets(&self) -> &bulwark::budget::Ledger {
        &self.inner.budgets
    }

    /// The rate limiters the API lists (the workflow limiter among them).
    pub fn ratelimiters(&self) -> &Arc<RateLimiterRegistry> {
        &self.inner.ratelimiters
    }

    /// The workflows `POST /api/workflows/{id}/execute` can run; register your own here.
    pub fn workflows(&self) -> &WorkflowRegistry {
        &self.inner.workflows
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

    pub(crate) fn run_settings(&self) -> RunSettings {
        self.inner.run_settings
    }

    /// The configured retention policy (`[checkpoints.retention]`), if any.
    pub fn retention_policy(&self) -> Option<&RetentionPolicy> {
        self.inner.retention.as_ref()
    }

    /// The checkpoint manager workflow runs save into and the API reads.
    pub fn checkpoint_manager(&self) -> &StateCheckpointManager {
        &self.inner.checkpoints
    }

    /// The circuit breakers around workflow dependencies (one per dependency name).
    pub fn breakers(&self) -> &Arc<BreakerRegistry> {
        &self.inner.breakers
    }

    /// The config new dependency breakers get.
    pub fn breaker_config(&self) -> CircuitBreakerConfig {
        self.inner.guard.config
    }

    pub(crate) fn dependency_guard(&self) -> Arc<dyn DependencyGuard> {
        self.inner.guard.clone()
    }

    /// The in-memory trace store the trace endpoints read.
    pub fn trace_store(&self) -> &TraceStore {
        self.inner.telemetry.store()
    }

    /// The metrics registry the metrics endpoints render.
    pub fn metrics(&self) -> &MetricsRegistry {
        self.inner.telemetry.metrics()
    }

    pub(crate) fn record_step(&self, workflow: &str, step: &str, ok: bool, elapsed: Duration) {
        use crate::telemetry::{WORKFLOW_STEP_SECONDS, WORKFLOW_STEPS_TOTAL};
        let outcome = if ok { "completed" } else { "failed" };
        let labels = [("workflow", workflow), ("step", step), ("outcome", outcome)];
        let metrics = self.metrics();
        if let Err(error) = metrics.increment_counter(WORKFLOW_STEPS_TOTAL, &labels) {
            tracing::debug!(%error, "step counter refused");
        }
        if let Err(error) =
            metrics.record_histogram(WORKFLOW_STEP_SECONDS, elapsed.as_secs_f64(), &labels[..2])
        {
            tracing::debug!(%error, "step histogram refused");
        }
    }

    pub(crate) fn current_trace_id(&self) -> Option<String> {
        tracing::Span::current()
            .trace_context()
            .map(|context| context.trace_id.to_string())
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Marks `workflow_id` as running; `None` if it already is. The guard unmarks it.
    pub(crate) fn start_run(&self, workflow_id: &str) -> Option<RunningGuard> {
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        running
            .insert(workflow_id.to_owned())
            .then(|| RunningGuard {
                state: self.clone(),
                workflow_id: workflow_id.to_owned(),
            })
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

/// Unmarks a running workflow id when dropped.
#[derive(Debug)]
pub(crate) struct RunningGuard {
    state: AppState,
    workflow_id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.state
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.workflow_id);
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
