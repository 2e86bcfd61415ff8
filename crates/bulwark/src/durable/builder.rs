//! Building an [`Executor`]: its clock, workflows and leases.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::StateCheckpointManager;
use crate::clock::{Clock, MonotonicClock};

use super::definition::{Workflow, WorkflowDef};
use super::error::DurableError;
use super::executor::Executor;
use super::lease::{LeaseStore, Leases};
use super::record::RunRecord;

/// See [`ExecutorBuilder::on_run_span`].
pub(crate) type RunSpanHook = Arc<dyn Fn(&tracing::Span, &RunRecord) + Send + Sync>;

/// Builds an [`Executor`].
pub struct ExecutorBuilder<C> {
    manager: StateCheckpointManager,
    clock: C,
    workflows: Vec<Result<WorkflowDef, DurableError>>,
    leases: Option<Leases>,
    span_hook: Option<RunSpanHook>,
}

impl<C: Clock> fmt::Debug for ExecutorBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutorBuilder")
            .field("workflows", &self.workflows.len())
            .finish_non_exhaustive()
    }
}

impl<C: Clock> ExecutorBuilder<C> {
    /// Waits (backoffs, timeouts) on `clock` instead.
    pub fn clock<D: Clock>(self, clock: D) -> ExecutorBuilder<D> {
        ExecutorBuilder {
            manager: self.manager,
            clock,
            workflows: self.workflows,
            leases: self.leases,
            span_hook: self.span_hook,
        }
    }

    /// Calls `hook` on each `workflow.run` span as it opens, with the run's record: where a
    /// service that uses `bulwark::telemetry` makes the span continue the run's trace (e.g.
    /// `SpanExt::set_parent` with the record's `trace_id`), which this module cannot do
    /// without importing telemetry.
    pub fn on_run_span(
        mut self,
        hook: impl Fn(&tracing::Span, &RunRecord) + Send + Sync + 'static,
    ) -> Self {
        self.span_hook = Some(Arc::new(hook));
        self
    }

    /// Drives a run only under its lease in `store`, held as `owner` (this replica's name,
    /// unique among replicas) for `ttl` at a time and renewed every `ttl / 3` on the clock.
    pub fn leases(
        mut self,
        store: impl LeaseStore,
        owner: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        self.leases = Some(Leases {
            store: Arc::new(store),
            owner: owner.into(),
            ttl,
        });
        self
    }

    /// Registers a workflow (checked by [`build`](Self::build)).
    pub fn workflow<S>(mut self, workflow: Workflow<S>) -> Self
    where
        S: Serialize + DeserializeOwned + Send + 'static,
    {
        self.workflows.push(workflow.into_def());
        self
    }

    /// The executor, or why a workflow is refused.
    pub fn build(self) -> Result<Executor<C>, DurableError> {
        let mut workflows = BTreeMap::new();
        for def in self.workflows {
            let def = def?;
            if workflows.contains_key(&def.name) {
                return Err(DurableError::DuplicateWorkflow { name: def.name });
            }
            workflows.insert(def.name.clone(), Arc::new(def));
        }
        let mut agents: Vec<String> = workflows
            .values()
            .flat_map(|def| def.agents.iter().cloned())
            .collect();
        agents.sort();
        agents.dedup();
        Ok(Executor::from_parts(
            self.manager,
            self.clock,
            workflows,
            agents,
            self.leases,
            self.span_hook,
        ))
    }
}

impl Executor<MonotonicClock> {
    /// A builder over `manager`, on the real clock.
    pub fn builder(manager: StateCheckpointManager) -> ExecutorBuilder<MonotonicClock> {
        ExecutorBuilder {
            manager,
            clock: MonotonicClock::new(),
            workflows: Vec::new(),
            leases: None,
            span_hook: None,
        }
    }
}
