//! A run's checkpoints: fenced saves, the latest record, history and listing, over a
//! [`StateCheckpointManager`].
//!
//! A run's checkpoints have the run id as `workflow_id` and the agent of the step that wrote
//! them as `agent_id`, so the store keeps one head per (agent, run). Labels carry what lists
//! need without reading a payload: the workflow, the record's revision, status and step.
//!
//! Fencing: a save under agent `a` is `Parent::Expect(head of a)`, which the store checks
//! atomically (PostgreSQL locks the head row); the heads of the run's other agents are
//! compared just before, so a writer whose view of any part of the run is stale stops with
//! [`DurableError::Conflict`] instead of forking the history.

use std::collections::BTreeMap;

use crate::checkpoint::{
    CheckpointError, CheckpointId, CheckpointMetadata, ListFilter, Parent, SaveOptions,
    StateCheckpointManager,
};

use super::error::DurableError;
use super::record::{HistoryEntry, RunRecord, RunStatus, RunSummary, unix_millis};

pub(crate) const LABEL_WORKFLOW: &str = "bulwark.durable.workflow";
pub(crate) const LABEL_REVISION: &str = "bulwark.durable.revision";
pub(crate) const LABEL_STATUS: &str = "bulwark.durable.status";
pub(crate) const LABEL_STEP: &str = "bulwark.durable.step";

/// The newest checkpoint of each of a run's agents, as this writer last saw it.
pub(crate) type Heads = BTreeMap<String, Option<CheckpointId>>;

#[derive(Clone, Debug)]
pub(crate) struct RunStore {
    manager: StateCheckpointManager,
}

/// A run checkpoint's labels, read back.
pub(crate) struct Labels<'a> {
    pub(crate) workflow: &'a str,
    pub(crate) revision: u64,
    pub(crate) status: RunStatus,
    pub(crate) step: Option<&'a str>,
}

pub(crate) fn labels(meta: &CheckpointMetadata) -> Option<Labels<'_>> {
    Some(Labels {
        workflow: meta.labels.get(LABEL_WORKFLOW)?,
        revision: meta.labels.get(LABEL_REVISION)?.parse().ok()?,
        status: RunStatus::parse(meta.labels.get(LABEL_STATUS)?)?,
        step: meta.labels.get(LABEL_STEP).map(String::as_str),
    })
}

impl RunStore {
    pub(crate) fn new(manager: StateCheckpointManager) -> Self {
        Self { manager }
    }

    async fn newest(
        &self,
        agent: &str,
        run_id: &str,
    ) -> Result<Option<CheckpointMetadata>, CheckpointError> {
        let filter = ListFilter::workflow(agent, run_id).newest_first().limit(1);
        // A local store answers from its in-memory index: no hand-off to a blocking thread.
        let page = match self.manager.store().local() {
            Some(local) => local.list_local(&filter)?,
            None => self.manager.list(&filter).await?,
        };
        Ok(page.items.into_iter().next())
    }

    /// The heads of `run_id` under `agents`, and its newest checkpoint (highest revision) among
    /// them that belongs to a durable run.
    pub(crate) async fn heads(
        &self,
        agents: &[String],
        run_id: &str,
    ) -> Result<(Heads, Option<CheckpointMetadata>), DurableError> {
        let mut heads = Heads::new();
        let mut latest: Option<(u64, CheckpointMetadata)> = None;
        for agent in agents {
            let newest = self
                .newest(agent, run_id)
                .await
                .map_err(DurableError::Checkpoint)?;
            heads.insert(agent.clone(), newest.as_ref().map(|m| m.id));
            if let Some(meta) = newest
                && let Some(revision) = labels(&meta).map(|l| l.revision)
                && latest.as_ref().is_none_or(|(best, _)| revision > *best)
            {
                latest = Some((revision, meta));
            }
        }
        Ok((heads, latest.map(|(_, meta)| meta)))
    }

