//! A blocking facade over [`StateCheckpointManager`] for code without an async runtime.

use std::future::Future;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cleanup::{CleanupReport, RetentionPolicy};
use super::config::SaveOptions;
use super::error::CheckpointError;
use super::id::CheckpointId;
use super::maintenance::VerifyReport;
use super::manager::StateCheckpointManager;
use super::metadata::CheckpointMetadata;
use super::store::{CheckpointPage, ListFilter};

/// The manager's API as blocking calls, driven by a private single-threaded tokio runtime
/// (disk work still runs on its blocking threads). Calling it from inside an async runtime
/// returns [`CheckpointError::Runtime`] instead of deadlocking.
///
/// ```
/// use bulwark::checkpoint::BlockingCheckpointManager;
///
/// let dir = tempfile::tempdir()?;
/// let manager = BlockingCheckpointManager::open(dir.path())?;
/// let id = manager.save_checkpoint(&vec!["step 1", "step 2"], "agent", "wf")?;
/// let state: Vec<String> = manager.load_checkpoint(&id)?;
/// assert_eq!(state, ["step 1", "step 2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct BlockingCheckpointManager {
    manager: StateCheckpointManager,
    runtime: tokio::runtime::Runtime,
}

impl BlockingCheckpointManager {
    /// Wraps `manager`.
    pub fn new(manager: StateCheckpointManager) -> Result<Self, CheckpointError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| CheckpointError::Runtime {
                reason: e.to_string(),
            })?;
        Ok(Self { manager, runtime })
    }

    /// A manager with the default configuration over a filesystem store in `checkpoint_dir`.
    pub fn open(checkpoint_dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let store = super::FsStore::open(checkpoint_dir)?;
        Self::new(StateCheckpointManager::new(std::sync::Arc::new(store)))
    }

    /// The async manager underneath.
    pub fn manager(&self) -> &StateCheckpointManager {
        &self.manager
    }

    fn run<T>(
        &self,
        future: impl Future<Output = Result<T, CheckpointError>>,
    ) -> Result<T, CheckpointError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(CheckpointError::Runtime {
                reason: "called from inside an async runtime; use StateCheckpointManager".into(),
            });
        }
        self.runtime.block_on(future)
    }

    /// See [`StateCheckpointManager::save_checkpoint`].
    pub fn save_checkpoint<T: Serialize + ?Sized>(
        &self,
        state: &T,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<CheckpointId, CheckpointError> {
        self.run(self.manager.save_checkpoint(state, agent_id, workflow_id))
    }

    /// See [`StateCheckpointManager::save_with`].
    pub fn save_with<T: Serialize + ?Sized>(
        &self,
        state: &T,
        agent_id: &str,
        workflow_id: &str,
        options: SaveOptions,
    ) -> Result<CheckpointMetadata, CheckpointError> {
        self.run(
            self.manager
                .save_with(state, agent_id, workflow_id, options),
        )
    }

    /// See [`StateCheckpointManager::load_checkpoint`].
    pub fn load_checkpoint<T: DeserializeOwned + Send + 'static>(
        &self,
        id: &CheckpointId,
    ) -> Result<T, CheckpointError> {
        self.run(self.manager.load_checkpoint(id))
    }

    /// See [`StateCheckpointManager::get_latest_checkpoint`].
    pub fn get_latest_checkpoint(
        &self,
        agent_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CheckpointId>, CheckpointError> {
        self.run(self.manager.get_latest_checkpoint(agent_id, workflow_id))
    }

    /// See [`StateCheckpointManager::list`].
    pub fn list(&self, filter: &ListFilter) -> Result<CheckpointPage, CheckpointError> {
        self.run(self.manager.list(filter))
    }

    /// See [`StateCheckpointManager::metadata`].
    pub fn metadata(&self, id: &CheckpointId) -> Result<CheckpointMetadata, CheckpointError> {
        self.run(self.manager.metadata(id))
    }

    /// See [`StateCheckpointManager::delete`].
    pub fn delete(&self, id: &CheckpointId) -> Result<bool, CheckpointError> {
        self.run(self.manager.delete(id))
    }

    /// See [`StateCheckpointManager::verify`].
    pub fn verify(&self, id: &CheckpointId) -> Result<CheckpointMetadata, CheckpointError> {
        self.run(self.manager.verify(id))
    }

    /// See [`StateCheckpointManager::verify_all`].
    pub fn verify_all(&self) -> Result<VerifyReport, CheckpointError> {
        self.run(self.manager.verify_all())
    }

    /// See [`StateCheckpointManager::cleanup`].
    pub fn cleanup(&self, policy: &RetentionPolicy) -> Result<CleanupReport, CheckpointError> {
        self.run(self.manager.cleanup(policy))
    }
}
