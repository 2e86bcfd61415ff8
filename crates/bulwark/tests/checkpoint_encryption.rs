//! Encryption at rest (feature `encryption`).
#![cfg(feature = "encryption")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bulwark::checkpoint::{CheckpointError, DecodeError, FsStore, Keyring, StateCheckpointManager};

fn manager(dir: &std::path::Path, keyring: Option<Keyring>) -> StateCheckpointManager {
    let builder = StateCheckpointManager::builder(Arc::new(FsStore::open(dir).unwrap()));
    match keyring {
        Some(k) => builder.keyring(k),
        None => builder,
    }
    .build()
    .unwrap()
}

#[tokio::test]
async fn encrypted_checkpoints_round_trip_and_hide_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let manager = manager(dir.path(), Some(Keyring::new("k1", [7; 32])));
    let secret = "the launch code is 12345".repeat(10);
    let id = manager.save_checkpoint(&secret, "a", "w").await.unwrap();
    let meta = manager.metadata(&id).await.unwrap();
    assert_eq!(meta.encryption.as_ref().unwrap().key_id, "k1");
    let raw = std::fs::read(dir.path().join(format!("{id}.ckpt"))).unwrap();
    assert!(!raw.windows(11).any(|w| w == b"launch code"));
    assert_eq!(
        manager.load_checkpoint::<String>(&id).await.unwrap(),
        secret
    );
    // Without the key: a typed error naming the key.
    let keyless = self::manager(dir.path(), None);
    assert!(matches!(
        keyless.load_checkpoint::<String>(&id).await,
        Err(CheckpointError::Corrupt { source: DecodeError::KeyUnavailable { key_id }, .. }) if key_id == "k1"
    ));
}

#[tokio::test]
async fn a_payload_moved_to_another_checkpoint_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let manager = manager(dir.path(), Some(Keyring::new("k1", [7; 32])));
    let victim = manager
        .save_checkpoint(&"agent one's state", "a", "w1")
        .await
        .unwrap();
    let other = manager
        .save_checkpoint(&"agent two's state", "b", "w2")
        .await
        .unwrap();
    let read = |id| std::fs::read(dir.path().join(format!("{id}.ckpt"))).unwrap();
    let (victim_bytes, other_bytes) = (read(victim), read(other));
    let header_len = |b: &[u8]| 28 + u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let other_payload = &other_bytes[header_len(&other_bytes)..];
    let victim_payload = &victim_bytes[header_len(&victim_bytes)..];
    assert_eq!(other_payload.len(), victim_payload.len());
    // Splice the other checkpoint's (validly sealed) payload under the victim's header.
    let mut spliced = victim_bytes[..header_len(&victim_bytes)].to_vec();
    spliced.extend_from_slice(other_payload);
    std::fs::write(dir.path().join(format!("{victim}.ckpt")), spliced).unwrap();
    assert!(matches!(
        manager.load_checkpoint::<String>(&victim).await,
        Err(CheckpointError::Corrupt {
            source: DecodeError::Decrypt,
            ..
        })
    ));
}

#[tokio::test]
async fn after_a_key_rotation_old_checkpoints_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let old = manager(dir.path(), Some(Keyring::new("2025", [1; 32])));
    let id = old.save_checkpoint(&42u32, "a", "w").await.unwrap();
    let rotated = manager(
        dir.path(),
        Some(Keyring::new("2026", [2; 32]).with_old_key("2025", [1; 32])),
    );
    let new_id = rotated.save_checkpoint(&43u32, "a", "w").await.unwrap();
    assert_eq!(rotated.load_checkpoint::<u32>(&id).await.unwrap(), 42);
    assert_eq!(
        rotated
            .metadata(&new_id)
            .await
            .unwrap()
            .encryption
            .unwrap()
            .key_id,
        "2026"
    );
    let wrong = manager(dir.path(), Some(Keyring::new("2025", [9; 32])));
    assert!(matches!(
        wrong.load_checkpoint::<u32>(&id).await,
        Err(CheckpointError::Corrupt {
            source: DecodeError::Decrypt,
            ..
        })
    ));
}
