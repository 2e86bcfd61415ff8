//! Pipelines by name, and the process-wide default registry.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use super::config::PipelineConfig;
use super::error::PipelineConfigError;
use super::observers::PipelineObservers;
use super::pipeline::ResiliencePipeline;
use crate::clock::{Clock, MonotonicClock};
use crate::sync::{read, write};

/// Pipelines by name: the same name always gives the same pipeline (and so the same limiter
/// tokens, bulkhead slots, breaker state and retry budget).
///
/// [`PipelineRegistry::global`] is the one the `#[resilient(pipeline = "...")]` macro reads;
/// the server fills it from its TOML config. Observers set on the registry are attached to
/// every pipeline it creates.
///
/// ```
/// use bulwark::pipeline::{PipelineConfig, PipelineRegistry};
///
/// let config: PipelineConfig = toml::from_str(r#"
///     [[strategies]]
///     kind = "bulkhead"
///     max_concurrent = 4
/// "#)?;
/// let registry = PipelineRegistry::new();
/// let a = registry.get_or_create("search", &config)?;
/// let b = registry.get_or_create("search", &config)?;
/// assert_eq!(a.bulkhead().map(|b| b.config().max_concurrent), Some(4));
/// assert_eq!(registry.list(), vec!["search".to_string()]);
/// assert!(registry.get("other").is_none());
/// # let _ = b;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PipelineRegistry<C: Clock = MonotonicClock> {
    pipelines: RwLock<BTreeMap<Arc<str>, ResiliencePipeline<C>>>,
    observers: RwLock<PipelineObservers>,
    clock: C,
}

impl PipelineRegistry<MonotonicClock> {
    /// An empty registry on the real clock.
    pub fn new() -> Self {
        Self::with_clock(MonotonicClock::new())
    }

    /// The process-wide registry.
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<PipelineRegistry> = OnceLock::new();
        GLOBAL.get_or_init(Self::new)
    }
}

impl Default for PipelineRegistry<MonotonicClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> PipelineRegistry<C> {
    /// An empty registry whose pipelines read `clock`.
    pub fn with_clock(clock: C) -> Self {
        Self {
            pipelines: RwLock::new(BTreeMap::new()),
            observers: RwLock::new(PipelineObservers::default()),
            clock,
        }
    }

    /// Sets the observers attached to pipelines created from now on.
    pub fn set_observers(&self, observers: PipelineObservers) {
        *write(&self.observers) = observers;
    }

    /// The pipeline named `name`, built from `config` if there is none yet. An existing
    /// pipeline keeps the config it was built with. A refused config changes nothing.
    pub fn get_or_create(
        &self,
        name: &str,
        config: &PipelineConfig,
    ) -> Result<ResiliencePipeline<C>, PipelineConfigError> {
        if let Some(existing) = self.get(name) {
            return Ok(existing);
        }
        let observers = read(&self.observers).clone();
        let built = config.build(name, self.clock.clone(), &observers)?;
        let mut pipelines = write(&self.pipelines);
        Ok(pipelines.entry(Arc::from(name)).or_insert(built).clone())
    }

    /// Registers a pipeline built in code under its own name, replacing any of that name.
    pub fn insert(&self, pipeline: ResiliencePipeline<C>) {
        write(&self.pipelines).insert(Arc::from(pipeline.name()), pipeline);
    }

    /// The pipeline named `name`, if any.
    pub fn get(&self, name: &str) -> Option<ResiliencePipeline<C>> {
        read(&self.pipelines).get(name).cloned()
    }

    /// Removes the pipeline named `name` (handles on it keep working).
    pub fn remove(&self, name: &str) -> Option<ResiliencePipeline<C>> {
        write(&self.pipelines).remove(name)
    }

    /// The names of every pipeline, sorted.
    pub fn list(&self) -> Vec<String> {
        read(&self.pipelines)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// Number of pipelines.
    pub fn len(&self) -> usize {
        read(&self.pipelines).len()
    }

    /// Whether the registry holds no pipeline.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<C: Clock> fmt::Debug for PipelineRegistry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineRegistry")
            .field("pipelines", &self.list())
            .finish_non_exhaustive()
    }
}
