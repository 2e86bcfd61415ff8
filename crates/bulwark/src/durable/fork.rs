//! Forks: a new run from any checkpoint of a run, with an optional state patch.

use serde_json::Value;

use crate::checkpoint::CheckpointId;
use crate::clock::Clock;

use super::error::{DurableError, validate_run_id};
use super::executor::Executor;
use super::record::{Origin, RunRecord, RunStatus, new_trace_id, unix_millis};
use super::store::labels;

/// Applies an RFC 7386 JSON merge patch: objects merge key by key, `null` removes, anything
/// else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = target {
                for (key, value) in patch {
                    if value.is_null() {
                        map.remove(&key);
                    } else {
                        merge_patch(map.entry(key).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other,
    }
}

impl<C: Clock> Executor<C> {
    /// Forks `run_id` at its checkpoint `checkpoint` into a new run (a UUIDv7 id): the state
    /// there, with `patch` applied as a JSON merge patch (RFC 7386), and the effects recorded
    /// up to there (they replay; later ones run again under the fork's keys). The fork
    /// records its origin and gets a trace of its own that names the origin's.
    pub async fn fork(
        &self,
        run_id: &str,
        checkpoint: CheckpointId,
        patch: Option<Value>,
    ) -> Result<RunRecord, DurableError> {
        let new_id = uuid::Uuid::now_v7().to_string();
        self.fork_with_id(run_id, checkpoint, patch, &new_id).await
    }

    /// [`fork`](Self::fork) under a chosen id for the new run.
    pub async fn fork_with_id(
        &self,
        run_id: &str,
        checkpoint: CheckpointId,
        patch: Option<Value>,
        new_run_id: &str,
    ) -> Result<RunRecord, DurableError> {
        validate_run_id(run_id)?;
        validate_run_id(new_run_id)?;
        let foreign = |reason: String| DurableError::ForeignCheckpoint {
            checkpoint,
            run_id: run_id.to_owned(),
            reason,
        };
        let meta = self.inner.store.metadata(&checkpoint).await?;
        if meta.workflow_id != run_id {
            return Err(foreign(format!("it belongs to run {:?}", meta.workflow_id)));
        }
        let workflow = labels(&meta)
            .map(|l| l.workflow.to_owned())
            .ok_or_else(|| foreign("it is not a durable run's checkpoint".into()))?;
        let def = self.workflow(&workflow)?;
        let mut record = self.inner.store.load(&checkpoint).await?;
        if record.run_id != run_id || record.workflow != def.name {
            return Err(foreign(format!(
                "it holds run {:?} of {:?}",
                record.run_id, record.workflow
            )));
        }
        if let Some(patch) = patch {
            merge_patch(&mut record.state, patch);
            (def.validate)(&record.state).map_err(|reason| DurableError::BadState {
                workflow: def.name.clone(),
                reason: format!("after the patch: {reason}"),
            })?;
        }
        let claim = self.claim(new_run_id).await?;
        self.ensure_new(new_run_id).await?;
        record.origin = Some(Origin {
            run_id: run_id.to_owned(),
            checkpoint_id: checkpoint,
            revision: record.revision,
            trace_id: std::mem::replace(&mut record.trace_id, new_trace_id()),
        });
        record.run_id = new_run_id.to_owned();
        record.revision = 0;
        let now = unix_millis();
        record.timings.created_at_ms = now;
        record.timings.finished_at_ms = None;
        if matches!(record.status, RunStatus::Failed | RunStatus::Cancelled) {
            record.status = RunStatus::Running;
            record.attempts = 0;
            record.last_error = None;
        }
        let heads = def.agents.iter().map(|a| (a.clone(), None)).collect();
        self.launch(def, record, heads, claim, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, json!({"a": "z", "c": {"f": null}, "n": [1]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "n": [1]}));
    }
}
