//! The auto-checkpointer: by operation count, by time on a manual clock, as a resumable chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bulwark::checkpoint::{AutoCheckpointer, CheckpointError, StateCheckpointManager};
use bulwark::clock::ManualClock;

#[tokio::test]
async fn it_saves_every_n_operations_and_counts_from_the_last_save() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut auto = AutoCheckpointer::new(manager.clone(), "a", "w", 4).unwrap();
    let mut saved_at = Vec::new();
    for op in 1..=10u32 {
        if auto.maybe_checkpoint(&op).await.unwrap().is_some() {
            saved_at.push(op);
        }
    }
    assert_eq!(saved_at, [4, 8]);
    assert_eq!(auto.operations_since_checkpoint(), 2);
    auto.force_checkpoint(&10u32).await.unwrap();
    assert_eq!(auto.operations_since_checkpoint(), 0);
    // Forcing restarts the count: three more operations do not save, the fourth does.
    for op in 11..=13u32 {
        assert!(auto.maybe_checkpoint(&op).await.unwrap().is_none());
    }
    assert!(auto.maybe_checkpoint(&14u32).await.unwrap().is_some());
}

#[tokio::test]
async fn it_saves_when_the_time_interval_passes_on_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let clock = ManualClock::new();
    let mut auto = AutoCheckpointer::new(manager, "a", "w", 1000)
        .unwrap()
        .with_time_interval(Duration::from_secs(30))
        .with_clock(clock.clone());
    assert!(auto.maybe_checkpoint(&1).await.unwrap().is_none());
    clock.advance(Duration::from_secs(29));
    assert!(auto.maybe_checkpoint(&2).await.unwrap().is_none());
    clock.advance(Duration::from_secs(1));
    assert!(auto.maybe_checkpoint(&3).await.unwrap().is_some());
    clock.advance(Duration::from_secs(10));
    assert!(auto.maybe_checkpoint(&4).await.unwrap().is_none());
}

#[tokio::test]
async fn history_is_a_chain_and_resuming_from_an_earlier_point_branches_it() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut auto = AutoCheckpointer::new(manager.clone(), "a", "w", 1).unwrap();
    let mut ids = Vec::new();
    for step in 0..4u32 {
        ids.push(auto.maybe_checkpoint(&step).await.unwrap().unwrap());
    }
    let chain: Vec<_> = manager
        .chain(&ids[3], 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(chain, [ids[3], ids[2], ids[1], ids[0]]);

    // A new process resumes from step 1 and continues from there.
    let mut resumed = AutoCheckpointer::new(manager.clone(), "a", "w", 1).unwrap();
    let state: u32 = resumed.resume_from(&ids[1]).await.unwrap();
    assert_eq!(state, 1);
    let branch = resumed
        .maybe_checkpoint(&(state + 10))
        .await
        .unwrap()
        .unwrap();
    let meta = manager.metadata(&branch).await.unwrap();
    assert_eq!(meta.parent_id, Some(ids[1]));
    assert_eq!(meta.sequence, 5);
    let chain: Vec<_> = manager
        .chain(&branch, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(chain, [branch, ids[1], ids[0]]);
    let mut latest = AutoCheckpointer::new(manager, "a", "w", 1).unwrap();
    assert_eq!(latest.resume_latest::<u32>().await.unwrap(), Some(11));
}

#[tokio::test]
async fn a_zero_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    assert!(matches!(
        AutoCheckpointer::new(manager, "a", "w", 0),
        Err(CheckpointError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn when_its_last_checkpoint_was_removed_it_follows_the_newest_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut auto = AutoCheckpointer::new(manager.clone(), "a", "w", 1).unwrap();
    let first = auto.maybe_checkpoint(&1).await.unwrap().unwrap();
    let second = auto.maybe_checkpoint(&2).await.unwrap().unwrap();
    assert!(manager.delete(&second).await.unwrap());
    let third = auto.maybe_checkpoint(&3).await.unwrap().unwrap();
    assert_eq!(
        manager.metadata(&third).await.unwrap().parent_id,
        Some(first)
    );
}
