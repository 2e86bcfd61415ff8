//! Retention policies: what cleanup removes, and what it never removes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulwark::checkpoint::store::io::{FileIdentity, StdIo};
use bulwark::checkpoint::{
    CheckpointId, CleanupReason, FsStore, ListFilter, ListOrder, RetentionPolicy,
    StateCheckpointManager,
};

async fn saved(manager: &StateCheckpointManager, workflow: &str, n: usize) -> Vec<CheckpointId> {
    let mut ids = Vec::new();
    for step in 0..n {
        ids.push(
            manager
                .save_checkpoint(&vec![step; 100], "a", workflow)
                .await
                .unwrap(),
        );
    }
    ids
}

async fn remaining(manager: &StateCheckpointManager, workflow: &str) -> Vec<CheckpointId> {
    manager
        .list(&ListFilter::workflow("a", workflow).oldest_first())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.id)
        .collect()
}

#[tokio::test]
async fn keep_last_keeps_the_newest_n_of_each_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let one = saved(&manager, "one", 6).await;
    let two = saved(&manager, "two", 2).await;
    let report = manager
        .cleanup(&RetentionPolicy::keep_last(3))
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 3);
    assert!(
        report
            .removed
            .iter()
            .all(|i| i.reason == CleanupReason::KeepLast)
    );
    assert!(report.freed_bytes > 0);
    assert_eq!(remaining(&manager, "one").await, one[3..]);
    assert_eq!(remaining(&manager, "two").await, two);
    assert!(!dir.path().join(format!("{}.ckpt", one[0])).exists());
}

#[tokio::test]
async fn a_dry_run_reports_without_removing() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let ids = saved(&manager, "w", 4).await;
    let report = manager
        .cleanup(&RetentionPolicy::keep_last(1).dry_run())
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(
        report
            .removed
            .iter()
            .map(|i| i.metadata.id)
            .collect::<Vec<_>>(),
        ids[..3]
    );
    assert_eq!(remaining(&manager, "w").await, ids);
}

#[tokio::test]
async fn max_age_removes_old_checkpoints_but_never_the_latest_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let ids = saved(&manager, "w", 3).await;
    let later = SystemTime::now() + Duration::from_secs(7200);
    let report = manager
        .cleanup_at(
            &RetentionPolicy::default().max_age(Duration::from_secs(3600)),
            later,
            |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(report.removed.len(), 2);
    assert!(
        report
            .removed
            .iter()
            .all(|i| i.reason == CleanupReason::MaxAge)
    );
    assert_eq!(report.protected, [ids[2]]);
    assert_eq!(remaining(&manager, "w").await, [ids[2]]);
}

#[tokio::test]
async fn when_the_newest_is_corrupt_the_newest_valid_one_survives() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let ids = saved(&manager, "w", 4).await;
    let newest = dir.path().join(format!("{}.ckpt", ids[3]));
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() - 1]).unwrap();
    manager
        .cleanup(&RetentionPolicy::keep_last(1))
        .await
        .unwrap();
    // keep_last(1) keeps the corrupt newest by rank; the valid ids[2] is protected.
    assert_eq!(remaining(&manager, "w").await, [ids[2], ids[3]]);
    assert_eq!(
        manager.get_latest_checkpoint("a", "w").await.unwrap(),
        Some(ids[2])
    );
}

#[tokio::test]
async fn max_total_bytes_removes_the_oldest_across_workflows_first() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let one = saved(&manager, "one", 3).await;
    let two = saved(&manager, "two", 3).await;
    let all = manager
        .list(&ListFilter::all().oldest_first())
        .await
        .unwrap()
        .items;
    let total: u64 = all.iter().map(|m| m.stored_size).sum();
    let largest = all.iter().map(|m| m.stored_size).max().unwrap();
    // Room for about four of the six.
    let budget = total - 2 * largest + 1;
    let report = manager
        .cleanup(&RetentionPolicy::default().max_total_bytes(budget))
        .await
        .unwrap();
    let removed: Vec<_> = report.removed.iter().map(|i| i.metadata.id).collect();
    assert!(!removed.is_empty());
    assert!(
        report
            .removed
            .iter()
            .all(|i| i.reason == CleanupReason::MaxTotalBytes)
    );
    assert_eq!(removed[0], one[0], "the oldest goes first");
    assert!(!removed.contains(&one[2]) && !removed.contains(&two[2]));
    let left: u64 = manager
        .list(&ListFilter::all().oldest_first())
        .await
        .unwrap()
        .items
        .iter()
        .map(|m| m.stored_size)
        .sum();
    assert!(left <= budget);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_with_a_retention_policy_cleans_up_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::builder(Arc::new(FsStore::open(dir.path()).unwrap()))
        .retention(RetentionPolicy::keep_last(2), 5)
        .build()
        .unwrap();
    let ids = saved(&manager, "w", 10).await;
    // The cleanup runs in the background after the 5th and 10th save; wait (bounded) for it.
    let mut left = Vec::new();
    for _ in 0..500 {
        left = remaining(&manager, "w").await;
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left, ids[8..]);
}