    /// Saves `record` as the run's next checkpoint under `agent`, fenced on `heads`, which it
    /// then updates.
    pub(crate) async fn save(
        &self,
        record: &mut RunRecord,
        heads: &mut Heads,
        agent: &str,
    ) -> Result<CheckpointMetadata, DurableError> {
        let run_id = record.run_id.clone();
        for (other, expected) in heads.iter().filter(|(other, _)| *other != agent) {
            let actual = self
                .newest(other, &run_id)
                .await
                .map_err(DurableError::Checkpoint)?
                .map(|m| m.id);
            if actual != *expected {
                return Err(DurableError::Conflict {
                    run_id,
                    expected: *expected,
                    actual,
                });
            }
        }
        record.revision += 1;
        record.timings.updated_at_ms = unix_millis();
        let expected = heads.get(agent).copied().flatten();
        let mut options = SaveOptions::default()
            .parent(Parent::Expect(expected))
            .label(LABEL_WORKFLOW, record.workflow.as_str())
            .label(LABEL_REVISION, record.revision.to_string())
            .label(LABEL_STATUS, record.status.as_str());
        if let Some(step) = &record.current_step {
            options = options.label(LABEL_STEP, step.as_str());
        }
        let meta = self
            .manager
            .save_with(&*record, agent, &run_id, options)
            .await
            .map_err(|e| DurableError::checkpoint(&run_id, e))?;
        heads.insert(agent.to_owned(), Some(meta.id));
        Ok(meta)
    }

    pub(crate) async fn metadata(
        &self,
        id: &CheckpointId,
    ) -> Result<CheckpointMetadata, DurableError> {
        self.manager
            .metadata(id)
            .await
            .map_err(DurableError::Checkpoint)
    }

    pub(crate) async fn load(&self, id: &CheckpointId) -> Result<RunRecord, DurableError> {
        self.manager
            .load_checkpoint(id)
            .await
            .map_err(DurableError::Checkpoint)
    }

    /// Every checkpoint of `run_id` under `agents`, oldest revision first.
    pub(crate) async fn history(
        &self,
        agents: &[String],
        run_id: &str,
    ) -> Result<Vec<HistoryEntry>, DurableError> {
        let mut entries = Vec::new();
        for agent in agents {
            let filter = ListFilter::workflow(agent.as_str(), run_id);
            for meta in self.list_all(filter).await? {
                if let Some(l) = labels(&meta) {
                    entries.push(HistoryEntry {
                        checkpoint_id: meta.id,
                        revision: l.revision,
                        status: l.status,
                        step: l.step.map(str::to_owned),
                        agent: meta.agent_id.clone(),
                        created_at_ms: meta.created_at_millis(),
                    });
                }
            }
        }
        entries.sort_by_key(|e| (e.revision, e.checkpoint_id));
        Ok(entries)
    }

    /// The newest checkpoint of every run of `workflow` (under its `agents`).
    pub(crate) async fn runs(
        &self,
        workflow: &str,
        agents: &[String],
    ) -> Result<Vec<RunSummary>, DurableError> {
        let mut runs: BTreeMap<String, RunSummary> = BTreeMap::new();
        for agent in agents {
            for meta in self
                .list_all(ListFilter::all().agent(agent.as_str()))
                .await?
            {
                let Some(l) = labels(&meta).filter(|l| l.workflow == workflow) else {
                    continue;
                };
                let newer = runs
                    .get(&meta.workflow_id)
                    .is_none_or(|known| l.revision > known.revision);
                if newer {
                    runs.insert(
                        meta.workflow_id.clone(),
                        RunSummary {
                            run_id: meta.workflow_id.clone(),
                            workflow: workflow.to_owned(),
                            status: l.status,
                            step: l.step.map(str::to_owned),
                            checkpoint_id: meta.id,
                            revision: l.revision,
                        },
                    );
                }
            }
        }
        Ok(runs.into_values().collect())
    }

    async fn list_all(
        &self,
        mut filter: ListFilter,
    ) -> Result<Vec<CheckpointMetadata>, DurableError> {
        const PAGE: usize = 1024;
        filter.limit = Some(PAGE);
        let mut all = Vec::new();
        loop {
            let page = self
                .manager
                .list(&filter)
                .await
                .map_err(DurableError::Checkpoint)?;
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => return Ok(all),
            }
        }
    }
}
