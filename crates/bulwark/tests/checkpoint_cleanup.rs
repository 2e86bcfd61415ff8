//! Retention policies: what cleanup removes, and what it never removes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulwark::checkpoint::{
    CheckpointId, CleanupReason, FsStore, ListFilter, RetentionPolicy, StateCheckpointManager,
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
