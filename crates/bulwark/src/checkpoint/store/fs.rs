//! The filesystem store: one file per checkpoint, `<id>.ckpt`, in one folder.
//!
//! Commit protocol of a save (docs/checkpoint-format.md lists the crash cases):
//! 1. write the envelope to `.<id>.<pid>.<n>.tmp` and `fdatasync` it (its data and length);
//! 2. `rename` it to `<id>.ckpt` (atomic: the name points to the old nothing or the whole file);
//! 3. `fsync` the folder, making the name durable; only now does the save return;
//! 4. append a record to `index.log` (not synced: the index is an accelerator).
//!
//! Step 3 is a group commit (`fs/group.rs`): saves renamed while a folder flush runs share the
//! next one. The manager saves in the cheap form (uncompressed, with its SHA-256) and the
//! background compactor (`fs/compactor.rs`) rewrites each checkpoint with its codec afterwards.
//!
//! Opening reconciles the index with the folder listing: files the log does not know are read
//! (header only) and added, entries whose file is gone are dropped. Later queries only read
//! the log's new tail (records other processes appended), so the cost of a save stays
//! independent of the number of checkpoints stored.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

mod compactor;
mod group;
mod impls;
mod reconcile;

pub use compactor::{CompactionReport, CompactionStats};
pub use group::CommitStats;
pub use reconcile::RebuildReport;

use super::index::{LogRecord, MemIndex, encode_record};
use super::io::{StdIo, StorageIo};
use super::{CheckpointPage, ListFilter, UnreadableCheckpoint};
use crate::checkpoint::codec::Compression;
use crate::checkpoint::envelope::FIXED_HEADER_LEN;
use crate::checkpoint::error::StoreError;
use crate::checkpoint::id::CheckpointId;
use crate::checkpoint::metadata::CheckpointMetadata;

const LOG_NAME: &str = "index.log";
const EXTENSION: &str = ".ckpt";
/// Headers are read in one go when they fit here (metadata is usually a few hundred bytes).
const HEADER_PROBE: u64 = 4096;
/// Fenced saves lock one of this many lock files (`.fence-NN.lock`), chosen by a hash of
/// the workflow: a bounded number of files, and unrelated workflows rarely wait for each other.
const FENCE_STRIPES: usize = 64;

/// Options of an [`FsStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsStoreOptions {
    /// Temporary files of interrupted saves older than this are removed when the store opens
    /// (younger ones may belong to a save in progress in another process).
    pub stale_temp_age: Duration,
    /// The index log is rewritten when it holds more than this many records beyond twice the
    /// live checkpoints.
    pub compact_slack: u64,
    /// The codec checkpoints found uncompressed are rewritten with (zstd level 1 by default).
    /// With `Some`, the manager acknowledges saves in the cheap form and the compactor
    /// compresses them afterwards, with the manager's configured codec (this one for those
    /// found at open, whose target is not known); with `None`, nothing is compacted and the
    /// manager compresses before it acknowledges.
    pub compaction: Option<Compression>,
    /// Run the compactor on a background thread (the default). Off, checkpoints wait for
    /// [`FsStore::compact_pending_blocking`]: crash tests drive compaction step by step.
    pub background_compaction: bool,
    /// Share folder flushes between concurrent saves (the default; off only to measure it).
    pub group_commit: bool,
}

impl Default for FsStoreOptions {
    fn default() -> Self {
        Self {
            stale_temp_age: Duration::from_secs(3600),
            compact_slack: 1024,
            compaction: Some(Compression::default()),
            background_compaction: true,
            group_commit: true,
        }
    }
}

/// Checkpoints as files in one folder. Cheap to clone; clones share the index.
///
/// Safe for many tasks of one process at once, and for several processes sharing the folder:
/// every file appears by atomic rename, and the index log tolerates concurrent appends.
#[derive(Clone)]
pub struct FsStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    log_path: PathBuf,
    io: Arc<dyn StorageIo>,
    options: FsStoreOptions,
    temp_counter: AtomicU64,
    state: Mutex<State>,
    /// In-process halves of the fence locks (see [`FsStore::put_fenced_blocking`]).
    fence_locks: [Mutex<()>; FENCE_STRIPES],
    /// Saves and deletes hold it shared; a rebuild holds it exclusively, so that a checkpoint
    /// written while the folder is being listed cannot be left out of the rebuilt index.
    rebuild_lock: RwLock<()>,
    /// Folder flushes shared by concurrent saves.
    group: group::GroupSync,
    /// Checkpoints waiting to be compressed, and what the compactor did.
    compactor: Arc<compactor::Compactor>,
    /// In-process half of `.compact.lock`: a compaction's replace and a delete exclude each
    /// other, so a compaction never brings a deleted checkpoint back.
    replace_lock: Mutex<()>,
    /// Saves between their start and their acknowledgement; the compactor waits while any is.
    saves_in_flight: AtomicUsize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.compactor.stop();
    }
}

