//! Saving, loading, finding and verifying checkpoints through the filesystem store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bulwark::checkpoint::store::io::StdIo;
use bulwark::checkpoint::{
    CheckpointError, CheckpointEvent, CheckpointId, Codec, Compression, DecodeError, FsStore,
    FsStoreOptions, ListFilter, Parent, SaveOptions, SizeBudget, StateCheckpointManager,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Message {
    role: String,
    content: String,
    tool_calls: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AgentState {
    step: u32,
    messages: Vec<Message>,
    scratch: BTreeMap<String, f64>,
}

fn state(step: u32) -> AgentState {
    AgentState {
        step,
        messages: (0..step)
            .map(|i| Message {
                role: if i % 2 == 0 { "user" } else { "assistant" }.into(),
                content: format!("message {i} with some text to compress ").repeat(5),
                tool_calls: vec![format!("search(q={i})")],
            })
            .collect(),
        scratch: BTreeMap::from([("confidence".into(), 0.5 + f64::from(step))]),
    }
}

fn file_of(dir: &Path, id: &CheckpointId) -> PathBuf {
    dir.join(format!("{id}.ckpt"))
}

async fn manager_with(dir: &Path, compression: Compression) -> StateCheckpointManager {
    let store = FsStore::open_async(dir).await.unwrap();
    StateCheckpointManager::builder(Arc::new(store))
        .compression(compression)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_codec_round_trips_typed_state_and_records_sizes() {
    for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = FsStoreOptions::default();
        options.background_compaction = false;
        let store = FsStore::open_with(dir.path(), Arc::new(StdIo), options).unwrap();
        let manager = StateCheckpointManager::builder(Arc::new(store.clone()))
            .compression(Compression::new(codec))
            .build()
            .unwrap();
        let original = state(40);
        let id = manager
            .save_checkpoint(&original, "agent", "wf")
            .await
            .unwrap();
        // Acknowledged in the cheap form; it loads as it is.
        let (cheap, loaded) = manager.load_with_metadata::<AgentState>(&id).await.unwrap();
        assert_eq!(loaded, original);
        assert_eq!(cheap.codec, Codec::None);
        // The compactor rewrites it with the manager's codec; it loads the same.
        store.compact_pending_blocking();
        let (meta, loaded) = manager.load_with_metadata::<AgentState>(&id).await.unwrap();
        assert_eq!(loaded, original);
        assert_eq!(meta.codec, codec);
        assert_eq!(
            (meta.sha256.as_str(), meta.sequence),
            (cheap.sha256.as_str(), 1)
        );
        assert_eq!(
            meta.uncompressed_size,
            serde_json::to_vec(&original).unwrap().len() as u64
        );
        if codec == Codec::None {
            assert_eq!(meta.stored_size, meta.uncompressed_size);
        } else {
            assert!(
                meta.compression_ratio() < 0.3,
                "{codec}: {}",
                meta.compression_ratio()
            );
        }
        // A fresh store (another process) decodes what this one wrote.
        let reopened = manager_with(dir.path(), Compression::default()).await;
        assert_eq!(
            reopened.load_checkpoint::<AgentState>(&id).await.unwrap(),
            original
        );
    }
}

#[tokio::test]
async fn saves_form_a_chain_with_sequences_and_parents() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut ids = Vec::new();
    for step in 0..4 {
        ids.push(
            manager
                .save_checkpoint(&state(step), "a", "w")
                .await
                .unwrap(),
        );
    }
    let other = manager
        .save_checkpoint(&state(9), "a", "other")
        .await
        .unwrap();
    let chain = manager.chain(&ids[3], 100).await.unwrap();
    let chain_ids: Vec<_> = chain.iter().map(|m| m.id).collect();
    assert_eq!(chain_ids, ids.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(
        chain.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        [4, 3, 2, 1]
    );
    let other_meta = manager.metadata(&other).await.unwrap();
    assert_eq!((other_meta.sequence, other_meta.parent_id), (1, None));
    // Branch from an earlier point.
    let branch = manager
        .save_with(
            &state(1),
            "a",
            "w",
            SaveOptions::default()
                .parent(Parent::Explicit(ids[1]))
                .label("branch", "retry"),
        )
        .await
        .unwrap();
    assert_eq!(branch.parent_id, Some(ids[1]));
    assert_eq!(branch.sequence, 5);
    assert_eq!(branch.labels["branch"], "retry");
}

#[tokio::test]
async fn list_filters_by_workflow_and_time_and_pages_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut wf1 = Vec::new();
    for step in 0..7 {
        wf1.push(manager.save_checkpoint(&step, "a", "wf1").await.unwrap());
        manager.save_checkpoint(&step, "b", "wf2").await.unwrap();
    }
    let mut seen = Vec::new();
    let mut filter = ListFilter::workflow("a", "wf1").oldest_first().limit(3);
    loop {
        let page = manager.list(&filter).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|m| m.id));
        match page.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, wf1);
    let newest = manager
        .list(&ListFilter::all().agent("a").newest_first().limit(2))
        .await
        .unwrap();
    assert_eq!(
        newest.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        [wf1[6], wf1[5]]
    );
    let all_b = manager
        .list(&ListFilter::all().workflow_id("wf2").oldest_first())
        .await
        .unwrap();
    assert_eq!(all_b.items.len(), 7);
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let none = manager
        .list(&ListFilter::all().created_between(Some(future), None))
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

