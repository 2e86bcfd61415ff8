//! The [`Executor`]: starts, resumes, recovers, cancels, lists and forks runs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tracing::Instrument;
use tracing::field::Empty;

use crate::checkpoint::{CheckpointId, StateCheckpointManager};
use crate::clock::{Clock, MonotonicClock};

use super::builder::RunSpanHook;
use super::context::Resolution;
use super::definition::{Workflow, WorkflowDef, WorkflowInfo};
use super::drive::{Stop, drive};
use super::error::{DurableError, validate_run_id};
use super::lease::Leases;
use super::live::RunShared;
use super::record::{EffectState, HistoryEntry, InterruptKind, RunRecord, RunStatus, RunSummary};
use super::store::{Heads, RunStore, labels};

/// Runs durable workflows over a checkpoint manager. Cheap to clone; clones share the
/// workflows and the runs in flight.
///
/// Every method that drives a run (`start`, `resume`, `recover`, `fork`) returns once the
/// run stops: completed, failed, cancelled, or waiting. A waiting run holds no task; a run
/// whose future is dropped stays `running` in its checkpoints, like one whose process died,
/// and [`recover`](Self::recover) continues it.
pub struct Executor<C: Clock = MonotonicClock> {
    pub(super) inner: Arc<Inner<C>>,
}

pub(super) struct Inner<C> {
    pub(super) store: RunStore,
    clock: C,
    /// The workflows, and every agent of every workflow (where to look for a run id), sorted.
    registered: RwLock<Registered>,
    inflight: Mutex<HashMap<String, Inflight>>,
    leases: Option<Leases>,
    span_hook: Option<RunSpanHook>,
}

#[derive(Default)]
struct Registered {
    workflows: BTreeMap<String, Arc<WorkflowDef>>,
    agents: Arc<[String]>,
}

struct Inflight {
    stop: Arc<watch::Sender<Stop>>,
    done: watch::Receiver<bool>,
}

impl<C: Clock> Clone for Executor<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Clock> fmt::Debug for Executor<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field(
                "workflows",
                &self
                    .registered()
                    .workflows
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// Holds a run id in this executor while it runs; frees it (and tells cancellers) when dropped.
pub(super) struct Claim<C: Clock> {
    executor: Executor<C>,
    run_id: String,
    stop_tx: Arc<watch::Sender<Stop>>,
    stop: watch::Receiver<Stop>,
    done: watch::Sender<bool>,
    leased: bool,
}

impl<C: Clock> Drop for Claim<C> {
    fn drop(&mut self) {
        self.executor.inflight().remove(&self.run_id);
        self.done.send_replace(true);
        if self.leased
            && let Some(leases) = self.executor.inner.leases.clone()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let run_id = std::mem::take(&mut self.run_id);
            runtime.spawn(async move { leases.release(&run_id).await });
        }
    }
}

/// What a run is loaded as.
struct Loaded {
    def: Arc<WorkflowDef>,
    record: RunRecord,
    heads: Heads,
    checkpoint: CheckpointId,
}

