//! [`StateCheckpointManager`]: its configuration, building, saving, listing and deleting
//! (loading is in `load.rs`, whole-store operations in `maintenance.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

use super::config::{ManagerConfig, Parent, SaveOptions, validate_name};
use super::crypto::Keyring;
use super::envelope::{self, EncodeOptions, NewCheckpoint};
use super::error::{CheckpointError, StoreError};
use super::id::CheckpointId;
use super::metadata::CheckpointMetadata;
use super::observer::{CheckpointEvent, CheckpointObserver, DeleteReason};
use super::store::{CheckpointPage, CheckpointStore, FsStore, ListFilter};

/// Saves, loads and finds checkpoints of agent and workflow state. Cheap to clone; clones
/// share the store, configuration and observer.
///
/// Every method is async; encoding, compression, hashing and disk work run on tokio's
/// blocking threads, never on the async workers. Sync callers use
/// [`BlockingCheckpointManager`](super::BlockingCheckpointManager).
#[derive(Clone)]
pub struct StateCheckpointManager {
    pub(super) inner: Arc<Inner>,
}

/// (agent id, workflow id).
type WorkflowKey = (String, String);

pub(super) struct Inner {
    pub(super) store: Arc<dyn CheckpointStore>,
    pub(super) config: ManagerConfig,
    pub(super) observer: Option<Arc<dyn CheckpointObserver>>,
    pub(super) keyring: Option<Arc<Keyring>>,
    /// One lock per workflow being saved, so that sequence and parent are assigned in order.
    workflow_locks: Mutex<HashMap<WorkflowKey, Arc<tokio::sync::Mutex<()>>>>,
    pub(super) saves_since_cleanup: AtomicU32,
    pub(super) cleanup_running: AtomicBool,
}

impl fmt::Debug for StateCheckpointManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCheckpointManager")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .field("observer", &self.inner.observer.is_some())
            .field("keyring", &self.inner.keyring)
            .finish()
    }
}

/// Builds a [`StateCheckpointManager`].
pub struct ManagerBuilder {
    store: Arc<dyn CheckpointStore>,
    config: ManagerConfig,
    observer: Option<Arc<dyn CheckpointObserver>>,
    keyring: Option<Arc<Keyring>>,
}

impl fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ManagerBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// Codec and level of new checkpoints.
    pub fn compression(mut self, compression: super::Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Hash and compress large states on several threads (on by default).
    pub fn parallel(mut self, parallel: bool) -> Self {
        self.config.parallel = parallel;
        self
    }

    /// Per-checkpoint size limits.
    pub fn size_budget(mut self, budget: super::SizeBudget) -> Self {
        self.config.size_budget = budget;
        self
    }

    /// Applies `policy` by itself, in the background, every `every` saves.
    pub fn retention(mut self, policy: super::RetentionPolicy, every: u32) -> Self {
        self.config.retention = Some(policy);
        self.config.cleanup_every = every;
        self
    }

    /// Attaches an observer.
    pub fn observer(mut self, observer: impl CheckpointObserver) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Seals new checkpoints with the keyring's active key and opens sealed ones.
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(Arc::new(keyring));
        self
    }

    /// Validates the configuration and builds the manager.
    pub fn build(self) -> Result<StateCheckpointManager, CheckpointError> {
        self.config.validate()?;
        Ok(self.build_unchecked())
    }

    fn build_unchecked(self) -> StateCheckpointManager {
        StateCheckpointManager {
            inner: Arc::new(Inner {
                store: self.store,
                config: self.config,
                observer: self.observer,
                keyring: self.keyring,
                workflow_locks: Mutex::new(HashMap::new()),
                saves_since_cleanup: AtomicU32::new(0),
                cleanup_running: AtomicBool::new(false),
            }),
        }
    }
}

/// What [`StateCheckpointManager::latest_valid`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LatestCheckpoint {
    /// The newest checkpoint that verifies, if any.
    pub metadata: Option<CheckpointMetadata>,
    /// Newer checkpoints that were skipped because they do not verify.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// A checkpoint skipped because it does not verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SkippedCheckpoint {
    /// Its id.
    pub id: CheckpointId,
    /// Why it was skipped.
    pub reason: String,
}

pub(super) async fn blocking<T, F>(f: F) -> Result<T, CheckpointError>
where
    F: FnOnce() -> Result<T, CheckpointError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        CheckpointError::Store(StoreError::Task {
            reason: e.to_string(),
        })
    })?
}

