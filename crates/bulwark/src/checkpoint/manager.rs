//! [`StateCheckpointManager`]: its configuration, building, saving, listing and deleting
//! (loading is in `load.rs`, whole-store operations in `maintenance.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::config::ManagerConfig;
use super::crypto::Keyring;
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
    pub(super) workflow_locks: Mutex<HashMap<WorkflowKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Length of the last serialized state, to size the next one's buffer.
    pub(super) serialized_hint: AtomicUsize,
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

    /// Hash every loaded state with SHA-256, even when decoding already proved it intact
    /// (see [`ManagerConfig::verify_on_load`]).
    pub fn verify_on_load(mut self, always: bool) -> Self {
        self.config.verify_on_load = always;
        self
    }

    /// Compress before a save returns even on a store that compacts in the background (see
    /// [`ManagerConfig::compress_before_ack`]).
    pub fn compress_before_ack(mut self, yes: bool) -> Self {
        self.config.compress_before_ack = yes;
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
                serialized_hint: AtomicUsize::new(0),
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
    /// Reads the envelope of `id` and runs `f` on it off the async workers: in one blocking
    /// task with the read for a store on local disk, after the store's async read otherwise.
    pub(super) async fn read_then<R, F>(&self, id: CheckpointId, f: F) -> Result<R, CheckpointError>
    where
        F: FnOnce(Vec<u8>) -> Result<R, CheckpointError> + Send + 'static,
        R: Send + 'static,
    {
        let store = Arc::clone(&self.inner.store);
        if store.local().is_some() {
            return blocking(move || {
                let local = store.local().ok_or(StoreError::Task {
                    reason: "the store stopped being local".into(),
                })?;
                f(local.get_local(&id)?)
            })
            .await;
        }
        let bytes = store.get(&id).await?;
        blocking(move || f(bytes)).await
    }

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
