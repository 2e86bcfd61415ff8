//! A folder written by the previous write path (every save compressed before it returned, by
//! the build before group commit and the compactor: `tests/fixtures/checkpoint-layout-v1`,
//! twelve checkpoints in three workflows, zstd, gzip and uncompressed) opens with the new one:
//! everything lists, loads and verifies, the uncompressed ones are compacted, new saves
//! extend the old chains, and nothing is lost across the compaction or a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use bulwark::checkpoint::store::io::StdIo;
use bulwark::checkpoint::{
    CheckpointId, Codec, FsStore, FsStoreOptions, ListFilter, StateCheckpointManager,
};

/// The fixture's checkpoints: id, workflow, step (as the generator printed them).
const FIXTURE: [(&str, u32, u32); 12] = [
    ("01a252e2-bcba-7192-852c-4d404b9b79bf", 0, 0),
    ("01a252e2-bccd-777f-bf20-f0acff64e8cb", 0, 1),
    ("01a252e2-bce6-760a-aade-ff43c3bc515a", 0, 2),
    ("01a252e2-bcf0-74c3-9248-b107e39c1d81", 0, 3),
    ("01a252e2-bcff-7770-8ea9-c2f140726b7a", 1, 0),
    ("01a252e2-bd16-71b7-94ec-0e5cae66e09a", 1, 1),
    ("01a252e2-bd1e-76aa-8b57-d5696ed6aa82", 1, 2),
    ("01a252e2-bd1f-727f-a46b-6d960be26b6e", 1, 3),
    ("01a252e2-bd25-76cd-af58-b7e5faaf7f21", 2, 0),
    ("01a252e2-bd42-77b0-a139-ec52b4a69350", 2, 1),
    ("01a252e2-bd47-7308-8c4d-fff16da0526e", 2, 2),
    ("01a252e2-bd48-72b9-8f09-cae33e23a18f", 2, 3),
];

fn state(workflow: u32, step: u32) -> Vec<String> {
    (0..40)
        .map(|i| format!("wf {workflow} step {step} message {i}"))
        .collect()
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-layout-v1");
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

async fn all_load(manager: &StateCheckpointManager) {
    for (id, workflow, step) in FIXTURE {
        let id: CheckpointId = id.parse().unwrap();
        let loaded: Vec<String> = manager.load_checkpoint(&id).await.unwrap();
        assert_eq!(loaded, state(workflow, step), "{id}");
        manager.verify(&id).await.unwrap();
    }
    assert!(manager.verify_all().await.unwrap().is_clean());
}

#[tokio::test]
async fn a_folder_of_the_previous_layout_reads_compacts_and_extends() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let mut options = FsStoreOptions::default();
    options.background_compaction = false;
    let store = FsStore::open_with(dir.path(), Arc::new(StdIo), options).unwrap();
    let manager = StateCheckpointManager::new(Arc::new(store.clone()));

    let listed = manager.list(&ListFilter::all()).await.unwrap().items;
    assert_eq!(listed.len(), FIXTURE.len());
    let codecs = |items: &[bulwark::checkpoint::CheckpointMetadata], codec| {
        items.iter().filter(|m| m.codec == codec).count()
    };
    // The generator saved steps 0 and 3 with zstd, 1 with gzip, 2 uncompressed.
    assert_eq!(
        (
            codecs(&listed, Codec::Zstd),
            codecs(&listed, Codec::Gzip),
            codecs(&listed, Codec::None)
        ),
        (6, 3, 3)
    );
    all_load(&manager).await;

    // Opening queued the uncompressed ones; compaction rewrites exactly those.
    let report = store.compact_pending_blocking();
    assert_eq!((report.compacted, report.failed), (3, 0), "{report:?}");
    let listed = manager.list(&ListFilter::all()).await.unwrap().items;
    assert_eq!(codecs(&listed, Codec::None), 0);
    assert_eq!(
        codecs(&listed, Codec::Gzip),
        3,
        "other codecs are left alone"
    );
    all_load(&manager).await;

    // New saves extend the old chains.
    for workflow in 0..3u32 {
        let name = format!("wf-{workflow}");
        let previous = manager
            .get_latest_checkpoint("agent", &name)
            .await
            .unwrap()
            .unwrap();
        let id = manager
            .save_checkpoint(&state(workflow, 4), "agent", &name)
            .await
            .unwrap();
        let meta = manager.metadata(&id).await.unwrap();
        assert_eq!((meta.parent_id, meta.sequence), (Some(previous), 5));
    }

    // A reopen (index log rebuilt from the new records) still has everything.
    drop(manager);
    drop(store);
    let reopened = StateCheckpointManager::open(dir.path()).await.unwrap();
    all_load(&reopened).await;
    assert_eq!(
        reopened.list(&ListFilter::all()).await.unwrap().items.len(),
        FIXTURE.len() + 3
    );
    // And an index rebuilt from the files alone agrees.
    let store = FsStore::open(dir.path()).unwrap();
    let rebuilt = store.rebuild_index().unwrap();
    assert_eq!(rebuilt.indexed, FIXTURE.len() + 3);
    assert!(rebuilt.unreadable.is_empty());
}