#[tokio::test]
async fn max_checkpoints_bounds_the_whole_store_oldest_first() {
    // Issue 12 defect 11: one workflow id per run makes keep_last alone unbounded.
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut all = Vec::new();
    for run in 0..5 {
        all.extend(saved(&manager, &format!("run-{run}"), 2).await);
    }
    let report = manager
        .cleanup(&RetentionPolicy::default().max_checkpoints(6))
        .await
        .unwrap();
    let removed: Vec<_> = report.removed.iter().map(|i| i.metadata.id).collect();
    // Oldest (by id) first, skipping each run's newest, which is always kept.
    let newest: Vec<_> = all.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(removed.len(), 4);
    assert!(removed.iter().all(|id| !newest.contains(id)), "{removed:?}");
    let kept_older = all
        .iter()
        .filter(|id| !newest.contains(id) && !removed.contains(id));
    assert!(
        kept_older
            .into_iter()
            .all(|id| removed.iter().all(|r| r < id))
    );
    assert!(
        report
            .removed
            .iter()
            .all(|i| i.reason == CleanupReason::MaxCheckpoints)
    );
    assert_eq!(manager.list_all().await.unwrap().len(), 6);
}

/// The real filesystem, except that removing a checkpoint file fails as on a read-only folder.
#[derive(Debug)]
struct NoRemoveIo;

impl bulwark::checkpoint::store::io::StorageIo for NoRemoveIo {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        StdIo.create_dir_all(dir)
    }
    fn write_new(&self, path: &std::path::Path, data: &[u8], sync: bool) -> std::io::Result<()> {
        StdIo.write_new(path, data, sync)
    }
    fn append(&self, path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
        StdIo.append(path, data)
    }
    fn read_at(
        &self,
        path: &std::path::Path,
        offset: u64,
        max_len: u64,
    ) -> std::io::Result<(Vec<u8>, FileIdentity)> {
        StdIo.read_at(path, offset, max_len)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        StdIo.rename(from, to)
    }
    fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        if path.extension().is_some_and(|e| e == "ckpt") {
            return Err(std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem));
        }
        StdIo.remove_file(path)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        StdIo.sync_dir(dir)
    }
    fn list_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        StdIo.list_dir(dir)
    }
    fn identity(&self, path: &std::path::Path) -> std::io::Result<FileIdentity> {
        StdIo.identity(path)
    }
}

#[tokio::test]
async fn removals_that_fail_are_reported_and_nothing_is_counted_as_removed() {
    // Issue 12 defect 7 (store side): the server answers 503 on such a report.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open_with(dir.path(), Arc::new(NoRemoveIo), Default::default()).unwrap();
    let manager = StateCheckpointManager::new(Arc::new(store));
    let ids = saved(&manager, "wf", 4).await;
    let report = manager
        .cleanup(&RetentionPolicy::keep_last(1))
        .await
        .unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(report.freed_bytes, 0);
    let failed: Vec<_> = report.failed.iter().map(|(id, _)| *id).collect();
    assert_eq!(failed, ids[..3].to_vec());
    assert!(
        report.failed[0].1.contains("cannot remove"),
        "{:?}",
        report.failed
    );
    assert_eq!(remaining(&manager, "wf").await, ids, "nothing was lost");
}

#[tokio::test]
async fn listings_are_newest_first_unless_asked_otherwise() {
    // Issue 11 defect 5.
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let ids = saved(&manager, "wf", 3).await;
    let ids_of = |page: bulwark::checkpoint::CheckpointPage| {
        page.items.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let newest = ids_of(manager.list(&ListFilter::all()).await.unwrap());
    assert_eq!(newest, ids.iter().rev().copied().collect::<Vec<_>>());
    let filter = ListFilter::workflow("a", "wf").order(ListOrder::Asc);
    assert_eq!(ids_of(manager.list(&filter).await.unwrap()), ids);
}
