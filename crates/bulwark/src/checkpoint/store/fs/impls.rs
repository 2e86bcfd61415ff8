//! The store traits over [`FsStore`]'s blocking operations: each async call runs on tokio's
//! blocking pool; the [`LocalStore`] calls run on the caller's thread.

use async_trait::async_trait;

use super::FsStore;
use crate::checkpoint::codec::Compression;
use crate::checkpoint::error::StoreError;
use crate::checkpoint::id::CheckpointId;
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::store::{
    CheckpointPage, CheckpointStore, ListFilter, LocalStore, UnreadableCheckpoint,
};

pub(super) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task {
            reason: e.to_string(),
        })?
}

#[async_trait]
impl CheckpointStore for FsStore {
    async fn put(
        &self,
        metadata: &CheckpointMetadata,
        envelope: Vec<u8>,
    ) -> Result<(), StoreError> {
        let store = self.clone();
        let metadata = metadata.clone();
        blocking(move || store.put_blocking(&metadata, &envelope)).await
    }

    async fn put_fenced(
        &self,
        metadata: &CheckpointMetadata,
        envelope: Vec<u8>,
        expected_latest: Option<&CheckpointId>,
    ) -> Result<(), StoreError> {
        let (store, metadata, expected) =
            (self.clone(), metadata.clone(), expected_latest.copied());
        blocking(move || store.put_fenced_blocking(&metadata, &envelope, expected.as_ref())).await
    }

    async fn get(&self, id: &CheckpointId) -> Result<Vec<u8>, StoreError> {
        let (store, id) = (self.clone(), *id);
        blocking(move || store.get_blocking(&id)).await
    }

    async fn metadata(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError> {
        let (store, id) = (self.clone(), *id);
        blocking(move || store.metadata_blocking(&id)).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<CheckpointPage, StoreError> {
        let (store, filter) = (self.clone(), filter.clone());
        blocking(move || store.list_blocking(&filter)).await
    }

    async fn delete(&self, id: &CheckpointId) -> Result<bool, StoreError> {
        let (store, id) = (self.clone(), *id);
        blocking(move || store.delete_blocking(&id)).await
    }

    async fn unreadable(&self) -> Result<Vec<UnreadableCheckpoint>, StoreError> {
        Ok(self.unreadable_blocking())
    }

    fn local(&self) -> Option<&dyn LocalStore> {
        Some(self)
    }
}

impl LocalStore for FsStore {
    fn put_local(&self, metadata: &CheckpointMetadata, envelope: &[u8]) -> Result<(), StoreError> {
        self.put_blocking(metadata, envelope)
    }

    fn get_local(&self, id: &CheckpointId) -> Result<Vec<u8>, StoreError> {
        self.get_blocking(id)
    }

    fn metadata_local(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError> {
        self.metadata_blocking(id)
    }

    fn list_local(&self, filter: &ListFilter) -> Result<CheckpointPage, StoreError> {
        self.list_blocking(filter)
    }

    fn put_fenced_local(
        &self,
        metadata: &CheckpointMetadata,
        envelope: &[u8],
        expected_latest: Option<&CheckpointId>,
    ) -> Result<(), StoreError> {
        self.put_fenced_blocking(metadata, envelope, expected_latest)
    }

    fn compacts_in_background(&self) -> bool {
        self.inner.options.compaction.is_some()
    }

    fn defer_compression(&self, id: &CheckpointId, target: Compression) {
        self.enqueue_compaction(*id, target);
    }
}
