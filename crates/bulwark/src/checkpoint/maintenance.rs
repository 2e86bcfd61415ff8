//! Whole-store operations of the manager: verify everything, apply a retention policy.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::cleanup::{self, CleanupReport, RetentionPolicy};
use super::error::CheckpointError;
use super::id::CheckpointId;
use super::manager::StateCheckpointManager;
use super::metadata::CheckpointMetadata;
use super::observer::{CheckpointEvent, DeleteReason};
use super::store::ListFilter;

/// What [`StateCheckpointManager::verify_all`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Checkpoints (and unreadable files) checked.
    pub checked: usize,
    /// How many verified.
    pub valid: usize,
    /// Those that did not.
    pub corrupt: Vec<CorruptCheckpoint>,
}

impl VerifyReport {
    /// Whether everything verified.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
    }
}

/// A checkpoint that failed verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CorruptCheckpoint {
    /// Its id, when its name is one.
    pub id: Option<CheckpointId>,
    /// Its id or file name.
    pub name: String,
    /// Why it failed.
    pub reason: String,
}

impl StateCheckpointManager {
    /// Every checkpoint's metadata, oldest first.
    pub async fn list_all(&self) -> Result<Vec<CheckpointMetadata>, CheckpointError> {
        let mut all = Vec::new();
        let mut filter = ListFilter::all().oldest_first().limit(1024);
        loop {
            let page = self.list(&filter).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(cursor) => filter.cursor = Some(cursor),
                None => return Ok(all),
            }
        }
    }

    /// Verifies every checkpoint and reports the unreadable files of the store.
    pub async fn verify_all(&self) -> Result<VerifyReport, CheckpointError> {
        self.verify_all_with_progress(|_, _| {}).await
    }

    /// [`verify_all`](Self::verify_all), calling `progress(done, total)` after each checkpoint.
    pub async fn verify_all_with_progress(
        &self,
        progress: impl Fn(usize, usize),
    ) -> Result<VerifyReport, CheckpointError> {
        let all = self.list_all().await?;
        let unreadable = self.inner.store.unreadable().await?;
        let total = all.len() + unreadable.len();
        let mut report = VerifyReport::default();
        for meta in all {
            match self.verify(&meta.id).await {
                Ok(_) => report.valid += 1,
                // Deleted while we were verifying.
                Err(CheckpointError::NotFound { .. }) => {}
                Err(error @ CheckpointError::Corrupt { .. }) => {
                    report.corrupt.push(CorruptCheckpoint {
                        id: Some(meta.id),
                        name: meta.id.to_string(),
                        reason: error.to_string(),
                    })
                }
                Err(other) => return Err(other),
            }
            report.checked += 1;
            progress(report.checked, total);
        }
        for item in unreadable {
            report.checked += 1;
            report.corrupt.push(CorruptCheckpoint {
                id: item.id,
                name: item.name,
                reason: item.reason,
            });
            progress(report.checked, total);
        }
        Ok(report)
    }

    /// Applies `policy` now. A workflow's newest valid checkpoint is never removed.
    pub async fn cleanup(
        &self,
        policy: &RetentionPolicy,
    ) -> Result<CleanupReport, CheckpointError> {
        self.cleanup_at(policy, SystemTime::now(), |_, _| {}).await
    }

    /// [`cleanup`](Self::cleanup) with ages measured from `now`, calling `progress(done, total)`
    /// after each removal.
    pub async fn cleanup_at(
        &self,
        policy: &RetentionPolicy,
        now: SystemTime,
        progress: impl Fn(usize, usize),
    ) -> Result<CleanupReport, CheckpointError> {
        let all = self.list_all().await?;
        // Only workflows that would lose something need their latest valid checkpoint found.
        // Protecting one workflow's checkpoint can shift a store-wide rule (max_checkpoints,
        // max_total_bytes) onto another workflow, so plan again until no new one is touched.
        let mut protected = HashSet::new();
        let mut checked: HashSet<(String, String)> = HashSet::new();
        let (removed, spared) = loop {
            let (removed, spared) = cleanup::plan(policy, &all, &protected, now);
            let touched: Vec<(String, String)> = removed
                .iter()
                .map(|item| {
                    (
                        item.metadata.agent_id.clone(),
                        item.metadata.workflow_id.clone(),
                    )
                })
                .filter(|key| !checked.contains(key))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if touched.is_empty() {
                break (removed, spared);
            }
            for key in touched {
                if let Some(meta) = self.latest_valid(&key.0, &key.1).await?.metadata {
                    protected.insert(meta.id);
                }
                checked.insert(key);
            }
        };
        let mut report = CleanupReport {
            dry_run: policy.dry_run,
            examined: all.len(),
            protected: spared,
            ..CleanupReport::default()
        };
        let total = removed.len();
        for (done, item) in removed.into_iter().enumerate() {
            if policy.dry_run {
                report.freed_bytes += item.metadata.stored_size;
                report.removed.push(item);
            } else {
                match self.inner.store.delete(&item.metadata.id).await {
                    Ok(_) => {
                        self.emit(CheckpointEvent::Deleted {
                            id: item.metadata.id,
                            reason: DeleteReason::Retention,
                        });
                        report.freed_bytes += item.metadata.stored_size;
                        report.removed.push(item);
                    }
                    Err(error) => report.failed.push((item.metadata.id, error.to_string())),
                }
            }
            progress(done + 1, total);
        }
        Ok(report)
    }

    /// Runs the configured retention policy in the background every `cleanup_every` saves.
    pub(super) fn after_save(&self) {
        let Some(policy) = self.inner.config.retention.clone() else {
            return;
        };
        let every = self.inner.config.cleanup_every.max(1);
        let count = self
            .inner
            .saves_since_cleanup
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if count < every || self.inner.cleanup_running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.saves_since_cleanup.store(0, Ordering::Release);
        let manager = self.clone();
        tokio::spawn(async move {
            loop {
                match manager.cleanup(&policy).await {
                    Ok(report) => tracing::debug!(
                        removed = report.removed.len(),
                        freed_bytes = report.freed_bytes,
                        "automatic checkpoint cleanup"
                    ),
                    Err(error) => tracing::warn!(%error, "automatic checkpoint cleanup failed"),
                }
                manager
                    .inner
                    .cleanup_running
                    .store(false, Ordering::Release);
                // Saves that came due while this run was busy were not dropped: run again.
                let due = manager.inner.saves_since_cleanup.load(Ordering::Acquire) >= every;
                if !due || manager.inner.cleanup_running.swap(true, Ordering::AcqRel) {
                    break;
                }
                manager
                    .inner
                    .saves_since_cleanup
                    .store(0, Ordering::Release);
            }
        });
    }
}
