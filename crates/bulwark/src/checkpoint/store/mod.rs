//! Where checkpoints live: the [`CheckpointStore`] trait and the filesystem store.
//!
//! A store keeps envelopes (the bytes of [`envelope`](super::envelope)) by id and answers
//! metadata queries. It does not encode, compress or verify: the
//! [`StateCheckpointManager`](super::StateCheckpointManager) does that above any store, so a
//! PostgreSQL store only has to keep bytes and metadata columns.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::codec::Compression;
use super::error::StoreError;
use super::id::CheckpointId;
use super::metadata::CheckpointMetadata;

mod fs;
mod index;
pub mod io;
#[cfg(feature = "postgres")]
mod postgres;

pub use fs::{
    CommitStats, CompactionReport, CompactionStats, FsStore, FsStoreOptions, RebuildReport,
};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreOptions};

/// A place to keep checkpoint envelopes. Object safe: the server holds an
/// `Arc<dyn CheckpointStore>`.
///
/// Contract for implementations:
/// * `put` returns only once the checkpoint is durable (it survives a crash or power loss).
/// * `get` returns exactly the bytes given to `put`, or an error; never other bytes silently
///   (the manager verifies them anyway).
/// * Metadata answers (`metadata`, `list`) may come from an index; the envelope bytes are the
///   truth.
#[async_trait]
pub trait CheckpointStore: Send + Sync + fmt::Debug + 'static {
    /// Stores `envelope`, whose decoded header is `metadata`, durably.
    async fn put(&self, metadata: &CheckpointMetadata, envelope: Vec<u8>)
    -> Result<(), StoreError>;

    /// The envelope bytes of `id`.
    async fn get(&self, id: &CheckpointId) -> Result<Vec<u8>, StoreError>;

    /// The metadata of `id`, without reading its payload.
    async fn metadata(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError>;

    /// Metadata of the checkpoints matching `filter`, ordered by id in `filter.order`
    /// (newest first by default).
    async fn list(&self, filter: &ListFilter) -> Result<CheckpointPage, StoreError>;

    /// Stores `envelope` only if the newest checkpoint of its (agent, workflow) is
    /// `expected_latest` (`None`: the workflow has none yet); otherwise fails with
    /// [`StoreError::Conflict`] and stores nothing. This is how two writers of one workflow
    /// avoid silently forking its history.
    ///
    /// The default implementation checks, then stores: atomic against other tasks only when
    /// the caller serialises saves per workflow, as the manager does in one process. Stores
    /// shared between processes (PostgreSQL) override it with an atomic check-and-store.
    async fn put_fenced(
        &self,
        metadata: &CheckpointMetadata,
        envelope: Vec<u8>,
        expected_latest: Option<&CheckpointId>,
    ) -> Result<(), StoreError> {
        let filter = ListFilter::workflow(&metadata.agent_id, &metadata.workflow_id).limit(1);
        let actual = self.list(&filter).await?.items.first().map(|m| m.id);
        check_fence(actual, expected_latest)?;
        self.put(metadata, envelope).await
    }

    /// Whether the store answers now (a health check); the default is `true`.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Deletes `id` durably; `Ok(false)` when it did not exist.
    async fn delete(&self, id: &CheckpointId) -> Result<bool, StoreError>;

    /// Stored items that look like checkpoints but whose headers do not decode (a torn file
    /// from a crashed writer of an old version, a foreign file with a checkpoint name).
    async fn unreadable(&self) -> Result<Vec<UnreadableCheckpoint>, StoreError> {
        Ok(Vec::new())
    }

    /// The same store as plain blocking calls, for stores whose every operation is local
    /// disk I/O (the filesystem store). The manager then encodes or decodes a checkpoint and
    /// does the store's I/O in one blocking task, instead of handing the work from thread to
    /// thread (each hand-off can wait for an idle core to be scheduled). `None`, the
    /// default, for stores that talk over the network.
    fn local(&self) -> Option<&dyn LocalStore> {
        None
    }
}

