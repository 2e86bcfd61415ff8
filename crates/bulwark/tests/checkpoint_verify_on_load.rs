//! Which read checks what (issue 11 defect 8): a zstd checkpoint whose state is intact but
//! whose recorded SHA-256 is wrong (header CRC recomputed, so only the hash can tell) loads by
//! default — the frames' XXH64 proved the payload intact — while `verify`, "latest" and a
//! manager with `verify_on_load` compare the SHA-256 and refuse it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bulwark::checkpoint::{CheckpointError, FsStore, StateCheckpointManager};

/// Rewrites the recorded SHA-256 to another value and fixes the header CRC.
fn forge_hash(bytes: &mut [u8]) {
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let meta = &mut bytes[28..28 + meta_len];
    let key = b"\"sha256\":\"";
    let at = meta.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    meta[at] = if meta[at] == b'0' { b'1' } else { b'0' };
    let mut covered = bytes[..24].to_vec();
    covered.extend_from_slice(&bytes[28..28 + meta_len]);
    let crc = crc32fast::hash(&covered);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
}

#[tokio::test]
async fn only_verify_latest_and_verify_on_load_compare_the_sha256_of_a_zstd_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::open(dir.path()).unwrap());
    // Compressed before the save returns, so that the file on disk is zstd from the start.
    let plain = StateCheckpointManager::builder(store.clone())
        .compress_before_ack(true)
        .build()
        .unwrap();
    let state = vec!["hello".to_owned(); 50];
    let id = plain.save_checkpoint(&state, "a", "wf").await.unwrap();
    let path = dir.path().join(format!("{id}.ckpt"));
    let mut bytes = std::fs::read(&path).unwrap();
    forge_hash(&mut bytes);
    std::fs::write(&path, bytes).unwrap();

    let loaded: Vec<String> = plain.load_checkpoint(&id).await.unwrap();
    assert_eq!(
        loaded, state,
        "the default load trusts the zstd frame checksums"
    );
    assert!(matches!(
        plain.verify(&id).await,
        Err(CheckpointError::Corrupt { .. })
    ));
    assert_eq!(plain.get_latest_checkpoint("a", "wf").await.unwrap(), None);

    let strict = StateCheckpointManager::builder(store)
        .verify_on_load(true)
        .build()
        .unwrap();
    let error = strict
        .load_checkpoint::<Vec<String>>(&id)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("SHA-256 mismatch"), "{error}");
}