#[tokio::test]
async fn latest_skips_corrupt_checkpoints_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&corrupt_seen);
    let manager = StateCheckpointManager::builder(Arc::new(FsStore::open(dir.path()).unwrap()))
        .observer(move |event: &CheckpointEvent<'_>| {
            if let CheckpointEvent::Corrupt { id, .. } = event {
                seen.lock().unwrap().push(*id);
            }
        })
        .build()
        .unwrap();
    let good = manager.save_checkpoint(&state(1), "a", "w").await.unwrap();
    let flipped = manager.save_checkpoint(&state(2), "a", "w").await.unwrap();
    let truncated = manager.save_checkpoint(&state(3), "a", "w").await.unwrap();

    let path = file_of(dir.path(), &flipped);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let path = file_of(dir.path(), &truncated);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let latest = manager.latest_valid("a", "w").await.unwrap();
    assert_eq!(latest.metadata.unwrap().id, good);
    let skipped: Vec<_> = latest.skipped.iter().map(|s| s.id).collect();
    assert_eq!(skipped, [truncated, flipped]);
    assert_eq!(
        manager.get_latest_checkpoint("a", "w").await.unwrap(),
        Some(good)
    );
    assert!(corrupt_seen.lock().unwrap().contains(&Some(flipped)));

    match manager.load_checkpoint::<AgentState>(&truncated).await {
        Err(CheckpointError::Corrupt { name, source }) => {
            assert_eq!(name, truncated.to_string());
            assert!(matches!(source, DecodeError::Truncated { .. }));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let report = manager.verify_all().await.unwrap();
    assert_eq!(
        (report.checked, report.valid, report.corrupt.len()),
        (3, 1, 2)
    );
}

#[tokio::test]
async fn foreign_and_unknown_version_files_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let id = manager.save_checkpoint(&state(1), "a", "w").await.unwrap();
    // A future format version and an unknown codec, with the header CRC fixed up so that only
    // the field itself is wrong.
    let path = file_of(dir.path(), &id);
    let original = std::fs::read(&path).unwrap();
    let patched = |offset: usize, value: u8| {
        let mut bytes = original.clone();
        bytes[offset] = value;
        let meta_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let crc = crc32fast_hash(&bytes[..24], &bytes[28..28 + meta_len]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        bytes
    };
    std::fs::write(&path, patched(8, 7)).unwrap();
    let err = manager
        .load_checkpoint::<AgentState>(&id)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Corrupt { source: DecodeError::UnsupportedVersion { version: 7, .. }, name } if *name == id.to_string()),
        "{err:?}"
    );
    std::fs::write(&path, patched(10, 42)).unwrap();
    let err = manager
        .load_checkpoint::<AgentState>(&id)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::Corrupt {
            source: DecodeError::UnknownCodec { codec: 42 },
            ..
        }
    ));
    // A foreign file with a checkpoint's name, and one without.
    let foreign = CheckpointId::new();
    std::fs::write(file_of(dir.path(), &foreign), b"# my notes\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("not-an-id.ckpt"), b"hello").unwrap();
    let reopened = StateCheckpointManager::open(dir.path()).await.unwrap();
    let report = reopened.verify_all().await.unwrap();
    let names: Vec<_> = report.corrupt.iter().map(|c| c.name.clone()).collect();
    assert!(names.contains(&format!("{foreign}.ckpt")), "{names:?}");
    assert!(names.contains(&"not-an-id.ckpt".to_owned()), "{names:?}");
    assert!(names.contains(&id.to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("notes.txt")));
    assert!(matches!(
        reopened.load_checkpoint::<AgentState>(&foreign).await,
        Err(CheckpointError::Corrupt {
            source: DecodeError::BadMagic,
            ..
        })
    ));
}

fn crc32fast_hash(a: &[u8], b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(a);
    h.update(b);
    h.finalize()
}