impl<C: Clock> Executor<C> {
    pub(super) fn from_parts(
        manager: StateCheckpointManager,
        clock: C,
        workflows: BTreeMap<String, Arc<WorkflowDef>>,
        agents: Vec<String>,
        leases: Option<Leases>,
        span_hook: Option<RunSpanHook>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: RunStore::new(manager),
                clock,
                registered: RwLock::new(Registered {
                    workflows,
                    agents: agents.into(),
                }),
                inflight: Mutex::new(HashMap::new()),
                leases,
                span_hook,
            }),
        }
    }

    fn registered(&self) -> std::sync::RwLockReadGuard<'_, Registered> {
        self.inner
            .registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn agents(&self) -> Arc<[String]> {
        Arc::clone(&self.registered().agents)
    }

    /// Registers one more workflow on a running executor (a service that learns its
    /// workflows after start, e.g. from a plug-in); runs of the others are not disturbed.
    /// Refused, changing nothing, when the definition is invalid or the name is taken.
    pub fn register<S>(&self, workflow: Workflow<S>) -> Result<(), DurableError>
    where
        S: Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        let def = workflow.into_def()?;
        let mut registered = self
            .inner
            .registered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if registered.workflows.contains_key(&def.name) {
            return Err(DurableError::DuplicateWorkflow { name: def.name });
        }
        let mut agents: Vec<String> = registered.agents.iter().cloned().collect();
        agents.extend(def.agents.iter().cloned());
        agents.sort();
        agents.dedup();
        registered.agents = agents.into();
        registered.workflows.insert(def.name.clone(), Arc::new(def));
        Ok(())
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<String, Inflight>> {
        self.inner
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `run_id` in this process, then takes its lease when leases are on.
    pub(super) async fn claim(&self, run_id: &str) -> Result<Claim<C>, DurableError> {
        let mut claim = {
            let mut inflight = self.inflight();
            if inflight.contains_key(run_id) {
                return Err(DurableError::AlreadyRunning {
                    run_id: run_id.to_owned(),
                });
            }
            let (stop_tx, stop) = watch::channel(Stop::Go);
            let stop_tx = Arc::new(stop_tx);
            let (done, done_rx) = watch::channel(false);
            inflight.insert(
                run_id.to_owned(),
                Inflight {
                    stop: Arc::clone(&stop_tx),
                    done: done_rx,
                },
            );
            Claim {
                executor: self.clone(),
                run_id: run_id.to_owned(),
                stop_tx,
                stop,
                done,
                leased: false,
            }
        };
        if let Some(leases) = &self.inner.leases {
            leases.acquire(run_id).await?;
            claim.leased = true;
        }
        Ok(claim)
    }

    pub(super) fn workflow(&self, name: &str) -> Result<Arc<WorkflowDef>, DurableError> {
        self.registered()
            .workflows
            .get(name)
            .cloned()
            .ok_or_else(|| DurableError::UnknownWorkflow {
                name: name.to_owned(),
            })
    }

    /// The registered workflows, by name.
    pub fn workflows(&self) -> Vec<WorkflowInfo> {
        self.registered()
            .workflows
            .values()
            .map(|def| def.info())
            .collect()
    }

    /// Whether `run_id` is being driven by this executor now.
    pub fn is_running_here(&self, run_id: &str) -> bool {
        self.inflight().contains_key(run_id)
    }

    async fn load(&self, run_id: &str) -> Result<Loaded, DurableError> {
        validate_run_id(run_id)?;
        let (all_heads, latest) = self.inner.store.heads(&self.agents(), run_id).await?;
        let not_found = || DurableError::RunNotFound {
            run_id: run_id.to_owned(),
        };
        let latest = latest.ok_or_else(not_found)?;
        let workflow = labels(&latest)
            .map(|l| l.workflow.to_owned())
            .ok_or_else(not_found)?;
        let def = self.workflow(&workflow)?;
        let record = self.inner.store.load(&latest.id).await?;
        if record.run_id != run_id || record.workflow != def.name {
            return Err(DurableError::ForeignCheckpoint {
                checkpoint: latest.id,
                run_id: run_id.to_owned(),
                reason: format!("it holds run {:?} of {:?}", record.run_id, record.workflow),
            });
        }
        let heads = def
            .agents
            .iter()
            .map(|agent| (agent.clone(), all_heads.get(agent).copied().flatten()))
            .collect();
        Ok(Loaded {
            def,
            record,
            heads,
            checkpoint: latest.id,
        })
    }

    /// Fails with [`DurableError::RunExists`] when any checkpoint is under `run_id`.
    pub(super) async fn ensure_new(&self, run_id: &str) -> Result<(), DurableError> {
        let (heads, _) = self.inner.store.heads(&self.agents(), run_id).await?;
        if heads.values().any(Option::is_some) {
            return Err(DurableError::RunExists {
                run_id: run_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Starts a run of `workflow` on `state` under a new run id (a UUIDv7).
    pub async fn start<S: Serialize + ?Sized>(
        &self,
        workflow: &str,
        state: &S,
    ) -> Result<RunRecord, DurableError> {
        let run_id = uuid::Uuid::now_v7().to_string();
        self.start_with_id(workflow, &run_id, state).await
    }

    /// Starts a run of `workflow` on `state` under `run_id`, which must not exist yet.
    pub async fn start_with_id<S: Serialize + ?Sized>(
        &self,
        workflow: &str,
        run_id: &str,
        state: &S,
    ) -> Result<RunRecord, DurableError> {
        let def = self.workflow(workflow)?;
        validate_run_id(run_id)?;
        let bad_state = |reason: String| DurableError::BadState {
            workflow: def.name.clone(),
            reason,
        };
        let state = serde_json::to_value(state).map_err(|e| bad_state(e.to_string()))?;
        (def.validate)(&state).map_err(bad_state)?;
        let claim = self.claim(run_id).await?;
        self.ensure_new(run_id).await?;
        let heads = def.agents.iter().map(|a| (a.clone(), None)).collect();
        let first = def.nodes.first().map(|n| n.name());
        let mut record = RunRecord::new(run_id, &def.name, first, state);
        record.timings.step_started_at_ms = Some(record.timings.created_at_ms);
        self.launch(def, record, heads, claim, true).await
    }

    /// Saves `record` first when `save` is set, then drives it.
    pub(super) async fn launch(
        &self,
        def: Arc<WorkflowDef>,
        record: RunRecord,
        heads: Heads,
        claim: Claim<C>,
        save: bool,
    ) -> Result<RunRecord, DurableError> {
        let agent = agent_at(&def, record.position).to_owned();
        let span = tracing::info_span!(
            "workflow.run",
            run.id = %record.run_id,
            workflow.name = %def.name,
            workflow.trace_id = %record.trace_id,
            workflow.origin_trace_id = record.origin.as_ref().map(|o| o.trace_id.as_str()),
            workflow.status = Empty,
            otel.status_code = Empty,
        );
        if let Some(hook) = &self.inner.span_hook {
            hook(&span, &record);
        }
        let run = RunShared::new(self.inner.store.clone(), record, heads);
        if save && run.update(&agent, |_| ((), true)).await.is_err() {
            return Err(run.stop_error());
        }
        let renewal = self.renew_while_running(&claim);
        let result = drive(def, run, self.inner.clock.clone(), claim.stop.clone())
            .instrument(span.clone())
            .await;
        if let Some(renewal) = renewal {
            renewal.abort();
        }
        match &result {
            Ok(record) => {
                span.record("workflow.status", record.status.as_str());
                if record.status == RunStatus::Failed {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                tracing::error!(parent: &span, "{error}");
            }
        }
        drop(claim);
        result
    }

    /// Renews the claim's lease every third of its time to live until aborted; a failed
    /// renewal stops the driver.
    fn renew_while_running(&self, claim: &Claim<C>) -> Option<tokio::task::JoinHandle<()>> {
        let leases = self.inner.leases.clone().filter(|_| claim.leased)?;
        let (clock, run_id, stop) = (
            self.inner.clock.clone(),
            claim.run_id.clone(),
            Arc::clone(&claim.stop_tx),
        );
        Some(tokio::spawn(async move {
            loop {
                clock.sleep(leases.ttl / 3).await;
                let renewed = leases.store.renew(&run_id, &leases.owner, leases.ttl).await;
                if !matches!(renewed, Ok(true)) {
                    tracing::error!(run_id, ?renewed, "lease lost: stopping the run");
                    stop.send_replace(Stop::LeaseLost);
                    return;
                }
            }
        }))
    }

    /// Delivers `input` to a waiting run and drives it on. For an interrupt, the input is
    /// what `ctx.interrupt` returns when the step runs again; for an effect of unknown
    /// outcome, a [`Resolution`]; for a paused error, it is ignored and the step runs again.
    pub async fn resume(&self, run_id: &str, input: Value) -> Result<RunRecord, DurableError> {
        validate_run_id(run_id)?;
        let claim = self.claim(run_id).await?;
        let Loaded {
            def,
            mut record,
            heads,
            ..
        } = self.load(run_id).await?;
        if record.status != RunStatus::Waiting {
            return Err(DurableError::WrongStatus {
                run_id: run_id.to_owned(),
                status: record.status,
                expected: "waiting",
            });
        }
        if let Some(pending) = record.interrupt.take() {
            let slot = format!("{}/{}", pending.step, pending.name);
            match pending.kind {
                InterruptKind::Interrupt => {
                    record.inputs.insert(slot, input);
                }
                InterruptKind::UnknownEffect => {
                    let resolution =
                        Resolution::deserialize(input).map_err(|e| DurableError::BadInput {
                            run_id: run_id.to_owned(),
                            reason: format!(r#"expected {{"done": <result>}} or "rerun": {e}"#),
                        })?;
                    if let Some(effect) = record.effects.get_mut(&slot) {
                        effect.state = match resolution {
                            Resolution::Done(result) => EffectState::Done { result },
                            Resolution::Rerun => EffectState::Failed {
                                error: "outcome unknown; a person asked to call again".into(),
                            },
                        };
                    }
                }
                // The paused attempt counts: the step runs again as the next one.
                InterruptKind::PausedOnError => record.attempts += 1,
            }
        }
        record.status = RunStatus::Running;
        record.last_error = None;
        self.launch(def, record, heads, claim, true).await
    }

    /// Continues a run that is `running` in its checkpoints but driven by nobody here (its
    /// process died, or its future was dropped), from its latest checkpoint.
    pub async fn recover(&self, run_id: &str) -> Result<RunRecord, DurableError> {
        validate_run_id(run_id)?;
        let claim = self.claim(run_id).await?;
        let Loaded {
            def, record, heads, ..
        } = self.load(run_id).await?;
        if record.status != RunStatus::Running {
            return Err(DurableError::WrongStatus {
                run_id: run_id.to_owned(),
                status: record.status,
                expected: "running",
            });
        }
        tracing::info!(run_id, revision = record.revision, "recovering run");
        self.launch(def, record, heads, claim, false).await
    }

    /// Recovers, concurrently, every `running` run of every workflow that this executor is
    /// not driving; returns how each ended.
    pub async fn recover_all(
        &self,
    ) -> Result<Vec<(String, Result<RunRecord, DurableError>)>, DurableError> {
        let runs = self.list_runs(None, Some(RunStatus::Running)).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for run in runs {
            if self.is_running_here(&run.run_id) {
                continue;
            }
            let executor = self.clone();
            tasks.spawn(async move {
                let result = executor.recover(&run.run_id).await;
                (run.run_id, result)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(result) => results.push(result),
                Err(error) => tracing::error!(%error, "a recovery task ended"),
            }
        }
        Ok(results)
    }

    /// Cancels a run: one in flight here has its step cancelled and is checkpointed as
    /// cancelled; a waiting (or orphaned running) one is checkpointed as cancelled directly.
    /// Returns the cancelled record.
    pub async fn cancel(&self, run_id: &str) -> Result<RunRecord, DurableError> {
        validate_run_id(run_id)?;
        let signalled = self.inflight().get(run_id).map(|inflight| {
            inflight.stop.send_replace(Stop::Cancel);
            inflight.done.clone()
        });
        if let Some(mut done) = signalled {
            // The driver (or a resume being set up) lets go of the run when it stops.
            let _ = done.wait_for(|done| *done).await;
            return self.get(run_id).await;
        }
        let _claim = self.claim(run_id).await?;
        let Loaded {
            def,
            mut record,
            mut heads,
            ..
        } = self.load(run_id).await?;
        if record.status.is_finished() {
            return Err(DurableError::WrongStatus {
                run_id: run_id.to_owned(),
                status: record.status,
                expected: "running or waiting",
            });
        }
        record.interrupt = None;
        record.last_error = Some("cancelled".into());
        record.finish(RunStatus::Cancelled);
        let agent = agent_at(&def, record.position);
        self.inner
            .store
            .save(&mut record, &mut heads, agent)
            .await?;
        Ok(record)
    }

    /// The run's latest record.
    pub async fn get(&self, run_id: &str) -> Result<RunRecord, DurableError> {
        Ok(self.load(run_id).await?.record)
    }

    /// The run's latest record and the checkpoint holding it.
    pub async fn get_with_checkpoint(
        &self,
        run_id: &str,
    ) -> Result<(RunRecord, CheckpointId), DurableError> {
        let loaded = self.load(run_id).await?;
        Ok((loaded.record, loaded.checkpoint))
    }

    /// The runs of `workflow` (every workflow when `None`), optionally only those in `status`,
    /// each as its newest checkpoint's metadata says.
    pub async fn list_runs(
        &self,
        workflow: Option<&str>,
        status: Option<RunStatus>,
    ) -> Result<Vec<RunSummary>, DurableError> {
        let defs = match workflow {
            Some(name) => vec![self.workflow(name)?],
            None => self.registered().workflows.values().cloned().collect(),
        };
        let mut runs = Vec::new();
        for def in defs {
            let found = self.inner.store.runs(&def.name, &def.agents).await?;
            runs.extend(
                found
                    .into_iter()
                    .filter(|r| status.is_none_or(|s| r.status == s)),
            );
        }
        Ok(runs)
    }

    /// Every checkpoint of the run, oldest first.
    pub async fn history(&self, run_id: &str) -> Result<Vec<HistoryEntry>, DurableError> {
        let Loaded { def, .. } = self.load(run_id).await?;
        self.inner.store.history(&def.agents, run_id).await
    }
}

/// The agent whose id a checkpoint at `position` is saved under.
fn agent_at(def: &WorkflowDef, position: usize) -> &str {
    def.nodes
        .get(position)
        .or(def.nodes.last())
        .map_or("", |node| node.agent())
}
