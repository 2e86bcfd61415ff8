//! One contract, every checkpoint store: the same test functions run against the filesystem
//! store and the PostgreSQL store, through the manager.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use bulwark::checkpoint::store::{PostgresStore, PostgresStoreOptions};
use bulwark::checkpoint::{
    CheckpointError, CheckpointStore, FsStore, ListFilter, StateCheckpointManager, StoreError,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Chat {
    turn: u32,
    messages: Vec<String>,
}

fn chat(turn: u32) -> Chat {
    Chat {
        turn,
        messages: (0..turn)
            .map(|i| format!("message {i} of a long conversation"))
            .collect(),
    }
}

async fn fs_store(dir: &tempfile::TempDir) -> Arc<dyn CheckpointStore> {
    Arc::new(FsStore::open(dir.path()).unwrap())
}

async fn pg_store(test: &str) -> Option<Arc<dyn CheckpointStore>> {
    let url = support::fresh_postgres_schema(test).await?;
    Some(Arc::new(
        PostgresStore::connect(&url, PostgresStoreOptions::default())
            .await
            .unwrap(),
    ))
}

macro_rules! conformance {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn fs_store() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(super::fs_store(&dir).await).await;
            }

            #[tokio::test]
            async fn postgres_store() {
                if let Some(store) = super::pg_store(stringify!($name)).await {
                    super::$name(store).await;
                }
            }
        }
    };
}

async fn save_load_latest_and_chain(store: Arc<dyn CheckpointStore>) {
    let manager = StateCheckpointManager::new(store);
    let mut ids = Vec::new();
    for turn in 1..=5 {
        ids.push(
            manager
                .save_checkpoint(&chat(turn), "agent", "wf")
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        manager.get_latest_checkpoint("agent", "wf").await.unwrap(),
        Some(ids[4])
    );
    assert_eq!(
        manager.load_checkpoint::<Chat>(&ids[2]).await.unwrap(),
        chat(3)
    );
    let meta = manager.metadata(&ids[4]).await.unwrap();
    assert_eq!((meta.sequence, meta.parent_id), (5, Some(ids[3])));
    manager.verify(&ids[0]).await.unwrap();
    assert_eq!(
        manager
            .get_latest_checkpoint("agent", "other")
            .await
            .unwrap(),
        None
    );
}
conformance!(save_load_latest_and_chain);

async fn listing_filters_and_pages(store: Arc<dyn CheckpointStore>) {
    let manager = StateCheckpointManager::new(store);
    let mut ids = Vec::new();
    for turn in 1..=7 {
        ids.push(
            manager
                .save_checkpoint(&chat(turn), "lister", "wf-a")
                .await
                .unwrap(),
        );
    }
    manager
        .save_checkpoint(&chat(1), "lister", "wf-b")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut filter = ListFilter::workflow("lister", "wf-a")
        .oldest_first()
        .limit(3);
    loop {
        let page = manager.list(&filter).await.unwrap();
        seen.extend(page.items.iter().map(|m| m.id));
        match page.next_cursor {
            Some(cursor) => filter = filter.after(cursor),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let newest = manager
        .list(
            &ListFilter::workflow("lister", "wf-a")
                .newest_first()
                .limit(2),
        )
        .await
        .unwrap();
    assert_eq!(
        newest.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5]]
    );
    let all = manager
        .list(&ListFilter::all().agent("lister").oldest_first())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 8);
}
conformance!(listing_filters_and_pages);

async fn delete_moves_latest_back(store: Arc<dyn CheckpointStore>) {
    let manager = StateCheckpointManager::new(store);
    let first = manager
        .save_checkpoint(&chat(1), "del", "wf")
        .await
        .unwrap();
    let second = manager
        .save_checkpoint(&chat(2), "del", "wf")
        .await
        .unwrap();
    assert!(manager.delete(&second).await.unwrap());
    assert!(!manager.delete(&second).await.unwrap());
    assert_eq!(
        manager.get_latest_checkpoint("del", "wf").await.unwrap(),
        Some(first)
    );
    assert!(matches!(
        manager.load_checkpoint::<Chat>(&second).await,
        Err(CheckpointError::Store(StoreError::NotFound { .. }))
            | Err(CheckpointError::NotFound { .. })
    ));
}
conformance!(delete_moves_latest_back);

async fn fenced_saves_refuse_to_fork_the_history(store: Arc<dyn CheckpointStore>) {
    let manager = StateCheckpointManager::new(Arc::clone(&store));
    let first = manager
        .save_checkpoint(&chat(1), "fence", "wf")
        .await
        .unwrap();
    let meta = manager.metadata(&first).await.unwrap();
    let envelope = store.get(&first).await.unwrap();

    // Two writers both believe `first` is the newest; the second one loses.
    let mut a = meta.clone();
    a.id = bulwark::checkpoint::CheckpointId::new();
    let mut b = meta.clone();
    b.id = bulwark::checkpoint::CheckpointId::new();
    store
        .put_fenced(&a, envelope.clone(), Some(&first))
        .await
        .unwrap();
    match store.put_fenced(&b, envelope.clone(), Some(&first)).await {
        Err(StoreError::Conflict { expected, actual }) => {
            assert_eq!((expected, actual), (Some(first), Some(a.id)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        store.get(&b.id).await,
        Err(StoreError::NotFound { .. })
    ));
    // A writer that expects an empty history conflicts too.
    let mut c = meta.clone();
    c.id = bulwark::checkpoint::CheckpointId::new();
    assert!(matches!(
        store.put_fenced(&c, envelope, None).await,
        Err(StoreError::Conflict { .. })
    ));
}
conformance!(fenced_saves_refuse_to_fork_the_history);

async fn a_fenced_manager_save_conflicts_when_another_writer_moved_on(
    store: Arc<dyn CheckpointStore>,
) {
    use bulwark::checkpoint::{Parent, SaveOptions};
    // Two managers on one store behave like two processes: they share no in-process lock.
    let writer_a = StateCheckpointManager::new(Arc::clone(&store));
    let writer_b = StateCheckpointManager::new(store);
    let first = writer_a
        .save_checkpoint(&chat(1), "fenced", "wf")
        .await
        .unwrap();
    let expect_first = || SaveOptions::default().parent(Parent::Expect(Some(first)));
    let second = writer_a
        .save_with(&chat(2), "fenced", "wf", expect_first())
        .await
        .unwrap();
    assert_eq!(second.parent_id, Some(first));
    match writer_b
        .save_with(&chat(2), "fenced", "wf", expect_first())
        .await
    {
        Err(CheckpointError::Store(StoreError::Conflict { expected, actual })) => {
            assert_eq!((expected, actual), (Some(first), Some(second.id)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        writer_b
            .get_latest_checkpoint("fenced", "wf")
            .await
            .unwrap(),
        Some(second.id)
    );
    let fresh = SaveOptions::default().parent(Parent::Expect(None));
    assert!(
        writer_b
            .save_with(&chat(1), "fenced", "new-wf", fresh)
            .await
            .is_ok()
    );
}
conformance!(a_fenced_manager_save_conflicts_when_another_writer_moved_on);