/// The blocking operations of a store on local disk; see [`CheckpointStore::local`]. Each
/// keeps the contract of its async counterpart.
pub trait LocalStore: Send + Sync {
    /// [`CheckpointStore::put`], blocking.
    fn put_local(&self, metadata: &CheckpointMetadata, envelope: &[u8]) -> Result<(), StoreError>;
    /// [`CheckpointStore::get`], blocking.
    fn get_local(&self, id: &CheckpointId) -> Result<Vec<u8>, StoreError>;
    /// [`CheckpointStore::metadata`], blocking.
    fn metadata_local(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError>;
    /// [`CheckpointStore::list`], blocking.
    fn list_local(&self, filter: &ListFilter) -> Result<CheckpointPage, StoreError>;
    /// [`CheckpointStore::put_fenced`], blocking. The default checks, then stores (atomic
    /// only when the caller serialises saves of the workflow); [`FsStore`] holds a lock file
    /// across the check and the store, so it is atomic across processes sharing the folder.
    fn put_fenced_local(
        &self,
        metadata: &CheckpointMetadata,
        envelope: &[u8],
        expected_latest: Option<&CheckpointId>,
    ) -> Result<(), StoreError> {
        let filter = ListFilter::workflow(&metadata.agent_id, &metadata.workflow_id).limit(1);
        let actual = self.list_local(&filter)?.items.first().map(|m| m.id);
        check_fence(actual, expected_latest)?;
        self.put_local(metadata, envelope)
    }

    /// Whether the store rewrites checkpoints stored in the cheap form (uncompressed, not
    /// encrypted) with their codec in the background, so that the manager may acknowledge a
    /// save before compressing it. `false`, the default: the manager compresses first.
    fn compacts_in_background(&self) -> bool {
        false
    }

    /// Asks the store to rewrite the just-stored cheap-form checkpoint `id` with `target`,
    /// in the background; the default does nothing. Either form loads at every moment.
    fn defer_compression(&self, id: &CheckpointId, target: Compression) {
        let _ = (id, target);
    }
}

/// `Conflict` unless the workflow's newest checkpoint `actual` is the `expected` one.
pub(crate) fn check_fence(
    actual: Option<CheckpointId>,
    expected: Option<&CheckpointId>,
) -> Result<(), StoreError> {
    if actual.as_ref() == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            expected: expected.copied(),
            actual,
        })
    }
}

/// The order of a listing, by id (which sorts by creation time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ListOrder {
    /// Newest first (the default everywhere: library, HTTP API, CLI).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

impl ListOrder {
    /// Whether newest comes first.
    pub fn is_desc(self) -> bool {
        self == Self::Desc
    }
}

/// Which checkpoints [`CheckpointStore::list`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only this agent's checkpoints.
    pub agent_id: Option<String>,
    /// Only this workflow's checkpoints.
    pub workflow_id: Option<String>,
    /// Only checkpoints created at or after this time.
    #[serde(with = "opt_rfc3339")]
    pub created_after: Option<SystemTime>,
    /// Only checkpoints created before this time.
    #[serde(with = "opt_rfc3339")]
    pub created_before: Option<SystemTime>,
    /// At most this many (the page size).
    pub limit: Option<usize>,
    /// Continue after this id (the previous page's `next_cursor`).
    pub cursor: Option<CheckpointId>,
    /// Newest first ([`ListOrder::Desc`], the default) or oldest first.
    pub order: ListOrder,
}

impl ListFilter {
    /// Every checkpoint, newest first.
    pub fn all() -> Self {
        Self::default()
    }

    /// One workflow's checkpoints, newest first.
    pub fn workflow(agent_id: impl Into<String>, workflow_id: impl Into<String>) -> Self {
        Self {
            agent_id: Some(agent_id.into()),
            workflow_id: Some(workflow_id.into()),
            ..Self::default()
        }
    }

    /// Only this agent's checkpoints.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Only this workflow's checkpoints (any agent unless [`ListFilter::agent`] is set too).
    pub fn workflow_id(mut self, workflow_id: impl Into<String>) -> Self {
        self.workflow_id = Some(workflow_id.into());
        self
    }

    /// Only checkpoints created in `[after, before)`; either end may be open.
    pub fn created_between(
        mut self,
        after: Option<SystemTime>,
        before: Option<SystemTime>,
    ) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }

    /// At most `limit` per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after `cursor`.
    pub fn after(mut self, cursor: CheckpointId) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Newest first (the default).
    pub fn newest_first(self) -> Self {
        self.order(ListOrder::Desc)
    }

    /// Oldest first.
    pub fn oldest_first(self) -> Self {
        self.order(ListOrder::Asc)
    }

    /// In `order`.
    pub fn order(mut self, order: ListOrder) -> Self {
        self.order = order;
        self
    }

    /// Whether `meta` passes the agent, workflow and time conditions (not limit or cursor).
    pub fn matches(&self, meta: &CheckpointMetadata) -> bool {
        self.agent_id.as_ref().is_none_or(|a| *a == meta.agent_id)
            && self
                .workflow_id
                .as_ref()
                .is_none_or(|w| *w == meta.workflow_id)
            && self.created_after.is_none_or(|t| meta.created_at >= t)
            && self.created_before.is_none_or(|t| meta.created_at < t)
    }
}

/// One page of [`CheckpointStore::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckpointPage {
    /// Metadata, in the order asked for.
    pub items: Vec<CheckpointMetadata>,
    /// Pass as [`ListFilter::cursor`] to get the next page; `None` on the last page.
    pub next_cursor: Option<CheckpointId>,
}

impl CheckpointPage {
    /// A page of `items` with `next_cursor`.
    pub fn new(items: Vec<CheckpointMetadata>, next_cursor: Option<CheckpointId>) -> Self {
        Self { items, next_cursor }
    }
}

/// A stored item that looks like a checkpoint but does not decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnreadableCheckpoint {
    /// The id, when the name is one.
    pub id: Option<CheckpointId>,
    /// The file (or row) name.
    pub name: String,
    /// Why it does not decode.
    pub reason: String,
}

mod opt_rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::checkpoint::metadata::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_rfc3339_weak(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
