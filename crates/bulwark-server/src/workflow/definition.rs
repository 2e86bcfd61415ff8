//! What a workflow is: named steps, each owned by an agent, mapping state to state.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bulwark::breaker::{BreakerRegistry, CircuitBreakerConfig, CircuitBreakerError};
use serde_json::Value;

/// The future a step returns.
pub type StepFuture = Pin<Box<dyn Future<Output = Result<Value, StepError>> + Send>>;

/// A boxed future borrowing for `'a`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type StepFn = dyn Fn(StepContext, Value) -> StepFuture + Send + Sync;

/// Why a step did not produce its next state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The step failed; the runner may try it again.
    #[error("{0}")]
    Failed(String),
    /// A dependency's circuit breaker is open: retrying now would be refused too.
    #[error("dependency {dependency:?} is unavailable (circuit open){}", retry_hint(.retry_after))]
    Unavailable {
        /// The dependency (breaker) name.
        dependency: String,
        /// When the breaker admits a trial call.
        retry_after: Option<Duration>,
    },
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|after| format!("; retry after {} ms", after.as_millis()))
        .unwrap_or_default()
}

impl StepError {
    /// A failure with a message.
    pub fn failed(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }
}

/// What a step knows about the run it is part of, and its door to external dependencies.
#[derive(Clone)]
pub struct StepContext {
    pub(crate) run_id: Arc<str>,
    pub(crate) step: Arc<str>,
    pub(crate) agent: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) guard: Arc<dyn DependencyGuard>,
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("run_id", &self.run_id)
            .field("step", &self.step)
            .field("agent", &self.agent)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Puts the hardening (a circuit breaker per dependency) around a step's external calls.
pub(crate) trait DependencyGuard: Send + Sync + 'static {
    /// Runs `call` on behalf of `dependency`, or refuses it.
    fn guard<'a>(
        &'a self,
        dependency: &'a str,
        call: BoxFuture<'a, Result<Value, String>>,
    ) -> BoxFuture<'a, Result<Value, StepError>>;
}

/// No hardening: calls pass straight through (used when no breaker registry is wired in).
#[derive(Debug, Default)]
pub(crate) struct Unguarded;

impl DependencyGuard for Unguarded {
    fn guard<'a>(
        &'a self,
        _dependency: &'a str,
        call: BoxFuture<'a, Result<Value, String>>,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async move { call.await.map_err(StepError::Failed) })
    }
}

/// A circuit breaker per dependency, created on first use from one config.
#[derive(Debug)]
pub(crate) struct BreakerGuard {
    pub(crate) registry: Arc<BreakerRegistry>,
    pub(crate) config: CircuitBreakerConfig,
}

impl DependencyGuard for BreakerGuard {
    fn guard<'a>(
        &'a self,
        dependency: &'a str,
        call: BoxFuture<'a, Result<Value, String>>,
    ) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async move {
            let breaker = self
                .registry
                .get_or_create(dependency, self.config)
                .map_err(StepError::failed)?;
            breaker.call_async(call).await.map_err(|error| match error {
                CircuitBreakerError::Rejected(rejected) => StepError::Unavailable {
                    dependency: dependency.to_owned(),
                    retry_after: rejected.retry_after,
                },
                CircuitBreakerError::Inner(message) => StepError::Failed(message),
                other => StepError::failed(other),
            })
        })
    }
}

impl StepContext {
    /// A context for running a step outside the server (tests, tools).
    pub fn detached(run_id: &str, step: &str, agent: &str) -> Self {
        Self {
            run_id: run_id.into(),
            step: step.into(),
            agent: agent.into(),
            attempt: 1,
            guard: Arc::new(Unguarded),
        }
    }

    /// The run's id (the path's `workflow_id`).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The agent that owns the step.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// 1 for the first attempt at this step, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Calls an external dependency through the circuit breaker named `dependency`: an
    /// `Err` counts as a failure; an open breaker refuses with [`StepError::Unavailable`]
    /// without calling.
    pub async fn call<F, Fut, T, E>(&self, dependency: &str, call: F) -> Result<T, StepError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
        T: serde::Serialize + serde::de::DeserializeOwned,
        E: fmt::Display,
    {
        let call = async move {
            let value = call().await.map_err(|error| error.to_string())?;
            serde_json::to_value(value).map_err(|error| error.to_string())
        };
        let value = self.guard.guard(dependency, Box::pin(call)).await?;
        serde_json::from_value(value).map_err(StepError::failed)
    }
}

/// One step of a workflow.
#[derive(Clone)]
pub struct Step {
    name: String,
    agent: String,
    run: Arc<StepFn>,
}

impl Step {
    /// The step's name (unique within its workflow).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent that runs it.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Runs it once.
    pub fn run(&self, context: StepContext, state: Value) -> StepFuture {
        (self.run)(context, state)
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// A named, ordered list of steps.
#[derive(Clone, Debug)]
pub struct WorkflowDefinition {
    name: String,
    description: String,
    steps: Vec<Step>,
}

impl WorkflowDefinition {
    /// A workflow with no steps yet.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            steps: Vec::new(),
        }
    }

    /// Appends a step run by `agent`: an async function from the state to the next state.
    pub fn step<F, Fut>(mut self, name: impl Into<String>, agent: impl Into<String>, f: F) -> Self
    where
        F: Fn(StepContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
    {
        self.steps.push(Step {
            name: name.into(),
            agent: agent.into(),
            run: Arc::new(move |context, state| Box::pin(f(context, state))),
        });
        self
    }

    /// The workflow's name (what a request's `workflow` field selects).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it does.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Its steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// The workflows a server can run, by name. Cheap to clone; clones share the set.
#[derive(Clone, Debug, Default)]
pub struct WorkflowRegistry {
    workflows: Arc<RwLock<BTreeMap<String, Arc<WorkflowDefinition>>>>,
}

impl WorkflowRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a workflow under its name.
    pub fn register(&self, workflow: WorkflowDefinition) {
        let mut workflows = self
            .workflows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        workflows.insert(workflow.name.clone(), Arc::new(workflow));
    }

    /// The workflow named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<WorkflowDefinition>> {
        self.workflows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.workflows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}
