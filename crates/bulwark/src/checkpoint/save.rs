//! Saving: serialize, pick the parent and sequence under the workflow's lock, encode, check
//! the size budget, store.
//!
//! For a store on local disk ([`CheckpointStore::local`](super::CheckpointStore::local)) the
//! parent lookup, the encoding and the durable write run in one blocking task; for other
//! stores the lookups and the write are the store's async calls and only the encoding runs on
//! a blocking thread.

use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use super::codec::{Codec, Compression};
use super::config::{ManagerConfig, Parent, SaveOptions, validate_name};
use super::crypto::Keyring;
use super::envelope::{self, EncodeOptions, NewCheckpoint};
use super::error::{CheckpointError, StoreError};
use super::id::CheckpointId;
use super::manager::{StateCheckpointManager, blocking};
use super::metadata::CheckpointMetadata;
use super::observer::CheckpointEvent;
use super::store::{ListFilter, LocalStore};

/// Everything one save needs once the state is serialized, owned so that it can move to a
/// blocking thread.
struct SaveJob {
    serialized: Vec<u8>,
    agent_id: String,
    workflow_id: String,
    options: SaveOptions,
    config: ManagerConfig,
    keyring: Option<Arc<Keyring>>,
}

/// Where the new checkpoint goes in its workflow's chain.
struct Place {
    parent_id: Option<CheckpointId>,
    sequence: u64,
    /// The greatest id the new one must sort after: the workflow's newest and the parent.
    after: Option<CheckpointId>,
    /// `Some` when the save is fenced: the newest checkpoint it expects.
    fence: Option<Option<CheckpointId>>,
}

/// An encoded checkpoint, and the warning threshold it exceeds, if any.
struct Encoded {
    metadata: CheckpointMetadata,
    bytes: Vec<u8>,
    over_warning: Option<u64>,
}

impl SaveJob {
    fn newest_filter(&self) -> ListFilter {
        ListFilter::workflow(&self.agent_id, &self.workflow_id)
            .newest_first()
            .limit(1)
    }

    /// Parent and sequence from the workflow's newest checkpoint and, for an explicit parent,
    /// that parent's metadata.
    fn place(
        &self,
        newest: Option<&CheckpointMetadata>,
        explicit: Option<&CheckpointMetadata>,
    ) -> Result<Place, CheckpointError> {
        let actual = newest.map(|m| m.id);
        let parent_id = match self.options.parent {
            Parent::Latest => actual,
            Parent::Explicit(_) => explicit.map(|m| m.id),
            Parent::None => None,
            Parent::Expect(expected) => {
                if actual != expected {
                    return Err(StoreError::Conflict { expected, actual }.into());
                }
                expected
            }
        };
        Ok(Place {
            parent_id,
            sequence: newest.map_or(1, |m| m.sequence.saturating_add(1)),
            after: actual.max(parent_id),
            fence: match self.options.parent {
                Parent::Expect(expected) => Some(expected),
                _ => None,
            },
        })
    }

    /// Encodes the state with `compression` and checks it against the size budget.
    fn encode(
        &mut self,
        place: &Place,
        compression: Compression,
    ) -> Result<Encoded, CheckpointError> {
        let new = NewCheckpoint {
            // After the newest: ids are what orders a workflow's history, and UUIDv7 alone
            // orders two processes' ids within one millisecond at random.
            id: CheckpointId::new_after(place.after.as_ref()),
            agent_id: &self.agent_id,
            workflow_id: &self.workflow_id,
            sequence: place.sequence,
            parent_id: place.parent_id,
            created_at_ms: envelope::now_millis(),
            labels: self.options.labels.clone(),
        };
        let options = EncodeOptions {
            compression,
            parallel: self.config.parallel,
            keyring: self.keyring.as_deref(),
        };
        let (metadata, bytes) = envelope::encode(&new, &self.serialized, options)?;
        let budget = self.config.size_budget;
        if let Some(limit) = budget.max_bytes
            && metadata.stored_size > limit
        {
            return Err(CheckpointError::TooLarge {
                agent_id: self.agent_id.clone(),
                workflow_id: self.workflow_id.clone(),
                size: metadata.stored_size,
                limit,
            });
        }
        let over_warning = budget
            .warn_bytes
            .filter(|warn_bytes| metadata.stored_size > *warn_bytes);
        Ok(Encoded {
            metadata,
            bytes,
            over_warning,
        })
    }

    /// Whether this save may be acknowledged in the cheap form and compressed afterwards by
    /// `local`: not when encrypting (plaintext would reach the disk), nor when the codec is
    /// none anyway, nor when the configuration asks to compress first.
    fn defers_compression(&self, local: &dyn LocalStore) -> bool {
        !self.config.compress_before_ack
            && self.config.compression.codec != Codec::None
            && self.keyring.as_ref().is_none_or(|k| !k.can_encrypt())
            && local.compacts_in_background()
    }

    /// Encodes in the cheap form when `deferred`, in the configured codec otherwise, or when
    /// the cheap form is over the size budget (the budget is on stored bytes, which the
    /// compressed form is judged by).
    fn encode_for(&mut self, place: &Place, deferred: bool) -> Result<Encoded, CheckpointError> {
        let target = self.config.compression;
        if !deferred {
            return self.encode(place, target);
        }
        match self.encode(place, Compression::new(Codec::None)) {
            Ok(encoded) if encoded.over_warning.is_none() => Ok(encoded),
            Ok(_) | Err(CheckpointError::TooLarge { .. }) => self.encode(place, target),
            Err(error) => Err(error),
        }
    }