#[tokio::test]
async fn a_lost_or_damaged_index_is_rebuilt_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
        for step in 0..5 {
            ids.push(
                manager
                    .save_checkpoint(&state(step), "a", "w")
                    .await
                    .unwrap(),
            );
        }
        manager.delete(&ids[0]).await.unwrap();
    }
    let index = dir.path().join("index.log");
    assert!(index.exists());
    std::fs::remove_file(&index).unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let listed: Vec<_> = manager
        .list(&ListFilter::workflow("a", "w").oldest_first())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, ids[1..]);
    drop(manager);
    std::fs::write(&index, b"\x00\x01garbage\nffffffff {\"op\":\"put\"}\n").unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    assert_eq!(
        manager.get_latest_checkpoint("a", "w").await.unwrap(),
        Some(ids[4])
    );
    assert_eq!(manager.metadata(&ids[2]).await.unwrap().sequence, 3);
    // An index that names a checkpoint whose file is gone does not resurrect it.
    std::fs::remove_file(file_of(dir.path(), &ids[4])).unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    assert_eq!(
        manager.get_latest_checkpoint("a", "w").await.unwrap(),
        Some(ids[3])
    );
}

#[tokio::test]
async fn two_stores_on_one_folder_see_each_others_saves_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let one = StateCheckpointManager::open(dir.path()).await.unwrap();
    let two = StateCheckpointManager::open(dir.path()).await.unwrap();
    let a = one.save_checkpoint(&1, "a", "w").await.unwrap();
    let b = two.save_checkpoint(&2, "a", "w").await.unwrap();
    assert_eq!(two.metadata(&b).await.unwrap().parent_id, Some(a));
    assert_eq!(one.get_latest_checkpoint("a", "w").await.unwrap(), Some(b));
    assert!(one.delete(&b).await.unwrap());
    assert_eq!(two.get_latest_checkpoint("a", "w").await.unwrap(), Some(a));
    assert_eq!(two.list(&ListFilter::all()).await.unwrap().items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_saving_at_once_lose_nothing_and_keep_each_chain_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..16u32 {
        let manager = manager.clone();
        tasks.push(tokio::spawn(async move {
            let workflow = format!("wf{}", task % 4);
            let mut ids = Vec::new();
            for step in 0..5u32 {
                ids.push(
                    manager
                        .save_checkpoint(&(task, step), "a", &workflow)
                        .await
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 80);
    for wf in 0..4 {
        let items = manager
            .list(&ListFilter::workflow("a", format!("wf{wf}")).oldest_first())
            .await
            .unwrap()
            .items;
        assert_eq!(items.len(), 20);
        // One chain: sequences 1..=20 and each parent is the previous save.
        for (i, meta) in items.iter().enumerate() {
            assert_eq!(meta.sequence, i as u64 + 1);
            assert_eq!(meta.parent_id, i.checked_sub(1).map(|p| items[p].id));
        }
    }
    let reopened = StateCheckpointManager::open(dir.path()).await.unwrap();
    assert!(reopened.verify_all().await.unwrap().is_clean());
}

#[tokio::test]
async fn ids_from_outside_never_reach_a_path_outside_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path().join("store"))
        .await
        .unwrap();
    std::fs::write(dir.path().join("secret.ckpt"), b"secret").unwrap();
    for attempt in [
        "../secret",
        "../secret.ckpt",
        "/etc/passwd",
        "..%2fsecret",
        "0190a1b2-0000-7000-8000-0000000000/.",
        "",
    ] {
        let parsed = attempt.parse::<CheckpointId>();
        assert!(parsed.is_err(), "{attempt:?} parsed");
        let err: CheckpointError = parsed.unwrap_err().into();
        assert!(matches!(err, CheckpointError::InvalidId(_)));
    }
    // A valid id that does not exist is simply not found.
    let missing = CheckpointId::new();
    assert!(matches!(
        manager.load_checkpoint::<u32>(&missing).await,
        Err(CheckpointError::NotFound { id }) if id == missing
    ));
    assert!(!manager.delete(&missing).await.unwrap());
}

#[tokio::test]
async fn a_size_budget_warns_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let warned = Arc::new(Mutex::new(0));
    let count = Arc::clone(&warned);
    let manager = StateCheckpointManager::builder(Arc::new(FsStore::open(dir.path()).unwrap()))
        .compression(Compression::new(Codec::None))
        .size_budget(SizeBudget::new(Some(100), Some(1000)))
        .observer(move |event: &CheckpointEvent<'_>| {
            if matches!(event, CheckpointEvent::OverBudget { .. }) {
                *count.lock().unwrap() += 1;
            }
        })
        .build()
        .unwrap();
    manager.save_checkpoint(&"small", "a", "w").await.unwrap();
    assert_eq!(*warned.lock().unwrap(), 0);
    manager
        .save_checkpoint(&"x".repeat(500), "a", "w")
        .await
        .unwrap();
    assert_eq!(*warned.lock().unwrap(), 1);
    let err = manager
        .save_checkpoint(&"x".repeat(5000), "a", "w")
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointError::TooLarge { size, limit: 1000, .. } if size > 1000));
    assert_eq!(
        manager.list(&ListFilter::all()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn bad_names_and_states_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    for (agent, workflow) in [("", "w"), ("a", ""), ("a\n", "w"), (&*"a".repeat(600), "w")] {
        assert!(matches!(
            manager.save_checkpoint(&1, agent, workflow).await,
            Err(CheckpointError::InvalidInput { .. })
        ));
    }
    let not_json = BTreeMap::from([((1, 2), "tuple keys are not JSON object keys")]);
    assert!(matches!(
        manager.save_checkpoint(&not_json, "a", "w").await,
        Err(CheckpointError::Serialize(_))
    ));
    let id = manager.save_checkpoint(&"text", "a", "w").await.unwrap();
    assert!(matches!(
        manager.load_checkpoint::<u64>(&id).await,
        Err(CheckpointError::Deserialize { id: got, .. }) if got == id
    ));
}

#[test]
fn the_blocking_facade_works_without_a_runtime_and_refuses_inside_one() {
    let dir = tempfile::tempdir().unwrap();
    let manager = bulwark::checkpoint::BlockingCheckpointManager::open(dir.path()).unwrap();
    let id = manager.save_checkpoint(&state(3), "a", "w").unwrap();
    assert_eq!(
        manager.load_checkpoint::<AgentState>(&id).unwrap(),
        state(3)
    );
    assert_eq!(manager.get_latest_checkpoint("a", "w").unwrap(), Some(id));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inside = runtime.block_on(async { manager.get_latest_checkpoint("a", "w") });
    assert!(matches!(inside, Err(CheckpointError::Runtime { .. })));
}

#[tokio::test]
async fn a_large_state_that_still_parses_after_a_flip_is_refused_not_returned() {
    // Large enough for the load to hash on one thread while it deserializes on another.
    let dir = tempfile::tempdir().unwrap();
    let manager = manager_with(dir.path(), Compression::new(Codec::None)).await;
    let big = "a".repeat(300_000);
    let id = manager.save_checkpoint(&big, "a", "w").await.unwrap();
    let path = file_of(dir.path(), &id);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 100;
    assert_eq!(bytes[last], b'a');
    bytes[last] = b'b'; // still a valid JSON string, so only the hash can tell
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        manager.load_checkpoint::<String>(&id).await,
        Err(CheckpointError::Corrupt {
            source: DecodeError::HashMismatch { .. },
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_states_saved_back_to_back_load_and_verify() {
    // Large states are cut into frames compressed on several threads (a small one in between
    // is not); each must load, verify and chain like any other.
    let dir = tempfile::tempdir().unwrap();
    let mut options = FsStoreOptions::default();
    options.background_compaction = false;
    let store = FsStore::open_with(dir.path(), Arc::new(StdIo), options).unwrap();
    let manager = StateCheckpointManager::new(Arc::new(store.clone()));
    let mut ids = Vec::new();
    for step in [4000, 4100, 300, 4200] {
        ids.push(
            manager
                .save_checkpoint(&state(step), "a", "w")
                .await
                .unwrap(),
        );
    }
    // Loaded in the cheap form, then compacted (large ones in one frame, on one thread).
    for (id, step) in ids.iter().zip([4000, 4100, 300, 4200]) {
        assert_eq!(
            manager.load_checkpoint::<AgentState>(id).await.unwrap(),
            state(step)
        );
    }
    assert_eq!(store.compact_pending_blocking().compacted, 4);
    for (id, step) in ids.iter().zip([4000, 4100, 300, 4200]) {
        assert_eq!(
            manager.load_checkpoint::<AgentState>(id).await.unwrap(),
            state(step)
        );
        let meta = manager.verify(id).await.unwrap();
        assert!(meta.stored_size * 3 < meta.uncompressed_size, "{meta:?}");
    }
    let chain = manager.chain(&ids[3], 10).await.unwrap();
    assert_eq!(
        chain.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_damaged_frame_of_a_large_zstd_state_is_corrupt_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let manager = manager_with(dir.path(), Compression::default()).await;
    let id = manager
        .save_checkpoint(&state(4000), "a", "w")
        .await
        .unwrap();
    let path = file_of(dir.path(), &id);
    let original = std::fs::read(&path).unwrap();
    // Flip bytes across the payload: each load is refused as corrupt, whichever frame it hits.
    for at in (original.len() / 2..original.len()).step_by(original.len() / 7) {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            matches!(
                manager.load_checkpoint::<AgentState>(&id).await,
                Err(CheckpointError::Corrupt { .. })
            ),
            "flip at {at} was not caught"
        );
    }
}