/// Counts a save in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct State {
    index: MemIndex,
    unreadable: BTreeMap<String, UnreadableCheckpoint>,
    /// Inode of the log we have read, and how far.
    log_id: Option<u64>,
    log_offset: u64,
    /// Records in the log file (live and dead), for deciding when to compact.
    log_records: u64,
}

impl std::fmt::Debug for FsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsStore")
            .field("dir", &self.inner.dir)
            .field("io", &self.inner.io)
            .finish_non_exhaustive()
    }
}

impl FsStore {
    /// Opens (creating if needed) the store in `dir` on the real filesystem. Blocking: from
    /// async code use [`FsStore::open_async`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_with(dir, Arc::new(StdIo), FsStoreOptions::default())
    }

    /// [`FsStore::open`] on a blocking thread.
    pub async fn open_async(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        impls::blocking(move || Self::open(dir)).await
    }

    /// Opens the store in `dir` through `io` (a fault-injecting one in crash tests).
    pub fn open_with(
        dir: impl Into<PathBuf>,
        io: Arc<dyn StorageIo>,
        options: FsStoreOptions,
    ) -> Result<Self, StoreError> {
        let dir = dir.into();
        io.create_dir_all(&dir)
            .map_err(|e| StoreError::io("create", &dir, e))?;
        let store = Self {
            inner: Arc::new(Inner {
                log_path: dir.join(LOG_NAME),
                dir,
                io,
                options,
                temp_counter: AtomicU64::new(0),
                state: Mutex::new(State::default()),
                fence_locks: std::array::from_fn(|_| Mutex::new(())),
                rebuild_lock: RwLock::new(()),
                group: group::GroupSync::default(),
                compactor: Arc::default(),
                replace_lock: Mutex::new(()),
                saves_in_flight: AtomicUsize::new(0),
            }),
        };
        let report = store.rebuild(true)?;
        tracing::debug!(dir = %store.inner.dir.display(), ?report, "checkpoint store open");
        store.enqueue_uncompressed();
        if options.compaction.is_some() && options.background_compaction {
            let (weak, compactor) = (
                Arc::downgrade(&store.inner),
                Arc::clone(&store.inner.compactor),
            );
            std::thread::Builder::new()
                .name("bulwark-ckpt-compactor".into())
                .spawn(move || compactor::run(weak, compactor))
                .map_err(|e| StoreError::io("spawn compactor", &store.inner.dir, e))?;
        }
        Ok(store)
    }

    /// How folder flushes were shared between concurrent saves.
    pub fn commit_stats(&self) -> CommitStats {
        self.inner.group.stats()
    }

    /// Flushes the folder, in the flush group unless group commit is off.
    fn sync_folder(&self) -> Result<(), StoreError> {
        let (io, dir) = (&*self.inner.io, &self.inner.dir);
        let result = if self.inner.options.group_commit {
            self.inner.group.sync(|| io.sync_dir(dir))
        } else {
            io.sync_dir(dir)
        };
        result.map_err(|e| StoreError::io("sync", dir, e))
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Throws the index away and rebuilds it from the checkpoint files' headers.
    pub fn rebuild_index(&self) -> Result<RebuildReport, StoreError> {
        self.rebuild(false)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, id: &CheckpointId) -> PathBuf {
        self.inner.dir.join(id.file_name())
    }

    fn temp_path(&self, what: impl std::fmt::Display) -> PathBuf {
        let n = self.inner.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.inner
            .dir
            .join(format!(".{what}.{}.{n}.tmp", std::process::id()))
    }

    fn append_record(&self, state: &mut State, record: &LogRecord) {
        if let Err(error) = self
            .inner
            .io
            .append(&self.inner.log_path, &encode_record(record))
        {
            tracing::warn!(%error, "cannot append to checkpoint index log; it will be rebuilt");
        }
        state.log_records += 1;
    }

    /// Stores an envelope durably (blocking).
    pub fn put_blocking(
        &self,
        metadata: &CheckpointMetadata,
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        let _in_flight = InFlight::new(&self.inner.saves_in_flight);
        let _shared = self
            .inner
            .rebuild_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let io = &*self.inner.io;
        let path = self.path_of(&metadata.id);
        if self.state().index.contains(&metadata.id) || io.identity(&path).is_ok() {
            return Err(StoreError::AlreadyExists { id: metadata.id });
        }
        let temp = self.temp_path(metadata.id);
        let written = io
            .write_new(&temp, envelope, true)
            .map_err(|e| StoreError::io("write", &temp, e))
            .and_then(|()| {
                io.rename(&temp, &path)
                    .map_err(|e| StoreError::io("rename", &temp, e))
            });
        if let Err(error) = written {
            let _ = io.remove_file(&temp);
            return Err(error);
        }
        self.sync_folder()?;
        let mut state = self.state();
        state.index.insert(metadata.clone());
        self.append_record(
            &mut state,
            &LogRecord::Put {
                meta: Box::new(metadata.clone()),
            },
        );
        Ok(())
    }

    /// Stores an envelope only if the newest checkpoint of its (agent, workflow) is
    /// `expected_latest` (blocking); see [`CheckpointStore::put_fenced`](super::CheckpointStore::put_fenced).
    ///
    /// Atomic across threads and processes sharing the folder: the check and the write run
    /// under an exclusive `flock` on the workflow's lock file (one of 64 `.fence-NN.lock`
    /// files), and the check first reads the records other processes appended to the index
    /// log, which a fenced save appends before it releases the lock. Unfenced saves do not
    /// take the lock; a workflow that mixes both is fenced only against the fenced ones.
    pub fn put_fenced_blocking(
        &self,
        metadata: &CheckpointMetadata,
        envelope: &[u8],
        expected_latest: Option<&CheckpointId>,
    ) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(metadata.agent_id.len() + metadata.workflow_id.len() + 1);
        key.extend_from_slice(metadata.agent_id.as_bytes());
        key.push(0);
        key.extend_from_slice(metadata.workflow_id.as_bytes());
        let stripe = crc32fast::hash(&key) as usize % FENCE_STRIPES;
        let _in_process = self.inner.fence_locks[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.inner.dir.join(format!(".fence-{stripe:02}.lock"));
        let _across_processes = self
            .inner
            .io
            .lock_exclusive(&lock_path)
            .map_err(|e| StoreError::io("lock", &lock_path, e))?;
        self.refresh()?;
        let filter = ListFilter::workflow(&metadata.agent_id, &metadata.workflow_id).limit(1);
        let actual = self.state().index.list(&filter).items.first().map(|m| m.id);
        super::check_fence(actual, expected_latest)?;
        self.put_blocking(metadata, envelope)
    }

    /// The envelope bytes of `id` (blocking).
    pub fn get_blocking(&self, id: &CheckpointId) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(id);
        match self.inner.io.read_at(&path, 0, u64::MAX) {
            Ok((bytes, _)) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.state().index.remove(id);
                Err(StoreError::NotFound { id: *id })
            }
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// The metadata of `id` (blocking).
    pub fn metadata_blocking(&self, id: &CheckpointId) -> Result<CheckpointMetadata, StoreError> {
        self.refresh()?;
        if let Some(meta) = self.state().index.get(id) {
            return Ok(meta.clone());
        }
        // Saved by another process whose index record is not (yet) visible.
        let meta = self.read_header(id)?;
        self.state().index.insert(meta.clone());
        Ok(meta)
    }

    /// One page of metadata (blocking).
    pub fn list_blocking(&self, filter: &ListFilter) -> Result<CheckpointPage, StoreError> {
        self.refresh()?;
        Ok(self.state().index.list(filter))
    }

    /// Deletes `id` durably (blocking).
    pub fn delete_blocking(&self, id: &CheckpointId) -> Result<bool, StoreError> {
        let _shared = self
            .inner
            .rebuild_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let io = &*self.inner.io;
        let path = self.path_of(id);
        // A delete of an id with no file takes no lock and so creates no lock file: a refused
        // or pointless request leaves the folder as it was. (A compaction only replaces a
        // file that exists, so none can bring this one into being meanwhile.)
        let missing = matches!(io.identity(&path), Err(e) if e.kind() == io::ErrorKind::NotFound);
        let removed = if missing {
            Err(io::Error::from(io::ErrorKind::NotFound))
        } else {
            // Against a compaction replacing the file at the same moment (it would bring the
            // checkpoint back).
            let _in_process = self
                .inner
                .replace_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let lock_path = self.inner.dir.join(compactor::REPLACE_LOCK);
            let _across_processes = io
                .lock_exclusive(&lock_path)
                .map_err(|e| StoreError::io("lock", &lock_path, e))?;
            io.remove_file(&path)
        };
        let existed = match removed {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::io("remove", &path, e)),
        };
        if existed {
            self.sync_folder()?;
        }
        let mut state = self.state();
        let known = state.index.remove(id).is_some();
        state.unreadable.remove(&id.file_name());
        if known || existed {
            self.append_record(&mut state, &LogRecord::Del { id: *id });
        }
        if state.log_records > 2 * state.index.len() as u64 + self.inner.options.compact_slack {
            self.compact(&mut state);
        }
        Ok(existed)
    }

    /// Files that look like checkpoints but whose headers do not decode (blocking).
    pub fn unreadable_blocking(&self) -> Vec<UnreadableCheckpoint> {
        self.state().unreadable.values().cloned().collect()
    }
}