    /// The whole save against a store on local disk, on the calling (blocking) thread.
    fn run_local(mut self, local: &dyn LocalStore) -> Result<Encoded, CheckpointError> {
        let filter = self.newest_filter();
        let newest = local.list_local(&filter)?.items.pop();
        let explicit = match self.options.parent {
            Parent::Explicit(id) => Some(local.metadata_local(&id)?),
            _ => None,
        };
        let place = self.place(newest.as_ref(), explicit.as_ref())?;
        let deferred = self.defers_compression(local);
        let encoded = self.encode_for(&place, deferred)?;
        match place.fence {
            // Checked again right before the write, atomically where the store can (the
            // filesystem store holds a lock file across the check and the write).
            Some(expected) => {
                local.put_fenced_local(&encoded.metadata, &encoded.bytes, expected.as_ref())?
            }
            None => local.put_local(&encoded.metadata, &encoded.bytes)?,
        }
        if encoded.metadata.codec == Codec::None && deferred {
            local.defer_compression(&encoded.metadata.id, self.config.compression);
        }
        Ok(encoded)
    }
}

impl StateCheckpointManager {
    /// Saves `state` as the newest checkpoint of `agent_id`'s `workflow_id` and returns its id
    /// once it is durable.
    pub async fn save_checkpoint<T: Serialize + ?Sized>(
        &self,
        state: &T,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<CheckpointId, CheckpointError> {
        self.save_with(state, agent_id, workflow_id, SaveOptions::default())
            .await
            .map(|meta| meta.id)
    }

    /// Saves with labels or a chosen parent; returns the stored metadata.
    pub async fn save_with<T: Serialize + ?Sized>(
        &self,
        state: &T,
        agent_id: &str,
        workflow_id: &str,
        options: SaveOptions,
    ) -> Result<CheckpointMetadata, CheckpointError> {
        let started = Instant::now();
        validate_name("agent_id", agent_id)?;
        validate_name("workflow_id", workflow_id)?;
        // Sized from the previous save, so that a large state is not copied at every doubling.
        let hint = self.inner.serialized_hint.load(Ordering::Relaxed);
        let mut serialized = Vec::with_capacity(hint.saturating_add(hint / 8));
        serde_json::to_writer(&mut serialized, state).map_err(CheckpointError::Serialize)?;
        self.inner
            .serialized_hint
            .store(serialized.len(), Ordering::Relaxed);
        let key = (agent_id.to_owned(), workflow_id.to_owned());
        let lock = {
            let mut locks = self
                .inner
                .workflow_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        let result = {
            let _guard = lock.lock().await;
            self.save_locked(serialized, agent_id, workflow_id, options)
                .await
        };
        {
            let mut locks = self
                .inner
                .workflow_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Only the map and this call hold it: nobody else is saving this workflow.
            if Arc::strong_count(&lock) == 2 {
                locks.remove(&key);
            }
        }
        let metadata = result?;
        self.emit(CheckpointEvent::Saved {
            metadata: &metadata,
            duration: started.elapsed(),
        });
        tracing::debug!(id = %metadata.id, agent_id, workflow_id, bytes = metadata.stored_size, "checkpoint saved");
        self.after_save();
        Ok(metadata)
    }

    async fn save_locked(
        &self,
        serialized: Vec<u8>,
        agent_id: &str,
        workflow_id: &str,
        options: SaveOptions,
    ) -> Result<CheckpointMetadata, CheckpointError> {
        let job = SaveJob {
            serialized,
            agent_id: agent_id.to_owned(),
            workflow_id: workflow_id.to_owned(),
            options,
            config: self.inner.config.clone(),
            keyring: self.inner.keyring.clone(),
        };
        let store = Arc::clone(&self.inner.store);
        let (metadata, over_warning) = if store.local().is_some() {
            let encoded = blocking(move || {
                let local = store.local().ok_or(StoreError::Task {
                    reason: "the store stopped being local".into(),
                })?;
                job.run_local(local)
            })
            .await?;
            (encoded.metadata, encoded.over_warning)
        } else {
            let newest = store.list(&job.newest_filter()).await?.items.pop();
            let explicit = match job.options.parent {
                Parent::Explicit(id) => Some(store.metadata(&id).await?),
                _ => None,
            };
            let place = job.place(newest.as_ref(), explicit.as_ref())?;
            let fence = place.fence;
            let encoded = blocking(move || {
                let mut job = job;
                let compression = job.config.compression;
                job.encode(&place, compression)
            })
            .await?;
            match fence {
                Some(expected) => {
                    store
                        .put_fenced(&encoded.metadata, encoded.bytes, expected.as_ref())
                        .await?;
                }
                None => store.put(&encoded.metadata, encoded.bytes).await?,
            }
            (encoded.metadata, encoded.over_warning)
        };
        if let Some(warn_bytes) = over_warning {
            tracing::warn!(
                agent_id,
                workflow_id,
                size = metadata.stored_size,
                warn_bytes,
                "checkpoint over its size budget"
            );
            self.emit(CheckpointEvent::OverBudget {
                metadata: &metadata,
                warn_bytes,
            });
        }
        Ok(metadata)
    }
}
