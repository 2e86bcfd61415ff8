//! The cost of a save does not grow with the number of checkpoints stored: counted in file
//! operations and bytes read through the storage seam, not in (noisy) time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bulwark::checkpoint::store::io::{FileIdentity, StdIo, StorageIo};
use bulwark::checkpoint::{FsStore, FsStoreOptions, StateCheckpointManager};

#[derive(Debug, Default)]
struct CountingIo {
    ops: AtomicU64,
    bytes_read: AtomicU64,
    listings: AtomicU64,
}

impl CountingIo {
    fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.ops.load(Ordering::SeqCst),
            self.bytes_read.load(Ordering::SeqCst),
            self.listings.load(Ordering::SeqCst),
        )
    }
    fn op(&self) {
        self.ops.fetch_add(1, Ordering::SeqCst);
    }
}

impl StorageIo for CountingIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.op();
        StdIo.create_dir_all(dir)
    }
    fn write_new(&self, path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
        self.op();
        StdIo.write_new(path, data, sync)
    }
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.op();
        StdIo.append(path, data)
    }
    fn read_at(
        &self,
        path: &Path,
        offset: u64,
        max_len: u64,
    ) -> io::Result<(Vec<u8>, FileIdentity)> {
        self.op();
        let result = StdIo.read_at(path, offset, max_len)?;
        self.bytes_read
            .fetch_add(result.0.len() as u64, Ordering::SeqCst);
        Ok(result)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op();
        StdIo.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.op();
        StdIo.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.op();
        StdIo.sync_dir(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.op();
        self.listings.fetch_add(1, Ordering::SeqCst);
        StdIo.list_dir(dir)
    }
    fn identity(&self, path: &Path) -> io::Result<FileIdentity> {
        self.op();
        StdIo.identity(path)
    }
}

#[tokio::test]
async fn a_save_costs_the_same_with_ten_or_four_hundred_checkpoints_stored() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(CountingIo::default());
    // The save path alone: the compactor's reads and writes would interleave at random.
    let mut options = FsStoreOptions::default();
    options.background_compaction = false;
    let store = FsStore::open_with(dir.path(), io.clone(), options).unwrap();
    let manager = StateCheckpointManager::new(Arc::new(store));
    let state = vec!["same size state"; 20];
    let mut cost_at = Vec::new();
    for n in 0..400usize {
        let before = io.snapshot();
        manager
            .save_checkpoint(&state, "agent", &format!("wf{}", n % 7))
            .await
            .unwrap();
        let after = io.snapshot();
        if n == 10 || n == 399 {
            cost_at.push((after.0 - before.0, after.1 - before.1, after.2 - before.2));
        }
    }
    let (small, large) = (cost_at[0], cost_at[1]);
    assert_eq!(
        small.0, large.0,
        "file operations per save grew: {small:?} -> {large:?}"
    );
    // The only read is the previous save's index record; its sequence number gains a digit.
    assert!(
        large.1 <= small.1 + 8,
        "bytes read per save grew: {small:?} -> {large:?}"
    );
    assert_eq!((small.2, large.2), (0, 0), "a save listed the folder");
}