impl StateCheckpointManager {
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn CheckpointStore>) -> ManagerBuilder {
        ManagerBuilder {
            store,
            config: ManagerConfig::default(),
            observer: None,
            keyring: None,
        }
    }

    /// A manager with the default configuration over `store`.
    pub fn new(store: Arc<dyn CheckpointStore>) -> Self {
        // The default configuration is valid.
        Self::builder(store).build_unchecked()
    }

    /// A manager with the default configuration over a filesystem store in `checkpoint_dir`.
    pub async fn open(checkpoint_dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let store = FsStore::open_async(checkpoint_dir).await?;
        Ok(Self::new(Arc::new(store)))
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    pub(super) fn emit(&self, event: CheckpointEvent<'_>) {
        if let Some(observer) = &self.inner.observer {
            observer.on_event(&event);
        }
    }

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
        let serialized = serde_json::to_vec(state).map_err(CheckpointError::Serialize)?;
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
        let newest = self
            .inner
            .store
            .list(
                &ListFilter::workflow(agent_id, workflow_id)
                    .newest_first()
                    .limit(1),
            )
            .await?
            .items
            .pop();
        let parent_id = match options.parent {
            Parent::Latest => newest.as_ref().map(|m| m.id),
            Parent::Explicit(id) => Some(self.inner.store.metadata(&id).await?.id),
            Parent::None => None,
            Parent::Expect(expected) => {
                let actual = newest.as_ref().map(|m| m.id);
                if actual != expected {
                    return Err(StoreError::Conflict { expected, actual }.into());
                }
                expected
            }
        };
        let fence = match options.parent {
            Parent::Expect(expected) => Some(expected),
            _ => None,
        };
        let sequence = newest.as_ref().map_or(1, |m| m.sequence.saturating_add(1));
        let owned = (agent_id.to_owned(), workflow_id.to_owned());
        let config = self.inner.config.clone();
        let keyring = self.inner.keyring.clone();
        let labels = options.labels;
        let (metadata, bytes) = blocking(move || {
            let new = NewCheckpoint {
                id: CheckpointId::new(),
                agent_id: &owned.0,
                workflow_id: &owned.1,
                sequence,
                parent_id,
                created_at_ms: envelope::now_millis(),
                labels,
            };
            let options = EncodeOptions {
                compression: config.compression,
                parallel: config.parallel,
                keyring: keyring.as_deref(),
            };
            envelope::encode(&new, &serialized, options)
        })
        .await?;
        let budget = self.inner.config.size_budget;
        if let Some(limit) = budget.max_bytes
            && metadata.stored_size > limit
        {
            return Err(CheckpointError::TooLarge {
                agent_id: agent_id.to_owned(),
                workflow_id: workflow_id.to_owned(),
                size: metadata.stored_size,
                limit,
            });
        }
        if let Some(warn_bytes) = budget.warn_bytes
            && metadata.stored_size > warn_bytes
        {
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
        match fence {
            Some(expected) => {
                self.inner
                    .store
                    .put_fenced(&metadata, bytes, expected.as_ref())
                    .await?;
            }
            None => self.inner.store.put(&metadata, bytes).await?,
        }
        Ok(metadata)
    }

    /// Metadata of the checkpoints matching `filter`, one page at a time.
    pub async fn list(&self, filter: &ListFilter) -> Result<CheckpointPage, CheckpointError> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// Metadata of `id`, without reading its state.
    pub async fn metadata(&self, id: &CheckpointId) -> Result<CheckpointMetadata, CheckpointError> {
        Ok(self.inner.store.metadata(id).await?)
    }

    /// The chain of checkpoints leading to `id`: `id` first, then its parent, and so on (at
    /// most `max_len`). A parent that no longer exists ends the chain.
    pub async fn chain(
        &self,
        id: &CheckpointId,
        max_len: usize,
    ) -> Result<Vec<CheckpointMetadata>, CheckpointError> {
        let mut chain = Vec::new();
        let mut next = Some(*id);
        while let Some(id) = next {
            if chain.len() >= max_len {
                break;
            }
            let meta = match self.inner.store.metadata(&id).await {
                Ok(meta) => meta,
                Err(StoreError::NotFound { .. }) if !chain.is_empty() => break,
                Err(e) => return Err(e.into()),
            };
            next = meta.parent_id;
            chain.push(meta);
        }
        Ok(chain)
    }

    /// Deletes `id` durably; `Ok(false)` when it did not exist.
    pub async fn delete(&self, id: &CheckpointId) -> Result<bool, CheckpointError> {
        let existed = self.inner.store.delete(id).await?;
        if existed {
            self.emit(CheckpointEvent::Deleted {
                id: *id,
                reason: DeleteReason::Requested,
            });
        }
        Ok(existed)
    }
}
