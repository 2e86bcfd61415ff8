//! What the filesystem store's in-memory index holds per checkpoint (issue 12 defect 11),
//! counted by an instrumented allocator: a store opened on a folder of N checkpoints keeps
//! this many live heap bytes more than one opened on an empty folder. The figure is quoted in
//! the README's retention section; the default retention policy is what bounds N.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bulwark::checkpoint::store::io::{FileIdentity, StdIo, StorageIo};
use bulwark::checkpoint::{FsStore, FsStoreOptions, StateCheckpointManager};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The real filesystem without the syncs, so that thousands of saves take a moment; the
/// index does not depend on durability.
#[derive(Debug)]
struct NoSyncIo;

impl StorageIo for NoSyncIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdIo.create_dir_all(dir)
    }
    fn write_new(&self, path: &Path, data: &[u8], _sync: bool) -> io::Result<()> {
        StdIo.write_new(path, data, false)
    }
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        StdIo.append(path, data)
    }
    fn read_at(
        &self,
        path: &Path,
        offset: u64,
        max_len: u64,
    ) -> io::Result<(Vec<u8>, FileIdentity)> {
        StdIo.read_at(path, offset, max_len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdIo.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_file(path)
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdIo.list_dir(dir)
    }
    fn identity(&self, path: &Path) -> io::Result<FileIdentity> {
        StdIo.identity(path)
    }
}

/// Saves `n` checkpoints shaped like the server's workflow runs (one workflow id per run, a
/// few steps each, the step's agent as `agent_id`).
async fn fill(dir: &Path, n: usize) {
    let mut options = FsStoreOptions::default();
    options.background_compaction = false;
    let store = FsStore::open_with(dir, Arc::new(NoSyncIo), options).unwrap();
    let manager = StateCheckpointManager::new(Arc::new(store.clone()));
    for k in 0..n {
        let run = format!("run-{:08x}-{:04x}", k / 5, k % 7);
        let agent = ["researcher", "writer", "reviewer"][k % 3];
        let state = serde_json::json!({"step": k, "output": "x".repeat(64)});
        manager.save_checkpoint(&state, agent, &run).await.unwrap();
    }
    // Compacted, as the background compactor leaves a folder: the stores opened below then
    // queue nothing, and only the index is measured.
    assert_eq!(store.compact_pending_blocking().compacted, n);
    // One log record per checkpoint, as the index measured here was sized against. A log
    // left with two per compacted checkpoint (cheap form, then compacted) measured about
    // 2.5 KB per checkpoint at open: an open item of the write path, see PERFORMANCE.md.
    store.rebuild_index().unwrap();
}

/// Live heap bytes held by a store opened on `dir`.
fn store_bytes(dir: &Path) -> (FsStore, i64) {
    let region = Region::new(GLOBAL);
    let store = FsStore::open_with(dir, Arc::new(NoSyncIo), FsStoreOptions::default()).unwrap();
    let change = region.change();
    let live = change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64;
    (store, live)
}

#[tokio::test(flavor = "current_thread")]
async fn the_index_holds_under_two_kilobytes_per_checkpoint() {
    const SMALL: usize = 500;
    const LARGE: usize = 3000;
    let (small, large) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fill(small.path(), SMALL).await;
    fill(large.path(), LARGE).await;
    let (_a, small_bytes) = store_bytes(small.path());
    let (_b, large_bytes) = store_bytes(large.path());
    let per_checkpoint = (large_bytes - small_bytes) as f64 / (LARGE - SMALL) as f64;
    println!("index memory: {per_checkpoint:.0} bytes per checkpoint");
    assert!(
        (300.0..2048.0).contains(&per_checkpoint),
        "{per_checkpoint:.0} bytes per indexed checkpoint"
    );
}
