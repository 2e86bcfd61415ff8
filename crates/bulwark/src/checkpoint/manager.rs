//! [`StateCheckpointManager`]: save, load and find checkpoints over any store.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::{ManagerConfig, Parent, SaveOptions, validate_name};
use super::crypto::Keyring;
use super::envelope::{self, Decoded, EncodeOptions, NewCheckpoint};
use super::error::{CheckpointError, DecodeError, StoreError};
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

/// Decodes `bytes` stored under `id` without the final hash check, refusing a file that holds
/// another checkpoint.
fn decode_for(
    id: CheckpointId,
    bytes: &[u8],
    keyring: Option<&Keyring>,
) -> Result<Decoded, CheckpointError> {
    let corrupt = |source| CheckpointError::Corrupt {
        name: id.to_string(),
        source,
    };
    let decoded = envelope::decode_unverified(bytes, keyring).map_err(corrupt)?;
    if decoded.metadata.id != id {
        return Err(corrupt(DecodeError::Metadata {
            reason: format!("stored under {id} but holds {}", decoded.metadata.id),
        }));
    }
    Ok(decoded)
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
        self.inner.store.put(&metadata, bytes).await?;
        Ok(metadata)
    }

    /// Loads and verifies checkpoint `id` and deserializes its state.
    pub async fn load_checkpoint<T>(&self, id: &CheckpointId) -> Result<T, CheckpointError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.load_with_metadata(id).await.map(|(_, state)| state)
    }

    /// [`load_checkpoint`](Self::load_checkpoint) with the checkpoint's metadata.
    pub async fn load_with_metadata<T>(
        &self,
        id: &CheckpointId,
    ) -> Result<(CheckpointMetadata, T), CheckpointError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let started = Instant::now();
        let id = *id;
        let bytes = self.inner.store.get(&id).await?;
        let keyring = self.inner.keyring.clone();
        let loaded = blocking(move || {
            let decoded = decode_for(id, &bytes, keyring.as_deref())?;
            let corrupt = |source| CheckpointError::Corrupt {
                name: id.to_string(),
                source,
            };
            // Large states: verify the hash on a second thread while deserializing on this one;
            // the value is only returned once the hash has matched.
            let (verified, state) = if decoded.state.len() >= envelope::PARALLEL_MIN {
                std::thread::scope(|scope| {
                    let hasher =
                        scope.spawn(|| envelope::verify_hash(&decoded.metadata, &decoded.state));
                    let state = serde_json::from_slice::<T>(&decoded.state);
                    let verified = hasher.join().unwrap_or_else(|_| {
                        Err(DecodeError::Decompress {
                            reason: "the hashing thread panicked".into(),
                        })
                    });
                    (verified, state)
                })
            } else {
                (
                    envelope::verify_hash(&decoded.metadata, &decoded.state),
                    serde_json::from_slice::<T>(&decoded.state),
                )
            };
            verified.map_err(corrupt)?;
            let state = state.map_err(|source| CheckpointError::Deserialize { id, source })?;
            Ok((decoded.metadata, state))
        })
        .await;
        self.report_corruption(id, &loaded);
        let (metadata, state) = loaded?;
        self.emit(CheckpointEvent::Loaded {
            metadata: &metadata,
            duration: started.elapsed(),
        });
        Ok((metadata, state))
    }

    /// Reads and verifies `id`: the decoded metadata and the serialized state.
    pub(super) async fn fetch_verified(
        &self,
        id: CheckpointId,
    ) -> Result<Decoded, CheckpointError> {
        let bytes = self.inner.store.get(&id).await?;
        let keyring = self.inner.keyring.clone();
        let decoded = blocking(move || {
            let decoded = decode_for(id, &bytes, keyring.as_deref())?;
            envelope::verify_hash(&decoded.metadata, &decoded.state).map_err(|source| {
                CheckpointError::Corrupt {
                    name: id.to_string(),
                    source,
                }
            })?;
            Ok(decoded)
        })
        .await;
        self.report_corruption(id, &decoded);
        decoded
    }

    fn report_corruption<T>(&self, id: CheckpointId, result: &Result<T, CheckpointError>) {
        if let Err(CheckpointError::Corrupt { source, .. }) = result {
            tracing::warn!(%id, error = %source, "corrupt checkpoint");
            self.emit(CheckpointEvent::Corrupt {
                id: Some(id),
                error: source,
            });
        }
    }

    /// The serialized state of `id` as JSON, verified.
    pub async fn load_json(
        &self,
        id: &CheckpointId,
    ) -> Result<(CheckpointMetadata, serde_json::Value), CheckpointError> {
        self.load_with_metadata(id).await
    }

    /// The newest checkpoint of the workflow that verifies; corrupt newer ones are skipped
    /// (and reported to the observer and the log).
    pub async fn get_latest_checkpoint(
        &self,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CheckpointId>, CheckpointError> {
        Ok(self
            .latest_valid(agent_id, workflow_id)
            .await?
            .metadata
            .map(|m| m.id))
    }

    /// The newest valid checkpoint of the workflow and the corrupt ones skipped on the way.
    pub async fn latest_valid(
        &self,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<LatestCheckpoint, CheckpointError> {
        let mut found = LatestCheckpoint::default();
        let mut filter = ListFilter::workflow(agent_id, workflow_id)
            .newest_first()
            .limit(16);
        loop {
            let page = self.inner.store.list(&filter).await?;
            for meta in page.items {
                match self.fetch_verified(meta.id).await {
                    Ok(decoded) => {
                        found.metadata = Some(decoded.metadata);
                        return Ok(found);
                    }
                    // Deleted since it was listed: not a corruption.
                    Err(CheckpointError::NotFound { .. }) => {}
                    Err(error @ CheckpointError::Corrupt { .. }) => {
                        found.skipped.push(SkippedCheckpoint {
                            id: meta.id,
                            reason: error.to_string(),
                        });
                    }
                    Err(other) => return Err(other),
                }
            }
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => return Ok(found),
            }
        }
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

    /// Reads and verifies `id` (header, lengths, decryption, decompression, SHA-256) and
    /// returns its metadata.
    pub async fn verify(&self, id: &CheckpointId) -> Result<CheckpointMetadata, CheckpointError> {
        Ok(self.fetch_verified(*id).await?.metadata)
    }
}
